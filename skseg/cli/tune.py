"""``skseg tune``: grid-search a pipeline on a folder of annotated audio."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import (
    UsageError,
    add_model_flags,
    add_progress_flags,
    attach_baseline,
    build_estimator,
    check_ready,
    positive_float,
    positive_int,
    progress,
    refuse_overwriting,
    set_progress,
)

__all__ = ["CountingScorer", "read_grid", "register"]


def register(commands: Any) -> None:
    """Add ``skseg tune``.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="skseg")
    >>> register(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["tune", "data", "--pipeline", "osd"]).pipeline_task
    'osd'
    """
    from ..pipelines import PIPELINES

    tune = commands.add_parser(
        "tune",
        help="grid-search a pipeline's thresholds on annotated audio",
        description=(
            "Grid-search onset/offset/min_duration_on/min_duration_off on a folder "
            "of audio files with their RTTM (and UEM) files; write the tuned "
            "estimator (joblib) and print its row of the hyper-parameter table."
        ),
    )
    tune.add_argument("data_dir", metavar="DATA_DIR")
    tune.add_argument(
        "--pipeline",
        dest="pipeline_task",
        required=True,
        choices=sorted(PIPELINES),
        help="which pipeline to tune",
    )
    tune.add_argument(
        "--grid", metavar="JSON", help="parameter -> list of values (default grid)"
    )
    tune.add_argument(
        "--folds", type=positive_int, default=3, help="cross-validation folds (3)"
    )
    tune.add_argument(
        "--excerpt",
        type=positive_float,
        metavar="SECONDS",
        help="cross-validate over excerpts this long (automatic when there are "
        "fewer files than folds)",
    )
    tune.add_argument(
        "--baseline", metavar="RTTM", help="baseline diarization (resegment only)"
    )
    tune.add_argument(
        "--out", metavar="JOBLIB", help="where to write it (default: PIPELINE.joblib)"
    )
    tune.add_argument("--dataset", help="row name (default: the folder's name)")
    tune.add_argument(
        "-j",
        "--jobs",
        type=positive_int,
        metavar="N",
        help="candidates evaluated in parallel",
    )
    add_model_flags(tune, hyper_parameters=False)
    add_progress_flags(tune)
    tune.set_defaults(run=_run, parser=tune)


class CountingScorer:
    """A scorer that reports each (candidate, fold) evaluation to a callback.

    Parameters
    ----------
    scorer : callable
    tick : callable
        Called without arguments after each evaluation.

    Examples
    --------
    >>> ticks = []
    >>> scorer = CountingScorer(lambda est, X, y=None: 1.0, lambda: ticks.append(1))
    >>> scorer(None, []), ticks
    (1.0, [1])
    """

    def __init__(self, scorer: Any, tick: Callable[[], None]):
        self.scorer, self.tick = scorer, tick

    def __call__(self, estimator: Any, X: Any, y: Any = None) -> float:
        """Score with the wrapped scorer, then tick."""
        score = self.scorer(estimator, X, y)
        self.tick()
        return score

    def __getattr__(self, name: str) -> Any:
        return getattr(self.scorer, name)


def read_grid(path: str | None) -> dict | None:
    """Read ``--grid``: a JSON object of parameter -> non-empty list of values.

    Examples
    --------
    >>> read_grid(None) is None
    True
    """
    if path is None:
        return None
    try:
        grid = json.loads(Path(path).read_text())
    except OSError as e:
        raise UsageError(f"--grid {path}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise UsageError(f"--grid {path}: not JSON ({e})") from None
    if not isinstance(grid, dict) or not grid:
        raise UsageError(
            f"--grid {path}: expected an object of parameter -> list of values, "
            'e.g. {"onset": [0.5, 0.6], "offset": [0.4]}'
        )
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise UsageError(
                f"--grid {path}: {key!r} must map to a non-empty list of values, "
                f"got {values!r}"
            )
    return grid


def _run(args: argparse.Namespace) -> int:
    """Run ``skseg tune``; return its exit status."""
    import joblib
    from sklearn.model_selection import ParameterGrid

    from ..exceptions import FileError
    from ..io import annotation_files, atomic_write, load_folder
    from ..tuning import (
        default_grid,
        default_scorer,
        hyperparameter_table,
        metric_name,
        tune,
    )

    task = args.pipeline_task
    if args.folds < 2:
        # (tune refuses it too, but in its own terms: say it in the flag's)
        raise UsageError(f"--folds {args.folds}: cross-validation needs at least 2")
    # the grid search reuses one network pass per file
    estimator = build_estimator(args, task, default_cache=True)
    grid = read_grid(args.grid)
    try:
        X, y = load_folder(args.data_dir)
    except FileError as e:
        raise UsageError(str(e)) from None
    if task == "resegment":
        if args.baseline is None:
            raise UsageError(
                "tuning resegment needs --baseline RTTM: the diarization to refine "
                "for every file of the folder"
            )
        missing = attach_baseline(X, args.baseline, estimator.baseline)
        if missing:
            raise UsageError(
                f"--baseline {args.baseline}: no turns for uri(s) {', '.join(missing)}"
            )
    out = args.out or f"{task}.joblib"
    # refused before the search: hours of tuning must not end by replacing an input
    refuse_overwriting(
        [out],
        [
            args.data_dir,
            *(file["audio"] for file in X),
            *itertools.chain(*annotation_files(args.data_dir)),
            *(p for p in (args.baseline, args.grid, args.segmentation) if p),
        ],
    )
    check_ready(estimator)
    try:
        n_candidates = len(ParameterGrid(grid or default_grid(estimator)))
    except (TypeError, ValueError) as e:
        raise UsageError(f"--grid {args.grid}: {e}") from None
    unknown = sorted(set(grid or {}) - set(estimator.get_params()))
    if unknown:
        raise UsageError(
            f"--grid {args.grid}: {type(estimator).__name__} has no parameter "
            f"{', '.join(unknown)}"
        )
    splits = (
        min(args.folds, len(X))
        if args.excerpt is None and len(X) >= args.folds
        else args.folds
    )
    dataset = args.dataset or Path(args.data_dir).resolve().name
    scorer = default_scorer(estimator)
    with progress(args, f"tune {task}", "fits", n_candidates * splits) as bar:
        counter = itertools.count(1)
        advance = set_progress(bar)
        # a callback cannot reach joblib workers: with --jobs, time alone is shown
        scoring = (
            scorer
            if args.jobs not in (None, 1)
            else CountingScorer(scorer, lambda: advance(next(counter)))
        )
        result = tune(
            estimator,
            X,
            y,
            param_grid=grid,
            scoring=scoring,
            n_jobs=args.jobs,
            folds=args.folds,
            excerpt=args.excerpt,
        )
    result.metric = metric_name(scorer)
    try:
        # atomically: a failed write leaves the previous file, not a broken one
        with atomic_write(out, "wb") as handle:
            joblib.dump(result.estimator, handle)
    except FileError as e:
        raise UsageError(f"--out {e}") from None
    print(hyperparameter_table([result.table_row(dataset)]))
    print(
        f"skseg tune: {type(estimator).__name__} on {len(X)} file(s) of "
        f"{args.data_dir} ({result.n_files} cross-validated items, "
        f"{result.n_splits} folds, {result.n_candidates} candidates); "
        f"best mean {result.metric} {100 * result.best_score:.2f} %; "
        f"written to {out}",
        file=sys.stderr,
    )
    return 0
