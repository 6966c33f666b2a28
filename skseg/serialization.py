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
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import Specifications, sha256sum
from .exceptions import CheckpointError, FileError
from .model import SegmentationModel
from .network import PyanNet
from .powerset import Powerset

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "is_saved_network",
    "load_network",
    "load_state_dict",
    "model_from_state_dict",
    "read_config",
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
# a header larger than this is not a network's (safetensors' own limit)
_MAX_HEADER = 100_000_000


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


def _deserialize(raw: bytes, source: str) -> tuple[dict[str, torch.Tensor], dict]:
    if len(raw) < 8:
        raise CheckpointError(f"{source}: too short to be a safetensors file")
    n = int.from_bytes(raw[:8], "little")
    if n > min(_MAX_HEADER, len(raw) - 8):
        raise CheckpointError(
            f"{source}: not a safetensors file (header length {n} exceeds the file)"
        )
    try:
        header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(
            f"{source}: unreadable safetensors header ({e})"
        ) from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{source}: the safetensors header is not an object")
    metadata = header.pop("__metadata__", None) or {}
    data = memoryview(raw)[8 + n :]
    tensors: dict[str, torch.Tensor] = {}
    spans = []
    for name, info in header.items():
        where = f"{source}: tensor {name!r}"
        if not isinstance(info, dict):
            raise CheckpointError(f"{where}: malformed entry")
        dtype = _DTYPES.get(info.get("dtype"))
        if dtype is None:
            raise CheckpointError(f"{where}: unsupported dtype {info.get('dtype')!r}")
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if not (
            isinstance(shape, list)
            and all(isinstance(s, int) and s >= 0 for s in shape)
            and isinstance(offsets, list)
            and len(offsets) == 2
            and all(isinstance(o, int) for o in offsets)
        ):
            raise CheckpointError(f"{where}: malformed shape or data_offsets")
        begin, end = offsets
        itemsize = torch.empty(0, dtype=dtype).element_size()
        if not 0 <= begin <= end <= len(data):
            raise CheckpointError(f"{where}: its bytes lie beyond the end of the file")
        if end - begin != math.prod(shape) * itemsize:
            raise CheckpointError(
                f"{where}: {end - begin} bytes for shape {shape} of {info['dtype']}"
            )
        spans.append((begin, end, name))
        buf = bytearray(data[begin:end])
        flat = (
            torch.frombuffer(buf, dtype=dtype) if buf else torch.empty(0, dtype=dtype)
        )
        tensors[name] = flat.reshape(shape)
    spans.sort()
    position = 0
    for begin, end, name in spans:
        if begin != position:
            raise CheckpointError(
                f"{source}: tensor {name!r} overlaps another or leaves a gap"
            )
        position = end
    if position != len(data):
        raise CheckpointError(f"{source}: {len(data) - position} trailing bytes")
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
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise CheckpointError(
            f"{source}: is a folder, not a safetensors file"
        ) from None
    except OSError as e:
        raise CheckpointError(f"{source}: cannot be read ({e.strerror})") from None
    return _deserialize(raw, source)[0]


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


def _specifications_dict(spec: Specifications, num_classes: int) -> dict:
    out = {
        "problem": spec.problem,
        "resolution": spec.resolution,
        "duration": float(spec.duration),
        "classes": list(spec.classes),
        "warm_up": [float(w) for w in spec.warm_up],
        "permutation_invariant": bool(spec.permutation_invariant),
        "powerset": bool(spec.powerset),
    }
    if spec.powerset:
        # pyannote's name: the largest set of simultaneous speakers of a class
        out["powerset_max_classes"] = Powerset.infer(
            num_classes, len(spec.classes)
        ).max_set_size
    return out


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
        "specifications": _specifications_dict(model.specifications, net.num_classes),
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
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        raise CheckpointError(
            f"{source}: no such file (a saved network has {CONFIG_NAME} beside "
            f"{WEIGHTS_NAME}; for a bare state_dict use model_from_state_dict)"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(
            f"{file.parent}: {CONFIG_NAME} is not valid JSON ({e})"
        ) from None
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


def _build(
    hp: Mapping[str, Any],
    spec: Specifications,
    source: str,
    max_set_size: Any = None,
) -> tuple[PyanNet, int]:
    # pyannote's two segmentation heads: multi-label (sigmoid) and powerset
    # (mono-label log-softmax over the sets of speakers)
    expected = "mono-label" if spec.powerset else "multi-label"
    if spec.resolution != "frame" or spec.problem != expected:
        raise CheckpointError(
            f"{source}: skseg needs a frame-level multi-label or powerset "
            f"segmentation model, this one is {spec.resolution}-level "
            f"{spec.problem}{' (powerset)' if spec.powerset else ''}"
        )
    num_classes = int(hp.get("num_classes", len(spec.classes)))
    if spec.powerset:
        try:
            powerset = Powerset.infer(num_classes, len(spec.classes))
        except ValueError as e:
            raise CheckpointError(f"{source}: {e}") from None
        if max_set_size is not None and max_set_size != powerset.max_set_size:
            raise CheckpointError(
                f"{source}: powerset_max_classes is {max_set_size!r} but "
                f"{num_classes} outputs of {len(spec.classes)} speakers make sets "
                f"of at most {powerset.max_set_size}"
            )
    elif num_classes != len(spec.classes):
        raise CheckpointError(
            f"{source}: {num_classes} outputs but {len(spec.classes)} classes"
        )
    try:
        net = PyanNet(
            sincnet=dict(hp.get("sincnet") or {}),
            lstm=dict(hp.get("lstm") or {}),
            linear=dict(hp.get("linear") or {}),
            num_classes=num_classes,
            sample_rate=int(hp.get("sample_rate", 16000)),
            activation="log_softmax" if spec.powerset else "sigmoid",
        )
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: invalid hyper-parameters ({e})") from None
    return net, num_classes


def _load_weights(net: PyanNet, state: Mapping[str, torch.Tensor], source: str) -> None:
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing tensors {', '.join(missing[:5])}")
        if extra:
            parts.append(f"unexpected tensors {', '.join(extra[:5])}")
        more = " (and more)" if len(missing) > 5 or len(extra) > 5 else ""
        raise CheckpointError(
            f"{source}: the weights do not fit the architecture: "
            f"{'; '.join(parts)}{more}"
        )
    for name, tensor in state.items():
        want = tuple(expected[name].shape)
        if tuple(tensor.shape) != want:
            raise CheckpointError(
                f"{source}: tensor {name!r} has shape {tuple(tensor.shape)}, the "
                f"architecture needs {want}"
            )
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(
                f"{source}: tensor {name!r} has NaN or infinite values"
            )
    net.load_state_dict(
        {k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True
    )


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
    CheckpointError
        Bad JSON, missing or extra tensors, shapes that do not fit, weights whose
        digest differs from the config's, NaN or infinite weights.

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
    folder = _folder(path)
    config = read_config(folder)
    weights = folder / WEIGHTS_NAME
    source = os.fspath(weights)
    if not weights.is_file():
        raise CheckpointError(f"{source}: no such file")
    digest = sha256sum(weights)
    if digest != config["weights"].get("sha256"):
        raise CheckpointError(
            f"{source}: its sha256 {digest[:12]}... differs from the one in "
            f"{CONFIG_NAME}: the weights were replaced or damaged after saving"
        )
    state, _ = _deserialize(weights.read_bytes(), source)
    spec_raw = config["specifications"]
    try:
        spec = Specifications(
            problem=str(spec_raw["problem"]),
            resolution=str(spec_raw["resolution"]),
            duration=float(spec_raw["duration"]),
            classes=tuple(str(c) for c in spec_raw["classes"]),
            warm_up=tuple(float(w) for w in spec_raw.get("warm_up", (0.0, 0.0))),
            permutation_invariant=bool(spec_raw.get("permutation_invariant", True)),
            powerset=bool(spec_raw.get("powerset", False)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(
            f"{folder / CONFIG_NAME}: malformed specifications ({e})"
        ) from None
    net, _ = _build(
        config["hyper_parameters"],
        spec,
        os.fspath(folder / CONFIG_NAME),
        spec_raw.get("powerset_max_classes"),
    )
    _load_weights(net, state, source)
    return SegmentationModel(net, spec, digest).eval()


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
    hp = {
        **base_model.network.hparams,
        "num_classes": base_model.num_classes,
        "sample_rate": base_model.sample_rate,
    }
    net, _ = _build(hp, base_model.specifications, source)
    _load_weights(net, cleaned, source)
    return SegmentationModel(
        net, base_model.specifications, weights_digest(net.state_dict())
    ).eval()
