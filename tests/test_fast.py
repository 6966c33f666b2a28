"""The opt-in fast inference mode: what it changes, and how close it stays."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

from skseg import (
    Inference,
    OSDEstimator,
    ResegmentationEstimator,
    SegmentationEstimator,
    VADEstimator,
    aggregate,
)
from skseg.inference import MODES
from skseg.metrics import DetectionErrorRateScorer

# pyannote.audio 4.0.7's VAD pipeline with its defaults on the sample
# (shared/peers/pipelines_pyannote407.json: detection_error_rate)
PYANNOTE_DETER = 0.016451469278717618


@pytest.fixture(scope="module")
def fast_chunks(model, sample):
    return Inference(model, mode="fast")(sample)


def test_fast_mode_chunking(model, fast_chunks):
    step = MODES["fast"]["step_fraction"] * model.duration
    assert fast_chunks.sliding_window.step == step == 1.25
    # (30 - 5) / 1.25 = 20 steps: 21 complete chunks, none padded
    assert fast_chunks.data.shape == (21, 293, 3) and not fast_chunks.last_chunk_padded
    assert np.isfinite(fast_chunks.data).all()


def test_fast_speech_score_stays_close(fast_chunks, reference_scores):
    speech = aggregate(fast_chunks, reduction="speech").data
    assert speech.shape == reference_scores["speech"].shape
    diff = np.abs(speech - reference_scores["speech"])
    # larger step = fewer chunks averaged per frame: close, but not identical
    assert 0 < diff.max() < 0.3 and diff.mean() < 0.02


def test_fast_detection_error_within_half_a_point(sample):
    fast = VADEstimator(mode="fast", cache=False)
    deter = -DetectionErrorRateScorer(target="speech")(fast, [sample])
    assert abs(deter - PYANNOTE_DETER) <= 0.005


@pytest.mark.slow
def test_estimators_take_the_mode_as_a_parameter(sample):
    exact, fast = VADEstimator(), VADEstimator(mode="fast")
    assert exact.get_params()["mode"] == "exact" and clone(fast).mode == "fast"
    # the score cache keeps the modes apart: same file, different scores
    a, b = exact.decision_function([sample])[0], fast.decision_function([sample])[0]
    n = min(len(a.data), len(b.data))
    assert n > 1700 and not np.array_equal(a.data[:n], b.data[:n])
    assert np.array_equal(
        a.data, VADEstimator(cache=False).decision_function([sample])[0].data
    )
    for estimator in (OSDEstimator, SegmentationEstimator, ResegmentationEstimator):
        assert estimator(mode="fast").get_params()["mode"] == "fast"
    with pytest.raises(InvalidParameterError, match="'mode' parameter"):
        VADEstimator(mode="turbo").predict([sample])


@pytest.mark.slow
def test_fast_mode_with_explicit_step_and_padding(model, sample_waveform):
    wav = sample_waveform[: int(16000 * 12.34)]
    file = {"waveform": wav[None], "sample_rate": 16000}
    exact = Inference(model, step=0.5)(file)
    fast = Inference(model, step=0.5, mode="fast")(file)
    assert fast.data.shape == exact.data.shape and fast.last_chunk_padded
    # int8 may swap which speaker slot a voice lands in (the model is permutation
    # invariant), so compare what the pipelines use: the per-frame speech score
    a = aggregate(fast, reduction="speech").data
    b = aggregate(exact, reduction="speech").data
    assert a.shape == b.shape
    assert np.abs(a - b).max() < 0.1 and np.abs(a - b).mean() < 0.01


def test_unknown_mode(model):
    with pytest.raises(
        ValueError, match="'mode' parameter of Inference must be one of"
    ):
        Inference(model, mode="turbo")


@pytest.mark.slow
def test_balanced_mode_keeps_frame_scores_within_1e4(model, sample, reference_scores):
    chunks = Inference(model, mode="balanced")(sample)
    assert chunks.sliding_window.step == 0.5 and chunks.data.shape == (51, 293, 3)
    # the speech score the VAD binarizes stays within 1e-4; the overlap score
    # (second-largest speaker) is more sensitive (docs/performance.md)
    for reduction, bound in (("speech", 1e-4), ("overlap", 5e-4)):
        frames = aggregate(chunks, reduction=reduction).data
        assert np.abs(frames - reference_scores[reduction]).max() <= bound
    # raw chunk scores move more (the network amplifies float32 rounding), but not
    # beyond what the docs state
    exact = Inference(model)(sample)
    assert 0 < np.abs(chunks.data - exact.data).max() < 1e-2
    balanced = VADEstimator(mode="balanced").predict([sample])[0]
    assert balanced == VADEstimator().predict([sample])[0]
