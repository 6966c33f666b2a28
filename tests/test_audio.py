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


# -- streaming: blocks equal whole-file decoding, memory bounded by the blocks ------
def noise(seconds, sr, channels, seed=0):
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((int(seconds * sr), channels))).astype("float32")


def whole_resample_poly(x, sr, channel=None):
    """What the reader must match: downmix (or select), then resample_poly whole."""
    from math import gcd

    from scipy.signal import resample_poly

    mono = x[:, channel - 1] if channel else x.mean(axis=1, dtype=np.float32)
    g = gcd(16000, sr)
    return resample_poly(mono, 16000 // g, sr // g).astype(np.float32)


def inference_ranges(n, window, step, batch):
    """Inference's read pattern: overlapping blocks of `batch` chunks, then the tail."""
    num_complete = 1 + (n - window) // step if n >= window else 0
    for c0 in range(0, num_complete, batch):
        c1 = min(c0 + batch, num_complete)
        yield c0 * step, (c1 - 1) * step + window
    yield num_complete * step, n


@pytest.mark.parametrize("sr", [44100, 48000, 8000, 22050])
@pytest.mark.parametrize("channels", [1, 2])
def test_streamed_resampling_equals_whole_file(tmp_path, monkeypatch, sr, channels):
    import skseg.audio

    # tiny cache: blocks too large to keep are exercised as well
    monkeypatch.setattr(skseg.audio, "_CACHE_MAX_SAMPLES", 2500)
    x = noise(1.37, sr, channels)
    path = write_wav(tmp_path / "x.wav", x, sr=sr, subtype="FLOAT")
    ref = whole_resample_poly(x, sr)
    reader = AudioReader(path)
    assert reader.num_samples == len(ref)
    # Inference's pattern with awkward, non-aligned windows and steps
    for window, step, batch in [(997, 331, 3), (1600, 800, 1), (4001, 7, 50)]:
        for a, b in inference_ranges(reader.num_samples, window, step, batch):
            np.testing.assert_allclose(reader.read(a, b), ref[a:b], rtol=0, atol=1e-6)
    # random access, backwards included, and ranges touching both ends
    rng = np.random.default_rng(1)
    ranges = [(0, 1), (len(ref) - 1, len(ref)), (-5, 3), (len(ref) - 3, len(ref) + 9)]
    ranges += [tuple(sorted(rng.integers(0, len(ref), 2))) for _ in range(30)]
    for a, b in ranges:
        np.testing.assert_allclose(
            reader.read(a, b), ref[max(a, 0) : b], rtol=0, atol=1e-6
        )
    np.testing.assert_allclose(AudioReader(path).read(), ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("frames", [1, 2, 3, 440, 441, 442, 44100 + 7])
def test_num_samples_is_resample_polys_length_without_decoding(
    tmp_path, monkeypatch, frames
):
    x = noise(frames / 44100, 44100, 2)
    assert len(x) == frames
    path = write_wav(tmp_path / "n.wav", x, sr=44100, subtype="FLOAT")
    decoded = []
    original = AudioReader._read_handle
    monkeypatch.setattr(
        AudioReader,
        "_read_handle",
        lambda self, a, b: decoded.append((a, b)) or original(self, a, b),
    )
    reader = AudioReader(path)
    ref = whole_resample_poly(x, 44100)
    assert reader.num_samples == len(ref)
    assert decoded == []  # the length came from the header
    np.testing.assert_allclose(reader.read(), ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("sr", [16000, 48000])
def test_sequential_reads_decode_each_sample_about_once(tmp_path, monkeypatch, sr):
    x = noise(6.0, sr, 2)
    path = write_wav(tmp_path / "s.wav", x, sr=sr, subtype="FLOAT")
    decoded = []
    original = AudioReader._read_handle
    monkeypatch.setattr(
        AudioReader,
        "_read_handle",
        lambda self, a, b: decoded.append((a, b)) or original(self, a, b),
    )
    reader = AudioReader(path)
    blocks = list(inference_ranges(reader.num_samples, 16000, 4000, 4))
    for a, b in blocks:
        reader.read(a, b)
    # never the whole file at once: each decode is at most one block plus the
    # resampling filter's context, at the native rate
    largest = max(b - a for a, b in blocks) * sr // 16000
    assert max(b - a for a, b in decoded) <= largest + 2000
    # overlaps are served from the last block: little more than the file in total
    assert sum(b - a for a, b in decoded) <= len(x) + 2000 * len(blocks)
    # each decode goes on where the last one stopped: a compressed stream is
    # decoded in one pass, never sought back into
    assert all(a1 == b0 for (_, b0), (a1, _) in zip(decoded, decoded[1:], strict=False))


@pytest.mark.parametrize("fmt", ["OGG", "MP3"])
def test_compressed_resampled_blocks_equal_whole_read(tmp_path, fmt):
    x = noise(3.0, 44100, 2)
    path = tmp_path / f"c.{fmt.lower()}"
    sf.write(path, x, 44100, format=fmt)
    whole = AudioReader(path).read()
    reader = AudioReader(path)
    for a, b in inference_ranges(reader.num_samples, 16000, 4000, 3):
        np.testing.assert_array_equal(reader.read(a, b), whole[a:b])


def test_streamed_channel_selection_and_errors(tmp_path):
    x = noise(2.0, 48000, 2)
    path = write_wav(tmp_path / "c.wav", x, sr=48000, subtype="FLOAT")
    reader = AudioReader({"audio": path, "channel": 2})
    np.testing.assert_allclose(
        reader.read(), whole_resample_poly(x, 48000, channel=2), rtol=0, atol=1e-6
    )
    with pytest.raises(AudioError, match=r"c\.wav: 'channel' is 1-based .* got 3"):
        AudioReader({"audio": path, "channel": 3})


def test_non_finite_sample_found_while_streaming(tmp_path):
    x = noise(3.0, 44100, 1)
    x[44100 + 5] = np.nan
    path = write_wav(tmp_path / "n.wav", x, sr=44100, subtype="FLOAT")
    reader = AudioReader(path)  # opening decodes nothing
    assert np.isfinite(reader.read(32000, 48000)).all()  # 2 s to 3 s: clean
    with pytest.raises(
        AudioError, match=r"n\.wav: non-finite sample .* at 1\.000 s \(sample 44105\)"
    ):
        reader.read(15000, 17000)


def test_truncated_resampled_wav(tmp_path):
    path = write_wav(tmp_path / "t.wav", noise(1.0, 44100, 2), sr=44100)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioError, match=r"t\.wav: truncated: the header announces"):
        AudioReader(path)


def test_waveform_streams_and_is_never_aliased():
    x = noise(1.5, 22050, 2).T.copy()
    before = x.copy()
    reader = AudioReader({"waveform": x, "sample_rate": 22050})
    ref = whole_resample_poly(x.T, 22050)
    y = reader.read(100, 900)
    np.testing.assert_allclose(y, ref[100:900], rtol=0, atol=1e-6)
    y[:] = 7.0  # the caller owns what read returns: the next read is unaffected
    np.testing.assert_allclose(reader.read(200, 800), ref[200:800], rtol=0, atol=1e-6)
    mono = x[:1]
    z = AudioReader({"waveform": mono, "sample_rate": 16000}).read()
    z[:] = 7.0
    np.testing.assert_array_equal(x, before)
