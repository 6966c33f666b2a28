"""Which estimator pre-annotates which kind of task, and loading a tuned one.

The annotation tools know three kinds of correction task: speech regions (VAD),
overlapped-speech regions (OSD) and speaker turns (segmentation). Each is served
by one skseg estimator, either with pyannote's defaults over a checkpoint or as a
tuned estimator persisted with :func:`joblib.dump` (by the tune recipe).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..metrics import DetectionPrecisionRecallFMeasureScorer
from ..pipelines import PIPELINES, DiarizationEstimator, OSDEstimator, load_pipeline

__all__ = ["TASKS", "load_estimator", "estimator_labels", "correction_scorer"]

#: kind of task -> estimator class: the pipelines whose output a person corrects
#: (:data:`skseg.pipelines.PIPELINES` but resegmentation, which needs a baseline,
#: and diarization, whose speaker turns no recipe corrects yet)
TASKS: dict[str, type] = {
    name: cls for name, cls in PIPELINES.items() if name not in ("resegment", "diarize")
}

_PERSISTED = (".joblib", ".pkl", ".pickle")


def load_estimator(model: str | os.PathLike | None = None, task: str = "vad") -> Any:
    """Return the estimator that pre-annotates ``task``.

    Parameters
    ----------
    model : str or PathLike, optional
        None: the task's estimator with pyannote's defaults over
        ``"pyannote/segmentation"``. A ``.joblib``/``.pkl`` file: an estimator
        persisted with :func:`joblib.dump` (``joblib.load`` is pickle: load only
        files you trust); for ``"segment"``, a persisted
        :class:`~skseg.DiarizationEstimator` too (speaker turns labelled across
        the file). Anything else: a checkpoint path or identifier.
    task : {"vad", "osd", "segment"}, default="vad"

    Returns
    -------
    estimator : VADEstimator, OSDEstimator, SegmentationEstimator or
        DiarizationEstimator

    Raises
    ------
    FileError
        If a persisted file is missing, unreadable, or holds an estimator of
        another kind than ``task``.

    Examples
    --------
    >>> load_estimator(task="osd")
    OSDEstimator()
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    cls = TASKS[task]
    if model is None:
        return cls()
    if Path(model).suffix.lower() not in _PERSISTED:
        return cls(segmentation=model)
    estimator = load_pipeline(model)
    if isinstance(estimator, cls):
        return estimator
    if task == "segment" and isinstance(estimator, DiarizationEstimator):
        # speaker turns: a (tuned) diarization pre-annotates them too, with
        # labels consistent across the file
        return estimator
    return load_pipeline(model, cls)  # raises, naming what the file holds


def estimator_labels(estimator: Any) -> list[str]:
    """Return the labels an estimator's regions carry, when they are fixed.

    Parameters
    ----------
    estimator : estimator

    Returns
    -------
    labels : list of str
        ``["SPEECH"]`` for VAD, ``["OVERLAP"]`` for OSD, ``[]`` for speaker
        segmentation (its labels depend on the file).

    Examples
    --------
    >>> from skseg import VADEstimator
    >>> estimator_labels(VADEstimator())
    ['SPEECH']
    """
    label = getattr(estimator, "region_label", "")
    return [label] if label else []


def correction_scorer(estimator: Any) -> Any:
    """Return the scorer to tune ``estimator`` on corrected regions, or None.

    Corrections are the regions themselves (speech, overlap or speaker turns),
    not speaker turns from which they are derived. That matters for OSD, whose
    default scorer derives overlap from speaker turns: on corrected ``OVERLAP``
    regions it compares with their support instead. None: the estimator's own
    default scorer applies.

    Parameters
    ----------
    estimator : estimator

    Returns
    -------
    scorer : callable or None

    Examples
    --------
    >>> correction_scorer(OSDEstimator())
    DetectionPrecisionRecallFMeasureScorer(target='speech', collar=0.0, \
skip_overlap=False, measure='fmeasure', beta=1.0)
    """
    if isinstance(estimator, OSDEstimator):
        # target "speech" = the reference's support, i.e. the corrected regions
        return DetectionPrecisionRecallFMeasureScorer(target="speech")
    return None
