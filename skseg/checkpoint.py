"""Reading pyannote / PyTorch-Lightning checkpoints without running their pickles.

A Lightning checkpoint is a torch zip archive whose ``data.pkl`` pickles, beside
the tensors, omegaconf containers and pyannote classes. ``torch.load`` would
import (and need) those packages and, with ``weights_only=False``, execute any
callable the pickle names. Here the pickle is read by an unpickler whose
``find_class`` answers from an allow-list: tensors and plain containers are
rebuilt, the known foreign classes become inert records that are converted to
plain data, and any other global (``os.system``, ``builtins.eval``, ...) stops the
load with :class:`~skseg.exceptions.UnsafeCheckpointError` before it can be
called. Tensor bytes are read from the archive only for the ``state_dict``
entries, never for the optimizer states.
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .exceptions import CheckpointError, UnsafeCheckpointError

__all__ = ["Checkpoint", "Specifications", "load_checkpoint", "sha256sum"]


@dataclass(frozen=True)
class Specifications:
    """What the model was trained to output (pyannote's ``Specifications``).

    Parameters
    ----------
    problem : str
        ``"multi-label"``, ``"mono-label"``, ``"binary"``, ...
    resolution : str
        ``"frame"`` or ``"chunk"``.
    duration : float
        Training chunk duration, in seconds.
    classes : tuple of str
        Output names.
    warm_up : tuple of float
        Left and right warm-up, in seconds.
    permutation_invariant : bool
        Whether output slots are local speakers whose order means nothing.
    powerset : bool
        Whether outputs are powerset classes (not supported by the estimators).

    Examples
    --------
    >>> from skseg import load_checkpoint
    >>> from skseg.hub import resolve_checkpoint
    >>> checkpoint = load_checkpoint(resolve_checkpoint("pyannote/segmentation"))
    >>> spec = checkpoint.specifications
    >>> spec.problem, spec.resolution, spec.duration, len(spec.classes)
    ('multi-label', 'frame', 5.0, 3)
    """

    problem: str = "multi-label"
    resolution: str = "frame"
    duration: float = 5.0
    classes: tuple[str, ...] = ("speaker#1", "speaker#2", "speaker#3")
    warm_up: tuple[float, float] = (0.0, 0.0)
    permutation_invariant: bool = True
    powerset: bool = False


@dataclass
class Checkpoint:
    """The parts of a checkpoint skseg uses.

    Attributes
    ----------
    state_dict : dict of str to Tensor
        Network weights.
    hyper_parameters : dict
        ``sample_rate``, ``sincnet``, ``lstm``, ``linear``, ... as plain data.
    specifications : Specifications
        Output specifications.
    architecture : str
        The class the checkpoint was saved from, e.g. ``"...PyanNet"``.
    sha256 : str
        Digest of the checkpoint file.
    path : str
        Where it was read from.

    Examples
    --------
    >>> from skseg import load_checkpoint
    >>> from skseg.hub import resolve_checkpoint
    >>> checkpoint = load_checkpoint(resolve_checkpoint("pyannote/segmentation"))
    >>> checkpoint.architecture.rsplit(".", 1)[-1]
    'PyanNet'
    >>> checkpoint.hyper_parameters["lstm"]["hidden_size"]
    128
    """

    state_dict: dict[str, torch.Tensor]
    hyper_parameters: dict[str, Any]
    specifications: Specifications
    architecture: str
    sha256: str
    path: str
    metadata: dict[str, Any] = field(default_factory=dict)


def sha256sum(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Return the hexadecimal SHA-256 digest of a file.

    Parameters
    ----------
    path : str or PathLike
        The file.
    chunk_size : int, default=1 MiB
        Read size.

    Returns
    -------
    digest : str

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "hello.txt")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(b"hello")
    >>> sha256sum(path)[:16]
    '2cf24dba5fb0a30e'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            h.update(block)
    return h.hexdigest()


# -- inert stand-ins for foreign classes ---------------------------------------------
class _Foreign:
    """An instance of a class we refuse to import: only its pickled state is kept."""

    qualname = "?"

    def __init__(self, *args: Any):
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<inert {self.qualname}>"


def _foreign(qualname: str) -> type[_Foreign]:
    return type(qualname.rsplit(".", 1)[-1], (_Foreign,), {"qualname": qualname})


class _ForeignEnum:
    """An ``Enum`` member pickled by value, e.g. ``Problem(2)``."""

    def __init__(self, qualname: str, value: Any):
        self.qualname, self.value = qualname, value


def _enum(qualname: str):
    return lambda value: _ForeignEnum(qualname, value)


class _TypeMarker:
    """A class pickled as a value (``typing.Any``, ``list``).

    Plain builtins stay callable so that ``dict(...)``-style reductions still
    rebuild plain data.
    """

    def __init__(self, qualname: str, factory: Any = None):
        self.qualname = qualname
        self.factory = factory

    def __call__(self, *args: Any) -> Any:
        if self.factory is None:
            raise CheckpointError(f"'{self.qualname}' cannot be called")
        return self.factory(*args)


@dataclass
class _StorageRef:
    key: str
    dtype: torch.dtype
    numel: int


@dataclass
class _TensorRef:
    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, offset, size, stride, *args):
    return _TensorRef(storage, offset, tuple(size), tuple(stride))


def _rebuild_parameter(data, *args):
    return data


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}

_OMEGACONF = [
    "omegaconf.listconfig.ListConfig",
    "omegaconf.dictconfig.DictConfig",
    "omegaconf.base.ContainerMetadata",
    "omegaconf.base.Metadata",
    "omegaconf.nodes.AnyNode",
    "omegaconf.nodes.StringNode",
    "omegaconf.nodes.IntegerNode",
    "omegaconf.nodes.FloatNode",
    "omegaconf.nodes.BooleanNode",
    "omegaconf.nodes.EnumNode",
    "omegaconf.nodes.ValueNode",
]
_PYANNOTE = [
    "pyannote.audio.core.task.Specifications",
    "pyannote.audio.core.model.Introspection",
]

# What a checkpoint may name, and what it gets instead. Nothing outside this table
# is ever imported: `find_class` below never calls the real one.
_ALLOWED: dict[str, Any] = {
    "collections.OrderedDict": collections.OrderedDict,
    # defaultdict(factory) only appears in omegaconf metadata we discard
    "collections.defaultdict": lambda *a: {},
    "builtins.dict": _TypeMarker("dict", dict),
    "builtins.list": _TypeMarker("list", list),
    "builtins.int": _TypeMarker("int", int),
    "builtins.float": _TypeMarker("float", float),
    "builtins.str": _TypeMarker("str", str),
    "builtins.bool": _TypeMarker("bool", bool),
    "builtins.tuple": _TypeMarker("tuple", tuple),
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "builtins.slice": slice,
    "builtins.complex": complex,
    "typing.Any": _TypeMarker("typing.Any"),
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch.torch_version.TorchVersion": str,
    "torch.Size": tuple,
    "pyannote.audio.core.task.Problem": _enum("Problem"),
    "pyannote.audio.core.task.Resolution": _enum("Resolution"),
    **{q: _foreign(q) for q in _OMEGACONF + _PYANNOTE},
    **{f"torch.{name}": _TypeMarker(name) for name in _STORAGE_DTYPES},
}
_ALIASES = {"__builtin__": "builtins", "copy_reg": "copyreg"}
# Python 2 pickles name `long` where Python 3 has `int`
_ALLOWED["builtins.long"] = _ALLOWED["builtins.int"]


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, source: str):
        super().__init__(io.BytesIO(data))
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        qualname = f"{_ALIASES.get(module, module)}.{name}"
        try:
            return _ALLOWED[qualname]
        except KeyError:
            raise UnsafeCheckpointError(
                f"{self.source}: refused to load, the checkpoint asks for "
                f"'{qualname}', which is not a tensor, a plain container or a known "
                f"pyannote/omegaconf class. Nothing from it was executed. If you "
                f"trust this file, convert it to a plain state_dict with torch."
            ) from None

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsafeCheckpointError(
                f"{self.source}: refused to load, unexpected persistent id {pid!r}"
            )
        _, kind, key, _location, numel = pid
        dtype = _STORAGE_DTYPES.get(getattr(kind, "qualname", None))
        if dtype is None:
            raise CheckpointError(f"{self.source}: unsupported storage type {kind!r}")
        return _StorageRef(str(key), dtype, int(numel))


def _plain(obj: Any) -> Any:
    """Turn inert omegaconf/pyannote records into plain Python data."""
    if isinstance(obj, _Foreign):
        state = obj.state if isinstance(obj.state, dict) else {}
        if obj.qualname.endswith("ListConfig"):
            return [_plain(x) for x in state.get("_content") or []]
        if obj.qualname.endswith("DictConfig"):
            return {k: _plain(v) for k, v in (state.get("_content") or {}).items()}
        if obj.qualname.startswith("omegaconf.nodes."):
            return _plain(state.get("_val"))
        return {k: _plain(v) for k, v in state.items()}
    if isinstance(obj, _ForeignEnum):
        return (obj.qualname, obj.value)
    if isinstance(obj, _TypeMarker):
        return obj.qualname
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_plain(v) for v in obj)
    return obj


_PROBLEMS = {0: "binary", 1: "mono-label", 2: "multi-label", 3: "representation"}
_RESOLUTIONS = {1: "frame", 2: "chunk"}


def _specifications(raw: Any, source: str) -> Specifications:
    if raw is None:
        return Specifications()
    if not isinstance(raw, dict):
        raise CheckpointError(f"{source}: unreadable specifications {raw!r}")
    problem = raw.get("problem", ("Problem", 2))
    resolution = raw.get("resolution", ("Resolution", 1))
    classes = raw.get("classes") or Specifications.classes
    return Specifications(
        problem=_PROBLEMS.get(problem[1], str(problem[1])),
        resolution=_RESOLUTIONS.get(resolution[1], str(resolution[1])),
        duration=float(raw.get("duration", 5.0)),
        classes=tuple(str(c) for c in classes),
        warm_up=tuple(float(w) for w in raw.get("warm_up") or (0.0, 0.0)),
        permutation_invariant=bool(raw.get("permutation_invariant", False)),
        powerset=bool(raw.get("powerset_max_classes")),
    )


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a pyannote / PyTorch-Lightning checkpoint safely.

    Parameters
    ----------
    path : str or PathLike
        A ``pytorch_model.bin`` or ``.ckpt`` file (torch zip format).

    Returns
    -------
    checkpoint : Checkpoint

    Raises
    ------
    UnsafeCheckpointError
        If the pickle names anything outside the allow-list.
    CheckpointError
        If the file is missing, truncated, not a torch zip archive, or lacks a
        ``state_dict``.

    Examples
    --------
    Nothing in the file is executed: the pickle is read by an allow-list.

    >>> from skseg.hub import resolve_checkpoint
    >>> checkpoint = load_checkpoint(resolve_checkpoint("pyannote/segmentation"))
    >>> checkpoint.sha256[:12], checkpoint.specifications.duration
    ('0b5b3216d60a', 5.0)
    >>> checkpoint.state_dict["classifier.weight"].shape
    torch.Size([3, 128])
    """
    path = Path(path)
    source = str(path)
    try:
        digest = sha256sum(path)
        archive = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise CheckpointError(f"{source}: checkpoint not found") from None
    except IsADirectoryError:
        raise CheckpointError(f"{source}: is a directory, not a checkpoint") from None
    except zipfile.BadZipFile:
        raise CheckpointError(
            f"{source}: not a torch zip archive (truncated, corrupt, or saved in "
            f"torch's legacy format, which skseg does not read)"
        ) from None
    with archive:
        names = archive.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise CheckpointError(f"{source}: no data.pkl in the archive")
        prefix = pkl[0][: -len("data.pkl")]
        try:
            raw = _RestrictedUnpickler(archive.read(pkl[0]), source).load()
        except (UnsafeCheckpointError, CheckpointError):
            raise
        except Exception as e:  # truncated or corrupt pickle streams
            raise CheckpointError(f"{source}: unreadable pickle ({e})") from None
        if not isinstance(raw, dict):
            raise CheckpointError(
                f"{source}: expected a dict, got {type(raw).__name__}"
            )
        state = raw.get("state_dict", raw)
        if not isinstance(state, dict) or not state:
            raise CheckpointError(f"{source}: no state_dict in the checkpoint")
        big_endian = (
            f"{prefix}byteorder" in names
            and archive.read(f"{prefix}byteorder").strip() == b"big"
        )
        state_dict = {}
        for key, ref in state.items():
            if not isinstance(ref, _TensorRef):
                raise CheckpointError(
                    f"{source}: state_dict entry {key!r} is no tensor"
                )
            state_dict[key] = _materialise(archive, prefix, ref, big_endian, source)

    hparams = _plain(raw.get("hyper_parameters") or {})
    meta = _plain(raw.get("pyannote.audio") or {})
    arch = meta.get("architecture") or {}
    architecture = (
        ".".join(x for x in (arch.get("module"), arch.get("class")) if x) or "unknown"
    )
    return Checkpoint(
        state_dict=state_dict,
        hyper_parameters=hparams,
        specifications=_specifications(meta.get("specifications"), source),
        architecture=architecture,
        sha256=digest,
        path=source,
        metadata={"versions": meta.get("versions", {})},
    )


def _materialise(
    archive: zipfile.ZipFile,
    prefix: str,
    ref: _TensorRef,
    big_endian: bool,
    source: str,
) -> torch.Tensor:
    name = f"{prefix}data/{ref.storage.key}"
    try:
        data = bytearray(archive.read(name))
    except (KeyError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(
            f"{source}: missing or corrupt tensor data {name} ({e})"
        ) from None
    dtype = ref.storage.dtype
    itemsize = torch.empty(0, dtype=dtype).element_size()
    if len(data) != ref.storage.numel * itemsize:
        raise CheckpointError(f"{source}: tensor data {name} has the wrong size")
    flat = torch.frombuffer(data, dtype=dtype) if data else torch.empty(0, dtype=dtype)
    if big_endian and itemsize > 1:
        flat = torch.from_numpy(flat.numpy().byteswap())
    return flat.as_strided(ref.size, ref.stride, ref.offset).clone()
