"""Same inputs, same outputs: across runs, batch sizes, torch threads, n_jobs,
processes, and threads sharing one estimator (with and without the score cache)."""

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile as sf
import torch
from sklearn.model_selection import GridSearchCV, KFold

import skseg.inference
from skseg import (
    OSDEstimator,
    ResegmentationEstimator,
    SegmentationEstimator,
    VADEstimator,
)
from skseg.batch import predict_many
from skseg.cache import _nbytes, get_cache
from skseg.metrics import get_scorer

from .helpers import excerpt, segments

# the fast tier (make test-fast) leaves this module out: it runs the real network from several threads and processes
pytestmark = pytest.mark.slow

CLASSES = [VADEstimator, OSDEstimator, SegmentationEstimator, ResegmentationEstimator]


@pytest.fixture(scope="module")
def clips(sample):
    # four distinct 8 s excerpts; the reference doubles as Resegmentation's baseline
    out = []
    for start in (0, 7, 14, 21):
        clip = excerpt(sample, start, start + 8, uri=f"det-{start}")
        clip["baseline"] = clip["annotation"]
        out.append(clip)
    return out


@pytest.fixture(scope="module")
def wavs(clips, tmp_path_factory):
    folder = tmp_path_factory.mktemp("det-wavs")
    paths = []
    for clip in clips:
        path = folder / f"{clip['uri']}.wav"
        sf.write(path, clip["waveform"][0], clip["sample_rate"], subtype="FLOAT")
        paths.append(str(path))
    return paths


def outputs(estimator, files):
    """(regions with labels, frame scores) of each file, in a comparable form."""
    regions = [segments(a) for a in estimator.predict(files)]
    scores = [s.data.copy() for s in estimator.decision_function(files)]
    return regions, scores


def assert_same(a, b, atol=0.0):
    regions_a, scores_a = a
    regions_b, scores_b = b
    assert regions_a == regions_b
    for x, y in zip(scores_a, scores_b, strict=True):
        if atol:
            np.testing.assert_allclose(x, y, rtol=0, atol=atol)
        else:
            np.testing.assert_array_equal(x, y)


@pytest.fixture
def network_runs(monkeypatch):
    """Files the network ran on, from any thread (list.append is atomic)."""
    runs = []
    original = skseg.inference.Inference.__call__

    def counting(self, file, hook=None):
        runs.append(file.get("uri") if isinstance(file, dict) else str(file))
        return original(self, file, hook)

    monkeypatch.setattr(skseg.inference.Inference, "__call__", counting)
    return runs


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_repeated_runs_are_identical_and_cache_changes_nothing(cls, clips):
    cold = outputs(cls(cache=False), clips[1:2])
    assert_same(outputs(cls(cache=False), clips[1:2]), cold)
    # served from the cache the second time: still bit for bit the same
    cached = cls(cache=True)
    assert_same(outputs(cached, clips[1:2]), cold)
    assert_same(outputs(cached, clips[1:2]), cold)


def test_batch_size_does_not_change_results(clips):
    cls = VADEstimator  # the batch size only concerns Inference, shared by all four
    ref = outputs(cls(cache=False, batch_size=32), clips[:1])
    for batch_size in (1, 3):
        # different batch shapes take different BLAS paths: 1e-5 is the documented
        # bound (docs/core.md); the decisions are the same
        assert_same(
            outputs(cls(cache=False, batch_size=batch_size), clips[:1]), ref, 1e-5
        )


def test_torch_thread_count_does_not_change_results(clips):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = outputs(VADEstimator(cache=False), clips[:1])
        torch.set_num_threads(2)
        two = outputs(VADEstimator(cache=False), clips[:1])
    finally:
        torch.set_num_threads(before)
    # bit-identical on the 2-vCPU development VM; other CPUs may split reductions
    # by thread count, so only the decisions are required to be exact
    assert_same(one, two, atol=1e-6)


SUBPROCESS = """
import sys, numpy as np
from skseg import OSDEstimator, SegmentationEstimator, VADEstimator
out = {}
for cls in (VADEstimator, OSDEstimator, SegmentationEstimator):
    est = cls(cache=False)
    out[cls.__name__ + "_scores"] = est.decision_function([sys.argv[2]])[0].data
    turns = est.predict([sys.argv[2]])[0]
    out[cls.__name__ + "_regions"] = np.array(
        [(s.start, s.end) for s, _, _ in turns.itertracks(yield_label=True)]
    )
np.savez(sys.argv[1], **out)
"""


def test_fresh_process_gives_identical_scores(wavs, tmp_path):
    saved = tmp_path / "fresh.npz"
    # the same thread count as here: it decides how chunks are split between
    # workers, and some CPUs' kernels round differently for other splits
    threads = str(torch.get_num_threads())
    run = subprocess.run(
        [sys.executable, "-c", SUBPROCESS, str(saved), wavs[1]],
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads),
    )
    assert run.returncode == 0, run.stderr
    fresh = np.load(saved)
    for cls in (VADEstimator, OSDEstimator, SegmentationEstimator):
        est = cls(cache=False)
        np.testing.assert_array_equal(
            fresh[cls.__name__ + "_scores"], est.decision_function([wavs[1]])[0].data
        )
        turns = est.predict([wavs[1]])[0]
        np.testing.assert_array_equal(
            fresh[cls.__name__ + "_regions"].reshape(-1, 2),
            np.array(
                [(s.start, s.end) for s, _, _ in turns.itertracks(yield_label=True)]
            ).reshape(-1, 2),
        )


def test_grid_search_is_the_same_with_one_or_two_workers(wavs, clips):
    y = [clip["annotation"] for clip in clips]
    grid = {"onset": [0.4, 0.6, 0.8], "offset": [0.3, 0.5], "min_duration_on": [0.1]}
    results = []
    for n_jobs in (1, 2):
        search = GridSearchCV(
            VADEstimator(cache=False),
            grid,
            scoring=get_scorer("neg_speech_detection_error_rate"),
            cv=KFold(2),
            n_jobs=n_jobs,
            error_score="raise",
        )
        search.fit(wavs, y)
        results.append(search)
    one, two = results
    assert one.best_params_ == two.best_params_
    np.testing.assert_array_equal(
        one.cv_results_["mean_test_score"], two.cv_results_["mean_test_score"]
    )
    # not a degenerate grid where every candidate ties
    assert len(set(one.cv_results_["mean_test_score"])) > 1


@pytest.mark.parametrize("method", ["predict", "decision_function"])
def test_predict_many_is_the_same_with_one_or_two_workers(wavs, method):
    est = SegmentationEstimator(cache=False)
    serial = predict_many(est, wavs, method=method)
    parallel = predict_many(est, wavs, method=method, n_jobs=2)
    assert serial.ok and parallel.ok
    for a, b in zip(serial.outputs, parallel.outputs, strict=True):
        if method == "predict":
            assert segments(a) == segments(b)
        else:
            # workers run torch with fewer threads (see the thread-count test)
            np.testing.assert_allclose(a.data, b.data, rtol=0, atol=1e-6)


# -- one estimator, four threads ------------------------------------------------------


def run_in_threads(estimator, files):
    """Each of 4 threads, released together, predicts then scores its file."""
    barrier = threading.Barrier(len(files))

    def work(file):
        barrier.wait()
        return (
            segments(estimator.predict([file])[0]),
            estimator.decision_function([file])[0].data.copy(),
        )

    with ThreadPoolExecutor(max_workers=len(files)) as pool:
        return list(pool.map(work, files))


@pytest.fixture(scope="module")
def sequential(clips):
    """Each class's outputs on each clip, one call at a time, without a cache."""
    out = {}
    for cls in (VADEstimator, SegmentationEstimator, ResegmentationEstimator):
        est = cls(cache=False)
        out[cls] = [
            (segments(est.predict([f])[0]), est.decision_function([f])[0].data)
            for f in clips
        ]
    return out


@pytest.mark.parametrize("which", ["different files", "same file"])
@pytest.mark.parametrize("cache", ["off", "memory", "directory"])
@pytest.mark.parametrize(
    "cls",
    [VADEstimator, SegmentationEstimator, ResegmentationEstimator],
    ids=lambda c: c.__name__,
)
def test_shared_estimator_from_four_threads(
    cls, cache, which, clips, sequential, tmp_path, network_runs
):
    files = clips if which == "different files" else [clips[2]] * 4
    position = {clip["uri"]: i for i, clip in enumerate(clips)}
    expected = [sequential[cls][position[f["uri"]]] for f in files]
    network_runs.clear()
    setting = {"off": False, "memory": True, "directory": str(tmp_path / "c")}[cache]
    if cache == "memory":
        get_cache(True).clear()  # cold: every thread finds nothing cached
    estimator = cls(cache=setting).fit()
    got = run_in_threads(estimator, files)
    for (regions, scores), (exp_regions, exp_scores) in zip(got, expected, strict=True):
        assert regions == exp_regions
        np.testing.assert_array_equal(scores, exp_scores)
    distinct = len({f["uri"] for f in files})
    if cache == "off":
        assert len(network_runs) == 2 * len(files)  # predict + decision_function
    else:
        # threads asking for the same cold file wait for one network run
        assert sorted(network_runs) == sorted({f["uri"] for f in files})
        assert len(network_runs) == distinct


def test_memory_lru_under_concurrent_eviction(
    clips, sequential, monkeypatch, network_runs
):
    cache = get_cache(True)
    cache.clear()
    one_file = clips[0]["waveform"].shape[1] // 8000 * 293 * 3 * 4
    # room for about one file's chunk scores: four threads keep evicting each other
    monkeypatch.setattr(cache, "max_bytes", int(1.5 * one_file))
    expected = [regions for regions, _ in sequential[SegmentationEstimator]]
    estimator = SegmentationEstimator(cache=True)
    for _ in range(3):
        got = run_in_threads(estimator, clips)
        assert [regions for regions, _ in got] == expected
        with cache._lock:
            held = sum(_nbytes(v) for v in cache._memory.values())
            assert cache._bytes == held <= cache.max_bytes
    assert len(network_runs) > 4  # evicted files were recomputed, not served stale
