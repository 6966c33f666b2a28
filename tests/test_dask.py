"""GridSearchCV and batch prediction on a Dask cluster (joblib's dask backend),
with the score cache in a directory every worker shares.

The cluster is a LocalCluster of 2 worker processes bound to loopback; ``distributed``
is in the ``dev`` extra, so this runs in CI (never skipped).
"""

import os

import joblib
import numpy as np
import pytest
import soundfile as sf
from distributed import Client, LocalCluster, get_task_stream
from sklearn.model_selection import GridSearchCV, KFold

from skseg import SegmentationEstimator, VADEstimator
from skseg.batch import predict_many
from skseg.cache import get_cache
from skseg.metrics import get_scorer

from .helpers import excerpt, segments

# the fast tier (make test-fast) leaves this module out: it starts a Dask cluster
pytestmark = pytest.mark.slow

GRID = {
    "onset": [0.4, 0.6, 0.8],
    "offset": [0.3, 0.5],
    "min_duration_on": [0.0, 0.1],
}


@pytest.fixture(scope="module")
def client():
    # LocalCluster sets OMP_NUM_THREADS=1 (and MKL's, OpenBLAS's) in this process's
    # environment for its workers, and leaves them: later subprocesses would start
    # single-threaded. Give the environment back.
    environ = dict(os.environ)
    with (
        LocalCluster(
            processes=True,
            n_workers=2,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        try:
            yield client
        finally:
            os.environ.clear()
            os.environ.update(environ)


@pytest.fixture(scope="module")
def dataset(sample, tmp_path_factory):
    """Four 7.5 s WAV files on disk (what every worker can read) and references."""
    folder = tmp_path_factory.mktemp("dask-data")
    paths, references = [], []
    for start in (0.0, 7.5, 15.0, 22.5):
        clip = excerpt(sample, start, start + 7.5, uri=f"dask-{start:g}")
        path = folder / f"{clip['uri']}.wav"
        sf.write(path, clip["waveform"][0], clip["sample_rate"], subtype="FLOAT")
        paths.append(str(path))
        references.append(clip["annotation"])
    return paths, references


def network_runs_on_workers(client, directory):
    """How many times each worker ran the network for the cache in ``directory``."""
    return client.run(lambda: get_cache(directory).computed)


def search(estimator, n_jobs=None):
    return GridSearchCV(
        estimator,
        GRID,
        scoring=get_scorer("neg_speech_detection_error_rate"),
        cv=KFold(2),
        n_jobs=n_jobs,
        error_score="raise",
    )


def test_grid_search_on_dask_matches_local_and_runs_each_file_once(
    client, dataset, tmp_path
):
    X, y = dataset
    local = search(VADEstimator(cache=True)).fit(X, y)

    shared = str(tmp_path / "scores")
    with joblib.parallel_config(backend="dask"), get_task_stream(client) as stream:
        remote = search(VADEstimator(cache=shared), n_jobs=-1).fit(X, y)

    assert remote.best_params_ == local.best_params_
    np.testing.assert_array_equal(
        remote.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"]
    )
    assert len(set(local.cv_results_["mean_test_score"])) > 1  # the grid discriminates
    assert [segments(a) for a in remote.predict(X)] == [
        segments(a) for a in local.predict(X)
    ]

    # 24 fits and 24 scorings over 4 files: both workers ran tasks, yet the network
    # ran once per file cluster-wide (a cold file is computed under a lock in the
    # shared directory while the other worker waits for it). Which worker meets a
    # cold file first is Dask's choice, so placement is read from the task stream,
    # not from who ran the network.
    assert len({task["worker"] for task in stream.data}) == 2, stream.data
    runs = network_runs_on_workers(client, shared)
    assert len(runs) == 2, runs
    assert sum(runs.values()) == len(X)
    assert len(list((tmp_path / "scores").rglob("*.npz"))) == len(X)
    # the refit and predict above, in this process, only read the shared cache
    assert get_cache(shared).computed == 0


def test_predict_many_on_dask_matches_local_and_isolates_a_bad_file(
    client, dataset, tmp_path
):
    X, _ = dataset
    files = [X[0], str(tmp_path / "missing.wav"), *X[1:]]
    local = predict_many(SegmentationEstimator(cache=False), files, errors="collect")

    shared = str(tmp_path / "scores")
    seen = []
    with joblib.parallel_config(backend="dask"):
        remote = predict_many(
            SegmentationEstimator(cache=shared),
            files,
            errors="collect",
            n_jobs=-1,
            on_result=lambda index, file, output: seen.append(index),
        )

    assert [f.index for f in remote.failures] == [1]
    assert "missing.wav" in str(remote.failures[0])
    assert sorted(seen) == [0, 2, 3, 4]  # callbacks ran here, per finished file
    for a, b in zip(remote.outputs, local.outputs, strict=True):
        assert (a is None and b is None) or segments(a) == segments(b)

    runs = network_runs_on_workers(client, shared)
    assert sum(runs.values()) == len(X)

    # the cache the batch filled serves a later search: no further network run
    with joblib.parallel_config(backend="dask"):
        GridSearchCV(
            SegmentationEstimator(cache=shared),
            {"onset": [0.6, 0.84]},
            scoring=get_scorer("neg_greedy_diarization_error_rate"),
            cv=KFold(2),
            n_jobs=-1,
            error_score="raise",
        ).fit(X, dataset[1])
    assert network_runs_on_workers(client, shared) == runs
