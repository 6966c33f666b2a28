"""Fill the model card's hyper-parameter tables for the data available here.

The ``pyannote/segmentation`` model card gives onset, offset, min_duration_on and
min_duration_off per dataset (AMI, DIHARD3, VoxConverse) for VAD, OSD,
Segmentation and Resegmentation. Those corpora are licensed and not available
here; the one annotated recording that is, pyannote's 30 s ``sample.wav`` with
``sample.rttm``, is tuned here with :func:`skseg.tuning.tune`, exactly as
``skseg tune`` does for a data folder:

* data: the sample, cut into ``--folds`` consecutive excerpts (10 s each for 3
  folds) by :func:`skseg.tuning.split_excerpts`: the same audio, each excerpt
  evaluated only inside its own window (its UEM), so the network runs once;
* Resegmentation needs a baseline diarization to refine: the peer baseline
  ``tests/data/peers/reseg_sample_baseline.rttm`` (a degraded copy of
  ``sample.rttm`` that pyannote.audio 3.4.0's own Resegmentation was run on);
* grid: :func:`skseg.tuning.default_grid` (``--grid default``, what ``skseg tune``
  uses without ``--grid``), or a wider one (``--grid wide``) that also covers the
  pipeline defaults' range;
* CV: ``KFold(folds)`` over the excerpts, unshuffled; the pipeline's own metric
  (speech DetER, overlap F-measure, greedy DER, greedy DER);
* reported per pipeline: the tuned values; their mean held-out score (GridSearchCV's
  ``best_score_``, which selected them and so flatters them); the pipeline
  defaults' mean held-out score on the same folds; a nested-CV estimate (tune on
  the other excerpts, score on the held-out one) that is not biased by selection;
  and both parameter sets scored on the whole file.

usage: python benchmarks/hyperparameter_tables.py [--grid default|wide] [--folds 3]
       [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import KFold, cross_val_score

from skseg import (
    OSDEstimator,
    ResegmentationEstimator,
    SegmentationEstimator,
    VADEstimator,
    fetch_sample,
)
from skseg.io import read_rttm
from skseg.tuning import (
    TUNED_PARAMETERS,
    default_grid,
    default_scorer,
    hyperparameter_table,
    split_excerpts,
    tune,
)

BASELINE = Path(__file__).parent.parent / "tests/data/peers/reseg_sample_baseline.rttm"

PIPELINES = {
    "vad": VADEstimator,
    "osd": OSDEstimator,
    "segment": SegmentationEstimator,
    "resegment": ResegmentationEstimator,
}

# thresholds every 0.1 over the whole open range (the Segmentation and
# Resegmentation defaults, 0.84 and 0.81, lie above the default grid's 0.8), the
# default grid's durations: 324 candidates
WIDE_GRID = {
    "onset": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
    "offset": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
    "min_duration_on": [0.0, 0.1],
    "min_duration_off": [0.0, 0.1],
}


def sample_file(pipeline: str) -> dict:
    file = fetch_sample()
    if pipeline == "resegment":
        file["baseline"] = read_rttm(BASELINE)["sample"]
    return file


def run(pipeline: str, grid_name: str, folds: int) -> dict:
    estimator = PIPELINES[pipeline]()
    grid = default_grid(estimator) if grid_name == "default" else WIDE_GRID
    file = sample_file(pipeline)
    excerpt = file["annotated"].extent().duration / folds
    X, y = split_excerpts([file], [file["annotation"]], excerpt)
    scorer = default_scorer(estimator)
    sign = getattr(scorer, "sign", 1.0)
    cv = KFold(folds)

    t0 = time.perf_counter()
    result = tune(estimator, X, y, param_grid=grid, cv=cv, scoring=scorer)
    tune_s = time.perf_counter() - t0

    default_cv = sign * cross_val_score(estimator, X, y, cv=cv, scoring=scorer)

    # nested: for each held-out excerpt, tune on the others, score the held-out one
    nested, nested_params = [], []
    for train, test in cv.split(X):
        inner = tune(
            estimator,
            [X[i] for i in train],
            [y[i] for i in train],
            param_grid=grid,
            cv=KFold(len(train)),
            scoring=scorer,
        )
        nested.append(sign * scorer(inner.estimator, [X[i] for i in test], None))
        nested_params.append({k: inner.best_params[k] for k in TUNED_PARAMETERS})

    means = result.search.cv_results_["mean_test_score"]
    # GridSearchCV keeps the first of equally good candidates (grid order)
    n_tied = int(np.sum(np.isclose(means, means[result.search.best_index_])))

    tuned_file = sign * scorer(result.estimator, [file], None)
    default_file = sign * scorer(clone(estimator), [file], None)
    row = result.table_row("pyannote sample.wav (30 s)")
    return {
        "pipeline": pipeline,
        "estimator": type(estimator).__name__,
        "metric": result.metric,
        "grid": grid,
        "n_candidates": result.n_candidates,
        "cv": f"KFold({folds}) over {len(X)} excerpts of {excerpt:g} s",
        "excerpts": [f["uri"] for f in X],
        "row": row,
        "defaults": {k: estimator.get_params()[k] for k in TUNED_PARAMETERS},
        "tuned_cv_mean": result.best_score,
        "candidates_tied_for_best": n_tied,
        "tuned_cv_folds": [
            float(
                sign
                * result.search.cv_results_[f"split{k}_test_score"][
                    result.search.best_index_
                ]
            )
            for k in range(folds)
        ],
        "default_cv_mean": float(np.mean(default_cv)),
        "default_cv_folds": [float(v) for v in default_cv],
        "nested_cv_mean": float(np.mean(nested)),
        "nested_cv_folds": [float(v) for v in nested],
        "nested_params": nested_params,
        "tuned_whole_file": float(tuned_file),
        "default_whole_file": float(default_file),
        "tune_seconds": round(tune_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", choices=("default", "wide"), default="default")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--pipelines", nargs="+", default=list(PIPELINES))
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    results = [run(p, args.grid, args.folds) for p in args.pipelines]
    for r in results:
        print(f"\n## {r['estimator']} ({r['metric']}, {r['n_candidates']} candidates,")
        print(f"## {r['cv']}; tuning took {r['tune_seconds']} s;")
        print(f"## {r['candidates_tied_for_best']} candidate(s) tied for best)\n")
        default_row = dict(r["row"], dataset="pipeline defaults")
        default_row.update(r["defaults"], score=r["default_cv_mean"])
        print(hyperparameter_table([r["row"], default_row]))
        print(
            f"\nheld-out folds, tuned:   {[round(v, 4) for v in r['tuned_cv_folds']]}"
            f"\nheld-out folds, default: {[round(v, 4) for v in r['default_cv_folds']]}"
            f"\nnested CV: {r['nested_cv_mean']:.4f} "
            f"{[round(v, 4) for v in r['nested_cv_folds']]}"
            f"\nwhole file: tuned {r['tuned_whole_file']:.4f}, "
            f"default {r['default_whole_file']:.4f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
