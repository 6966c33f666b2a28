"""skseg.tuning: grid search over files or excerpts, result, table."""

import subprocess
import sys

import joblib
import numpy as np
import pytest
from pyannote.core import Segment, Timeline

from skseg import OSDEstimator, VADEstimator
from skseg.metrics import DetectionErrorRateScorer
from skseg.tuning import default_grid, hyperparameter_table, split_excerpts, tune

GRID = {
    "onset": [0.4, 0.6, 0.8],
    "offset": [0.3, 0.5],
    "min_duration_on": [0.0, 0.1],
    "min_duration_off": [0.0],
}


def test_split_excerpts_respects_the_annotated_region(sample):
    file = dict(sample, annotated=Timeline([Segment(2, 9), Segment(12, 26)]))
    X, y = split_excerpts([file], [sample["annotation"]], duration=10)
    assert [f["uri"] for f in X] == ["sample[2-12]", "sample[12-22]", "sample[22-26]"]
    assert list(X[0]["annotated"]) == [Segment(2, 9)]
    assert y == [sample["annotation"]] * 3 and X[0]["audio"] == sample["audio"]
    with pytest.raises(ValueError, match="positive"):
        split_excerpts([file], None, 0)


@pytest.mark.slow
def test_tune_on_one_file_cross_validates_excerpts(sample, tmp_path):
    result = tune(VADEstimator(), [sample], param_grid=GRID)
    assert (result.n_files, result.n_splits, result.n_candidates) == (3, 3, 12)
    search = result.search
    # the reported score is the best mean test error, positive
    errors = -search.cv_results_["mean_test_score"]
    assert result.best_score == pytest.approx(errors.min())
    assert result.best_params == search.cv_results_["params"][int(np.argmin(errors))]
    # and it is what the tuned estimator scores on the excerpts, fold by fold
    X, y = split_excerpts([sample], None, 10.0)
    scorer = DetectionErrorRateScorer()
    per_fold = [-scorer(result.estimator, [x], [sample["annotation"]]) for x in X]
    assert result.best_score == pytest.approx(np.mean(per_fold))
    assert result.estimator.get_params()["onset"] == result.best_params["onset"]
    assert hasattr(result.estimator, "model_")

    row = result.table_row("sample")
    assert row["metric"] == "detection error rate" and row["score"] == result.best_score
    table = hyperparameter_table([row])
    assert table.splitlines()[2].startswith(f"| sample | {row['onset']:.3f} |")
    assert f"{100 * result.best_score:.2f} %" in table

    # the tuned estimator persists and predicts identically in a fresh process
    path = tmp_path / "tuned.joblib"
    joblib.dump(result.estimator, path)
    expected = result.estimator.predict([sample["audio"]])[0]
    code = (
        "import joblib, sys; e = joblib.load(sys.argv[1]); "
        "print(e.predict([sys.argv[2]])[0].to_rttm(), end='')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path), sample["audio"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == expected.to_rttm()


def test_tune_osd_reports_fmeasure_higher_is_better(sample):
    grid = {
        "onset": [0.3, 0.6],
        "offset": [0.3],
        "min_duration_on": [0.0],
        "min_duration_off": [0.0],
    }
    result = tune(OSDEstimator(), [sample], param_grid=grid)
    assert result.metric == "detection F-measure"
    assert result.best_score == pytest.approx(
        result.search.cv_results_["mean_test_score"].max()
    )
    assert 0 <= result.best_score <= 1


def test_default_grid_and_errors(sample):
    grid = default_grid(VADEstimator())
    assert set(grid) == {"onset", "offset", "min_duration_on", "min_duration_off"}
    assert np.prod([len(v) for v in grid.values()]) >= 100
    with pytest.raises(ValueError, match="no files"):
        tune(VADEstimator(), [])
    with pytest.raises(ValueError, match="no 'annotation'"):
        tune(VADEstimator(), [sample["audio"]])


def test_derived_references_are_computed_once_and_follow_edits():
    from pyannote.core import Annotation

    from skseg.metrics import _derived_reference

    turns = Annotation(uri="call")
    turns[Segment(0, 5)] = "alice"
    turns[Segment(4, 8)] = "bob"
    first = _derived_reference("overlap", turns)
    # the next candidate of a grid search gets the same regions, not recomputed
    assert _derived_reference("overlap", turns) is first
    assert list(first.itersegments()) == [Segment(4, 5)]
    assert list(_derived_reference("speech", turns).itersegments()) == [Segment(0, 8)]
    turns[Segment(7, 9)] = "carol"  # edited in place: derived again
    assert list(_derived_reference("overlap", turns).itersegments()) == [
        Segment(4, 5),
        Segment(7, 8),
    ]
