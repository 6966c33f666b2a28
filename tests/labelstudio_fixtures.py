"""A real Label Studio and a real skseg ML backend, for the annotation-loop tests.

Label Studio 1.23.2 runs from its own environment (benchmarks/setup_labelstudio.sh,
installed on first use and cached), on a free 127.0.0.1 port, with its data in a
temporary folder; the backend runs in this process on uvicorn, so the tests see
its state. Both stop when the session ends.
"""

from __future__ import annotations

import importlib.util
import socket
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def launcher():
    """The benchmarks/labelstudio_server.py module (not a package: loaded by path)."""
    path = ROOT / "benchmarks" / "labelstudio_server.py"
    spec = importlib.util.spec_from_file_location("labelstudio_server", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BackendThread:
    """Serve an ASGI app with uvicorn in a thread; ``url``; ``stop()``."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> BackendThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the backend did not start on {self.url}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
