"""Output heads: what a segmentation network's outputs mean, one object per encoding.

A segmentation network ends in a classifier whose outputs are read one way or
another: pyannote/segmentation's are independent speaker probabilities
(:class:`MultilabelHead`, sigmoid), pyannote/segmentation-3.0's are
log-probabilities of sets of speakers (:class:`PowersetHead`, log-softmax, see
:mod:`skseg.powerset`). Everything that depends on that reading lives on the
head, and every other module asks the model's head (``model.head``) instead of
branching on the encoding:

- the activation the network applies (:attr:`OutputHead.activation`), the number
  of outputs and of local speakers, and whether a checkpoint's specifications fit
  its classifier (:meth:`OutputHead.from_specifications`);
- the threshold rule, what ``"auto"`` onset and offset mean
  (:meth:`OutputHead.thresholds`), and the per-chunk reductions each rule runs
  (:meth:`OutputHead.reduction`): :class:`Reduction` values, hashable and named
  (the score cache keys them by name), callable on a chunk array;
- the training loss (targets included), and the speaker activities and
  threshold grid of the validation metric;
- its configuration: what a saved network's ``config.json`` records
  (:meth:`OutputHead.config`, :meth:`OutputHead.specifications_entries`).

A new encoding is one :class:`OutputHead` subclass and one :func:`register_head`
call; :func:`head_for` picks a model's head from a saved configuration, or from
the specifications of a pyannote checkpoint.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from .aggregation import overlap_reduction, speech_reduction
from .exceptions import CheckpointError
from .powerset import Powerset, powerset_reduction, reduction_name

__all__ = [
    "HEADS",
    "KINDS",
    "MultilabelHead",
    "OutputHead",
    "PowersetHead",
    "Reduction",
    "Specifications",
    "head_for",
    "named_reduction",
    "permutate",
    "powerset_targets",
    "read_encoding",
    "register_head",
    "segmentation_loss",
]

#: what a reduction returns per frame: speech, overlap, or one value per speaker
KINDS: tuple[str, ...] = ("speech", "overlap", "speakers")

# OptimalDiarizationErrorRate's threshold grid (pyannote.audio's torchmetrics)
_THRESHOLDS = torch.linspace(0.0, 1.0, 51)


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
        Whether outputs are powerset classes (:class:`PowersetHead`); the field
        of pyannote's checkpoint format, so that its ``repr`` (part of a
        network's weights digest) stays what it was.

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


def read_encoding(
    raw: Mapping[str, Any], source: str, *, saved: bool = False
) -> dict[str, Any]:
    """Return the :class:`Specifications` fields that name a network's encoding.

    The one place where the specifications' file formats say which head a
    network has: pyannote's checkpoints record ``powerset_max_classes`` (an
    integer, or absent for multi-label outputs); a network saved by skseg also
    records the ``powerset`` flag, which must agree with it. The head checks the
    set size against the outputs (:meth:`OutputHead.from_specifications`).

    Parameters
    ----------
    raw : mapping
        The specifications as read from the file.
    source : str
        The file, named in the error.
    saved : bool, default=False
        ``raw`` comes from a saved network's ``config.json``.

    Returns
    -------
    fields : dict
        Keyword arguments of :class:`Specifications`.

    Raises
    ------
    CheckpointError
        A set size that is not an integer, a flag that is not a bool, or a set
        size without the flag.

    Examples
    --------
    >>> read_encoding({"powerset_max_classes": 2}, "model.ckpt")
    {'powerset': True}
    >>> try:
    ...     read_encoding({"powerset": "no"}, "config.json", saved=True)
    ... except CheckpointError as e:
    ...     print(e)
    config.json: specifications powerset 'no' is not a bool
    """
    max_set_size = raw.get("powerset_max_classes")
    if max_set_size is not None and (
        isinstance(max_set_size, bool) or not isinstance(max_set_size, int)
    ):
        shown = (
            repr(max_set_size)
            if isinstance(max_set_size, float | bool)
            else repr(max_set_size[:80])
            if isinstance(max_set_size, str)
            else f"of type {type(max_set_size).__name__}"
        )
        raise CheckpointError(
            f"{source}: specifications powerset_max_classes {shown} is not an integer"
        )
    if not saved:
        return {"powerset": bool(max_set_size)}
    flag = raw.get("powerset", False)
    if not isinstance(flag, bool):
        raise CheckpointError(
            f"{source}: specifications powerset {flag!r:.40} is not a bool"
        )
    if max_set_size is not None and not flag:
        raise CheckpointError(
            f"{source}: specifications powerset_max_classes is given but powerset "
            "is false"
        )
    return {"powerset": flag}


@dataclass(frozen=True, eq=False)
class Reduction:
    """A named per-chunk reduction of a head's outputs.

    Callable on ``(..., num_outputs)`` scores; equal to, and hashed as, its
    name, so that it keys the score cache exactly as the name does, and a name
    given as a string still finds the same cached scores.

    Parameters
    ----------
    name : str
        Unique among the reductions of all heads (``"speech"``,
        ``"powerset3x2-hard-speech"``, ...).
    function : callable
        ``(..., num_outputs)`` array to ``(..., 1)`` or ``(..., num_speakers)``.

    Examples
    --------
    >>> import numpy as np
    >>> speech = MultilabelHead(3).reduction("speech")
    >>> speech, str(speech), speech == "speech"
    (Reduction('speech'), 'speech', True)
    >>> speech(np.array([[0.1, 0.7, 0.3]])).tolist()
    [[0.7]]
    """

    name: str
    function: Callable[[np.ndarray], np.ndarray] = field(repr=False)

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Return the reduced scores of ``(..., num_outputs)`` chunk scores."""
        return self.function(scores)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Reduction({self.name!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Reduction):
            return self.name == other.name
        if isinstance(other, str):
            return self.name == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.name)


def _identity(scores: np.ndarray) -> np.ndarray:
    return scores


class OutputHead:
    """Base class of the output encodings (one subclass per encoding).

    Subclasses set :attr:`name` (the registry key saved in ``config.json``),
    :attr:`activation`, :attr:`problem` and :attr:`rules`, and implement the
    methods that raise ``NotImplementedError`` here.

    Examples
    --------
    >>> head = head_for(Specifications(), 3)
    >>> isinstance(head, OutputHead), head.name, head.activation
    (True, 'multilabel', 'sigmoid')
    """

    #: registry key (:data:`HEADS`), written to a saved network's config.json
    name: ClassVar[str] = ""
    #: the activation the network applies to its classifier (PyanNet's names)
    activation: ClassVar[str] = "sigmoid"
    #: the pyannote problem type of the specifications this head reads
    problem: ClassVar[str] = "multi-label"
    #: the rule names :meth:`thresholds` returns, the first one for "auto"
    rules: ClassVar[tuple[str, ...]] = ()

    # -- shape -----------------------------------------------------------------
    @property
    def num_outputs(self) -> int:
        """Outputs per frame of the classifier."""
        raise NotImplementedError

    @property
    def num_speakers(self) -> int:
        """Local speakers per chunk."""
        raise NotImplementedError

    # -- configuration -----------------------------------------------------------
    @classmethod
    def claims(cls, specifications: Specifications) -> bool:
        """Whether a checkpoint's specifications, alone, call for this head.

        Heads that only a saved configuration names return False (the default).
        """
        return False

    @classmethod
    def from_specifications(
        cls,
        specifications: Specifications,
        num_outputs: int,
        entries: Mapping[str, Any] | None = None,
    ) -> OutputHead:
        """Return the head of a network, checked against its specifications.

        Parameters
        ----------
        specifications : Specifications
        num_outputs : int
            Outputs of the classifier.
        entries : mapping, optional
            The saved specifications (``config.json``), for what the head writes
            there beyond :class:`Specifications`
            (:meth:`specifications_entries`).

        Raises
        ------
        ValueError
            The specifications are not this head's problem, or the outputs do not
            fit them.
        """
        raise NotImplementedError

    @classmethod
    def check_problem(cls, specifications: Specifications) -> None:
        """Raise ``ValueError`` unless the specifications are this head's problem."""
        spec = specifications
        if spec.resolution != "frame" or spec.problem != cls.problem:
            raise ValueError(
                f"skseg's {cls.name} head needs a frame-level {cls.problem} "
                f"segmentation model, this one is {spec.resolution}-level "
                f"{spec.problem}"
            )

    def config(self) -> dict[str, Any]:
        """JSON-ready description saved with a network (``name`` first)."""
        return {"name": self.name}

    def specifications_entries(self) -> dict[str, Any]:
        """Return what a saved network's specifications record for this head."""
        return {}

    # -- thresholds and reductions -----------------------------------------------
    def thresholds(
        self,
        onset: float | str,
        offset: float | str | None,
        default: tuple[float, float],
    ) -> tuple[float, float, str]:
        """Resolve ``"auto"`` thresholds; return them with the rule's name.

        Parameters
        ----------
        onset : float or "auto"
        offset : float, None or "auto"
            None means ``onset``.
        default : (float, float)
            The estimator's ``(onset, offset)`` for ``"auto"`` on a multi-label
            network (pyannote's defaults of that pipeline).

        Returns
        -------
        onset, offset : float
        rule : str
            One of :attr:`rules`.
        """
        raise NotImplementedError

    def reduction(self, kind: str, rule: str | None = None) -> Reduction:
        """Return how a chunk's outputs become ``kind`` scores under ``rule``.

        Parameters
        ----------
        kind : {"speech", "overlap", "speakers"}
        rule : str, optional
            One of :attr:`rules`; the first by default.

        Returns
        -------
        reduction : Reduction
        """
        raise NotImplementedError

    def reductions(self) -> tuple[Reduction, ...]:
        """Every reduction of this head, all kinds and rules."""
        return tuple(self.reduction(k, r) for r in self.rules for k in KINDS)

    @classmethod
    def named(cls, name: str) -> Reduction | None:
        """Return the reduction of a head of this class called ``name``, or None."""
        return None

    # -- training -----------------------------------------------------------------
    def check_training(self, vad_loss: str | None) -> None:
        """Raise ``ValueError`` for training parameters this head refuses."""

    def loss(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor,
        vad_loss: str | None = None,
    ) -> torch.Tensor:
        """Return the permutation-invariant loss of a batch of chunks.

        Parameters
        ----------
        prediction : Tensor, shape (batch, frames, num_outputs)
            The network's outputs.
        target : Tensor, shape (batch, frames, num_speakers)
            0/1 speaker activities.
        weight : Tensor, shape (batch, frames, 1)
            Frame weights (0 in the warm-up).
        vad_loss : {"bce", "mse"} or None
        """
        raise NotImplementedError

    def speakers(self, prediction: torch.Tensor) -> torch.Tensor:
        """Return the speaker activities the validation metric thresholds."""
        return prediction

    def validation_thresholds(self) -> torch.Tensor:
        """Return the thresholds the validation metric takes the best of."""
        return _THRESHOLDS

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OutputHead):
            return NotImplemented
        return type(self) is type(other) and self.config() == other.config()

    def __hash__(self) -> int:
        return hash((type(self), repr(self.config())))

    def __repr__(self) -> str:
        params = ", ".join(
            f"{k}={v!r}" for k, v in self.config().items() if k != "name"
        )
        return f"{type(self).__name__}({params})"


class MultilabelHead(OutputHead):
    """Independent speaker probabilities (sigmoid): pyannote/segmentation.

    Parameters
    ----------
    num_speakers : int
        Outputs, one per local speaker.

    Examples
    --------
    >>> import numpy as np
    >>> head = MultilabelHead(3)
    >>> head.thresholds("auto", "auto", (0.767, 0.377))
    (0.767, 0.377, 'multi-label')
    >>> head.reduction("overlap")(np.array([[0.1, 0.7, 0.3]])).tolist()
    [[0.3]]
    """

    name = "multilabel"
    activation = "sigmoid"
    problem = "multi-label"
    rules = ("multi-label",)

    _REDUCERS: ClassVar[dict[str, Callable[[np.ndarray], np.ndarray]]] = {
        "speech": speech_reduction,
        "overlap": overlap_reduction,
        "speakers": _identity,
    }

    def __init__(self, num_speakers: int):
        self._num_speakers = int(num_speakers)

    @property
    def num_outputs(self) -> int:
        """Outputs per frame of the classifier."""
        return self._num_speakers

    @property
    def num_speakers(self) -> int:
        """Local speakers per chunk."""
        return self._num_speakers

    @classmethod
    def claims(cls, specifications: Specifications) -> bool:
        """Any checkpoint no other head claims (pyannote's default encoding)."""
        return True

    @classmethod
    def from_specifications(cls, specifications, num_outputs, entries=None):
        """Return the head; one output per class of the specifications."""
        cls.check_problem(specifications)
        if num_outputs != len(specifications.classes):
            raise ValueError(
                f"the classifier has {num_outputs} outputs but the specifications "
                f"list {len(specifications.classes)} classes"
            )
        return cls(num_outputs)

    def config(self) -> dict[str, Any]:
        """JSON-ready description saved with a network."""
        return {"name": self.name, "num_speakers": self._num_speakers}

    def thresholds(self, onset, offset, default):
        """``"auto"``: the pipeline's defaults; thresholds on the probabilities."""
        onset = default[0] if onset == "auto" else onset
        offset = default[1] if offset == "auto" else offset
        offset = onset if offset is None else offset
        return float(onset), float(offset), self.rules[0]

    def reduction(self, kind, rule=None):
        """Max over speakers, second-largest, or the outputs as they are."""
        if kind not in KINDS or rule not in (None, *self.rules):
            raise ValueError(f"unknown reduction {kind!r} / {rule!r} of {self!r}")
        return Reduction(kind, self._REDUCERS[kind])

    @classmethod
    def named(cls, name):
        """``"speech"``, ``"overlap"`` or ``"speakers"``."""
        reduce = cls._REDUCERS.get(name) if isinstance(name, str) else None
        return None if reduce is None else Reduction(name, reduce)

    def loss(self, prediction, target, weight, vad_loss=None):
        """Return BCE of the outputs permuted to the targets (+ the speech loss)."""
        permuted = permutate(target, prediction)
        loss = F.binary_cross_entropy(permuted, target, weight=weight.expand_as(target))
        if vad_loss is not None:
            vad_pred = permuted.max(dim=2, keepdim=True).values
            vad_target = target.max(dim=2, keepdim=True).values
            if vad_loss == "bce":
                loss = loss + F.binary_cross_entropy(
                    vad_pred, vad_target, weight=weight
                )
            else:
                loss = (
                    loss + ((vad_pred - vad_target) ** 2 * weight).sum() / weight.sum()
                )
        return loss


class PowersetHead(OutputHead):
    """Log-probabilities of sets of speakers: pyannote/segmentation-3.0.

    Parameters
    ----------
    powerset : skseg.powerset.Powerset
        The speakers and the largest set of them.

    Examples
    --------
    >>> import numpy as np
    >>> head = PowersetHead(Powerset(3, 2))
    >>> head.num_outputs, head.num_speakers
    (7, 3)
    >>> head.thresholds("auto", "auto", (0.767, 0.377))
    (0.5, 0.5, 'powerset-hard')
    >>> head.thresholds(0.7, "auto", (0.767, 0.377))
    (0.7, 0.7, 'powerset-soft')
    >>> speech = head.reduction("speech", "powerset-soft")
    >>> speech
    Reduction('powerset3x2-soft-speech')
    >>> speech(np.log([[0.25, 0.25, 0.125, 0.125, 0.125, 0.0625, 0.0625]])).tolist()
    [[0.75]]
    """

    name = "powerset"
    activation = "log_softmax"
    problem = "mono-label"
    rules = ("powerset-hard", "powerset-soft")

    def __init__(self, powerset: Powerset):
        self.powerset = powerset

    @property
    def num_outputs(self) -> int:
        """Outputs per frame of the classifier: the powerset's classes."""
        return self.powerset.num_classes

    @property
    def num_speakers(self) -> int:
        """Local speakers per chunk."""
        return self.powerset.num_speakers

    @classmethod
    def claims(cls, specifications):
        """Claim a checkpoint whose specifications declare powerset outputs."""
        return bool(specifications.powerset)

    @classmethod
    def from_specifications(cls, specifications, num_outputs, entries=None):
        """Return the head; the outputs must be a powerset of the classes."""
        cls.check_problem(specifications)
        speakers = len(specifications.classes)
        try:
            powerset = Powerset.infer(num_outputs, speakers)
        except ValueError as e:
            raise ValueError(
                f"skseg needs a multi-label segmentation model or a powerset one "
                f"whose classifier has a powerset's outputs: {e}"
            ) from None
        max_set_size = (entries or {}).get("powerset_max_classes")
        if max_set_size is not None and max_set_size != powerset.max_set_size:
            raise ValueError(
                f"powerset_max_classes is {max_set_size!r} but {num_outputs} "
                f"outputs of {speakers} speakers make sets of at most "
                f"{powerset.max_set_size}"
            )
        return cls(powerset)

    def config(self) -> dict[str, Any]:
        """JSON-ready description saved with a network."""
        return {
            "name": self.name,
            "num_speakers": self.powerset.num_speakers,
            "max_set_size": self.powerset.max_set_size,
        }

    def specifications_entries(self) -> dict[str, Any]:
        """Pyannote's name: the largest set of simultaneous speakers of a class."""
        return {"powerset_max_classes": self.powerset.max_set_size}

    def thresholds(self, onset, offset, default):
        """Both ``"auto"``: pyannote's hard decision at 0.5; else soft thresholds."""
        if onset == "auto" and offset == "auto":
            return 0.5, 0.5, "powerset-hard"
        onset = 0.5 if onset == "auto" else onset
        offset = onset if offset in (None, "auto") else offset
        return float(onset), float(offset), "powerset-soft"

    def reduction(self, kind, rule=None):
        """Return the hard (argmax) or soft (probability) speech/overlap/speakers."""
        rule = self.rules[0] if rule is None else rule
        if rule not in self.rules:
            raise ValueError(f"unknown rule {rule!r} of {self!r}")
        name = reduction_name(kind, rule.split("-")[1], self.powerset)
        return Reduction(name, powerset_reduction(name))

    @classmethod
    def named(cls, name):
        """Return the reduction a :func:`skseg.powerset.reduction_name` names."""
        reduce = powerset_reduction(name)
        return None if reduce is None else Reduction(name, reduce)

    def check_training(self, vad_loss):
        """Refuse a speech loss with powerset outputs, as pyannote does."""
        if vad_loss is not None:
            raise ValueError(
                f"vad_loss={vad_loss!r} cannot be used with a powerset network "
                f"(such as pyannote/segmentation-3.0): pyannote.audio refuses "
                f"vad_loss with max_speakers_per_frame, the empty class already "
                f"being non-speech; use vad_loss=None"
            )

    def loss(self, prediction, target, weight, vad_loss=None):
        """Return the NLL of :func:`powerset_targets`, warm-up weighted."""
        if vad_loss is not None:
            raise ValueError(
                "vad_loss cannot be used with a powerset network (pyannote.audio "
                "refuses vad_loss with max_speakers_per_frame: the empty class "
                "already is the non-speech class)"
            )
        classes = powerset_targets(prediction, target, self.powerset)
        losses = F.nll_loss(
            prediction.reshape(-1, prediction.shape[-1]),
            classes.reshape(-1),
            reduction="none",
        ).view(classes.shape)
        w = weight[..., 0]
        return (losses * w).sum() / w.sum()

    def speakers(self, prediction):
        """Return the hard speakers, as pyannote's validation (``to_multilabel``)."""
        mapping = torch.tensor(
            self.powerset.mapping, dtype=prediction.dtype, device=prediction.device
        )
        return _hard_speakers(prediction, mapping)

    def validation_thresholds(self):
        """Return 0.5: on 0/1 speakers any threshold in (0, 1) decides the same."""
        return torch.tensor([0.5])


#: the output heads by the name a saved network's config.json stores
HEADS: dict[str, type[OutputHead]] = {
    MultilabelHead.name: MultilabelHead,
    PowersetHead.name: PowersetHead,
}


def register_head(head: type[OutputHead]) -> type[OutputHead]:
    """Register an :class:`OutputHead` subclass under its :attr:`~OutputHead.name`.

    Usable as a class decorator. Heads registered later are asked first whether
    a checkpoint's specifications call for them (:meth:`OutputHead.claims`).

    Parameters
    ----------
    head : type
        An :class:`OutputHead` subclass with a new, non-empty ``name``.

    Returns
    -------
    head : type
        The same class.

    Examples
    --------
    >>> register_head(PowersetHead) is PowersetHead  # already registered: a no-op
    True
    """
    if not (isinstance(head, type) and issubclass(head, OutputHead)) or not head.name:
        raise TypeError(f"{head!r} is not an OutputHead subclass with a name")
    known = HEADS.get(head.name)
    if known is not None and known is not head:
        raise ValueError(f"an output head named {head.name!r} is already registered")
    HEADS[head.name] = head
    return head


def head_for(
    specifications: Specifications,
    num_outputs: int,
    config: Mapping[str, Any] | None = None,
    entries: Mapping[str, Any] | None = None,
) -> OutputHead:
    """Return a network's head, checked against its specifications.

    Parameters
    ----------
    specifications : Specifications
    num_outputs : int
        Outputs of the network's classifier.
    config : mapping, optional
        A saved head configuration (:meth:`OutputHead.config`): its ``name``
        picks the head. Without one, the first registered head that
        :meth:`~OutputHead.claims` the specifications (latest registered first).
    entries : mapping, optional
        The saved specifications (:meth:`OutputHead.specifications_entries`).

    Returns
    -------
    head : OutputHead

    Raises
    ------
    ValueError
        An unknown head name, or outputs that do not fit the specifications.

    Examples
    --------
    >>> head_for(Specifications(problem="mono-label", powerset=True), 7)
    PowersetHead(num_speakers=3, max_set_size=2)
    >>> head_for(Specifications(), 3, {"name": "multilabel"})
    MultilabelHead(num_speakers=3)
    """
    if config is not None:
        name = config.get("name") if isinstance(config, Mapping) else None
        cls = HEADS.get(name) if isinstance(name, str) else None
        if cls is None:
            raise ValueError(
                f"unknown output head {name!r} (skseg knows {', '.join(HEADS)})"
            )
    else:
        cls = next(
            (c for c in reversed(HEADS.values()) if c.claims(specifications)),
            MultilabelHead,
        )
    head = cls.from_specifications(specifications, num_outputs, entries)
    # what the saved configuration says must be what the network is
    if config is not None and any(head.config().get(k) != v for k, v in config.items()):
        raise ValueError(
            f"the saved head {dict(config)} does not fit the network ({head.config()})"
        )
    return head


@functools.lru_cache(maxsize=64)
def named_reduction(name: str) -> Reduction | None:
    """Return the reduction of any registered head named ``name``, else None.

    How a reduction given by its name (a string, as the score cache keys it) is
    found again.

    Parameters
    ----------
    name : str

    Returns
    -------
    reduction : Reduction or None

    Examples
    --------
    >>> named_reduction("powerset3x2-hard-speech")
    Reduction('powerset3x2-hard-speech')
    >>> named_reduction("speech") == "speech", named_reduction("nothing")
    (True, None)
    """
    for cls in reversed(HEADS.values()):
        found = cls.named(name)
        if found is not None:
            return found
    return None


# -- training ------------------------------------------------------------------
def permutate(target: torch.Tensor, prediction: torch.Tensor) -> torch.Tensor:
    """Return ``prediction``'s speakers reordered to ``target`` by least squared error.

    Every permutation of the speakers is tried per chunk (pyannote's
    ``permutate`` for multi-label training); gradients flow through
    ``prediction``.

    Parameters
    ----------
    target, prediction : Tensor, shape (batch, frames, speakers)

    Returns
    -------
    permuted : Tensor, shape (batch, frames, speakers)

    Examples
    --------
    >>> import torch
    >>> target = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    >>> permutate(target, target[..., [1, 0]]).tolist()
    [[[1.0, 0.0], [1.0, 0.0]]]
    """
    k = target.shape[-1]
    with torch.no_grad():
        # cost[b, i, j]: mean squared error between target i and output j
        cost = ((target[:, :, :, None] - prediction[:, :, None, :]) ** 2).mean(1)
        perms = torch.tensor(list(itertools.permutations(range(k))), device=cost.device)
        rows = torch.arange(k, device=cost.device)
        totals = cost[:, rows, perms].sum(-1)  # (batch, permutations)
        best = perms[totals.argmin(dim=1)]  # (batch, k)
    index = best[:, None, :].expand(-1, prediction.shape[1], -1)
    return torch.gather(prediction, 2, index)


def _assign(reference: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``other``'s speakers reordered to ``reference`` as pyannote's ``permutate``.

    The Hungarian assignment (scipy's ``linear_sum_assignment``) of the mean
    squared error, computed as pyannote computes it: hard speakers often have
    several silent columns, and only the same solver breaks those ties the same
    way.
    """
    with torch.no_grad():
        # cost[b, i, j]: mean over frames of (other j - reference i) ** 2
        cost = ((other[:, :, None, :] - reference[:, :, :, None]) ** 2).mean(1)
        cost = cost.cpu().numpy()
        order = np.stack([linear_sum_assignment(c)[1] for c in cost])
    index = torch.as_tensor(order, device=other.device)[:, None, :]
    return torch.gather(other, 2, index.expand(-1, other.shape[1], -1))


def _frame_weight(prediction: torch.Tensor, warm_up: tuple[int, int]) -> torch.Tensor:
    batch, frames = prediction.shape[:2]
    weight = torch.ones(batch, frames, 1, device=prediction.device)
    weight[:, : warm_up[0]] = 0.0
    weight[:, frames - warm_up[1] :] = 0.0
    return weight


def _hard_speakers(log_probs: torch.Tensor, mapping: torch.Tensor) -> torch.Tensor:
    # pyannote's Powerset.to_multilabel(soft=False): one-hot of the argmax (the
    # first class on ties) times the membership matrix
    classes = F.one_hot(log_probs.argmax(dim=-1), mapping.shape[0])
    return classes.to(mapping.dtype) @ mapping


def powerset_targets(
    log_probs: torch.Tensor, target: torch.Tensor, powerset: Powerset
) -> torch.Tensor:
    """Return the powerset class each frame is taught (pyannote 3.x's recipe).

    The targets' speakers are permuted to the network's hard speakers
    (``to_multilabel`` of the argmax class) by the assignment of least mean
    squared error (scipy's ``linear_sum_assignment``, as pyannote's
    ``permutate``), then each frame gets the class whose set shares the most
    speakers with its active ones (``to_powerset``: the argmax of
    ``targets @ mapping.T``, the first, hence smallest, set on ties). A frame with
    more than ``max_set_size`` active speakers thus gets the first set of
    ``max_set_size`` of them in the powerset's order, as pyannote's
    ``to_powerset`` does.

    Parameters
    ----------
    log_probs : Tensor, shape (batch, frames, powerset.num_classes)
        The network's log-probabilities.
    target : Tensor, shape (batch, frames, powerset.num_speakers)
        0/1 speaker activities.
    powerset : Powerset

    Returns
    -------
    classes : LongTensor, shape (batch, frames)

    Examples
    --------
    >>> import torch
    >>> ps = Powerset(3, 2)
    >>> log_probs = torch.log(torch.eye(7)[[1, 1, 0]] * 0.9 + 0.1 / 7)[None]
    >>> target = torch.tensor([[[0., 1., 0.], [0., 1., 1.], [1., 1., 1.]]])
    >>> powerset_targets(log_probs, target, ps).tolist()  # speaker 1 is output 0
    [[1, 5, 4]]
    """
    mapping = torch.tensor(
        powerset.mapping, dtype=log_probs.dtype, device=log_probs.device
    )
    with torch.no_grad():
        hard = _hard_speakers(log_probs, mapping)
        permuted = _assign(hard, target.to(log_probs.dtype))
        return (permuted @ mapping.T).argmax(dim=-1)


def segmentation_loss(
    prediction: torch.Tensor,
    target: torch.Tensor,
    *,
    warm_up: tuple[int, int] = (0, 0),
    head: OutputHead | None = None,
    powerset: Powerset | None = None,
    vad_loss: str | None = None,
) -> torch.Tensor:
    """Return the permutation-invariant training loss of a batch of chunks.

    The head's loss (:meth:`OutputHead.loss`) with the warm-up frames weighted 0.
    Multi-label: outputs permuted to the targets, binary cross-entropy (plus the
    speech loss ``vad_loss``). Powerset: negative log-likelihood of the classes
    :func:`powerset_targets` gives, averaged over frames with the warm-up weights
    (pyannote's ``nll_loss``: ``sum(loss * weight) / sum(weight)``).

    Parameters
    ----------
    prediction : Tensor, shape (batch, frames, outputs)
        The network's outputs (probabilities, log-probabilities, ...).
    target : Tensor, shape (batch, frames, speakers)
        0/1 speaker activities.
    warm_up : (int, int), default=(0, 0)
        Frames left out of the loss on each side (weight 0).
    head : OutputHead, optional
        The network's head (``model.head``); a multi-label one by default.
    powerset : Powerset, optional
        Shorthand for ``head=PowersetHead(powerset)``.
    vad_loss : {"bce", "mse"} or None, default=None
        Multi-label only (pyannote refuses it with a powerset).

    Returns
    -------
    loss : Tensor
        A scalar.

    Raises
    ------
    ValueError
        ``vad_loss`` with a powerset.

    Examples
    --------
    >>> import math, torch
    >>> target = torch.tensor([[[1., 0., 0.], [0., 0., 0.]]])
    >>> log_probs = torch.full((1, 2, 7), math.log(1 / 7))
    >>> loss = segmentation_loss(log_probs, target, powerset=Powerset(3, 2))
    >>> round(float(loss), 4) == round(math.log(7), 4)
    True
    """
    if head is None:
        head = (
            MultilabelHead(target.shape[-1])
            if powerset is None
            else PowersetHead(powerset)
        )
    return head.loss(prediction, target, _frame_weight(prediction, warm_up), vad_loss)
