"""Powerset outputs (pyannote/segmentation-3.0) turned into what the pipelines need.

A powerset segmentation model does not score each speaker on its own: each frame
gets a log-probability for every *set* of at most ``max_set_size`` of its
``num_speakers`` local speakers, the empty set (non-speech) first, then the
singletons, then the pairs, ... (pyannote.audio's ``Powerset`` order). For
pyannote/segmentation-3.0: 3 speakers, sets of at most 2, 7 classes
``{}, {1}, {2}, {3}, {1, 2}, {1, 3}, {2, 3}``.

Two ways from there to speaker activities, both here:

- **hard** (pyannote.audio 3.x/4.x, :meth:`Powerset.to_multilabel`): the most
  probable set wins the frame (argmax), and each speaker is active (1) if it belongs
  to that set, else 0;
- **soft**: the probability that a speaker is active is the mass of the sets that
  contain it; P(speech) = 1 - P(non-speech) and P(overlap) = the mass of the sets
  of two or more speakers.

Per-chunk reductions, named so that the score cache tells them apart, give the
frame scores the pipelines aggregate (:func:`powerset_reduction`). NumPy only, no
torch.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np

__all__ = [
    "Powerset",
    "RULES",
    "KINDS",
    "powerset_reduction",
    "reduction_name",
]

#: how powerset classes become activities: pyannote's argmax, or probabilities
RULES: tuple[str, ...] = ("hard", "soft")
#: what a reduction returns per frame: speech, overlap, or one value per speaker
KINDS: tuple[str, ...] = ("speech", "overlap", "speakers")


@dataclass(frozen=True)
class Powerset:
    """The classes of a powerset model and their conversions to speakers.

    Parameters
    ----------
    num_speakers : int
        Local speakers per chunk (3 for pyannote/segmentation-3.0).
    max_set_size : int
        Largest set of simultaneous speakers (2 for pyannote/segmentation-3.0).

    Attributes
    ----------
    sets : tuple of tuple of int
        The speakers of each class, in pyannote's order.

    Examples
    --------
    >>> ps = Powerset(3, 2)
    >>> ps.num_classes, ps.sets
    (7, ((), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2)))
    >>> ps.mapping.astype(int).tolist()[4]  # class 4 = speakers 1 and 2
    [1, 1, 0]
    """

    num_speakers: int
    max_set_size: int

    def __post_init__(self):
        if not (0 < self.max_set_size <= self.num_speakers):
            raise ValueError(
                f"a powerset needs 0 < max_set_size <= num_speakers, got "
                f"{self.max_set_size} and {self.num_speakers}"
            )

    @property
    def sets(self) -> tuple[tuple[int, ...], ...]:
        """The speakers of each class: the empty set, singletons, pairs, ..."""
        return tuple(
            s
            for size in range(self.max_set_size + 1)
            for s in combinations(range(self.num_speakers), size)
        )

    @property
    def num_classes(self) -> int:
        """Number of powerset classes."""
        return sum(comb(self.num_speakers, k) for k in range(self.max_set_size + 1))

    @property
    def mapping(self) -> np.ndarray:
        """``(num_classes, num_speakers)`` float32 0/1 membership matrix."""
        return _mapping(self.num_speakers, self.max_set_size)

    @classmethod
    def infer(cls, num_classes: int, num_speakers: int) -> Powerset:
        """Return the powerset of ``num_speakers`` with ``num_classes`` classes.

        Parameters
        ----------
        num_classes : int
            Outputs per frame of the network.
        num_speakers : int
            Speakers in the model's specifications.

        Returns
        -------
        powerset : Powerset

        Raises
        ------
        ValueError
            If no set size gives that many classes.

        Examples
        --------
        >>> Powerset.infer(7, 3)
        Powerset(num_speakers=3, max_set_size=2)
        """
        for size in range(1, num_speakers + 1):
            candidate = cls(num_speakers, size)
            if candidate.num_classes == num_classes:
                return candidate
        raise ValueError(
            f"{num_classes} classes are no powerset of {num_speakers} speakers "
            f"(expected one of "
            f"{[cls(num_speakers, k).num_classes for k in range(1, num_speakers + 1)]})"
        )

    def _check(self, scores: np.ndarray) -> np.ndarray:
        scores = np.asarray(scores)
        if scores.shape[-1] != self.num_classes:
            raise ValueError(
                f"powerset scores must have {self.num_classes} classes on their last "
                f"axis, got shape {scores.shape}"
            )
        return scores

    def to_multilabel(self, log_probs: np.ndarray) -> np.ndarray:
        """Return pyannote's hard conversion: the argmax set's speakers (0/1).

        The same as pyannote.audio's ``Powerset.to_multilabel(soft=False)``:
        one-hot of the argmax (the first class on ties, as torch), times the
        membership matrix.

        Parameters
        ----------
        log_probs : ndarray, shape (..., num_classes)

        Returns
        -------
        activities : ndarray of float32, shape (..., num_speakers)

        Examples
        --------
        >>> ps = Powerset(3, 2)
        >>> ps.to_multilabel(np.log([[0.1, 0.1, 0.1, 0.1, 0.4, 0.1, 0.1]])).tolist()
        [[1.0, 1.0, 0.0]]
        """
        log_probs = self._check(log_probs)
        return self.mapping[np.argmax(log_probs, axis=-1)]

    def probabilities(self, log_probs: np.ndarray) -> np.ndarray:
        """Class probabilities, in float32 (``exp`` of the log-probabilities).

        Parameters
        ----------
        log_probs : ndarray, shape (..., num_classes)

        Returns
        -------
        probabilities : ndarray of float32, shape (..., num_classes)

        Examples
        --------
        >>> Powerset(2, 1).probabilities(np.log([[0.5, 0.25, 0.25]])).tolist()
        [[0.5, 0.25, 0.25]]
        """
        return np.exp(self._check(log_probs).astype(np.float32, copy=False))

    def speaker_probabilities(self, log_probs: np.ndarray) -> np.ndarray:
        """P(speaker k active): the mass of the classes containing k.

        Parameters
        ----------
        log_probs : ndarray, shape (..., num_classes)

        Returns
        -------
        probabilities : ndarray of float32, shape (..., num_speakers)

        Examples
        --------
        >>> ps = Powerset(3, 2)
        >>> p = ps.speaker_probabilities(
        ...     np.log([[0.1, 0.2, 0.1, 0.1, 0.3, 0.1, 0.1]]))
        >>> p.astype(float).round(3).tolist()  # 0.2 + 0.3 + 0.1, 0.1 + 0.3 + 0.1, ...
        [[0.6, 0.5, 0.3]]
        """
        return self.probabilities(log_probs) @ self.mapping

    def speech_probability(self, log_probs: np.ndarray) -> np.ndarray:
        """P(speech) = 1 - P(non-speech), shape ``(..., 1)``.

        Parameters
        ----------
        log_probs : ndarray, shape (..., num_classes)

        Returns
        -------
        probability : ndarray of float32, shape (..., 1)

        Examples
        --------
        >>> ps = Powerset(3, 2)
        >>> x = np.log([[0.25, 0.25, 0.125, 0.125, 0.125, 0.0625, 0.0625]])
        >>> ps.speech_probability(x).tolist()
        [[0.75]]
        """
        first = self._check(log_probs)[..., :1]
        return np.float32(1.0) - np.exp(first.astype(np.float32, copy=False))

    def overlap_probability(self, log_probs: np.ndarray) -> np.ndarray:
        """P(overlap): the mass of the sets of two or more speakers, ``(..., 1)``.

        Parameters
        ----------
        log_probs : ndarray, shape (..., num_classes)

        Returns
        -------
        probability : ndarray of float32, shape (..., 1)

        Examples
        --------
        >>> ps = Powerset(3, 2)
        >>> x = np.log([[0.25, 0.25, 0.125, 0.125, 0.125, 0.0625, 0.0625]])
        >>> ps.overlap_probability(x).tolist()  # 0.125 + 0.0625 + 0.0625
        [[0.25]]
        """
        several = self.mapping.sum(axis=1) >= 2
        return self.probabilities(log_probs)[..., several].sum(axis=-1, keepdims=True)


@functools.lru_cache(maxsize=16)
def _mapping(num_speakers: int, max_set_size: int) -> np.ndarray:
    sets = Powerset(num_speakers, max_set_size).sets
    mapping = np.zeros((len(sets), num_speakers), dtype=np.float32)
    for c, members in enumerate(sets):
        mapping[c, list(members)] = 1.0
    mapping.setflags(write=False)
    return mapping


def _hard_speech(ps: Powerset, x: np.ndarray) -> np.ndarray:
    # pyannote: max over the hard speakers (1 unless the empty set wins)
    return np.max(ps.to_multilabel(x), axis=-1, keepdims=True)


def _hard_overlap(ps: Powerset, x: np.ndarray) -> np.ndarray:
    # pyannote: second-largest hard speaker activity
    return np.partition(ps.to_multilabel(x), -2, axis=-1)[..., -2, np.newaxis]


_REDUCERS: dict[tuple[str, str], Callable[[Powerset, np.ndarray], np.ndarray]] = {
    ("speech", "hard"): _hard_speech,
    ("overlap", "hard"): _hard_overlap,
    ("speakers", "hard"): Powerset.to_multilabel,
    ("speech", "soft"): Powerset.speech_probability,
    ("overlap", "soft"): Powerset.overlap_probability,
    ("speakers", "soft"): Powerset.speaker_probabilities,
}

_NAME = re.compile(r"^powerset(\d+)x(\d+)-(hard|soft)-(speech|overlap|speakers)$")


def reduction_name(kind: str, rule: str, powerset: Powerset) -> str:
    """Return the name of a powerset reduction (as the score cache keys it).

    Parameters
    ----------
    kind : {"speech", "overlap", "speakers"}
    rule : {"hard", "soft"}
    powerset : Powerset

    Returns
    -------
    name : str

    Examples
    --------
    >>> reduction_name("speech", "soft", Powerset(3, 2))
    'powerset3x2-soft-speech'
    """
    if kind not in KINDS or rule not in RULES:
        raise ValueError(f"unknown powerset reduction {kind!r} / {rule!r}")
    return f"powerset{powerset.num_speakers}x{powerset.max_set_size}-{rule}-{kind}"


def powerset_reduction(name: str) -> Callable[[np.ndarray], np.ndarray] | None:
    """Return the per-chunk reduction a :func:`reduction_name` names, else None.

    Parameters
    ----------
    name : str

    Returns
    -------
    reduction : callable or None
        ``(..., num_classes)`` log-probabilities to ``(..., 1)`` (speech,
        overlap) or ``(..., num_speakers)`` (speakers) frame scores.

    Examples
    --------
    >>> reduce = powerset_reduction("powerset3x2-hard-speech")
    >>> reduce(np.log([[[0.6, 0.1, 0.1, 0.1, 0.05, 0.03, 0.02]]])).tolist()
    [[[0.0]]]
    >>> powerset_reduction("speech") is None
    True
    """
    match = _NAME.match(name) if isinstance(name, str) else None
    if match is None:
        return None
    n, m, rule, kind = match.groups()
    return functools.partial(_REDUCERS[kind, rule], Powerset(int(n), int(m)))
