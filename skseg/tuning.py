"""Tuning a pipeline's hyper-parameters on annotated files, made routine.

:func:`tune` is :class:`~sklearn.model_selection.GridSearchCV` with the defaults a
speech pipeline needs: a grid over ``onset``, ``offset``, ``min_duration_on`` and
``min_duration_off`` (:func:`default_grid`), the pipeline's own metric, and a
cross-validation over files, or over excerpts of them when there are fewer files
than folds (:func:`split_excerpts`: the same audio with different evaluated
regions, so the network still runs once per recording). The result carries the
tuned estimator, ready for :func:`joblib.dump`, and the row it adds to a
hyper-parameter table like the model card's (:func:`hyperparameter_table`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

from pyannote.core import Annotation, Segment, Timeline
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    validate_parameter_constraints,
)

from .audio import check_files, validate_file
from .batch import N_JOBS
from .metrics import annotated, get_scorer
from .pipelines.parameters import HYPER_PARAMETERS

__all__ = [
    "TUNED_PARAMETERS",
    "TuningResult",
    "default_grid",
    "default_scorer",
    "metric_name",
    "hyperparameter_table",
    "split_excerpts",
    "tune",
]

#: the four hyper-parameters of every pipeline, as in the model card's tables
#: (:data:`skseg.pipelines.parameters.HYPER_PARAMETERS`)
TUNED_PARAMETERS = HYPER_PARAMETERS

# thresholds every 0.1 from 0.2 to 0.9, past the model card's values (0.32 to 0.77)
# on both sides, so that an optimum at 0.8 (seen on conversations no one tuned on)
# is inside the grid, not at its edge; and the durations that matter at the
# model's 17 ms frame step: 256 candidates, which cost about one predict pass
# thanks to the score cache (benchmarks/tuning_cost.py)
_THRESHOLDS = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
_DURATIONS = [0.0, 0.1]


def default_grid(estimator: Any) -> dict[str, list]:
    """Return the default grid over a pipeline's four hyper-parameters.

    Parameters
    ----------
    estimator : estimator
        A skseg pipeline estimator (only its parameter names are used).

    Returns
    -------
    grid : dict
        ``{parameter: values}`` for :class:`~sklearn.model_selection.GridSearchCV`.

    Examples
    --------
    >>> from skseg import VADEstimator
    >>> grid = default_grid(VADEstimator())
    >>> sorted(grid), len(grid["onset"]) * len(grid["offset"])
    (['min_duration_off', 'min_duration_on', 'offset', 'onset'], 64)
    """
    params = estimator.get_params()
    missing = [name for name in HYPER_PARAMETERS if name not in params]
    if missing:
        raise ValueError(
            f"{type(estimator).__name__} has no {', '.join(missing)} parameter: "
            "pass param_grid explicitly"
        )
    return {
        "onset": list(_THRESHOLDS),
        "offset": list(_THRESHOLDS),
        "min_duration_on": list(_DURATIONS),
        "min_duration_off": list(_DURATIONS),
    }


def split_excerpts(
    X: Sequence[Any], y: Sequence[Annotation] | None, duration: float
) -> tuple[list[dict], list[Annotation] | None]:
    """Cut each file's evaluated region into consecutive excerpts.

    An excerpt is the same file (same audio, same reference) with its
    ``"annotated"`` region restricted to a window of ``duration`` seconds and a
    uri that says which (``"uri[start-end]"``). Scorers evaluate only that region,
    and the score cache serves every excerpt of a recording from one network pass,
    so a single recording can be cross-validated.

    Parameters
    ----------
    X : list of files
    y : list of Annotation or None
        References, repeated for each excerpt of their file.
    duration : float
        Seconds per excerpt; the last excerpt of a file takes what remains.

    Returns
    -------
    X : list of dict
    y : list of Annotation or None

    Examples
    --------
    >>> from skseg.datasets import fetch_sample
    >>> X, y = split_excerpts([fetch_sample()], None, duration=10.0)
    >>> [file["uri"] for file in X]
    ['sample[0-10]', 'sample[10-20]', 'sample[20-30]']
    """
    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration}")
    X = list(X)
    if y is not None:
        y = list(y)
        if len(y) != len(X):
            raise ValueError(f"{len(X)} files but {len(y)} references")
    out_X: list[dict] = []
    out_y: list[Annotation] | None = None if y is None else []
    for i, file in enumerate(X):
        uem = annotated(file).support()
        file = validate_file(file)
        start, end = uem.extent().start, uem.extent().end
        while end - start > 1e-9:
            window = Segment(start, min(start + duration, end))
            region = uem.crop(window)
            if region:
                excerpt = dict(file)
                excerpt["uri"] = f"{file['uri']}[{window.start:g}-{window.end:g}]"
                excerpt["annotated"] = Timeline(region, uri=excerpt["uri"])
                out_X.append(excerpt)
                if out_y is not None:
                    out_y.append(y[i])
            start = window.end
    return out_X, out_y


def metric_name(scorer: Any) -> str:
    """Return what a scorer's metric is called in tables and messages.

    Parameters
    ----------
    scorer : callable
        A :mod:`skseg.metrics` scorer (or any callable: its name).

    Returns
    -------
    name : str

    Examples
    --------
    >>> from skseg.metrics import get_scorer
    >>> metric_name(get_scorer("overlap_fmeasure"))
    'detection F-measure'
    """
    name = getattr(scorer, "metric_name", "")
    return name or getattr(scorer, "__name__", repr(scorer))


def default_scorer(estimator: Any) -> Any:
    """Return a pipeline's own scorer (its ``default_scoring``).

    Parameters
    ----------
    estimator : estimator
        A skseg pipeline estimator.

    Returns
    -------
    scorer : callable

    Raises
    ------
    ValueError
        If the estimator names no default metric.

    Examples
    --------
    >>> from skseg import VADEstimator
    >>> default_scorer(VADEstimator())
    DetectionErrorRateScorer(target='speech', collar=0.0, skip_overlap=False)
    """
    name = getattr(estimator, "default_scoring", "")
    if not name:
        raise ValueError(
            f"{type(estimator).__name__} has no default metric: pass scoring"
        )
    return get_scorer(name)


@dataclass
class TuningResult:
    """What :func:`tune` found.

    Attributes
    ----------
    estimator : estimator
        The estimator with the best parameters, fitted: persist it with
        :func:`joblib.dump`.
    best_params : dict
        The best candidate.
    best_score : float
        Its mean cross-validated metric, as the metric reads (an error rate is
        positive, lower is better).
    metric : str
        The metric's name.
    search : GridSearchCV
        The fitted search, for its ``cv_results_``.
    n_candidates : int
    n_splits : int
    n_files : int
        Files (or excerpts) cross-validated.

    Examples
    --------
    >>> from skseg import VADEstimator
    >>> from skseg.datasets import fetch_sample
    >>> grid = {"onset": [0.5, 0.7], "offset": [0.4], "min_duration_on": [0.0],
    ...         "min_duration_off": [0.0]}
    >>> result = tune(VADEstimator(), [fetch_sample()], param_grid=grid)
    >>> result.table_row("sample")["metric"]
    'detection error rate'
    """

    estimator: Any
    best_params: dict
    best_score: float
    metric: str
    search: GridSearchCV
    n_candidates: int
    n_splits: int
    n_files: int

    def table_row(self, dataset: str) -> dict:
        """Return the hyper-parameter table's row for this result.

        Parameters
        ----------
        dataset : str
            What the row is named after.

        Returns
        -------
        row : dict
            ``dataset``, the four tuned values (or the estimator's own where not
            searched), ``metric`` and ``score``.
        """
        params = self.estimator.get_params()
        row: dict[str, Any] = {"dataset": dataset}
        for name in TUNED_PARAMETERS:
            row[name] = params.get(name)
        row["metric"] = self.metric
        row["score"] = self.best_score
        return row


def tune(
    estimator: Any,
    X: Sequence[Any],
    y: Sequence[Annotation] | None = None,
    *,
    param_grid: Mapping[str, Sequence] | None = None,
    cv: Any = None,
    scoring: Any = None,
    n_jobs: int | None = None,
    folds: int = 3,
    excerpt: float | None = None,
) -> TuningResult:
    """Grid-search a pipeline's hyper-parameters on annotated files.

    Parameters
    ----------
    estimator : estimator
        The pipeline to tune (not modified; a clone is fitted).
    X : list of files
    y : list of Annotation, optional
        References; defaults to each file's ``"annotation"``.
    param_grid : mapping, optional
        Defaults to :func:`default_grid`.
    cv : int, splitter or iterable, optional
        Passed to GridSearchCV. By default, :class:`~sklearn.model_selection.KFold`
        with ``folds`` splits over the files, or over excerpts of them (see
        ``excerpt``) when there are fewer files than folds.
    scoring : callable or str, optional
        A scorer (see :mod:`skseg.metrics`); defaults to the pipeline's metric.
    n_jobs : int, optional
        Candidates evaluated in parallel (GridSearchCV's ``n_jobs``).
    folds : int, default=3
        At least 2.
    excerpt : float, optional
        Cut files into excerpts of this many seconds before cross-validating.
        Chosen automatically (each file cut into ``folds`` parts) when there are
        fewer files than folds and ``cv`` is not given.

    Returns
    -------
    result : TuningResult

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        A bad argument, named in the message, before any file is read.
    TypeError
        ``X`` is a single file, or ``y`` a single reference.
    ValueError
        No files, not as many references as files, or files without references.

    Examples
    --------
    One 30 s recording, cross-validated over three 10 s excerpts:

    >>> from skseg import OSDEstimator
    >>> from skseg.datasets import fetch_sample
    >>> grid = {"onset": [0.5, 0.6], "offset": [0.5], "min_duration_on": [0.0],
    ...         "min_duration_off": [0.0]}
    >>> result = tune(OSDEstimator(), [fetch_sample()], param_grid=grid)
    >>> result.n_files, result.n_splits, result.n_candidates, result.metric
    (3, 3, 2, 'detection F-measure')
    >>> result.best_params["onset"] in (0.5, 0.6), 0 < result.best_score <= 1
    (True, True)
    """
    validate_parameter_constraints(
        {
            "estimator": [HasMethods(["fit", "predict", "get_params"])],
            "param_grid": [Mapping, None],
            "scoring": [callable, str, None],
            "n_jobs": N_JOBS,
            "folds": [Interval(Integral, 2, None, closed="left")],
            "excerpt": [Interval(Real, 0, None, closed="neither"), None],
        },
        {
            "estimator": estimator,
            "param_grid": param_grid,
            "scoring": scoring,
            "n_jobs": n_jobs,
            "folds": folds,
            "excerpt": excerpt,
        },
        caller_name="tune",
    )
    X = check_files(X)
    if not X:
        raise ValueError("no files to tune on")
    if y is not None:
        if isinstance(y, Annotation):
            raise TypeError(
                "y must be a list of references (one Annotation per file), got a "
                "single Annotation: use [y]"
            )
        y = list(y)
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} files but y has {len(y)} references")
    if y is None:
        y = [validate_file(f).get("annotation") for f in X]
        missing = sum(reference is None for reference in y)
        if missing:
            raise ValueError(
                f"{missing} file(s) have no 'annotation' and no y was given"
            )
    y = list(y)
    if excerpt is None and cv is None and len(X) < folds:
        longest = max(annotated(f).support().extent().duration for f in X)
        excerpt = longest / folds
    if excerpt is not None:
        X, y = split_excerpts(X, y, excerpt)
    if cv is None:
        if len(X) < 2:
            raise ValueError("cross-validation needs at least 2 files or excerpts")
        cv = KFold(n_splits=min(folds, len(X)))
    if scoring is None:
        scoring = default_scorer(estimator)
    elif isinstance(scoring, str):
        scoring = get_scorer(scoring)
    grid = dict(param_grid) if param_grid is not None else default_grid(estimator)
    search = GridSearchCV(
        clone(estimator),
        grid,
        scoring=scoring,
        cv=cv,
        n_jobs=n_jobs,
        refit=True,
        error_score="raise",
    )
    search.fit(X, y)
    sign = getattr(scoring, "sign", 1.0)
    n_candidates = len(search.cv_results_["params"])
    return TuningResult(
        estimator=search.best_estimator_,
        best_params=dict(search.best_params_),
        best_score=float(sign * search.best_score_),
        metric=metric_name(scoring),
        search=search,
        n_candidates=n_candidates,
        n_splits=search.n_splits_,
        n_files=len(X),
    )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else str(value)


def hyperparameter_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Format tuned rows as a Markdown table like the model card's.

    Parameters
    ----------
    rows : list of dict
        From :meth:`TuningResult.table_row`; ``score`` is shown in percent.

    Returns
    -------
    table : str

    Examples
    --------
    >>> row = {"dataset": "sample", "onset": 0.7, "offset": 0.4,
    ...        "min_duration_on": 0.0, "min_duration_off": 0.1,
    ...        "metric": "detection error rate", "score": 0.0165}
    >>> print(hyperparameter_table([row]))
    | dataset | onset | offset | min_duration_on | min_duration_off | metric | score |
    |---|---|---|---|---|---|---|
    | sample | 0.700 | 0.400 | 0.000 | 0.100 | detection error rate | 1.65 % |
    """
    columns = ("dataset", *TUNED_PARAMETERS, "metric", "score")
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for row in rows:
        cells = [_cell(row.get(name)) for name in columns[:-1]]
        score = row.get("score")
        cells.append("" if score is None else f"{100 * score:.2f} %")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
