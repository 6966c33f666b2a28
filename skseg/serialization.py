"""Saving and loading networks without pickle: safetensors weights plus a JSON config.

A saved network is a folder::

    PATH/
        model.safetensors   the weights (pyannote's parameter names)
        config.json         architecture, specifications, sample rate, provenance

``model.safetensors`` follows the safetensors format (an 8-byte little-endian
header length, a JSON header naming each tensor's dtype, shape and byte range,
then the raw little-endian bytes), written and read here with numpy and torch
only: nothing in either file is executed, and skseg needs no extra package. Files
written by the ``safetensors`` library (for instance by pyannote.audio's own
fine-tuning) are read the same way.

The folder, or the ``model.safetensors`` inside it, is accepted wherever a
checkpoint is: :func:`skseg.load_model`,
:meth:`skseg.SegmentationModel.from_pretrained` and every estimator's
``segmentation=`` parameter. Loading validates everything it reads and raises
:class:`~skseg.exceptions.CheckpointError` naming the file and the problem (bad
JSON, a missing or extra tensor, a shape that does not fit the architecture,
weights edited since the config was written, NaN or infinite values).

:func:`load_state_dict` reads a bare safetensors ``state_dict`` and
:func:`model_from_state_dict` puts one on top of a base checkpoint's
architecture, e.g. to evaluate weights fine-tuned by pyannote.audio with skseg.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import shutil
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.utils._param_validation import validate_parameter_constraints

from .checkpoint import (
    MAX_DEPTH,
    MAX_TENSOR_BYTES,
    Specifications,
    check_hyper_parameters,
    check_specifications,
)
from .exceptions import CheckpointError, FileError
from .model import SegmentationModel, build_model, check_architecture_fits

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "MAX_CONFIG_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_TENSORS",
    "MAX_WEIGHTS_BYTES",
    "is_saved_network",
    "load_network",
    "load_state_dict",
    "model_from_state_dict",
    "check_architecture",
    "config_specifications",
    "parse_json",
    "read_config",
    "read_header",
    "read_regular",
    "save_model",
    "save_state_dict",
    "weights_digest",
]

#: the two files of a saved network
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
FORMAT = "skseg-network"
FORMAT_VERSION = 1

# safetensors dtype names <-> torch dtypes (little-endian on disk)
_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_NAMES = {v: k for k, v in _DTYPES.items()}
# the header metadata of a saved network (what the safetensors library writes)
_METADATA = {"format": "pt"}
#: Largest ``config.json`` read (a saved network's is about 2 KB).
MAX_CONFIG_BYTES = 1 << 20
#: Largest safetensors header (pyannote/segmentation's is 3 KB; the safetensors
#: library allows 100 MB, which JSON parsing would turn into gigabytes).
MAX_HEADER_BYTES = 1 << 20
#: Most tensors in a safetensors header (pyannote/segmentation has 26).
MAX_TENSORS = 10_000
#: Largest weights file read or hashed: the checkpoint loader's bound on tensor
#: bytes plus the largest header (pyannote/segmentation's file is 5.9 MB).
MAX_WEIGHTS_BYTES = MAX_TENSOR_BYTES + MAX_HEADER_BYTES + 8


# -- the safetensors format -------------------------------------------------------
def _serialize(
    state_dict: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> bytes:
    header: dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    # sorted names and a compact header: the same weights give the same bytes,
    # so the file's digest identifies the weights
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        if tensor.dtype not in _NAMES:
            raise TypeError(f"{name}: dtype {tensor.dtype} cannot be saved")
        # raw bytes in the host's order: little-endian on every platform torch ships
        data = tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {
            "dtype": _NAMES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), sort_keys=False).encode()
    # the data starts 8-byte aligned, as the format requires
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + b"".join(blobs)


def read_regular(path: str | os.PathLike, limit: int, source: str) -> bytes:
    """Return the bytes of the regular file ``path``, refused beyond ``limit``.

    The file is opened without blocking (a FIFO never hangs the reader) and its
    size is checked before anything is read, so a huge or endless file costs
    nothing.

    Parameters
    ----------
    path : str or PathLike
    limit : int
        Most bytes accepted.
    source : str
        The name used in errors.

    Returns
    -------
    data : bytes

    Raises
    ------
    CheckpointError
        Missing, a folder, not a regular file, unreadable, or larger than
        ``limit``.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "x")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(b"12345")
    >>> read_regular(path, 5, "x")
    b'12345'
    >>> try:
    ...     read_regular(path, 4, "x")
    ... except CheckpointError as e:
    ...     print(e)
    x: refused to read 5 bytes (more than 4)
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise CheckpointError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise CheckpointError(f"{source}: is a folder, not a file") from None
    except OSError as e:
        raise CheckpointError(f"{source}: cannot be read ({e.strerror or e})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if stat.S_ISDIR(st.st_mode):
            raise CheckpointError(f"{source}: is a folder, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise CheckpointError(f"{source}: not a regular file")
        if st.st_size > limit:
            raise CheckpointError(
                f"{source}: refused to read {st.st_size} bytes (more than {limit})"
            )
        try:
            data = f.read(limit + 1)
        except OSError as e:
            raise CheckpointError(
                f"{source}: cannot be read ({e.strerror or e})"
            ) from None
    if len(data) > limit:  # grown since the check
        raise CheckpointError(f"{source}: refused to read more than {limit} bytes")
    return data


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _Duplicate(twice)
    return out


class _Duplicate(ValueError):
    pass


def parse_json(raw: bytes, source: str, what: str) -> Any:
    """Parse JSON as a saved network's files must be: UTF-8, unique keys, shallow.

    Parameters
    ----------
    raw : bytes
    source : str
        The file, named in the errors.
    what : str
        What the text is (``"config.json"``, ``"safetensors header"``).

    Returns
    -------
    value : object

    Raises
    ------
    CheckpointError
        Not UTF-8 JSON, a key given twice (which value counts would be a
        guess), or nested deeper than :data:`skseg.checkpoint.MAX_DEPTH`.

    Examples
    --------
    >>> parse_json(b'{"a": [1, 2]}', "f", "config.json")
    {'a': [1, 2]}
    >>> try:
    ...     parse_json(b'{"a": 1, "a": 2}', "f", "config.json")
    ... except CheckpointError as e:
    ...     print(e)
    f: config.json gives 'a' twice (which one counts is ambiguous)
    """
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except _Duplicate as e:
        raise CheckpointError(
            f"{source}: {what} gives {e.args[0]!r} twice (which one counts is "
            "ambiguous)"
        ) from None
    except RecursionError:
        raise CheckpointError(
            f"{source}: {what} is nested deeper than {MAX_DEPTH} levels"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{source}: {what} is not valid JSON ({e})") from None
    # iterative, so the depth check itself cannot overflow the stack
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise CheckpointError(
                f"{source}: {what} is nested deeper than {MAX_DEPTH} levels"
            )
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return value


def _is_count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _header_entries(
    header: Any, size: int, source: str
) -> tuple[list[tuple[str, torch.dtype, list[int], int, int]], dict]:
    """Validate a safetensors header against a data area of ``size`` bytes."""
    if not isinstance(header, dict):
        raise CheckpointError(f"{source}: the safetensors header is not an object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(v, str) for v in metadata.values()
    ):
        raise CheckpointError(
            f"{source}: the safetensors __metadata__ must map names to strings"
        )
    if len(header) > MAX_TENSORS:
        raise CheckpointError(
            f"{source}: {len(header)} tensors (more than {MAX_TENSORS})"
        )
    entries = []
    for name, info in header.items():
        where = f"{source}: tensor {name!r}"
        if not isinstance(info, dict):
            raise CheckpointError(f"{where}: malformed entry")
        code = info.get("dtype")
        dtype = _DTYPES.get(code) if isinstance(code, str) else None
        if dtype is None:
            shown = repr(code) if isinstance(code, str | None) else type(code).__name__
            raise CheckpointError(f"{where}: unsupported dtype {shown[:40]}")
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if not (
            isinstance(shape, list)
            and len(shape) <= 8
            and all(_is_count(s) for s in shape)
            and isinstance(offsets, list)
            and len(offsets) == 2
            and all(_is_count(o) for o in offsets)
        ):
            raise CheckpointError(f"{where}: malformed shape or data_offsets")
        begin, end = offsets
        if not begin <= end <= size:
            raise CheckpointError(f"{where}: its bytes lie beyond the end of the file")
        itemsize = torch.empty(0, dtype=dtype).element_size()
        if end - begin != math.prod(shape) * itemsize:
            raise CheckpointError(
                f"{where}: {end - begin} bytes for shape {shape} of {code}"
            )
        entries.append((name, dtype, shape, begin, end))
    # every byte of the data area belongs to exactly one tensor, checked before
    # any is copied: overlapping entries cannot multiply the file in memory
    position = 0
    for name, _, _, begin, end in sorted(entries, key=lambda e: (e[3], e[4])):
        if begin != position:
            raise CheckpointError(
                f"{source}: tensor {name!r} overlaps another or leaves a gap"
            )
        position = end
    if position != size:
        raise CheckpointError(f"{source}: {size - position} trailing bytes")
    return entries, metadata


def _split(raw: bytes, source: str) -> tuple[Any, memoryview]:
    if len(raw) < 8:
        raise CheckpointError(f"{source}: too short to be a safetensors file")
    n = int.from_bytes(raw[:8], "little")
    if n > len(raw) - 8:
        raise CheckpointError(
            f"{source}: not a safetensors file (header length {n} exceeds the file)"
        )
    if n > MAX_HEADER_BYTES:
        raise CheckpointError(
            f"{source}: refused to load, its header has {n} bytes (more than "
            f"{MAX_HEADER_BYTES})"
        )
    header = parse_json(raw[8 : 8 + n], source, "safetensors header")
    return header, memoryview(raw)[8 + n :]


def read_header(
    raw: bytes, source: str
) -> tuple[dict[str, tuple[torch.dtype, tuple[int, ...]]], dict]:
    """Validate a safetensors file's header; return each tensor's dtype and shape.

    Nothing is copied: the names, dtypes and shapes can be checked against an
    architecture before any tensor is made.

    Parameters
    ----------
    raw : bytes
        The whole file.
    source : str
        The file, named in the errors.

    Returns
    -------
    tensors : dict of str to (dtype, shape)
    metadata : dict of str to str

    Raises
    ------
    CheckpointError
        A header longer than the file or than :data:`MAX_HEADER_BYTES`, bad or
        duplicated JSON, an unknown dtype, a shape whose size differs from its
        byte range, byte ranges beyond the file, overlapping, leaving gaps or
        trailing bytes.

    Examples
    --------
    >>> import torch
    >>> raw = _serialize({"w": torch.zeros(2, 3)})
    >>> read_header(raw, "f")
    ({'w': (torch.float32, (2, 3))}, {})
    """
    header, data = _split(raw, source)
    entries, metadata = _header_entries(header, len(data), source)
    return {name: (dtype, tuple(shape)) for name, dtype, shape, _, _ in entries}, dict(
        metadata
    )


def _deserialize(raw: bytes, source: str) -> tuple[dict[str, torch.Tensor], dict]:
    header, data = _split(raw, source)
    entries, metadata = _header_entries(header, len(data), source)
    tensors: dict[str, torch.Tensor] = {}
    for name, dtype, shape, begin, end in entries:
        buf = bytearray(data[begin:end])
        flat = (
            torch.frombuffer(buf, dtype=dtype) if buf else torch.empty(0, dtype=dtype)
        )
        tensors[name] = flat.reshape(shape)
    return tensors, metadata


def weights_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """Return the SHA-256 of a ``state_dict`` as :func:`save_model` writes it.

    The digest of a saved ``model.safetensors`` file equals the digest of the
    weights it holds, so an in-memory network and the same network read back
    from disk are keyed alike.

    Parameters
    ----------
    state_dict : mapping of str to Tensor

    Returns
    -------
    digest : str
        Hexadecimal.

    Examples
    --------
    >>> import torch
    >>> a = {"w": torch.zeros(2), "b": torch.ones(1)}
    >>> weights_digest(a) == weights_digest(dict(reversed(a.items())))
    True
    >>> weights_digest(a) == weights_digest({"w": torch.zeros(2), "b": torch.zeros(1)})
    False
    """
    return hashlib.sha256(_serialize(state_dict, _METADATA)).hexdigest()


def save_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    path: str | os.PathLike,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a ``state_dict`` as one safetensors file (written atomically).

    Parameters
    ----------
    state_dict : mapping of str to Tensor
    path : str or PathLike
        The file to write.
    metadata : mapping of str to str, optional
        Stored in the header's ``__metadata__``.

    Returns
    -------
    path : Path

    Examples
    --------
    >>> import os, tempfile, torch
    >>> path = os.path.join(tempfile.mkdtemp(), "weights.safetensors")
    >>> _ = save_state_dict({"w": torch.arange(3.0)}, path)
    >>> load_state_dict(path)["w"]
    tensor([0., 1., 2.])
    """
    path = Path(path)
    raw = _serialize(state_dict, metadata)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        Path(tmp).replace(path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    r"""Read a safetensors file into a ``state_dict`` (nothing is executed).

    Parameters
    ----------
    path : str or PathLike
        A ``.safetensors`` file, e.g. one written by pyannote.audio's
        fine-tuning or by :func:`save_state_dict`.

    Returns
    -------
    state_dict : dict of str to Tensor

    Raises
    ------
    CheckpointError
        If the file is missing, truncated or malformed (the message names it).

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "broken.safetensors")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(b"\x10" + bytes(7) + b"{}")
    >>> try:
    ...     load_state_dict(path)
    ... except CheckpointError as e:
    ...     print(str(e).removeprefix(path + ": "))
    not a safetensors file (header length 16 exceeds the file)
    """
    source = os.fspath(path)
    return _deserialize(read_regular(path, MAX_WEIGHTS_BYTES, source), source)[0]


# -- saved networks ----------------------------------------------------------------
def _folder(path: str | os.PathLike) -> Path:
    path = Path(path).expanduser()
    return path.parent if path.is_file() else path


def is_saved_network(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a saved network: a folder with both files, or one of them.

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    answer : bool

    Examples
    --------
    >>> is_saved_network("pyannote/segmentation")
    False
    """
    folder = _folder(path)
    return (folder / WEIGHTS_NAME).is_file() and (folder / CONFIG_NAME).is_file()


def _specifications_dict(model: SegmentationModel) -> dict:
    # every field of the specifications, then what the head adds (pyannote's
    # names, so that earlier versions read the file as before)
    out = _json_ready(
        {f.name: getattr(model.specifications, f.name) for f in fields(Specifications)}
    )
    out.update(_json_ready(model.head.specifications_entries()))
    return out


#: the specifications a saved network must have (the others have defaults)
_REQUIRED = ("problem", "resolution", "duration", "classes")


def _json_ready(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def save_model(
    model: SegmentationModel,
    path: str | os.PathLike,
    *,
    provenance: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Save a network as ``PATH/model.safetensors`` plus ``PATH/config.json``.

    Parameters
    ----------
    model : SegmentationModel
        The network (any device; saved from CPU copies).
    path : str or PathLike
        The folder to create.
    provenance : mapping, optional
        Where the weights come from (base checkpoint digest, data digest,
        training parameters, ...); stored in ``config.json`` as JSON.
    overwrite : bool, default=False
        Replace the network of an existing folder (only one that holds a saved
        network): its two files are replaced, and nothing else in the folder is
        touched.

    Returns
    -------
    path : Path
        The folder, ready for ``segmentation=path``.

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        A bad argument (not a model, a path, a mapping, a bool), named in the
        message, before anything is written.
    FileError
        If ``path`` exists and ``overwrite`` is False, or it exists and is not a
        saved network (never deleted), or it cannot be written.

    Notes
    -----
    Whenever the writing stops (an error, ``KeyboardInterrupt``, a crash), the
    folder holds the old network, the new one, or no network (no
    ``config.json``): never weights without their config. A new folder is
    written beside ``path`` and renamed; in an existing one each file is
    written beside itself, ``config.json`` is removed, then the weights and the
    config are renamed into place.

    Examples
    --------
    >>> import os, tempfile
    >>> from skseg import load_model
    >>> folder = os.path.join(tempfile.mkdtemp(), "net")
    >>> _ = save_model(load_model(), folder, provenance={"note": "unchanged"})
    >>> sorted(os.listdir(folder))
    ['config.json', 'model.safetensors']
    >>> read_config(folder)["provenance"]
    {'note': 'unchanged'}
    """
    from . import __version__

    validate_parameter_constraints(
        {
            "model": [SegmentationModel],
            "path": [str, os.PathLike],
            "provenance": [Mapping, None],
            "overwrite": ["boolean"],
        },
        {
            "model": model,
            "path": path,
            "provenance": provenance,
            "overwrite": overwrite,
        },
        caller_name="save_model",
    )
    folder = Path(path).expanduser()
    if folder.exists():
        if not folder.is_dir():
            raise FileError(folder, "is a file, not a folder to save a network in")
        if not overwrite:
            raise FileError(
                folder, "already exists (pass overwrite=True to replace it)"
            )
        if not is_saved_network(folder):
            raise FileError(
                folder, "exists and is not a saved network: refusing to replace it"
            )
    state = {k: v.detach().cpu() for k, v in model.network.state_dict().items()}
    raw = _serialize(state, _METADATA)
    net = model.network
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": "PyanNet",
        "hyper_parameters": _json_ready(
            {
                **net.hparams,
                "num_classes": net.num_classes,
                "sample_rate": net.sample_rate,
            }
        ),
        "specifications": _specifications_dict(model),
        "head": _json_ready(model.head.config()),
        "weights": {"file": WEIGHTS_NAME, "sha256": hashlib.sha256(raw).hexdigest()},
        "provenance": _json_ready(dict(provenance or {})),
        "skseg_version": __version__,
    }
    files = {
        WEIGHTS_NAME: raw,
        CONFIG_NAME: (json.dumps(config, indent=2) + "\n").encode(),
    }
    try:
        if folder.exists():
            # the folder may hold the user's own files: only these two are replaced
            _replace_files(folder, files)
            return folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        # written beside the destination, then renamed: a reader sees the whole
        # network or none
        tmp = Path(
            tempfile.mkdtemp(dir=folder.parent, prefix=folder.name + ".", suffix=".tmp")
        )
        try:
            for name, data in files.items():
                (tmp / name).write_bytes(data)
            tmp.replace(folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    except OSError as e:
        raise FileError(folder, e.strerror or str(e)) from None
    return folder


def _replace_files(folder: Path, files: Mapping[str, bytes]) -> None:
    """Replace ``files`` (name -> bytes) of ``folder``, the config last."""
    written: dict[str, Path] = {}
    try:
        for name, data in files.items():
            tmp = folder / f".{name}.{secrets.token_hex(8)}.tmp"
            # created as open() creates files (the umask's mode), never reused
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            written[name] = tmp
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        # without its config the folder is no network: never new weights read
        # with the old config, or the reverse
        (folder / CONFIG_NAME).unlink(missing_ok=True)
        for name in sorted(written, key=lambda name: name == CONFIG_NAME):
            os.replace(written[name], folder / name)
            del written[name]
    finally:
        for tmp in written.values():
            tmp.unlink(missing_ok=True)


def read_config(path: str | os.PathLike) -> dict:
    """Return a saved network's ``config.json``, validated.

    Parameters
    ----------
    path : str or PathLike
        The folder, or a file inside it.

    Returns
    -------
    config : dict

    Raises
    ------
    CheckpointError
        If the file is missing, not JSON, or lacks a required field.

    Examples
    --------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, "config.json"), "w") as f:
    ...     _ = f.write("{not json")
    >>> try:
    ...     read_config(folder)
    ... except CheckpointError as e:
    ...     print(str(e).split(": ", 1)[1][:22])
    config.json is not val
    """
    file = _folder(path) / CONFIG_NAME
    source = os.fspath(file)
    if not os.path.lexists(file):
        raise CheckpointError(
            f"{source}: no such file (a saved network has {CONFIG_NAME} beside "
            f"{WEIGHTS_NAME}; for a bare state_dict use model_from_state_dict)"
        )
    raw = read_regular(file, MAX_CONFIG_BYTES, source)
    config = parse_json(raw, os.fspath(file.parent), CONFIG_NAME)
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{source}: not a skseg network config")
    if config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{source}: format version {config.get('format_version')!r}, this skseg "
            f"reads version {FORMAT_VERSION}"
        )
    if config.get("architecture") != "PyanNet":
        raise CheckpointError(
            f"{source}: architecture {config.get('architecture')!r} is not supported "
            f"(skseg runs PyanNet)"
        )
    for key in ("hyper_parameters", "specifications", "weights"):
        if not isinstance(config.get(key), dict):
            raise CheckpointError(f"{source}: missing or malformed {key!r}")
    return config


def load_network(path: str | os.PathLike) -> SegmentationModel:
    """Load a network saved by :func:`save_model` (validated, nothing executed).

    Most code calls :func:`skseg.load_model` (shared, cached) or passes the path
    as an estimator's ``segmentation=``; this builds a new model every call.

    Parameters
    ----------
    path : str or PathLike
        The folder, or the ``model.safetensors`` / ``config.json`` inside it.

    Returns
    -------
    model : SegmentationModel
        In ``eval`` mode, on CPU; ``model.sha256`` is the digest of the weights
        file.

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        ``path`` is not a path.
    CheckpointError
        No saved network there (naming the missing file), bad JSON, missing or
        extra tensors, shapes that do not fit, weights whose digest differs from
        the config's, NaN or infinite weights.

    Examples
    --------
    >>> import os, tempfile, torch
    >>> from skseg import load_model
    >>> folder = save_model(load_model(), os.path.join(tempfile.mkdtemp(), "net"))
    >>> model = load_network(folder)
    >>> model.num_classes, model.sha256 == read_config(folder)["weights"]["sha256"]
    (3, True)
    >>> x = torch.randn(1, 1, 80000)
    >>> with torch.inference_mode():
    ...     print(torch.equal(model(x), load_model()(x)))
    True
    """
    validate_parameter_constraints(
        {"path": [str, os.PathLike]}, {"path": path}, caller_name="load_network"
    )
    folder = _folder(path)
    config = read_config(folder)
    # every value under the checkpoint loader's rule before anything is read
    spec = config_specifications(config, os.fspath(folder / CONFIG_NAME))
    weights = folder / WEIGHTS_NAME
    source = os.fspath(weights)
    # read once, bounded, and hashed as read: the bytes checked are the bytes used
    raw = read_regular(weights, MAX_WEIGHTS_BYTES, source)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != config["weights"].get("sha256"):
        raise CheckpointError(
            f"{source}: its sha256 {digest[:12]}... differs from the one in "
            f"{CONFIG_NAME}: the weights were replaced or damaged after saving"
        )
    shapes, _ = read_header(raw, source)
    built = {
        "hyper_parameters": config["hyper_parameters"],
        "specifications": spec,
        # (networks saved before heads were named: the specifications imply it)
        "head": config.get("head"),
        "saved_specifications": config["specifications"],
    }
    # the header's shapes against the architecture, before a tensor is copied
    check_architecture(built, shapes, source)
    state, _ = _deserialize(raw, source)
    return build_model(built, state, source=source, sha256=digest)


#: Most outputs of a saved network (the 2021 model has 3, segmentation-3.0 7).
MAX_OUTPUTS = 4096


def config_specifications(config: Mapping[str, Any], source: str) -> Specifications:
    """Return a saved network's specifications, validated with its hyper-parameters.

    The specifications follow the checkpoint loader's rule
    (:func:`skseg.checkpoint.check_specifications`), and so do the sizes in
    the hyper-parameters (:func:`skseg.checkpoint.check_hyper_parameters`).
    The one read of ``config.json``'s specifications: what is validated is what
    the network is built with.

    Parameters
    ----------
    config : mapping
        As :func:`read_config` returns it.
    source : str
        The ``config.json``, named in the errors.

    Returns
    -------
    specifications : Specifications

    Raises
    ------
    CheckpointError
        A missing field, or a value the checkpoint loader would refuse.

    Examples
    --------
    >>> config = {"hyper_parameters": {"num_classes": 3}, "specifications": {
    ...     "problem": "multi-label", "resolution": "frame", "duration": 5.0,
    ...     "classes": ["a", "b", "c"], "warm_up": [0.0, 0.0]}}
    >>> config_specifications(config, "config.json").duration
    5.0
    >>> config["specifications"]["warm_up"] = [-1.0, 0.0]
    >>> try:
    ...     config_specifications(config, "config.json")
    ... except CheckpointError as e:
    ...     print(str(e)[:49])
    config.json: specifications warm_up -1.0 is outsi
    """
    hp = check_hyper_parameters(config["hyper_parameters"], source)
    outputs = hp.get("num_classes")
    if outputs is not None and not (_is_count(outputs) and 1 <= outputs <= MAX_OUTPUTS):
        raise CheckpointError(
            f"{source}: hyper-parameter num_classes {outputs!r:.40} is not an "
            f"integer in [1, {MAX_OUTPUTS}]"
        )
    raw = config["specifications"]
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise CheckpointError(
            f"{source}: malformed specifications (no {', '.join(missing)})"
        )
    # a saved network's default, where pyannote's checkpoints default to False
    defaults = {"permutation_invariant": Specifications.permutation_invariant}
    return check_specifications({**defaults, **raw}, source, saved=True)


def check_architecture(
    config: Mapping[str, Any], shapes: Mapping[str, tuple], source: str
) -> None:
    """Check that the weights' shapes fit the architecture, before building it.

    The network is built on PyTorch's ``meta`` device, which allocates nothing
    (:func:`skseg.model.check_architecture_fits`), and its parameter names and
    shapes are compared with the safetensors header's: hyper-parameters asking
    for a network larger than the weights file are refused before a byte of it
    is allocated or a tensor copied.

    Parameters
    ----------
    config : mapping
        As :func:`skseg.model.build_model` takes it.
    shapes : mapping of str to (dtype, shape)
        As :func:`read_header` returns them.
    source : str
        The weights file, named in errors.

    Raises
    ------
    CheckpointError

    Examples
    --------
    >>> from skseg.heads import Specifications
    >>> hp = {"lstm": {"hidden_size": 4096, "num_layers": 32}, "num_classes": 3}
    >>> config = {"hyper_parameters": hp, "specifications": Specifications()}
    >>> try:
    ...     check_architecture(config, {}, "w")
    ... except CheckpointError as e:
    ...     print(str(e).split(": ")[1])
    the weights do not fit the architecture
    """
    check_architecture_fits(
        config, {name: tuple(shape) for name, (_, shape) in shapes.items()}, source
    )


# parts of a Lightning module's state_dict that are not the network's
_NOT_NETWORK = ("validation_metric.", "loss_func.", "metric.")


def model_from_state_dict(
    state_dict: Mapping[str, torch.Tensor] | str | os.PathLike,
    base: str | os.PathLike | SegmentationModel = "pyannote/segmentation",
) -> SegmentationModel:
    """Put a bare ``state_dict`` (pyannote parameter names) on a base's architecture.

    pyannote.audio's fine-tuning produces a ``state_dict`` with the names of its
    ``PyanNet``; skseg's network uses the same names, so the weights load onto
    the architecture and specifications of the checkpoint they were fine-tuned
    from. A leading ``"model."`` (a wrapper module's prefix) is removed and
    Lightning's metric states are ignored.

    Parameters
    ----------
    state_dict : mapping of str to Tensor, or path of a safetensors file
    base : str, PathLike or SegmentationModel, default="pyannote/segmentation"
        The checkpoint whose architecture and specifications the weights fit.

    Returns
    -------
    model : SegmentationModel
        In ``eval`` mode, on CPU, keyed by the weights' digest.

    Raises
    ------
    CheckpointError
        If a tensor is missing or extra, a shape does not fit the base's
        architecture, or a value is NaN or infinite.

    Examples
    --------
    >>> import os, tempfile
    >>> from skseg import load_model
    >>> state = load_model().network.state_dict()
    >>> path = os.path.join(tempfile.mkdtemp(), "peer.safetensors")
    >>> _ = save_state_dict(state, path)
    >>> model = model_from_state_dict(path)
    >>> model.sha256 == weights_digest(state), model.duration
    (True, 5.0)
    >>> del state["classifier.bias"]
    >>> try:
    ...     model_from_state_dict(state)
    ... except CheckpointError as e:
    ...     print(str(e).split(": ", 1)[1])
    the weights do not fit the architecture: missing tensors classifier.bias
    """
    if isinstance(state_dict, str | os.PathLike):
        source = os.fspath(state_dict)
        state = load_state_dict(state_dict)
    else:
        source = "state_dict"
        state = dict(state_dict)
    if isinstance(base, SegmentationModel):
        base_model = base
    else:
        from .model import load_model

        base_model = load_model(base)
    cleaned = {}
    for name, tensor in state.items():
        if name.startswith(_NOT_NETWORK):
            continue
        cleaned[name.removeprefix("model.")] = tensor
    config = {
        "hyper_parameters": {
            **base_model.network.hparams,
            "num_classes": base_model.num_classes,
            "sample_rate": base_model.sample_rate,
        },
        "specifications": base_model.specifications,
        "head": base_model.head,
    }
    model = build_model(config, cleaned, source=source)
    model.sha256 = weights_digest(model.network.state_dict())
    return model
