"""scikit-learn scorers over pyannote.metrics.

A scorer is called as ``scorer(estimator, X, y)``, so, unlike a
``make_scorer`` metric, it sees the files and honours each one's ``"annotated"``
region (UEM). It predicts every file, feeds one fresh pyannote.metrics metric with
each (reference, hypothesis, uem), and returns the fold's aggregate
``abs(metric)`` (duration-weighted, as pyannote.audio tunes), negated for error
rates so that higher is always better. Scorers are small picklable classes whose
options show in their repr; :func:`get_scorer` reaches them by name.

References ``y`` are speaker turns (or files' ``"annotation"`` when ``y`` is
None); ``target="speech"`` compares with where anybody speaks and
``target="overlap"`` with where two or more different speakers overlap.
"""

from __future__ import annotations

import copy
import functools
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.detection import (
    DetectionErrorRate,
    DetectionPrecisionRecallFMeasure,
)
from pyannote.metrics.diarization import (
    DiarizationErrorRate,
    GreedyDiarizationErrorRate,
)

from .audio import AudioReader, file_label, validate_file
from .exceptions import FileError
from .references import overlap_reference, speech_reference

__all__ = [
    "DetectionErrorRateScorer",
    "DetectionPrecisionRecallFMeasureScorer",
    "DiarizationErrorRateScorer",
    "get_scorer",
    "get_scorer_names",
    "annotated",
]

#: how far (seconds) an "annotated" region may reach past the audio unclipped
_UEM_TOLERANCE = 0.01

_TARGETS = {
    "speech": speech_reference,
    "overlap": overlap_reference,
    "speakers": lambda annotation: annotation,
}


@functools.lru_cache(maxsize=4096)
def _header_duration(path: str, size: int, mtime_ns: int) -> float:
    # size and mtime in the key: an edited file is read again
    with AudioReader(path) as reader:
        return reader.duration


def _audio_duration(f: dict) -> float:
    if "waveform" not in f:
        # scoring many candidates reads the same headers again and again
        path = os.path.realpath(f["audio"])
        try:
            stat = os.stat(path)
        except OSError:
            pass  # AudioReader names the file and the problem
        else:
            return _header_duration(path, stat.st_size, stat.st_mtime_ns)
    with AudioReader(f) as reader:
        return reader.duration


def annotated(file: Any) -> Timeline:
    """Return the region of a file that is evaluated (its UEM).

    ``file["annotated"]`` if present, else the whole file, ``[0, duration]``
    (pyannote.database's ``get_annotated`` without its warnings).

    An ``"annotated"`` region that reaches more than 10 ms beyond the audio (a UEM
    written for another version of the recording, or in the wrong unit) is
    clipped to the audio with a warning naming the file: where there is no audio
    the hypothesis is necessarily empty, so evaluating there would count every
    reference second as missed. A region entirely outside the audio leaves nothing
    to evaluate and raises :class:`~skseg.exceptions.FileError`.

    Parameters
    ----------
    file : str, PathLike or mapping

    Returns
    -------
    uem : Timeline

    Raises
    ------
    FileError
        If ``"annotated"`` lies entirely outside the audio (or the audio cannot
        be read: :class:`~skseg.exceptions.AudioError`).

    Warns
    -----
    UserWarning
        If ``"annotated"`` is clipped to the audio.

    Examples
    --------
    >>> from skseg import fetch_sample
    >>> sample = fetch_sample()
    >>> annotated(sample["audio"])  # a bare path: the whole file
    <Timeline(uri=sample, segments=[<Segment(0, 30)>])>
    """
    uem = file.get("annotated") if isinstance(file, Mapping) else None
    f = validate_file(file)
    duration = (
        float(f["duration"]) if f.get("duration") is not None else _audio_duration(f)
    )
    if uem is None:
        return Timeline([Segment(0.0, duration)], uri=f["uri"])
    if not uem:
        return uem
    extent = uem.extent()
    # UEMs are written with millisecond precision: a hair past the end is fine
    if extent.start >= 0.0 and extent.end <= duration + _UEM_TOLERANCE:
        return uem
    label = file_label(f)
    inside = uem.crop(Segment(0.0, duration), mode="intersection")
    span = f"{extent.start:.3f} to {extent.end:.3f} s"
    if not inside:
        raise FileError(
            label,
            f"its 'annotated' region ({span}) lies outside the audio "
            f"(0 to {duration:.3f} s): nothing to evaluate",
        )
    warnings.warn(
        f"{label}: its 'annotated' region ({span}) extends beyond the audio "
        f"(0 to {duration:.3f} s); only the part inside the audio is evaluated",
        UserWarning,
        stacklevel=2,
    )
    return inside


_DERIVED: OrderedDict[tuple, Annotation] = OrderedDict()
_DERIVED_LOCK = threading.Lock()


def _derived_reference(target: str, annotation: Annotation) -> Annotation:
    """``_TARGETS[target](annotation)``, computed once per distinct reference.

    A grid search scores every candidate against the same references: deriving
    their speech or overlap regions anew each time was a tenth of a warm search.
    Keyed by content (the turns), so an annotation changed in place is derived
    again.
    """
    key = (target, annotation.uri, tuple(annotation.itertracks(yield_label=True)))
    with _DERIVED_LOCK:
        derived = _DERIVED.get(key)
        if derived is not None:
            _DERIVED.move_to_end(key)
            return derived
    derived = _TARGETS[target](annotation)
    with _DERIVED_LOCK:
        _DERIVED[key] = derived
        while len(_DERIVED) > 256:
            _DERIVED.popitem(last=False)
    return derived


class _Scorer:
    """Predict, accumulate a fresh pyannote metric over the fold, aggregate."""

    #: +1 when the metric reads "higher is better", -1 when it is negated
    sign = 1.0
    #: what the metric is called in tables and messages
    metric_name = ""

    def make_metric(self):
        """Return a fresh pyannote.metrics metric with this scorer's settings.

        Examples
        --------
        >>> DetectionErrorRateScorer(collar=0.5).make_metric().collar
        0.5
        """
        raise NotImplementedError

    def _value(self, metric) -> float:
        return abs(metric)

    def reference(self, annotation: Annotation) -> Annotation:
        """Return what this scorer compares hypotheses with, for speaker turns.

        Examples
        --------
        >>> from pyannote.core import Annotation, Segment
        >>> turns = Annotation()
        >>> turns[Segment(0, 2)] = "a"
        >>> DiarizationErrorRateScorer().reference(turns) is turns  # as they are
        True
        """
        return annotation

    def __call__(
        self, estimator: Any, X: Iterable[Any], y: Iterable[Annotation] | None = None
    ) -> float:
        """Score ``estimator`` on files ``X`` against references ``y``.

        Parameters
        ----------
        estimator : estimator or Pipeline
            Anything whose ``predict(X)`` returns a list of Annotation.
        X : list of files
        y : list of Annotation, optional
            Defaults to each file's ``"annotation"``.

        Returns
        -------
        score : float
            Higher is better.
        """
        X = list(X)
        if y is None:
            try:
                y = [validate_file(file)["annotation"] for file in X]
            except KeyError:
                raise ValueError(
                    "no references: pass y, or give every file an 'annotation'"
                ) from None
        y = list(y)
        if len(y) != len(X):
            raise ValueError(f"{len(X)} files but {len(y)} references")
        hypotheses = estimator.predict(X)
        metric = self.make_metric()
        for file, reference, hypothesis in zip(X, y, hypotheses, strict=True):
            if not isinstance(reference, Annotation):
                raise TypeError(
                    f"{file_label(file)}: the reference must be a pyannote.core "
                    f"Annotation, got {type(reference).__name__}"
                )
            metric(self.reference(reference), hypothesis, uem=annotated(file))
        return self.sign * float(self._value(metric))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(vars(self).items()))))


class _DetectionScorer(_Scorer):
    def __init__(self, target: str, collar: float, skip_overlap: bool):
        if target not in ("speech", "overlap"):
            raise ValueError(f"target must be 'speech' or 'overlap', got {target!r}")
        self.target = target
        self.collar = collar
        self.skip_overlap = skip_overlap

    def reference(self, annotation: Annotation) -> Annotation:
        """Return the speech or overlap regions of reference speaker turns.

        Examples
        --------
        >>> from pyannote.core import Annotation, Segment
        >>> turns = Annotation()
        >>> turns[Segment(0, 2)] = "a"
        >>> DetectionErrorRateScorer().reference(turns).labels()
        ['SPEECH']
        """
        return _derived_reference(self.target, annotation)


class DetectionErrorRateScorer(_DetectionScorer):
    """Negated detection error rate, ``-(false alarm + miss) / reference``.

    Parameters
    ----------
    target : {"speech", "overlap"}, default="speech"
        Compare with speech regions, or with overlapped-speech regions, derived
        from the reference speaker turns.
    collar : float, default=0.0
        Seconds around reference boundaries that are not evaluated.
    skip_overlap : bool, default=False
        Do not evaluate overlapped reference regions.

    Examples
    --------
    >>> from skseg import VADEstimator, fetch_sample
    >>> scorer = DetectionErrorRateScorer(target="speech")
    >>> round(scorer(VADEstimator(), [fetch_sample()]), 4)
    -0.0165
    """

    sign = -1.0
    metric_name = "detection error rate"

    def __init__(
        self, target: str = "speech", collar: float = 0.0, skip_overlap: bool = False
    ):
        super().__init__(target, collar, skip_overlap)

    def make_metric(self):
        """Return a fresh :class:`pyannote.metrics.detection.DetectionErrorRate`.

        Examples
        --------
        >>> type(DetectionErrorRateScorer().make_metric()).__name__
        'DetectionErrorRate'
        """
        return DetectionErrorRate(collar=self.collar, skip_overlap=self.skip_overlap)


class DetectionPrecisionRecallFMeasureScorer(_DetectionScorer):
    """Detection F-measure, precision or recall (micro-averaged over the fold).

    Parameters
    ----------
    target : {"speech", "overlap"}, default="speech"
        Compare with speech, or overlapped-speech, regions of the reference.
    measure : {"fmeasure", "precision", "recall"}, default="fmeasure"
        What to return.
    collar : float, default=0.0
        Seconds around reference boundaries that are not evaluated.
    skip_overlap : bool, default=False
        Do not evaluate overlapped reference regions.
    beta : float, default=1.0
        Weight of recall in the F-measure.

    Examples
    --------
    >>> from skseg import OSDEstimator, fetch_sample
    >>> scorer = DetectionPrecisionRecallFMeasureScorer(target="overlap")
    >>> round(scorer(OSDEstimator(), [fetch_sample()]), 3)
    0.736
    """

    metric_name = "detection F-measure"

    def __init__(
        self,
        target: str = "speech",
        measure: str = "fmeasure",
        collar: float = 0.0,
        skip_overlap: bool = False,
        beta: float = 1.0,
    ):
        super().__init__(target, collar, skip_overlap)
        if measure not in ("fmeasure", "precision", "recall"):
            raise ValueError(
                f"measure must be 'fmeasure', 'precision' or 'recall', got {measure!r}"
            )
        self.measure = measure
        self.beta = beta

    def make_metric(self):
        """Return a fresh pyannote ``DetectionPrecisionRecallFMeasure``.

        Examples
        --------
        >>> DetectionPrecisionRecallFMeasureScorer(beta=2.0).make_metric().beta
        2.0
        """
        return DetectionPrecisionRecallFMeasure(
            collar=self.collar, skip_overlap=self.skip_overlap, beta=self.beta
        )

    def _value(self, metric) -> float:
        precision, recall, fmeasure = metric.compute_metrics()
        return {"precision": precision, "recall": recall, "fmeasure": fmeasure}[
            self.measure
        ]


class DiarizationErrorRateScorer(_Scorer):
    """Negated diarization error rate.

    Parameters
    ----------
    greedy : bool, default=False
        Map hypothesis to reference speakers greedily (pyannote's
        ``GreedyDiarizationErrorRate``, the Segmentation and Resegmentation
        pipelines' metric) instead of optimally (Hungarian).
    collar : float, default=0.0
        Seconds around reference boundaries that are not evaluated.
    skip_overlap : bool, default=False
        Do not evaluate overlapped reference regions.

    Examples
    --------
    >>> from skseg import SegmentationEstimator, fetch_sample
    >>> scorer = DiarizationErrorRateScorer(greedy=True)
    >>> round(scorer(SegmentationEstimator(), [fetch_sample()]), 3)
    -0.492
    """

    sign = -1.0
    metric_name = "diarization error rate"

    def __init__(
        self, greedy: bool = False, collar: float = 0.0, skip_overlap: bool = False
    ):
        self.greedy = greedy
        self.collar = collar
        self.skip_overlap = skip_overlap

    def make_metric(self):
        """Return a fresh (greedy) diarization error rate metric.

        Examples
        --------
        >>> type(DiarizationErrorRateScorer(greedy=True).make_metric()).__name__
        'GreedyDiarizationErrorRate'
        """
        cls = GreedyDiarizationErrorRate if self.greedy else DiarizationErrorRate
        return cls(collar=self.collar, skip_overlap=self.skip_overlap)


_SCORERS: dict[str, _Scorer] = {
    "neg_speech_detection_error_rate": DetectionErrorRateScorer("speech"),
    "speech_fmeasure": DetectionPrecisionRecallFMeasureScorer("speech"),
    "speech_precision": DetectionPrecisionRecallFMeasureScorer("speech", "precision"),
    "speech_recall": DetectionPrecisionRecallFMeasureScorer("speech", "recall"),
    "neg_overlap_detection_error_rate": DetectionErrorRateScorer("overlap"),
    "overlap_fmeasure": DetectionPrecisionRecallFMeasureScorer("overlap"),
    "overlap_precision": DetectionPrecisionRecallFMeasureScorer("overlap", "precision"),
    "overlap_recall": DetectionPrecisionRecallFMeasureScorer("overlap", "recall"),
    "neg_diarization_error_rate": DiarizationErrorRateScorer(),
    "neg_greedy_diarization_error_rate": DiarizationErrorRateScorer(greedy=True),
}


def get_scorer_names() -> list[str]:
    """Return the names :func:`get_scorer` knows.

    Returns
    -------
    names : list of str

    Examples
    --------
    >>> "neg_speech_detection_error_rate" in get_scorer_names()
    True
    """
    return sorted(_SCORERS)


def get_scorer(name: str) -> _Scorer:
    """Return a new scorer by name, for ``scoring=`` in scikit-learn tools.

    Parameters
    ----------
    name : str
        One of :func:`get_scorer_names`.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y) -> float``, higher is better.

    Examples
    --------
    >>> get_scorer("overlap_fmeasure")
    DetectionPrecisionRecallFMeasureScorer(target='overlap', collar=0.0, \
skip_overlap=False, measure='fmeasure', beta=1.0)
    """
    try:
        return copy.deepcopy(_SCORERS[name])
    except KeyError:
        raise ValueError(
            f"unknown scorer {name!r}; known: {', '.join(get_scorer_names())}"
        ) from None
