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
import math
import os
import pickle
import pickletools
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from sklearn.utils._param_validation import validate_parameter_constraints

from .audio import SAMPLE_RATE_RANGE
from .exceptions import CheckpointError, UnsafeCheckpointError
from .heads import Specifications, read_encoding

__all__ = [
    "Checkpoint",
    "Specifications",
    "load_checkpoint",
    "sha256sum",
    "check_specifications",
    "check_hyper_parameters",
    "MAX_PICKLE_BYTES",
    "MAX_PICKLE_OPS",
    "MAX_DEPTH",
    "MAX_NODES",
    "MAX_TENSOR_BYTES",
    "DURATION_RANGE",
    "SAMPLE_RATE_RANGE",
    "MAX_CLASSES",
]


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


# -- limits: what a checkpoint may cost before it is refused ---------------------------
#: Largest ``data.pkl`` read (pyannote/segmentation's is 22 KB).
MAX_PICKLE_BYTES = 4 << 20
#: Most pickle opcodes, so at most this many objects are made (22 KB has 6,107).
MAX_PICKLE_OPS = 1_000_000
#: Deepest nesting of containers in the pickle and in the plain data made from it.
MAX_DEPTH = 100
#: Most distinct containers converted to plain data (hyper-parameters, metadata).
MAX_NODES = 200_000
#: Largest total of ``state_dict`` tensor bytes, and of the storages they view
#: (pyannote/segmentation has 5.9 MB).
MAX_TENSOR_BYTES = 256 << 20
#: Plausible chunk durations, and most output classes (sample rates: those audio
#: decoding accepts, :data:`skseg.audio.SAMPLE_RATE_RANGE`).
DURATION_RANGE = (0.5, 120.0)
MAX_CLASSES = 64

_PROBLEM_NAMES = ("binary", "mono-label", "multi-label", "representation")
_RESOLUTION_NAMES = ("frame", "chunk")


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


class _Frozen:
    """Attributes set once in ``__init__``; a pickle's BUILD cannot change them.

    ``BUILD`` sets attributes with ``setattr`` (``__class__`` included), which
    ``__setattr__`` refuses; there is no ``__dict__`` to update either.
    """

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"refused to set {name!r} on {type(self).__name__}")

    __delattr__ = __setattr__


class _ForeignEnum(_Frozen):
    """An ``Enum`` member pickled by value, e.g. ``Problem(2)``."""

    __slots__ = ("qualname", "value")

    def __init__(self, qualname: str, value: Any):
        object.__setattr__(self, "qualname", qualname)
        object.__setattr__(self, "value", value)


class _TypeMarker(_Frozen):
    """A class pickled as a value (``typing.Any``, ``list``).

    Plain builtins stay callable so that ``dict(...)``-style reductions still
    rebuild plain data.
    """

    __slots__ = ("qualname", "factory")

    def __init__(self, qualname: str, factory: Any = None):
        object.__setattr__(self, "qualname", qualname)
        object.__setattr__(self, "factory", factory)

    def __call__(self, *args: Any) -> Any:
        if self.factory is None:
            raise TypeError(f"'{self.qualname}' cannot be called")
        return self.factory(*args)


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: torch.dtype
    numel: int

    @property
    def nbytes(self) -> int:
        return self.numel * _itemsize(self.dtype)


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    @property
    def numel(self) -> int:
        return math.prod(self.size)


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty(0, dtype=dtype).element_size()


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
_ALIASES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _allow_list(source: str) -> dict[str, Any]:
    """Return what a checkpoint may name, and what it gets instead, made anew.

    Nothing outside this table is ever imported (``find_class`` never calls the
    real one). Every object in it is made for this load alone, and the objects a
    pickle could otherwise modify (markers, enum members) refuse attribute
    changes, so no load can change what a later one reads.
    """

    def rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_: Any):
        return _tensor_ref(storage, offset, size, stride, source)

    def rebuild_parameter(data: Any, *_: Any) -> Any:
        return data

    def enum(qualname: str):
        return lambda value: _ForeignEnum(qualname, value)

    def foreign(qualname: str) -> type[_Foreign]:
        return type(qualname.rsplit(".", 1)[-1], (_Foreign,), {"qualname": qualname})

    table: dict[str, Any] = {
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
        "torch._utils._rebuild_tensor_v2": rebuild_tensor,
        "torch._utils._rebuild_parameter": rebuild_parameter,
        "torch.torch_version.TorchVersion": str,
        "torch.Size": tuple,
        "pyannote.audio.core.task.Problem": enum("Problem"),
        "pyannote.audio.core.task.Resolution": enum("Resolution"),
        **{q: foreign(q) for q in _OMEGACONF + _PYANNOTE},
        **{f"torch.{name}": _TypeMarker(name) for name in _STORAGE_DTYPES},
    }
    # Python 2 pickles name `long` where Python 3 has `int`
    table["builtins.long"] = table["builtins.int"]
    return table


def _tensor_ref(
    storage: Any, offset: Any, size: Any, stride: Any, source: str
) -> _TensorRef:
    """Return a tensor's geometry, checked to lie within its storage (unread)."""
    if not isinstance(storage, _StorageRef):
        raise CheckpointError(f"{source}: a tensor without a storage")
    if not (isinstance(size, tuple) and isinstance(stride, tuple)):
        raise CheckpointError(f"{source}: a tensor's size and stride must be tuples")
    if len(size) != len(stride) or len(size) > 64:
        raise CheckpointError(
            f"{source}: a tensor has {len(size)} sizes but {len(stride)} strides"
        )
    if not all(_is_int(x) and x >= 0 for x in (offset, *size, *stride)):
        raise CheckpointError(
            f"{source}: a tensor's offset, sizes and strides must be non-negative "
            "integers"
        )
    ref = _TensorRef(storage, offset, size, stride)
    if ref.numel:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if last >= storage.numel:
            raise CheckpointError(
                f"{source}: a tensor of size {list(size)} views element {last} of a "
                f"storage of {storage.numel}"
            )
        if ref.numel > storage.numel:
            raise CheckpointError(
                f"{source}: a tensor of {ref.numel} elements views a storage of "
                f"{storage.numel} (overlapping strides)"
            )
    return ref


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, source: str):
        super().__init__(io.BytesIO(data))
        self.source = source
        self.allowed = _allow_list(source)

    def find_class(self, module: str, name: str) -> Any:
        qualname = f"{_ALIASES.get(module, module)}.{name}"
        try:
            return self.allowed[qualname]
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
                f"{self.source}: refused to load, unexpected persistent id"
            )
        _, kind, key, _location, numel = pid
        name = kind.qualname if isinstance(kind, _TypeMarker) else None
        dtype = _STORAGE_DTYPES.get(name)
        if dtype is None or self.allowed.get(f"torch.{name}") is not kind:
            raise CheckpointError(f"{self.source}: unsupported storage type")
        if not isinstance(key, str) or not _is_int(numel) or numel < 0:
            raise CheckpointError(
                f"{self.source}: a storage needs a name and a non-negative size"
            )
        return _StorageRef(key, dtype, numel)


# -- the pickle, scanned before it is run ---------------------------------------------
_SCALAR_OPS = frozenset(
    "INT BININT BININT1 BININT2 LONG LONG1 LONG4 STRING BINSTRING SHORT_BINSTRING "
    "BINBYTES SHORT_BINBYTES BINBYTES8 BYTEARRAY8 UNICODE BINUNICODE "
    "SHORT_BINUNICODE BINUNICODE8 NONE NEWTRUE NEWFALSE FLOAT BINFLOAT "
    "GLOBAL PERSID EXT1 EXT2 EXT4 NEXT_BUFFER".split()
)
_EMPTY_OPS = frozenset("EMPTY_LIST EMPTY_DICT EMPTY_TUPLE EMPTY_SET".split())
_MARK_BUILDERS = frozenset("TUPLE LIST DICT FROZENSET INST OBJ".split())
_MARK_UPDATERS = frozenset("APPENDS SETITEMS ADDITEMS".split())


class _Node:
    """What the scan knows of an object: how deep its nesting is."""

    __slots__ = ("depth",)

    def __init__(self, depth: int):
        self.depth = depth


def _scan_pickle(data: bytes, source: str) -> None:
    """Refuse a pickle whose unpickling would cost more than the limits allow.

    The opcodes are read (not run) with :mod:`pickletools` while a stack of
    nesting depths is kept: CPython's unpickler grows its memo to the largest
    index a ``PUT`` names, hashes nested tuples recursively in C (a deep enough
    one crashes the process) and makes one object per opcode. So memo indices
    must not exceed the number of opcodes read, nesting must stay within
    :data:`MAX_DEPTH` and the opcodes within :data:`MAX_PICKLE_OPS`.
    """

    def refuse(problem: str) -> CheckpointError:
        return CheckpointError(f"{source}: refused to load, {problem}")

    stack: list[_Node] = []
    marks: list[int] = []
    memo: dict[int, _Node] = {}

    def pop(n: int = 1) -> list[_Node]:
        if n > len(stack) - (marks[-1] if marks else 0):
            raise refuse("malformed pickle (stack underflow)")
        items = stack[len(stack) - n :]
        del stack[len(stack) - n :]
        return items

    def pop_mark() -> list[_Node]:
        if not marks:
            raise refuse("malformed pickle (no mark)")
        at = marks.pop()
        items = stack[at:]
        del stack[at:]
        return items

    def top() -> _Node:
        if len(stack) <= (marks[-1] if marks else 0):
            raise refuse("malformed pickle (stack underflow)")
        return stack[-1]

    def push(depth: int) -> None:
        if depth > MAX_DEPTH:
            raise refuse(f"containers nested deeper than {MAX_DEPTH} levels")
        stack.append(_Node(depth))

    def grow(node: _Node, items: list[_Node]) -> None:
        depth = 1 + max((item.depth for item in items), default=0)
        if depth > MAX_DEPTH:
            raise refuse(f"containers nested deeper than {MAX_DEPTH} levels")
        node.depth = max(node.depth, depth)

    def nested(items: list[_Node]) -> int:
        return 1 + max((item.depth for item in items), default=0)

    count = 0
    try:
        for opcode, arg, _pos in pickletools.genops(data):
            count += 1
            if count > MAX_PICKLE_OPS:
                raise refuse(f"more than {MAX_PICKLE_OPS} pickle opcodes")
            name = opcode.name
            if name in ("PROTO", "FRAME", "STOP"):
                continue
            if name in _SCALAR_OPS:
                push(0)
            elif name in _EMPTY_OPS:
                push(1)
            elif name == "MARK":
                marks.append(len(stack))
            elif name in _MARK_BUILDERS:
                push(nested(pop_mark()))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                push(nested(pop(int(name[-1]))))
            elif name in ("APPEND", "SETITEM", "BUILD"):
                items = pop(2 if name == "SETITEM" else 1)
                grow(top(), items)
            elif name in _MARK_UPDATERS:
                items = pop_mark()
                grow(top(), items)
            elif name in ("REDUCE", "NEWOBJ"):
                push(nested(pop(2)))
            elif name == "NEWOBJ_EX":
                push(nested(pop(3)))
            elif name == "STACK_GLOBAL":
                pop(2)
                push(0)
            elif name == "BINPERSID":
                push(nested(pop(1)))
            elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                index = len(memo) if name == "MEMOIZE" else int(arg)
                if not 0 <= index <= count:
                    raise refuse(f"memo index {index} beyond the pickle's size")
                memo[index] = top()
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                if int(arg) not in memo:
                    raise refuse("malformed pickle (memo index never set)")
                stack.append(memo[int(arg)])
            elif name == "POP":
                if stack and (not marks or len(stack) > marks[-1]):
                    stack.pop()
                elif marks:
                    marks.pop()  # POP of a mark (what the unpickler does)
                else:
                    raise refuse("malformed pickle (stack underflow)")
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                stack.append(top())
            elif name == "READONLY_BUFFER":
                pass
            else:  # pragma: no cover - an opcode pickletools knows and we do not
                raise refuse(f"unsupported pickle opcode {name}")
    except CheckpointError:
        raise
    except Exception as e:  # pickletools' errors: bad opcode, truncated argument
        raise CheckpointError(
            f"{source}: unreadable pickle ({type(e).__name__}: {str(e)[:200]})"
        ) from None


# -- plain data ----------------------------------------------------------------------
class _Plain:
    """Converts inert omegaconf/pyannote records into plain Python data.

    Each distinct object is converted once (a shared reference converts to the
    same result, so a DAG costs its size, not its number of paths), nesting is
    bounded by :data:`MAX_DEPTH`, the number of containers by :data:`MAX_NODES`,
    and a cycle is refused.
    """

    def __init__(self, source: str):
        self.source = source
        self.done: dict[int, Any] = {}
        self.active: set[int] = set()
        self.keep: list[Any] = []  # keeps ids valid while converting

    def __call__(self, obj: Any, depth: int = 0) -> Any:
        if obj is None or isinstance(obj, str | bytes | int | float | complex):
            return obj
        key = id(obj)
        if key in self.done:
            return self.done[key]
        if depth > MAX_DEPTH:
            raise CheckpointError(
                f"{self.source}: hyper-parameters nested deeper than {MAX_DEPTH} levels"
            )
        if key in self.active:
            raise CheckpointError(f"{self.source}: hyper-parameters contain a cycle")
        if len(self.done) >= MAX_NODES:
            raise CheckpointError(
                f"{self.source}: hyper-parameters have more than {MAX_NODES} containers"
            )
        self.active.add(key)
        try:
            out = self._convert(obj, depth + 1)
        finally:
            self.active.discard(key)
        self.keep.append(obj)
        self.done[key] = out
        return out

    def _convert(self, obj: Any, depth: int) -> Any:
        if isinstance(obj, _Foreign):
            state = obj.state if isinstance(obj.state, dict) else {}
            if obj.qualname.endswith("ListConfig"):
                content = state.get("_content")
                return [self(x, depth) for x in _sequence(content)]
            if obj.qualname.endswith("DictConfig"):
                content = state.get("_content")
                content = content if isinstance(content, dict) else {}
                return {k: self(v, depth) for k, v in content.items()}
            if obj.qualname.startswith("omegaconf.nodes."):
                return self(state.get("_val"), depth)
            return {k: self(v, depth) for k, v in state.items()}
        if isinstance(obj, _ForeignEnum):
            return (obj.qualname, self(obj.value, depth))
        if isinstance(obj, _TypeMarker):
            return obj.qualname
        if isinstance(obj, dict):
            return {k: self(v, depth) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return type(obj)(self(v, depth) for v in obj)
        return obj


def _sequence(content: Any) -> list:
    return list(content) if isinstance(content, list | tuple) else []


_PROBLEMS = dict(enumerate(_PROBLEM_NAMES))
_RESOLUTIONS = {1: "frame", 2: "chunk"}


def _enum_value(raw: Any, field_name: str, names: dict, source: str) -> str:
    value = raw[1] if isinstance(raw, tuple) and len(raw) == 2 else raw
    if _is_int(value) and value in names:
        return names[value]
    if isinstance(value, str) and value in names.values():
        return value
    raise CheckpointError(
        f"{source}: unknown specifications {field_name} {_short(value)} (expected "
        f"one of {', '.join(names.values())})"
    )


def _short(value: Any) -> str:
    """Show a value in a message: scalars as themselves, containers by type."""
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value[:80])
    return f"of type {type(value).__name__}"


def _real(value: Any, what: str, source: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CheckpointError(f"{source}: {what} {_short(value)} is not a number")
    value = float(value)
    if not (math.isfinite(value) and low <= value <= high):
        raise CheckpointError(
            f"{source}: {what} {value!r} is outside the plausible range "
            f"[{low:g}, {high:g}]"
        )
    return value


def check_specifications(
    raw: Any, source: str, *, saved: bool = False
) -> Specifications:
    """Validate a checkpoint's or a saved network's specifications.

    The one rule for both formats (:func:`load_checkpoint` and
    :func:`skseg.serialization.load_network`), so neither accepts a value the
    other refuses.

    Parameters
    ----------
    raw : mapping or None
        ``problem`` and ``resolution`` (pyannote's enum values or names),
        ``duration`` (seconds, in :data:`DURATION_RANGE`), ``classes`` (1 to
        :data:`MAX_CLASSES` distinct names), ``warm_up`` (2 numbers in
        ``[0, duration / 2]``), ``permutation_invariant`` (a bool) and
        the output encoding's entries (read by
        :func:`skseg.heads.read_encoding`). None gives the defaults.
    source : str
        The file, named in the error.
    saved : bool, default=False
        The specifications of a network saved by skseg
        (:func:`skseg.serialization.save_model`), which also records the
        encoding's flag.

    Returns
    -------
    specifications : Specifications

    Raises
    ------
    CheckpointError
        Naming ``source`` and the value: a NaN, infinite, negative or
        implausible duration or warm-up, unknown problem, bad classes...

    Examples
    --------
    >>> check_specifications({"duration": 10.0}, "net").duration
    10.0
    >>> try:
    ...     check_specifications({"duration": float("nan")}, "net")
    ... except CheckpointError as e:
    ...     print(e)
    net: specifications duration nan is outside the plausible range [0.5, 120]
    """
    if raw is None:
        return Specifications()
    if not isinstance(raw, dict):
        raise CheckpointError(
            f"{source}: unreadable specifications {_short(raw)} (not a mapping)"
        )
    problem = _enum_value(raw.get("problem", 2), "problem", _PROBLEMS, source)
    resolution = _enum_value(
        raw.get("resolution", 1), "resolution", _RESOLUTIONS, source
    )
    duration = _real(
        raw.get("duration", 5.0), "specifications duration", source, *DURATION_RANGE
    )
    classes = raw.get("classes") or Specifications.classes
    if (
        not isinstance(classes, list | tuple)
        or not 1 <= len(classes) <= MAX_CLASSES
        or not all(isinstance(c, str) for c in classes)
        or len(set(classes)) != len(classes)
    ):
        raise CheckpointError(
            f"{source}: specifications classes must be 1 to {MAX_CLASSES} distinct "
            f"names, got {_short(classes)}"
            + (
                f" of length {len(classes)}"
                if isinstance(classes, list | tuple)
                else ""
            )
        )
    warm_up = raw.get("warm_up") or (0.0, 0.0)
    if not isinstance(warm_up, list | tuple) or len(warm_up) != 2:
        raise CheckpointError(f"{source}: specifications warm_up must be 2 numbers")
    warm = tuple(
        _real(w, "specifications warm_up", source, 0.0, duration / 2) for w in warm_up
    )
    invariant = raw.get("permutation_invariant", False)
    if not isinstance(invariant, bool):
        raise CheckpointError(
            f"{source}: specifications permutation_invariant {_short(invariant)} "
            "is not a bool"
        )
    return Specifications(
        problem=problem,
        resolution=resolution,
        duration=duration,
        classes=tuple(classes),
        warm_up=warm,
        permutation_invariant=invariant,
        **read_encoding(raw, source, saved=saved),
    )


def check_hyper_parameters(hparams: Any, source: str) -> dict:
    """Validate the sizes a network would be built with, before building it.

    Shared by :func:`load_checkpoint` and
    :func:`skseg.serialization.load_network`.

    Parameters
    ----------
    hparams : mapping
        ``sample_rate`` (an integer in :data:`SAMPLE_RATE_RANGE`) and the
        ``sincnet``, ``lstm`` and ``linear`` sections, whose ``hidden_size``,
        ``num_layers`` and ``stride`` must be bounded integers.
    source : str
        The file, named in the error.

    Returns
    -------
    hparams : mapping
        Unchanged.

    Raises
    ------
    CheckpointError
        Naming ``source`` and the hyper-parameter.

    Examples
    --------
    >>> check_hyper_parameters({"lstm": {"hidden_size": 128}}, "net")
    {'lstm': {'hidden_size': 128}}
    >>> try:
    ...     check_hyper_parameters({"lstm": {"num_layers": 10**9}}, "net")
    ... except CheckpointError as e:
    ...     print(e)
    net: hyper-parameter lstm.num_layers 1000000000 is not an integer in [0, 32]
    """
    if not isinstance(hparams, dict):
        raise CheckpointError(
            f"{source}: hyper_parameters {_short(hparams)} is not a mapping"
        )
    if "sample_rate" in hparams:
        rate = hparams["sample_rate"]
        if not _is_int(rate) or not (
            SAMPLE_RATE_RANGE[0] <= rate <= SAMPLE_RATE_RANGE[1]
        ):
            raise CheckpointError(
                f"{source}: hyper-parameter sample_rate {_short(rate)} is not an "
                f"integer in [{SAMPLE_RATE_RANGE[0]}, {SAMPLE_RATE_RANGE[1]}] Hz"
            )
    for name in ("sincnet", "lstm", "linear"):
        section = hparams.get(name)
        if section is None:
            continue
        if not isinstance(section, dict):
            raise CheckpointError(
                f"{source}: hyper-parameter {name} {_short(section)} is not a mapping"
            )
        for key, value in section.items():
            limit = _HP_LIMITS.get(key)
            if limit is not None and not (_is_int(value) and 0 <= value <= limit):
                raise CheckpointError(
                    f"{source}: hyper-parameter {name}.{key} {_short(value)} is not "
                    f"an integer in [0, {limit}]"
                )
    return hparams


#: Largest sizes a network may be built with (pyannote/segmentation: 128, 4, 10).
_HP_LIMITS = {"hidden_size": 4096, "num_layers": 32, "stride": 4096}


def _metadata(meta: Any, source: str) -> tuple[str, dict, Any]:
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"{source}: 'pyannote.audio' metadata {_short(meta)} is not a mapping"
        )
    arch = meta.get("architecture") or {}
    versions = meta.get("versions", {})
    if not isinstance(arch, dict) or not all(
        isinstance(arch.get(k), str | None) for k in ("module", "class")
    ):
        raise CheckpointError(
            f"{source}: metadata 'architecture' must map 'module' and 'class' to names"
        )
    if not isinstance(versions, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in versions.items()
    ):
        raise CheckpointError(
            f"{source}: metadata 'versions' must map package names to version strings"
        )
    architecture = (
        ".".join(x for x in (arch.get("module"), arch.get("class")) if x) or "unknown"
    )
    return architecture, versions, meta.get("specifications")


# -- the archive ---------------------------------------------------------------------
def _open_regular(path: Path, source: str) -> io.BufferedReader:
    """Open ``path`` for reading if it is a regular file (never blocks on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise CheckpointError(f"{source}: checkpoint not found") from None
    except IsADirectoryError:
        raise CheckpointError(f"{source}: is a directory, not a checkpoint") from None
    except OSError as e:
        raise CheckpointError(f"{source}: cannot be read ({e.strerror or e})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = (
            "is a directory"
            if stat.S_ISDIR(mode)
            else "is a FIFO"
            if stat.S_ISFIFO(mode)
            else "is a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "is a socket or other special file"
        )
        raise CheckpointError(f"{source}: {what}, not a checkpoint (a regular file)")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _check_entry(info: zipfile.ZipInfo, source: str, file_size: int) -> None:
    if info.flag_bits & 0x1:
        raise CheckpointError(f"{source}: archive entry {info.filename} is encrypted")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise CheckpointError(
            f"{source}: archive entry {info.filename} uses an unsupported "
            f"compression (method {info.compress_type})"
        )
    if info.compress_type == zipfile.ZIP_STORED and info.file_size > file_size:
        raise CheckpointError(
            f"{source}: archive entry {info.filename} claims {info.file_size} bytes, "
            f"more than the whole file ({file_size})"
        )


def _read_entry(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, size: int, source: str
) -> bytes:
    """Exactly ``size`` bytes of an entry; never inflates more than that."""
    try:
        with archive.open(info) as handle:
            data = handle.read(size)
            extra = handle.read(1)  # past the directory's size: always b""
    except (
        zipfile.BadZipFile,
        EOFError,
        OSError,
        RuntimeError,
        ValueError,
        NotImplementedError,
        zlib.error,
    ) as e:
        raise CheckpointError(
            f"{source}: corrupt archive entry {info.filename} ({e})"
        ) from None
    if len(data) != size or extra:
        raise CheckpointError(
            f"{source}: archive entry {info.filename} has {len(data)} bytes, its "
            f"directory says {size}"
        )
    return data


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a pyannote / PyTorch-Lightning checkpoint safely.

    Nothing in the file is run and what it can cost is bounded before any work
    is done: the pickle's size (:data:`MAX_PICKLE_BYTES`), opcodes
    (:data:`MAX_PICKLE_OPS`), memo indices and nesting (:data:`MAX_DEPTH`), the
    tensors' bytes (:data:`MAX_TENSOR_BYTES`, each tensor within its storage,
    each archive entry no larger than its directory says), and the plain data
    made from hyper-parameters (:data:`MAX_NODES`). Specifications and the
    sample rate are checked against plausible ranges, and the weights must be
    finite floating-point numbers.

    Parameters
    ----------
    path : str or PathLike
        A ``pytorch_model.bin`` or ``.ckpt`` file (torch zip format).

    Returns
    -------
    checkpoint : Checkpoint

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        ``path`` is not a path.
    UnsafeCheckpointError
        If the pickle names anything outside the allow-list.
    CheckpointError
        If the file is missing, not a regular file, truncated, not a torch zip
        archive, lacks a ``state_dict``, exceeds a limit, or holds implausible
        specifications or non-finite weights. The message names the file.

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
    validate_parameter_constraints(
        {"path": [str, os.PathLike]}, {"path": path}, "load_checkpoint"
    )
    path = Path(path)
    source = str(path)
    with _open_regular(path, source) as handle:
        file_size = os.fstat(handle.fileno()).st_size
        digest = hashlib.sha256()
        while block := handle.read(1 << 20):
            digest.update(block)
        handle.seek(0)
        try:
            archive = zipfile.ZipFile(handle)
        except (
            zipfile.BadZipFile,
            EOFError,
            OSError,
            ValueError,
            NotImplementedError,
            OverflowError,
        ):
            raise CheckpointError(
                f"{source}: not a torch zip archive (truncated, corrupt, or saved in "
                f"torch's legacy format, which skseg does not read)"
            ) from None
        with archive:
            raw, state_dict = _read_archive(archive, source, file_size)

    meta = _Plain(source)(raw.get("pyannote.audio") or {})
    architecture, versions, specifications = _metadata(meta, source)
    hparams = check_hyper_parameters(
        _Plain(source)(raw.get("hyper_parameters") or {}), source
    )
    return Checkpoint(
        state_dict=state_dict,
        hyper_parameters=hparams,
        specifications=check_specifications(specifications, source),
        architecture=architecture,
        sha256=digest.hexdigest(),
        path=source,
        metadata={"versions": versions},
    )


def _read_archive(
    archive: zipfile.ZipFile, source: str, file_size: int
) -> tuple[dict, dict[str, torch.Tensor]]:
    infos = archive.infolist()
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        seen: set[str] = set()
        twice = next(n for n in names if n in seen or seen.add(n))
        raise CheckpointError(
            f"{source}: the archive holds {twice!r} more than once (which copy "
            "would be read is ambiguous)"
        )
    by_name = {info.filename: info for info in infos}
    pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if not pkl:
        raise CheckpointError(f"{source}: no data.pkl in the archive")
    if len(pkl) > 1:
        shown = ", ".join(repr(n) for n in pkl[:3]) + (" ..." if len(pkl) > 3 else "")
        raise CheckpointError(
            f"{source}: the archive holds {len(pkl)} data.pkl ({shown}): which one "
            "is the checkpoint is ambiguous"
        )
    prefix = pkl[0][: -len("data.pkl")]
    info = by_name[pkl[0]]
    _check_entry(info, source, file_size)
    if info.file_size > MAX_PICKLE_BYTES:
        raise CheckpointError(
            f"{source}: refused to load, data.pkl has {info.file_size} bytes (more "
            f"than {MAX_PICKLE_BYTES})"
        )
    data = _read_entry(archive, info, info.file_size, source)
    _scan_pickle(data, source)
    try:
        raw = _RestrictedUnpickler(data, source).load()
    except (UnsafeCheckpointError, CheckpointError):
        raise
    except RecursionError:
        raise CheckpointError(f"{source}: refused to load, nesting too deep") from None
    except Exception as e:  # truncated or corrupt pickle streams
        raise CheckpointError(
            f"{source}: unreadable pickle ({type(e).__name__}: {str(e)[:200]})"
        ) from None
    if not isinstance(raw, dict):
        raise CheckpointError(f"{source}: expected a dict, got {type(raw).__name__}")
    state = raw.get("state_dict", raw)
    if not isinstance(state, dict) or not state:
        raise CheckpointError(f"{source}: no state_dict in the checkpoint")
    # every budget is checked before a single tensor byte is read
    refs: dict[str, _TensorRef] = {}
    for key, ref in state.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{source}: a state_dict key is not a string")
        if not isinstance(ref, _TensorRef):
            raise CheckpointError(
                f"{source}: state_dict entry {key[:80]!r} is no tensor"
            )
        refs[key] = ref
    storages = {ref.storage.key: ref.storage for ref in refs.values()}
    view_bytes = sum(ref.numel * _itemsize(ref.storage.dtype) for ref in refs.values())
    storage_bytes = sum(s.nbytes for s in storages.values())
    if max(view_bytes, storage_bytes) > MAX_TENSOR_BYTES:
        raise CheckpointError(
            f"{source}: refused to load, the state_dict holds "
            f"{max(view_bytes, storage_bytes)} bytes of tensors (more than "
            f"{MAX_TENSOR_BYTES})"
        )
    entries = {}
    for key, storage in storages.items():
        name = f"{prefix}data/{key}"
        info = by_name.get(name)
        if info is None:
            raise CheckpointError(f"{source}: missing tensor data {name}")
        _check_entry(info, source, file_size)
        if info.file_size != storage.nbytes:
            raise CheckpointError(
                f"{source}: tensor data {name} has the wrong size ({info.file_size} "
                f"bytes for {storage.numel} elements of {storage.dtype})"
            )
        entries[key] = info
    order = by_name.get(f"{prefix}byteorder")
    big_endian = False
    if order is not None:
        _check_entry(order, source, file_size)
        if order.file_size > 16:
            raise CheckpointError(f"{source}: unreadable byteorder entry")
        big_endian = _read_entry(archive, order, order.file_size, source).strip() == (
            b"big"
        )
    flats = {
        key: _flat(
            _read_entry(archive, info, info.file_size, source),
            storages[key].dtype,
            big_endian,
        )
        for key, info in entries.items()
    }
    state_dict = {}
    for key, ref in refs.items():
        tensor = flats[ref.storage.key].as_strided(ref.size, ref.stride, ref.offset)
        state_dict[key] = _check_weights(key, tensor.clone(), source)
    return raw, state_dict


def _flat(data: bytes, dtype: torch.dtype, big_endian: bool) -> torch.Tensor:
    if not data:
        return torch.empty(0, dtype=dtype)
    raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    itemsize = _itemsize(dtype)
    if big_endian and itemsize > 1:
        raw = raw.view(-1, itemsize).flip(1).reshape(-1)
    return raw.view(dtype)


def _check_weights(key: str, tensor: torch.Tensor, source: str) -> torch.Tensor:
    if tensor.is_floating_point():
        if not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"{source}: state_dict entry {key!r} holds NaN or infinite weights"
            )
        return tensor
    # integer buffers (batch-norm counters) are counts, not weights
    if key.endswith("num_batches_tracked") and tensor.dtype == torch.int64:
        return tensor
    raise CheckpointError(
        f"{source}: state_dict entry {key!r} is "
        f"{str(tensor.dtype).removeprefix('torch.')}, not floating-point weights"
    )
