"""The pretrained segmentation model: a network plus what it was trained for.

:class:`SegmentationModel` builds a :class:`~skseg.network.PyanNet` from a
checkpoint's hyper-parameters (``sincnet``, ``lstm``, ``linear``), its
specifications (chunk duration, classes, problem) and the shape of its classifier
weights, loads the weights with ``strict=True``, and exposes the frame geometry
the inference needs.
"""

from __future__ import annotations

import functools
import os
import threading
import weakref
from typing import Any

import torch
from pyannote.core import SlidingWindow
from torch import nn

from .checkpoint import Checkpoint, Specifications, load_checkpoint
from .exceptions import CheckpointError
from .hub import resolve_checkpoint
from .network import PyanNet

__all__ = ["SegmentationModel", "load_model"]

_SUPPORTED = ("PyanNet",)
_LOCK = threading.RLock()


class SegmentationModel(nn.Module):
    """A pretrained PyanNet with its specifications and frame geometry.

    Parameters
    ----------
    network : PyanNet
        The network, weights loaded.
    specifications : Specifications
        What it was trained for.
    sha256 : str, default=""
        Digest of the checkpoint it was loaded from; keys score caches.

    Attributes
    ----------
    sample_rate : int
        Input sample rate.
    duration : float
        Chunk duration it was trained on, in seconds.
    num_classes : int
        Outputs per frame.
    receptive_field : pyannote.core.SlidingWindow
        Frame ``i`` of a chunk starting at 0 covers ``receptive_field[i]``.

    Examples
    --------
    >>> model = SegmentationModel.from_pretrained()  # "pyannote/segmentation"
    >>> model.duration, model.num_classes, model.sample_rate
    (5.0, 3, 16000)
    >>> model.num_frames(80000)  # frames in a 5 s chunk
    293
    """

    def __init__(
        self, network: PyanNet, specifications: Specifications, sha256: str = ""
    ):
        super().__init__()
        self.network = network
        self.specifications = specifications
        self.sha256 = sha256

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
            frame-level multi-label problem, or the weights do not fit.
        """
        src = checkpoint.path
        arch = checkpoint.architecture.rsplit(".", 1)[-1]
        if arch not in _SUPPORTED and arch != "unknown":
            raise CheckpointError(
                f"{src}: architecture {checkpoint.architecture} is not supported "
                f"(skseg runs {', '.join(_SUPPORTED)})"
            )
        spec = checkpoint.specifications
        if spec.resolution != "frame" or spec.problem != "multi-label" or spec.powerset:
            raise CheckpointError(
                f"{src}: skseg needs a frame-level multi-label segmentation model, "
                f"this one is {spec.resolution}-level {spec.problem}"
                f"{' (powerset)' if spec.powerset else ''}"
            )
        hp = checkpoint.hyper_parameters
        weight = checkpoint.state_dict.get("classifier.weight")
        if weight is None:
            raise CheckpointError(f"{src}: no classifier weights in the state_dict")
        num_classes = int(weight.shape[0])
        if num_classes != len(spec.classes):
            raise CheckpointError(
                f"{src}: the classifier has {num_classes} outputs but the "
                f"specifications list {len(spec.classes)} classes"
            )
        try:
            network = PyanNet(
                sincnet=_kwargs(hp.get("sincnet")),
                lstm=_kwargs(hp.get("lstm")),
                linear=_kwargs(hp.get("linear")),
                num_classes=num_classes,
                sample_rate=int(hp.get("sample_rate", 16000)),
            )
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
        """Return ``(batch, frames, classes)`` probabilities for ``(batch, 1, n)``."""
        return self.network(waveforms)

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
            ),
        )


# Every model alive in this process, by checkpoint digest: unpickling an estimator
# (joblib workers, GridSearchCV's best_estimator_, Dask) reuses the network already
# loaded instead of holding one copy per estimator.
_SHARED: weakref.WeakValueDictionary[str, SegmentationModel] = (
    weakref.WeakValueDictionary()
)


def _register(model: SegmentationModel) -> SegmentationModel:
    if model.sha256:
        with _LOCK:
            return _SHARED.setdefault(model.sha256, model)
    return model


def _rebuild(hparams, num_classes, sample_rate, specifications, sha256, state):
    if sha256 and (shared := _SHARED.get(sha256)) is not None:
        if (
            shared.network.hparams == hparams
            and shared.specifications == specifications
        ):
            return shared
    network = PyanNet(
        sincnet=hparams["sincnet"],
        lstm=hparams["lstm"],
        linear=hparams["linear"],
        num_classes=num_classes,
        sample_rate=sample_rate,
    )
    network.load_state_dict(state, strict=True)
    return _register(SegmentationModel(network, specifications, sha256).eval())


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
