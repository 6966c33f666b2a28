"""The pretrained segmentation model: a network plus what it was trained for.

:class:`SegmentationModel` builds a :class:`~skseg.network.PyanNet` from a
checkpoint's hyper-parameters (``sincnet``, ``lstm``, ``linear``), its
specifications (chunk duration, classes, problem) and the shape of its classifier
weights, loads the weights with ``strict=True``, and exposes the frame geometry
the inference needs. What the outputs mean (the activation, the reductions, the
threshold rule, the training loss) is the model's output head
(:attr:`SegmentationModel.head`, :mod:`skseg.heads`), picked from the
specifications as pyannote does, or named by a saved network's configuration.
:func:`build_model` is the one place a network is built: from a checkpoint, a
saved network, a pickle, or a copy to train.
"""

from __future__ import annotations

import copy
import functools
import os
import threading
import warnings
import weakref
from collections.abc import Mapping
from typing import Any

import torch
from pyannote.core import SlidingWindow
from sklearn.utils._param_validation import validate_parameter_constraints
from torch import nn

from .checkpoint import Checkpoint, load_checkpoint
from .digest import tensors_digest
from .exceptions import CheckpointError
from .heads import OutputHead, Specifications, head_for
from .hub import resolve_checkpoint
from .network import PyanNet

__all__ = [
    "SegmentationModel",
    "build_model",
    "check_architecture_fits",
    "load_model",
    "resolve_model",
]

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
    head : skseg.heads.OutputHead, optional
        The output head; by default the one the specifications call for
        (:func:`skseg.heads.head_for`).

    Attributes
    ----------
    sample_rate : int
        Input sample rate.
    duration : float
        Chunk duration it was trained on, in seconds.
    num_classes : int
        Outputs per frame.
    head : skseg.heads.OutputHead
        What the outputs mean (see :mod:`skseg.heads`).
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
    >>> model.head
    MultilabelHead(num_speakers=3)
    >>> seg30 = SegmentationModel.from_pretrained("pyannote/segmentation-3.0")
    >>> seg30.duration, seg30.num_classes, seg30.num_speakers
    (10.0, 7, 3)
    >>> seg30.head
    PowersetHead(num_speakers=3, max_set_size=2)
    """

    def __init__(
        self,
        network: PyanNet,
        specifications: Specifications,
        sha256: str = "",
        head: OutputHead | None = None,
    ):
        super().__init__()
        self.network = network
        self.specifications = specifications
        self.sha256 = sha256
        self.head = (
            head_for(specifications, network.num_classes) if head is None else head
        )
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
            problem an output head reads (:func:`skseg.heads.head_for`), or the
            weights do not fit.
        """
        src = checkpoint.path
        arch = checkpoint.architecture.rsplit(".", 1)[-1]
        if arch not in _SUPPORTED and arch != "unknown":
            raise CheckpointError(
                f"{src}: architecture {checkpoint.architecture} is not supported "
                f"(skseg runs {', '.join(_SUPPORTED)})"
            )
        config = {
            # the classifier's outputs are read from its weights
            "hyper_parameters": {
                k: v
                for k, v in checkpoint.hyper_parameters.items()
                if k != "num_classes"
            },
            "specifications": checkpoint.specifications,
        }
        return build_model(
            config, checkpoint.state_dict, source=str(src), sha256=checkpoint.sha256
        )

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
        header = b""
        header += repr(sorted(self.network.hparams.items())).encode()
        header += repr((self.num_classes, self.sample_rate)).encode()
        if self.network.activation != "sigmoid":
            # (only then: multi-label digests stay what they were)
            header += self.network.activation.encode()
        if self.head != _implied_head(self.specifications, self.num_classes):
            # a head the specifications do not call for (only then: the pretrained
            # models' digests stay what they were)
            header += repr(self.head.config()).encode()
        header += repr(self.specifications).encode()
        state = self.network.state_dict(keep_vars=True)
        return tensors_digest(self, header, state)

    def __deepcopy__(self, memo: dict) -> SegmentationModel:
        # a real copy (pickling's __reduce__ would hand back the shared model)
        copied = type(self)(
            copy.deepcopy(self.network, memo),
            copy.deepcopy(self.specifications, memo),
            self.sha256,
            self.head,
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
    def num_speakers(self) -> int:
        """Local speakers per chunk."""
        return self.head.num_speakers

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

        What they are is the head's business (probabilities for a multi-label
        head, log-probabilities for a powerset one).
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
                self.head.config(),
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
    hparams,
    num_classes,
    sample_rate,
    specifications,
    sha256,
    state,
    digest=None,
    head=None,
):
    # (pickles of earlier versions have no head: the specifications imply it)
    shared = _SHARED.get((digest, sha256)) if digest else None
    # the digest is recomputed on the live model: it may have been modified since
    if (
        shared is not None
        and shared.weights_digest == digest
        and shared.sha256 == sha256
    ):
        return shared
    config = {
        "hyper_parameters": {
            **hparams,
            "num_classes": num_classes,
            "sample_rate": sample_rate,
        },
        "specifications": specifications,
        "head": head,
    }
    return _register(build_model(config, state, source="pickled model", sha256=sha256))


def _implied_head(specifications: Specifications, num_classes: int):
    try:
        return head_for(specifications, num_classes)
    except ValueError:
        return None


def build_model(
    config: Mapping[str, Any],
    state_dict: Mapping[str, torch.Tensor],
    *,
    source: str = "network",
    sha256: str = "",
) -> SegmentationModel:
    """Build a model from its description and weights (checked before allocating).

    The one network builder: checkpoints (:meth:`SegmentationModel.from_checkpoint`),
    saved networks (:func:`skseg.serialization.load_network`), unpickled models
    and the trainer's copies all come through here. The head (given, named by a
    saved configuration, or implied by the specifications) is checked against
    the classifier's outputs and gives the network its activation; the shapes of
    the weights are checked on the meta device first, so hyper-parameters that
    do not fit them never allocate the network they describe.

    Parameters
    ----------
    config : mapping
        ``"hyper_parameters"``: PyanNet's ``sincnet``, ``lstm``, ``linear``,
        ``sample_rate`` and optionally ``num_classes`` (else the rows of
        ``classifier.weight``); ``"specifications"``: a
        :class:`~skseg.heads.Specifications`; optionally ``"head"``: an
        :class:`~skseg.heads.OutputHead` or a saved head configuration
        (:meth:`~skseg.heads.OutputHead.config`), and
        ``"saved_specifications"``: the specifications as saved (what the head
        wrote there).
    state_dict : mapping of str to Tensor
        The network's weights (PyanNet's parameter names).
    source : str, default="network"
        What the weights come from, to start error messages with.
    sha256 : str, default=""
        Provenance digest (:attr:`SegmentationModel.sha256`).

    Returns
    -------
    model : SegmentationModel
        In ``eval`` mode, on CPU.

    Raises
    ------
    CheckpointError
        A head that does not fit, invalid hyper-parameters, missing, extra or
        misshapen tensors, NaN or infinite weights.

    Examples
    --------
    >>> from skseg.heads import Specifications
    >>> net = PyanNet(lstm={"hidden_size": 8, "num_layers": 1},
    ...               linear={"num_layers": 1})
    >>> config = {"hyper_parameters": net.hparams, "specifications": Specifications()}
    >>> model = build_model(config, net.state_dict())
    >>> model.head, model.network.activation
    (MultilabelHead(num_speakers=3), 'sigmoid')
    >>> try:
    ...     build_model(config, {})
    ... except CheckpointError as e:
    ...     print(e)
    network: no classifier weights in the state_dict
    """
    spec = config["specifications"]
    head, kwargs = _resolve_architecture(config, state_dict, source)
    _check_weights(_probe(kwargs, source), state_dict, source)
    network = PyanNet(**kwargs)
    expected = network.state_dict()
    try:
        network.load_state_dict(
            {k: v.to(expected[k].dtype) for k, v in state_dict.items()}, strict=True
        )
    except (RuntimeError, ValueError, TypeError, KeyError) as e:
        raise CheckpointError(
            f"{source}: the weights do not fit a PyanNet built from its "
            f"hyper-parameters ({str(e).splitlines()[0]})"
        ) from None
    return SegmentationModel(network, spec, sha256, head).eval()


def check_architecture_fits(
    config: Mapping[str, Any], shapes: Mapping[str, tuple], source: str = "network"
) -> None:
    """Check weights' names and shapes against a description, allocating nothing.

    What :func:`build_model` checks first, for weights not read yet (a saved
    network's header): the network is built on the meta device only.

    Parameters
    ----------
    config : mapping
        As :func:`build_model` takes it.
    shapes : mapping of str to tuple of int
        Each tensor's shape.
    source : str, default="network"
        What the weights come from, to start error messages with.

    Raises
    ------
    CheckpointError
        A head that does not fit, invalid hyper-parameters, missing, extra or
        misshapen tensors.

    Examples
    --------
    >>> from skseg.heads import Specifications
    >>> config = {"hyper_parameters": {"lstm": {"hidden_size": 4096}},
    ...           "specifications": Specifications()}
    >>> shapes = {"classifier.weight": (3, 128), "classifier.bias": (3,)}
    >>> try:
    ...     check_architecture_fits(config, shapes, "model.safetensors")
    ... except CheckpointError as e:
    ...     print(str(e)[:59])
    model.safetensors: the weights do not fit the architecture:
    """
    meta = {
        name: torch.empty(tuple(shape), device="meta") for name, shape in shapes.items()
    }
    _, kwargs = _resolve_architecture(config, meta, source)
    _check_weights(_probe(kwargs, source), meta, source)


def _resolve_architecture(
    config: Mapping[str, Any], state_dict: Mapping[str, Any], source: str
) -> tuple[OutputHead, dict]:
    hp = config.get("hyper_parameters") or {}
    spec = config["specifications"]
    if "num_classes" in hp:
        num_outputs = hp["num_classes"]
    else:
        weight = state_dict.get("classifier.weight")
        if weight is None:
            raise CheckpointError(f"{source}: no classifier weights in the state_dict")
        num_outputs = int(weight.shape[0])
    head = config.get("head")
    if not isinstance(head, OutputHead):
        try:
            head = head_for(spec, num_outputs, head, config.get("saved_specifications"))
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{source}: {e}") from None
    kwargs = dict(
        sincnet=_kwargs(hp.get("sincnet")),
        lstm=_kwargs(hp.get("lstm")),
        linear=_kwargs(hp.get("linear")),
        num_classes=head.num_outputs,
        sample_rate=int(hp.get("sample_rate", 16000)),
        activation=head.activation,
    )
    return head, kwargs


def _probe(kwargs: dict, source: str) -> dict:
    try:
        # shapes first, on the meta device (no memory): hyper-parameters that
        # do not fit the weights must not allocate the network they describe
        with torch.device("meta"):
            return PyanNet(**kwargs).state_dict()
    except (TypeError, ValueError, RuntimeError, OverflowError, MemoryError) as e:
        raise CheckpointError(
            f"{source}: invalid hyper-parameters ({str(e).splitlines()[0]})"
        ) from None


def _check_weights(
    expected: Mapping[str, torch.Tensor], got: Mapping[str, Any], source: str
) -> None:
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
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
    for name, tensor in got.items():
        want = tuple(expected[name].shape)
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"{source}: {name!r} is not a tensor")
        if tuple(tensor.shape) != want:
            raise CheckpointError(
                f"{source}: the weights do not fit the architecture: tensor "
                f"{name!r} has shape {tuple(tensor.shape)}, the architecture "
                f"needs {want}"
            )
        if (
            tensor.is_floating_point()
            and not tensor.is_meta
            and not bool(torch.isfinite(tensor).all())
        ):
            raise CheckpointError(
                f"{source}: tensor {name!r} has NaN or infinite values"
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

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        ``checkpoint`` is not a path or an identifier.
    WeightsUnavailableError
        No such file, and no pretrained network of that name.
    CheckpointError
        The file is not a network skseg can load (the message says why).

    Examples
    --------
    >>> model = load_model("pyannote/segmentation")
    >>> model is load_model()  # one network per process and checkpoint
    True
    """
    validate_parameter_constraints(
        {"checkpoint": [str, os.PathLike]},
        {"checkpoint": checkpoint},
        caller_name="load_model",
    )
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
