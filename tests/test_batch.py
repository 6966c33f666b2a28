"""Batch fault isolation: one bad file fails alone, nothing computed is lost."""

import numpy as np
import pytest
import soundfile as sf

from skseg import VADEstimator
from skseg.batch import BatchResult, FileFailure, predict_many
from skseg.exceptions import AudioError, FileError

from .conftest import write_wav


@pytest.fixture(scope="module")
def fifty(tmp_path_factory, sample_waveform):
    """50 short files cut from the sample, 3 of them bad in different ways."""
    folder = tmp_path_factory.mktemp("fifty")
    rng = np.random.default_rng(0)
    paths, bad = [], {}
    for i in range(50):
        path = folder / f"f{i:02d}.wav"
        start = int(rng.integers(0, len(sample_waveform) - 48000))
        write_wav(path, sample_waveform[start : start + 32000])
        paths.append(str(path))
    # missing, random bytes named .wav, zero-length audio
    bad[7] = str(folder / "gone.wav")
    paths[7] = bad[7]
    (folder / "noise.wav").write_bytes(rng.bytes(5000))
    bad[23] = paths[23] = str(folder / "noise.wav")
    sf.write(folder / "empty.wav", np.zeros(0, dtype="float32"), 16000)
    bad[41] = paths[41] = str(folder / "empty.wav")
    return paths, bad


def test_fifty_files_three_bad_collect(fifty):
    paths, bad = fifty
    estimator = VADEstimator()
    seen, failed, ticks = {}, {}, []
    result = predict_many(
        estimator,
        paths,
        errors="collect",
        on_result=lambda i, file, out: seen.__setitem__(i, out),
        on_error=lambda i, file, failure: failed.__setitem__(i, failure),
        progress=lambda done, total: ticks.append((done, total)),
    )
    assert isinstance(result, BatchResult) and not result.ok and len(result) == 50
    assert [f.index for f in result.failures] == sorted(bad)
    assert [f.file for f in result.failures] == [bad[i] for i in sorted(bad)]
    for failure in result.failures:
        assert isinstance(failure.error, AudioError)
        assert str(failure).startswith(failure.file + ": ")
    assert "file not found" in str(result.failures[0])
    # 47 results, each equal to predicting that file alone
    good = dict(result.succeeded())
    assert len(good) == 47 and set(good) == set(seen) and set(failed) == set(bad)
    for i in (0, 22, 49):
        assert good[i] == estimator.predict([paths[i]])[0]
        assert good[i].uri == f"f{i:02d}"
    assert ticks[-1] == (50, 50) and len(ticks) == 50


def test_raise_is_the_default_and_keeps_what_was_done(fifty):
    paths, bad = fifty
    seen = []
    with pytest.raises(FileError, match="gone.wav"):
        predict_many(
            VADEstimator(), paths[:10], on_result=lambda i, f, out: seen.append(i)
        )
    assert seen == list(range(7))


@pytest.mark.slow
def test_parallel_matches_sequential(fifty):
    paths, bad = fifty
    files = paths[:6] + [paths[7]]
    sequential = predict_many(VADEstimator(), files, errors="collect")
    order = []
    parallel = predict_many(
        VADEstimator(),
        files,
        errors="collect",
        n_jobs=2,
        on_result=lambda i, f, out: order.append(i),
    )
    assert parallel.outputs == sequential.outputs
    assert [str(f) for f in parallel.failures] == [str(f) for f in sequential.failures]
    assert sorted(order) == list(range(6))


def test_methods_and_failure_of_unexpected_errors(fifty):
    paths, _ = fifty
    scores = predict_many(VADEstimator(), paths[:2], method="decision_function")
    assert scores.outputs[0].data.shape[1] == 1
    moved = predict_many(VADEstimator(), paths[:1], method="transform")
    assert moved.outputs[0]["speech"] == VADEstimator().predict(paths[:1])[0]
    # a malformed dict is reported per file like any other problem
    result = predict_many(VADEstimator(), [{"no": "audio"}, paths[0]], errors="collect")
    assert [f.index for f in result.failures] == [0]
    assert "neither 'audio' nor 'waveform'" in result.failures[0].problem


def test_bad_arguments_fail_before_any_file():
    with pytest.raises(ValueError, match="method"):
        predict_many(VADEstimator(), [], method="fit")
    with pytest.raises(ValueError, match="errors"):
        predict_many(VADEstimator(), [], errors="ignore")
    # invalid hyper-parameters concern the whole batch, not each file
    with pytest.raises(ValueError, match="onset"):
        predict_many(VADEstimator(onset=2.0), ["a.wav", "b.wav"], errors="collect")


def test_failure_str_for_unexpected_errors():
    failure = FileFailure(0, "x.wav", KeyError("boom"))
    assert str(failure) == "x.wav: KeyError: 'boom'"
