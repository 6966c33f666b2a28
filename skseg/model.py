"""The pretrained segmentation model: a network plus what it was trained for.

:class:`SegmentationModel` builds a :class:`~skseg.network.PyanNet` from a
checkpoint's hyper-parameters (``sincnet``, ``lstm``, ``linear``), its
specifications (chunk duration, classes, problem) and the shape of its classifier
weights, loads the weights with ``strict=True``, and exposes the frame geometry
the inference needs. Two heads are supported, as pyannote builds them from the
specifications: multi-label (sigmoid, pyannote/segmentation) and powerset
(log-softmax over the sets of speakers, pyannote/segmentation-3.0; see
:mod:`skseg.powerset`).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import threading
import warnings
import weakref
from typing import Any

import torch
from pyannote.core import SlidingWindow
from torch import nn

from .checkpoint import Checkpoint, Specifications, load_checkpoint
from .exceptions import CheckpointError
from .hub import resolve_checkpoint
from .network import PyanNet
from .powerset import Powerset

__all__ = ["SegmentationModel", "load_model", "resolve_model"]

_SUPPORTED = ("PyanNet",)
_LOCK = threading.RLock()

# SincNet runs this many chunks at a time on CPU: its per-chunk tensors (80 x 7975
# floats) then fit the allocator's reuse and the cache (bit-identical results).
_SINCNET_BATCH = 4


class SegmentationModel(nn.Module):
    """A pretrained PyanNet with its specifications and frame geometry.

    Parameters
    ----------
    network : PyanNet
        The network, weights loaded.
    specifications : Specifications
        What it was trained for.
    sha256 : str, default=""
        Digest of the checkpoint file it was loaded from (provenance; empty for a
        model built in memory). Score caches are keyed by :attr:`weights_digest`
        instead, which follows the weights actually used.

    Attributes
    ----------
    sample_rate : int
        Input sample rate.
    duration : float
        Chunk duration it was trained on, in seconds.
    num_classes : int
        Outputs per frame (powerset classes for a powerset model).
    powerset : Powerset or None
        The powerset of a powerset model (its outputs are log-probabilities of
        sets of speakers), None for a multi-label one (speaker probabilities).
    num_speakers : int
        Local speakers per chunk.
    receptive_field : pyannote.core.SlidingWindow
        Frame ``i`` of a chunk starting at 0 covers ``receptive_field[i]``.
    output_kind : str
        ``"segmentation"``: what keeps its cached scores apart from those of
        another kind of :class:`~skseg.inference.ChunkNetwork`.
    dimension : int
        Outputs per frame (:attr:`num_classes`).
    memo : dict
        What other modules derive from this network and keep with it (the score
        sources of :mod:`skseg.scores`): gone with the model, never pickled or
        copied.

    Notes
    -----
    An estimator may hold a model object as its ``segmentation`` parameter (a
    network fine-tuned in memory, say). :func:`sklearn.base.clone` then shares the
    object instead of copying it (``__sklearn_clone__``), so a grid search neither
    reloads nor copies the network per candidate; pickling (joblib) stores its
    weights. Do not modify a model in place while estimators use it: its
    :attr:`weights_digest` would change under their cached scores (it is
    recomputed when the weights change, but scores computed meanwhile are not).

    Examples
    --------
    >>> model = SegmentationModel.from_pretrained()  # "pyannote/segmentation"
    >>> model.duration, model.num_classes, model.sample_rate
    (5.0, 3, 16000)
    >>> model.num_frames(80000)  # frames in a 5 s chunk
    293
    >>> powerset = SegmentationModel.from_pretrained("pyannote/segmentation-3.0")
    >>> powerset.duration, powerset.num_classes, powerset.powerset
    (10.0, 7, Powerset(num_speakers=3, max_set_size=2))
    """

    def __init__(
        self, network: PyanNet, specifications: Specifications, sha256: str = ""
    ):
        super().__init__()
        self.network = network
        self.specifications = specifications
        self.sha256 = sha256
        self.memo: dict = {}

    @classmethod
    def from_checkpoint(cls, checkpoint: Checkpoint) -> SegmentationModel:
        """Build the model from an already read :class:`~skseg.checkpoint.Checkpoint`.

        Parameters
        ----------
        checkpoint : Checkpoint

        Returns
        -------
        model : SegmentationModel
            In ``eval`` mode, on CPU.

        Raises
        ------
        CheckpointError
            If the architecture is not PyanNet, the specifications are not a
            frame-level multi-label or powerset problem, or the weights do not
            fit.
        """
        src = checkpoint.path
        arch = checkpoint.architecture.rsplit(".", 1)[-1]
        if arch not in _SUPPORTED and arch != "unknown":
            raise CheckpointError(
                f"{src}: architecture {checkpoint.architecture} is not supported "
                f"(skseg runs {', '.join(_SUPPORTED)})"
            )
        spec = checkpoint.specifications
        # pyannote's two segmentation heads: multi-label (sigmoid) and powerset
        # (mono-label over sets of speakers, log-softmax)
        expected = "mono-label" if spec.powerset else "multi-label"
        if spec.resolution != "frame" or spec.problem != expected:
            raise CheckpointError(
                f"{src}: skseg needs a frame-level multi-label or powerset "
                f"segmentation model, this one is {spec.resolution}-level "
                f"{spec.problem}{' (powerset)' if spec.powerset else ''}"
            )
        hp = checkpoint.hyper_parameters
        weight = checkpoint.state_dict.get("classifier.weight")
        if weight is None:
            raise CheckpointError(f"{src}: no classifier weights in the state_dict")
        num_classes = int(weight.shape[0])
        if spec.powerset:
            try:
                Powerset.infer(num_classes, len(spec.classes))
            except ValueError as e:
                raise CheckpointError(
                    f"{src}: skseg needs a multi-label segmentation model or a "
                    f"powerset one whose classifier has a powerset's outputs: {e}"
                ) from None
        elif num_classes != len(spec.classes):
            raise CheckpointError(
                f"{src}: the classifier has {num_classes} outputs but the "
                f"specifications list {len(spec.classes)} classes"
            )
        kwargs = dict(
            sincnet=_kwargs(hp.get("sincnet")),
            lstm=_kwargs(hp.get("lstm")),
            linear=_kwargs(hp.get("linear")),
            num_classes=num_classes,
            sample_rate=int(hp.get("sample_rate", 16000)),
            activation="log_softmax" if spec.powerset else "sigmoid",
        )
        try:
            # shapes first, on the meta device (no memory): hyper-parameters that
            # do not fit the weights must not allocate the network they describe
            with torch.device("meta"):
                probe = PyanNet(**kwargs)
            _check_shapes(probe.state_dict(), checkpoint.state_dict)
            network = PyanNet(**kwargs)
            network.load_state_dict(checkpoint.state_dict, strict=True)
        except (RuntimeError, ValueError, TypeError, KeyError) as e:
            raise CheckpointError(
                f"{src}: the weights do not fit a PyanNet built from its "
                f"hyper-parameters ({str(e).splitlines()[0]})"
            ) from None
        return cls(network, spec, checkpoint.sha256).eval()

    @classmethod
    def from_pretrained(
        cls, checkpoint: str | os.PathLike = "pyannote/segmentation"
    ) -> SegmentationModel:
        """Load a pretrained model from a path or an identifier.

        Parameters
        ----------
        checkpoint : str or PathLike, default="pyannote/segmentation"
            A local ``pytorch_model.bin`` / ``.ckpt`` file, a network saved by
            :func:`skseg.serialization.save_model` (its folder or its
            ``model.safetensors``), or an identifier resolved by
            :func:`skseg.hub.resolve_checkpoint`.

        Returns
        -------
        model : SegmentationModel
            In ``eval`` mode, on CPU.
        """
        path = resolve_checkpoint(checkpoint)
        if path.suffix == ".safetensors":
            from .serialization import load_network

            return load_network(path)
        return cls.from_checkpoint(load_checkpoint(path))

    # -- identity -----------------------------------------------------------------
    @property
    def weights_digest(self) -> str:
        """SHA-256 of the network's architecture and weights, as they are now.

        Two models with different weights never share it, whatever file (if any)
        they came from; the same weights give the same digest in any process. It
        keys the score cache. Memoised per model object, and recomputed when a
        parameter has been modified in place since.

        Returns
        -------
        digest : str
            64 hexadecimal digits.

        Examples
        --------
        >>> import copy, torch
        >>> model = load_model()
        >>> tuned = copy.deepcopy(model)
        >>> tuned.weights_digest == model.weights_digest
        True
        >>> with torch.no_grad():
        ...     _ = tuned.network.classifier.bias.add_(0.01)
        >>> tuned.weights_digest == model.weights_digest
        False
        """
        state = self.network.state_dict(keep_vars=True)
        # torch counts in-place modifications per tensor: a changed count means
        # changed weights, and costs nothing to read
        versions = tuple(t._version for t in state.values())
        memo = self.__dict__.get("_digest_memo")
        if memo is not None and memo[0] == versions:
            return memo[1]
        h = hashlib.sha256()
        h.update(repr(sorted(self.network.hparams.items())).encode())
        h.update(repr((self.num_classes, self.sample_rate)).encode())
        if self.network.activation != "sigmoid":
            # (only then: multi-label digests stay what they were)
            h.update(self.network.activation.encode())
        h.update(repr(self.specifications).encode())
        for name in sorted(state):
            tensor = state[name].detach().cpu().contiguous()
            h.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            h.update(tensor.numpy().tobytes())
        digest = h.hexdigest()
        self.__dict__["_digest_memo"] = (versions, digest)
        return digest

    def __deepcopy__(self, memo: dict) -> SegmentationModel:
        # a real copy (pickling's __reduce__ would hand back the shared model)
        copied = type(self)(
            copy.deepcopy(self.network, memo),
            copy.deepcopy(self.specifications, memo),
            self.sha256,
        )
        return copied.train(self.training)

    def __sklearn_clone__(self) -> SegmentationModel:
        # an estimator parameter shared, not copied, by clone (see Notes)
        return self

    # -- geometry -----------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        """Input sample rate in Hz."""
        return self.network.sample_rate

    @property
    def duration(self) -> float:
        """Chunk duration the model was trained on, in seconds."""
        return float(self.specifications.duration)

    @property
    def num_classes(self) -> int:
        """Number of outputs per frame."""
        return self.network.num_classes

    @property
    def powerset(self) -> Powerset | None:
        """The powerset of a powerset model; None for a multi-label model."""
        if not self.specifications.powerset:
            return None
        return Powerset.infer(self.num_classes, len(self.specifications.classes))

    @property
    def num_speakers(self) -> int:
        """Local speakers per chunk."""
        powerset = self.powerset
        return self.num_classes if powerset is None else powerset.num_speakers

    def num_frames(self, num_samples: int) -> int:
        """Return the number of output frames for ``num_samples`` input samples."""
        return self.network.geometry.num_frames(num_samples)

    @property
    def receptive_field(self) -> SlidingWindow:
        """Frames of a chunk starting at 0 s, as pyannote.audio >= 3.2 defines them."""
        g = self.network.geometry
        size = g.receptive_field_size(1)
        start = g.receptive_field_center(0) - (size - 1) / 2
        return SlidingWindow(
            start=start / self.sample_rate,
            duration=size / self.sample_rate,
            step=g.receptive_field_step() / self.sample_rate,
        )

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Return ``(batch, frames, classes)`` scores for ``(batch, 1, n)``.

        Probabilities for a multi-label model, log-probabilities for a powerset one.
        """
        return self.network(waveforms)

    # -- skseg.inference.ChunkNetwork ---------------------------------------------
    # What inference and the score cache ask of a network; everything
    # PyanNet-specific about running it stays behind these members.

    #: the cache keeps these outputs apart from other kinds of network's
    output_kind = "segmentation"

    @property
    def dimension(self) -> int:
        """Values per output frame: :attr:`num_classes`."""
        return self.num_classes

    def forward_chunks(self, chunks: torch.Tensor) -> torch.Tensor:
        """Return ``(batch, frames, classes)`` scores for ``(batch, 1, n)`` chunks.

        :meth:`forward`, with SincNet run a few chunks at a time on CPU
        (:meth:`~skseg.network.PyanNet.forward`'s ``sincnet_batch``): the same
        numbers bit for bit, faster.
        """
        if chunks.device.type == "cpu":
            return self.network(chunks, sincnet_batch=_SINCNET_BATCH)
        return self.network(chunks)

    def forward_overlapping(
        self, block: torch.Tensor, window: int, step: int
    ) -> torch.Tensor:
        """Return the scores of each chunk ``block[c * step : c * step + window]``.

        SincNet's first convolution runs once over the block
        (:meth:`skseg.network.PyanNet.forward_overlapping`).
        """
        return self.network.forward_overlapping(block, window, step)

    def quantized(self) -> SegmentationModel:
        """Return a CPU copy with int8 dynamic LSTM and linear layers (fast mode).

        Only its forward methods are meant to be used (its digest is not the
        model's).
        """
        copied = copy.deepcopy(self).cpu()
        with warnings.catch_warnings():
            # torch.ao.quantization announces its move to torchao
            warnings.simplefilter("ignore")
            copied.network = torch.ao.quantization.quantize_dynamic(
                copied.network, {nn.LSTM, nn.Linear}, dtype=torch.qint8
            )
        return copied.eval()

    # -- persistence ----------------------------------------------------------------
    def __reduce__(self):
        # A compact, device-free description: CPU weights plus what rebuilds the net.
        state = {k: v.detach().cpu() for k, v in self.network.state_dict().items()}
        hp = self.network.hparams
        return (
            _rebuild,
            (
                hp,
                self.network.num_classes,
                self.sample_rate,
                self.specifications,
                self.sha256,
                state,
                self.weights_digest,
            ),
        )


# Every model alive in this process, by weights digest: unpickling an estimator
# (joblib workers, GridSearchCV's best_estimator_, Dask) reuses the network already
# loaded instead of holding one copy per estimator. Keyed by the weights, not the
# checkpoint file's digest, so a model fine-tuned from a checkpoint is never
# mistaken for it; and by the checkpoint digest too, so that a saved network with
# the same weights (a fine-tuning stopped before any improvement) does not evict
# the checkpoint's model.
_SHARED: weakref.WeakValueDictionary[tuple[str, str], SegmentationModel] = (
    weakref.WeakValueDictionary()
)


def _register(model: SegmentationModel) -> SegmentationModel:
    key = (model.weights_digest, model.sha256)
    with _LOCK:
        shared = _SHARED.get(key)
        if shared is not None:
            return shared
        _SHARED[key] = model
        return model


def _rebuild(
    hparams, num_classes, sample_rate, specifications, sha256, state, digest=None
):
    shared = _SHARED.get((digest, sha256)) if digest else None
    # the digest is recomputed on the live model: it may have been modified since
    if (
        shared is not None
        and shared.weights_digest == digest
        and shared.sha256 == sha256
    ):
        return shared
    network = PyanNet(
        sincnet=hparams["sincnet"],
        lstm=hparams["lstm"],
        linear=hparams["linear"],
        num_classes=num_classes,
        sample_rate=sample_rate,
        activation="log_softmax" if specifications.powerset else "sigmoid",
    )
    network.load_state_dict(state, strict=True)
    return _register(SegmentationModel(network, specifications, sha256).eval())


def _check_shapes(expected: dict, got: dict) -> None:
    """Raise ``RuntimeError`` (as ``load_state_dict`` would) where shapes differ."""
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    if missing or unexpected:
        raise RuntimeError(
            f"missing keys {missing[:3]}, unexpected keys {unexpected[:3]}"
        )
    for key, tensor in expected.items():
        if tuple(tensor.shape) != tuple(got[key].shape):
            raise RuntimeError(
                f"size mismatch for {key}: {tuple(got[key].shape)} in the "
                f"checkpoint, {tuple(tensor.shape)} in the network"
            )


def _kwargs(d: Any) -> dict:
    return dict(d) if isinstance(d, dict) else {}


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int, size: int) -> SegmentationModel:
    if path.endswith(".safetensors"):
        from .serialization import load_network

        return _register(load_network(path))
    return _register(SegmentationModel.from_checkpoint(load_checkpoint(path)))


def load_model(
    checkpoint: str | os.PathLike = "pyannote/segmentation",
) -> SegmentationModel:
    """Return the process-wide shared model for a checkpoint (loaded once).

    Every estimator on the same checkpoint shares one network per process; a
    modified file on disk is loaded anew.

    Parameters
    ----------
    checkpoint : str or PathLike, default="pyannote/segmentation"
        Path or identifier; a network saved by
        :func:`skseg.serialization.save_model` (folder or ``model.safetensors``)
        is accepted too.

    Returns
    -------
    model : SegmentationModel
        Shared; do not modify it in place.

    Examples
    --------
    >>> model = load_model("pyannote/segmentation")
    >>> model is load_model()  # one network per process and checkpoint
    True
    """
    path = resolve_checkpoint(checkpoint).resolve()
    st = path.stat()
    with _LOCK:
        return _load_cached(str(path), st.st_mtime_ns, st.st_size)


def resolve_model(
    segmentation: SegmentationModel | str | os.PathLike = "pyannote/segmentation",
) -> SegmentationModel:
    """Return the model an estimator's ``segmentation`` parameter names.

    Parameters
    ----------
    segmentation : SegmentationModel, str or PathLike
        A model object (returned as it is), or a checkpoint path or identifier
        (the process-wide shared model, see :func:`load_model`).

    Returns
    -------
    model : SegmentationModel

    Examples
    --------
    >>> model = load_model()
    >>> resolve_model(model) is model is resolve_model("pyannote/segmentation")
    True
    """
    if isinstance(segmentation, SegmentationModel):
        return segmentation
    return load_model(segmentation)
