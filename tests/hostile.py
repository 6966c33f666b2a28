"""Builders of hostile inputs, and a peak-memory probe, shared by the tests."""

import json
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import zipfile
from collections import OrderedDict

import torch
from torch._utils import _rebuild_tensor_v2

# -- a torch-style checkpoint with any pickle and any storages ------------------------


class Storage:
    """Pickled as torch's persistent id for a storage."""

    def __init__(self, key, numel, kind=torch.FloatStorage):
        self.key, self.numel, self.kind = key, numel, kind


class Tensor:
    """Pickled as torch pickles a tensor: ``_rebuild_tensor_v2(storage, ...)``."""

    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride)

    def __reduce__(self):
        return _rebuild_tensor_v2, (*self.args, False, OrderedDict())


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.kind, obj.key, "cpu", obj.numel)
        return None


def dumps(obj) -> bytes:
    """Pickle ``obj`` as torch would, with :class:`Storage` as persistent ids."""
    import io

    out = io.BytesIO()
    _Pickler(out, protocol=2).dump(obj)
    return out.getvalue()


def write_checkpoint(path, pkl: bytes, storages=None, compression=zipfile.ZIP_STORED):
    """A torch zip archive with ``pkl`` as data.pkl and ``{key: bytes}`` storages."""
    with zipfile.ZipFile(path, "w", compression) as z:
        z.writestr("archive/data.pkl", pkl)
        for key, data in (storages or {}).items():
            z.writestr(f"archive/data/{key}", data)
        z.writestr("archive/version", "3\n")
    return path


def float_checkpoint(path, weights=None, **extra):
    """A checkpoint whose state_dict is ``{name: float32 tensor}``, plus ``extra``."""
    weights = {"w": torch.ones(2)} if weights is None else weights
    state, storages = {}, {}
    for i, (name, tensor) in enumerate(weights.items()):
        kind = {
            torch.float32: torch.FloatStorage,
            torch.float64: torch.DoubleStorage,
            torch.int64: torch.LongStorage,
        }[tensor.dtype]
        storage = Storage(str(i), tensor.numel(), kind)
        state[name] = Tensor(storage, 0, tuple(tensor.shape), tensor.stride())
        storages[str(i)] = tensor.contiguous().numpy().tobytes()
    return write_checkpoint(path, dumps({"state_dict": state, **extra}), storages)


# -- raw pickle opcodes ----------------------------------------------------------------


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def text(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


# -- peak memory of a call, in a fresh process ---------------------------------------------


def peak_memory(code: str, timeout: float = 120) -> dict:
    """Run ``code`` in a subprocess after the imports; return what it reports.

    ``code`` runs with ``before`` (peak RSS in KiB after importing skseg and
    torch) defined, and must leave ``result`` (a JSON-able dict). ``grown_mib``,
    how much the peak grew while it ran, is added.
    """
    program = (
        "import json, resource, skseg, skseg.checkpoint, skseg.audio, torch, numpy\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "result = {}\n"
        + textwrap.dedent(code)
        + "\nafter = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "result['grown_mib'] = (after - before) / 1024\n"
        "print(json.dumps(result))\n"
    )
    import skseg

    root = os.path.dirname(os.path.dirname(os.path.abspath(skseg.__file__)))
    env = dict(os.environ, PYTHONPATH=root)
    out = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])
