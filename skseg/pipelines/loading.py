"""The pipelines by name, and loading a persisted (tuned) one.

:data:`PIPELINES` is the one table of the four pipelines by their short name (the
command line's subcommands, the annotation tools' task kinds);
:func:`load_pipeline` is the one place a :func:`joblib.dump`-ed estimator is read
back and checked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..exceptions import FileError
from .base import BaseSegmentationEstimator
from .diarization import DiarizationEstimator
from .osd import OSDEstimator
from .resegmentation import ResegmentationEstimator
from .segmentation import SegmentationEstimator
from .vad import VADEstimator

__all__ = ["PIPELINES", "load_pipeline", "pipeline_name"]

#: short name -> estimator class
PIPELINES: dict[str, type[BaseSegmentationEstimator]] = {
    "vad": VADEstimator,
    "osd": OSDEstimator,
    "segment": SegmentationEstimator,
    "resegment": ResegmentationEstimator,
    "diarize": DiarizationEstimator,
}


def pipeline_name(estimator: Any) -> str | None:
    """Return the short name of an estimator's pipeline, or None.

    Parameters
    ----------
    estimator : estimator or class

    Returns
    -------
    name : str or None

    Examples
    --------
    >>> pipeline_name(OSDEstimator()), pipeline_name(object())
    ('osd', None)
    """
    cls = estimator if isinstance(estimator, type) else type(estimator)
    return next((name for name, c in PIPELINES.items() if c is cls), None)


def load_pipeline(
    path: str | os.PathLike, expected: type | None = None
) -> BaseSegmentationEstimator:
    """Load an estimator persisted with :func:`joblib.dump`, and check its kind.

    joblib files are pickles: load only files you trust.

    Parameters
    ----------
    path : str or PathLike
    expected : type, optional
        The class the estimator must be an instance of; by default any skseg
        pipeline estimator.

    Returns
    -------
    estimator : BaseSegmentationEstimator

    Raises
    ------
    FileError
        Naming the file: missing, not loadable, or holding another kind of
        estimator (and which pipeline that one is for).

    Examples
    --------
    >>> import joblib, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "vad.joblib")
    >>> _ = joblib.dump(VADEstimator(onset=0.6), path)
    >>> load_pipeline(path, VADEstimator)
    VADEstimator(onset=0.6)
    >>> load_pipeline(path, OSDEstimator)
    Traceback (most recent call last):
    ...
    skseg.exceptions.FileError: ...: holds a VADEstimator (the vad pipeline), not ...
    """
    import joblib

    label = os.fspath(path)
    if not Path(path).is_file():
        raise FileError(label, "no such file")
    try:
        estimator = joblib.load(path)
    except Exception as e:  # noqa: BLE001 -- any unpickling failure, named
        raise FileError(
            label,
            f"not a joblib file of a skseg estimator ({type(e).__name__}: {e})",
        ) from None
    holds = type(estimator).__name__
    if not isinstance(estimator, BaseSegmentationEstimator):
        raise FileError(label, f"holds a {holds}, not a skseg estimator")
    if expected is not None and not isinstance(estimator, expected):
        article = "an" if expected.__name__[0] in "AEIOU" else "a"
        raise FileError(
            label,
            f"holds a {holds} (the {pipeline_name(estimator)} pipeline), not "
            f"{article} {expected.__name__}",
        )
    return estimator
