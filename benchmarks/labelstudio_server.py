"""Start Label Studio 1.23 for the tests and docs; mint a personal access token.

Runs ``label-studio start`` from the environment that ``setup_labelstudio.sh`` builds
(outside the repository), bound to 127.0.0.1, with its data in a folder of its own,
a user created non-interactively (``--username/--password``), local files served
from ``--audio-root`` (LOCAL_FILES_SERVING_ENABLED + LOCAL_FILES_DOCUMENT_ROOT), and
Label Studio's default authentication left as it is: legacy tokens disabled,
personal access tokens (JWT refresh tokens) enabled. The token is minted as a
person does in the UI -- log in (``/user/login``, a Django session) and ask
``POST /api/token/`` for a personal access token -- so nothing of Label Studio's
database or settings is touched.

Two settings are relaxed, for a backend on the same machine only: Label Studio
blocks ML backends and webhooks on local addresses by default (``ML_BLOCK_LOCAL_IP``,
``SSRF_PROTECTION_ENABLED``); a backend on 127.0.0.1 needs both off.

usage: python benchmarks/labelstudio_server.py --data-dir DIR --audio-root DIR
                                                [--port N]
       prints ``url`` and ``token`` as JSON, then serves until interrupted.

Standard library only, so that any Python runs it (the tests import it).
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
SETUP = HERE / "setup_labelstudio.sh"
USER = "skseg@localhost"
PASSWORD = "skseg-annotator"


def labelstudio_dir() -> Path:
    default = Path.home() / ".cache" / "skseg" / "labelstudio"
    return Path(os.environ.get("SKSEG_LABELSTUDIO_DIR") or default)


def install() -> Path:
    """Run setup_labelstudio.sh (fast when done); return the label-studio executable."""
    done = subprocess.run(
        ["bash", str(SETUP), str(labelstudio_dir())],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return Path(done.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A running Label Studio: ``url``, ``token``, ``process``; ``stop()`` ends it."""

    def __init__(self, data_dir, audio_root, port: int | None = None, log=None):
        self.data_dir = Path(data_dir)
        self.audio_root = Path(audio_root).resolve()
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen | None = None
        self.token: str | None = None

    def start(self, timeout: float = 600.0) -> Server:
        executable = install()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(
            os.environ,
            LABEL_STUDIO_BASE_DATA_DIR=str(self.data_dir),
            LOCAL_FILES_SERVING_ENABLED="true",
            LOCAL_FILES_DOCUMENT_ROOT=str(self.audio_root),
            # an ML backend and webhooks on this machine (127.0.0.1)
            ML_BLOCK_LOCAL_IP="false",
            SSRF_PROTECTION_ENABLED="false",
            # no calls out of the machine
            LATEST_VERSION_CHECK="false",
            COLLECT_ANALYTICS="false",
            SENTRY_DSN="",
            FRONTEND_SENTRY_DSN="",
            LABEL_STUDIO_HOST=self.url,
        )
        log = self.log or open(self.data_dir / "label-studio.log", "ab")
        self.process = subprocess.Popen(
            [
                str(executable),
                "start",
                "--no-browser",
                "--internal-host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--username",
                USER,
                "--password",
                PASSWORD,
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stop() ends its whole process group
        )
        self._wait(timeout)
        try:
            self.token = mint_token(self.url)
        except BaseException:
            self.stop()  # no server left behind without its token
            raise
        return self

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"label-studio exited with {self.process.returncode}; see "
                    f"{self.data_dir / 'label-studio.log'}"
                )
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=5) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(1.0)
        self.stop()
        raise RuntimeError(f"label-studio did not answer on {self.url} in {timeout} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def login(url: str, user: str = USER, password: str = PASSWORD):
    """Return an opener holding a logged-in session, and its CSRF token."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(url + "/user/login/", timeout=30).read()
    csrf = next(c.value for c in jar if c.name == "csrftoken")
    form = urllib.parse.urlencode(
        {"email": user, "password": password, "csrfmiddlewaretoken": csrf}
    ).encode()
    request = urllib.request.Request(
        url + "/user/login/", data=form, headers={"Referer": url + "/user/login/"}
    )
    opener.open(request, timeout=30).read()
    if not any(c.name == "sessionid" for c in jar):
        raise RuntimeError(f"could not log in to {url} as {user}")
    csrf = next(c.value for c in jar if c.name == "csrftoken")
    return opener, csrf, jar


def mint_token(url: str, user: str = USER, password: str = PASSWORD) -> str:
    """Log in and return the user's personal access token (a JWT refresh token)."""
    opener, csrf, _ = login(url, user, password)
    headers = {
        "X-CSRFToken": csrf,
        "Referer": url + "/",
        "Content-Type": "application/json",
    }
    request = urllib.request.Request(
        url + "/api/token/", data=b"{}", headers=headers, method="POST"
    )
    try:
        with opener.open(request, timeout=30) as r:
            answer = json.loads(r.read())
    except urllib.error.HTTPError as e:
        if e.code == 409:
            raise RuntimeError(
                f"{user} already has a personal access token on {url}, and Label "
                "Studio shows a token only once: start with a fresh --data-dir, or "
                "revoke it in Account & Settings > Personal Access Token"
            ) from None
        raise RuntimeError(
            f"{url}/api/token/ refused to mint a token: {e.code} {e.read()[:200]!r}"
        ) from None
    token = answer.get("token") if isinstance(answer, dict) else None
    if not token or not re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", token):
        raise RuntimeError(f"{url}/api/token/ answered no JWT: {answer!r}")
    return token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--audio-root", required=True)
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    server = Server(args.data_dir, args.audio_root, args.port).start()
    print(json.dumps({"url": server.url, "token": server.token}), flush=True)
    try:
        server.process.wait()
    except KeyboardInterrupt:
        server.stop()
    sys.exit(server.process.returncode or 0)


if __name__ == "__main__":
    main()
