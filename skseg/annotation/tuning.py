"""Tuning an estimator's thresholds on the regions people have corrected.

The accepted examples of a correction dataset are a small annotated corpus: each
file's annotation is the union of its corrected spans and its ``"annotated"`` UEM
the union of the accepted task regions, so the scorers only judge what people
looked at. :func:`tune_on_examples` runs :func:`skseg.tuning.tune` (a grid search
over ``onset``, ``offset``, ``min_duration_on``, ``min_duration_off``) on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sklearn.base import clone

from .answers import collect_annotations
from .estimators import correction_scorer

__all__ = ["examples_to_dataset", "tune_on_examples"]


def examples_to_dataset(
    examples: Iterable[Mapping], *, source: str = "the examples"
) -> tuple[list[dict], list]:
    """Return accepted examples as ``X, y`` for the estimators.

    Parameters
    ----------
    examples : iterable of mapping
        Answered tasks (file or task time).
    source : str, default="the examples"
        What the examples are, for messages.

    Returns
    -------
    X : list of dict
        ``{"audio", "uri", "annotation", "annotated"}`` per file.
    y : list of Annotation

    Raises
    ------
    FileError
        Naming ``source``, when no accepted example has a file on disk.

    Examples
    --------
    >>> X, y = examples_to_dataset([
    ...     {"meta": {"uri": "a", "path": "/d/a.wav", "start": 0.0, "end": 10.0},
    ...      "audio_spans": [{"start": 1.0, "end": 2.0, "label": "SPEECH"}]}])
    >>> X[0]["audio"], X[0]["annotated"]
    ('/d/a.wav', <Timeline(uri=a, segments=[<Segment(0, 10)>])>)
    """
    from ..exceptions import FileError

    result = collect_annotations(examples, source=source)
    X, y = result.dataset()
    if not X:
        raise FileError(source, "no accepted example names its audio file ('path')")
    return X, y


def tune_on_examples(
    estimator: Any,
    examples: Iterable[Mapping],
    *,
    param_grid: Mapping[str, list] | None = None,
    cv: Any = None,
    scoring: Any = None,
    n_jobs: int | None = None,
    source: str = "the examples",
) -> Any:
    """Grid-search ``estimator``'s thresholds on corrected examples.

    Parameters
    ----------
    estimator : estimator
        Not modified: a clone is tuned.
    examples : iterable of mapping
        Answered tasks.
    param_grid : dict, optional
        Default: :func:`skseg.tuning.default_grid`.
    cv : int, cross-validation generator or iterable, optional
        Default: :func:`skseg.tuning.tune`'s (files, or excerpts of them when
        there are fewer files than folds).
    scoring : callable, optional
        Default: :func:`~skseg.annotation.estimators.correction_scorer`, else the
        estimator's own metric.
    n_jobs : int, optional
    source : str, default="the examples"
        What the examples are, for messages.

    Returns
    -------
    result : skseg.tuning.TuningResult

    Raises
    ------
    FileError
        Naming ``source``, when it has no usable accepted example.

    Examples
    --------
    >>> from pyannote.core import Segment
    >>> from skseg import VADEstimator, fetch_sample
    >>> from skseg.references import speech_reference
    >>> from skseg.annotation import annotation_to_spans
    >>> sample = fetch_sample()
    >>> speech = speech_reference(sample["annotation"])  # as if corrected
    >>> examples = [
    ...     {"meta": {"uri": "sample", "path": sample["audio"], "start": s,
    ...               "end": s + 10.0},
    ...      "audio_spans": annotation_to_spans(speech, Segment(s, s + 10.0))}
    ...     for s in (0.0, 10.0, 20.0)]
    >>> grid = {"onset": [0.5, 0.7], "offset": [0.4], "min_duration_on": [0.0],
    ...         "min_duration_off": [0.0]}
    >>> result = tune_on_examples(VADEstimator(), examples, param_grid=grid)
    >>> result.best_params["onset"], result.n_files, result.metric
    (0.5, 3, 'detection error rate')
    """
    from ..tuning import tune

    X, y = examples_to_dataset(examples, source=source)
    if scoring is None:
        scoring = correction_scorer(estimator)
    return tune(
        clone(estimator),
        X,
        y,
        param_grid=param_grid,
        cv=cv,
        scoring=scoring,
        n_jobs=n_jobs,
    )
