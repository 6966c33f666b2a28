import os

import numpy as np
import pytest
import soundfile as sf
import torch

from skseg.audio import AudioReader, file_identity, validate_file
from skseg.exceptions import AudioError

from .conftest import write_wav


def tone(seconds=1.0, sr=16000, channels=1, freq=440.0):
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * freq * t).astype("float32")
    return np.stack([x * (c + 1) / channels for c in range(channels)], axis=1)


def test_path_and_dict_forms(tmp_path):
    path = write_wav(tmp_path / "a.wav", tone())
    assert validate_file(path) == {"audio": str(path), "uri": "a"}
    assert validate_file({"audio": path, "uri": "x"})["uri"] == "x"
    f = {"waveform": np.zeros((1, 10)), "sample_rate": 16000}
    assert validate_file(f) is not f and "uri" not in f


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG", "MP3"])
def test_decodes_common_formats(tmp_path, fmt):
    x = tone(1.0)
    path = tmp_path / f"t.{fmt.lower()}"
    sf.write(path, x, 16000, format=fmt)
    with AudioReader(path) as r:
        y = r.read()
    # lossy codecs add delay/padding; lengths stay within a frame of the original
    assert abs(len(y) - len(x)) < 2000
    assert y.dtype == np.float32
    if fmt in ("WAV", "FLAC"):
        np.testing.assert_allclose(y, x[:, 0], atol=1e-4)


def test_stereo_is_averaged_and_channel_selects(tmp_path):
    x = tone(0.5, channels=2)
    path = write_wav(tmp_path / "s.wav", x, subtype="FLOAT")
    np.testing.assert_allclose(AudioReader(path).read(), x.mean(axis=1), atol=1e-7)
    np.testing.assert_allclose(
        AudioReader({"audio": path, "channel": 2}).read(), x[:, 1]
    )


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_resamples_to_16k(tmp_path, sr):
    path = write_wav(tmp_path / "r.wav", tone(1.0, sr=sr), sr=sr, subtype="FLOAT")
    r = AudioReader(path)
    assert r.num_samples == 16000
    ref = tone(1.0)[:, 0]
    # band-limited resampling of a 440 Hz tone: equal away from the edges
    np.testing.assert_allclose(r.read()[500:-500], ref[500:-500], atol=2e-3)


def test_waveform_numpy_and_torch_agree():
    x = tone(0.25, channels=3).T
    a = AudioReader({"waveform": x, "sample_rate": 16000}).read()
    b = AudioReader({"waveform": torch.from_numpy(x), "sample_rate": 16000}).read()
    np.testing.assert_array_equal(a, b)


def test_block_reads_equal_whole_read(tmp_path):
    path = write_wav(tmp_path / "b.wav", tone(2.0), subtype="FLOAT")
    r = AudioReader(path)
    whole = r.read()
    np.testing.assert_array_equal(
        np.concatenate([r.read(0, 7000), r.read(7000, 32000)]), whole
    )
    assert len(r.read(31990, 40000)) == 10


def write_bytes(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda d: d / "missing.wav", "file not found"),
        (lambda d: d, "is a directory"),
        (lambda d: write_bytes(d / "empty.wav", b""), "empty file"),
        (lambda d: write_bytes(d / "junk.wav", os.urandom(4096)), "cannot decode"),
        (
            lambda d: write_wav(d / "zero.wav", np.zeros((0, 1), "float32")),
            "zero-length",
        ),
    ],
)
def test_bad_paths_name_the_file(tmp_path, make, problem):
    path = make(tmp_path)
    with pytest.raises(AudioError, match=problem) as info:
        AudioReader(path).read()
    assert info.value.file == str(path)
    assert str(path) in str(info.value)


def test_truncated_wav(tmp_path):
    path = write_wav(tmp_path / "t.wav", tone(1.0))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        AudioError, match=r"t\.wav: truncated: the header announces 32000 bytes"
    ):
        AudioReader(path).read()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_samples(tmp_path, bad):
    x = tone(1.0)
    x[8000] = bad
    path = write_wav(tmp_path / "nan.wav", x, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"non-finite sample .* 0\.500 s"):
        AudioReader(path).read()
    with pytest.raises(AudioError, match="call-3: non-finite"):
        AudioReader({"waveform": x.T, "sample_rate": 16000, "uri": "call-3"})


@pytest.mark.parametrize(
    "file, problem",
    [
        ({"waveform": np.zeros((1, 100))}, "without 'sample_rate'"),
        ({"waveform": np.zeros((100, 2)), "sample_rate": 16000}, "transpose"),
        ({"waveform": np.zeros((1, 0)), "sample_rate": 16000}, "zero-length"),
        ({"waveform": np.zeros((1, 10)), "sample_rate": -1}, "invalid sample rate"),
        ({"uri": "x"}, "neither 'audio' nor 'waveform'"),
        (42, "not int"),
    ],
)
def test_bad_dicts(file, problem):
    with pytest.raises(AudioError, match=problem):
        AudioReader(file)


def test_identity_changes_with_content(tmp_path):
    path = write_wav(tmp_path / "i.wav", tone(0.1))
    k1 = file_identity(path)
    assert file_identity({"audio": str(path), "uri": "other"}) == k1
    write_wav(path, tone(0.2))
    os.utime(path, ns=(1, 1))
    assert file_identity(path) != k1
