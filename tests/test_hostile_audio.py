"""Hostile audio: implausible rates and amplitudes are named errors at bounded cost."""

import hashlib
import struct
import wave

import numpy as np
import pytest
import soundfile as sf

from skseg.audio import (
    MAX_RESAMPLING_FACTOR,
    SAMPLE_RATE_RANGE,
    AudioReader,
    file_identity,
)
from skseg.exceptions import AudioError

from .hostile import peak_memory


def wav_bytes(sample_rate: int, num_frames: int) -> bytes:
    """A 16-bit mono PCM WAV whose header declares ``sample_rate``."""
    data = (np.sin(np.arange(num_frames) / 7.0) * 8000).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.slow
@pytest.mark.parametrize("rate", [1, 999, 384_001, 3_000_000, 100_000_000])
def test_implausible_header_rates_are_refused_cheaply(tmp_path, rate):
    path = tmp_path / f"rate{rate}.wav"
    path.write_bytes(wav_bytes(rate, 6000))  # 12 KB
    result = peak_memory(
        f"""
        try:
            skseg.audio.AudioReader({str(path)!r})
        except skseg.AudioError as e:
            result["error"] = str(e)
        """,
        timeout=60,
    )
    assert result["error"] == (
        f"{path}: implausible sample rate {rate} Hz (skseg reads 1000 to 384000 Hz)"
    )
    assert result["grown_mib"] < 64


@pytest.mark.slow
def test_a_rate_needing_a_huge_resampling_filter_is_refused_cheaply(tmp_path):
    # 383,999 Hz is in range but shares no factor with 16 kHz: an 8 M-tap filter
    path = tmp_path / "odd.wav"
    path.write_bytes(wav_bytes(383_999, 6000))
    result = peak_memory(
        f"""
        try:
            skseg.audio.AudioReader({str(path)!r})
        except skseg.AudioError as e:
            result["error"] = str(e)
        """,
        timeout=60,
    )
    assert result["error"].startswith(f"{path}: resampling 383999 Hz to 16000 Hz")
    assert f"more than {MAX_RESAMPLING_FACTOR}" in result["error"]
    assert result["grown_mib"] < 64


@pytest.mark.parametrize("rate", [1000, 8000, 44100, 47952, 384_000])
def test_plausible_rates_still_read(tmp_path, rate):
    path = tmp_path / "ok.wav"
    path.write_bytes(wav_bytes(rate, rate // 10))
    with AudioReader(path) as reader:
        assert reader.native_sample_rate == rate
        assert reader.num_samples == -(-(rate // 10) * 16000 // rate)
        assert reader.read().shape == (reader.num_samples,)


@pytest.mark.parametrize("rate", [True, np.True_, False])
def test_a_bool_is_not_a_sample_rate(rate):
    file = {"waveform": np.zeros((1, 16000)), "sample_rate": rate, "uri": "b"}
    with pytest.raises(AudioError, match=r"^b: invalid sample rate .* \(a bool"):
        AudioReader(file)


def test_waveform_rates_have_the_same_range():
    low, high = SAMPLE_RATE_RANGE
    for rate in (low - 1, high + 1, 10**30):
        file = {"waveform": np.zeros((1, 16000)), "sample_rate": rate, "uri": "w"}
        with pytest.raises(AudioError, match="^w: implausible sample rate"):
            AudioReader(file)


@pytest.mark.parametrize("scale", [1e20, -1e12, 2.0**33])
def test_implausible_amplitudes_are_refused(scale, tmp_path):
    x = np.zeros((1, 32000), dtype=np.float32)
    x[0, 20000] = scale
    with pytest.raises(
        AudioError,
        match=r"^loud: implausible amplitude .* at 1\.250 s \(sample 20000\)",
    ):
        AudioReader({"waveform": x, "sample_rate": 16000, "uri": "loud"})
    # from a file, when the block is read
    path = tmp_path / "loud.wav"
    sf.write(path, x[0], 16000, subtype="FLOAT")
    reader = AudioReader(path)
    with pytest.raises(AudioError, match=f"^{path}: implausible amplitude"):
        reader.read()


def test_integer_pcm_scale_is_accepted():
    # int32 PCM arrays were read unscaled (up to 2**31), unlike the PCM_32 file they
    # came from (issue 25): they are read as libsndfile reads it, x / 2**31
    x = (np.sin(np.arange(16000) / 5.0) * (2**31 - 1)).astype(np.int32)
    reader = AudioReader({"waveform": x[None], "sample_rate": 16000})
    expected = x.astype(np.float32) * np.float32(2.0**-31)
    np.testing.assert_array_equal(reader.read(), expected)
    assert np.abs(reader.read()).max() <= 1.0


def _pcm_file_and_array(tmp_path, dtype: str):
    """A stereo PCM file of ``dtype``'s width and its samples as that integer dtype."""
    fmt, subtype = {
        "uint8": ("WAV", "PCM_U8"),
        # signed 8-bit PCM is not WAV: AIFF holds it
        "int8": ("AIFF", "PCM_S8"),
        "int16": ("WAV", "PCM_16"),
        "int32": ("WAV", "PCM_32"),
    }[dtype]
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (8000, 2))
    x[:4] = [[-1.0, 1.0], [0.0, -0.5], [0.5, 0.999], [-0.999, 0.25]]  # full scale too
    path = tmp_path / f"{dtype}.{fmt.lower()}"
    sf.write(path, x, 8000, format=fmt, subtype=subtype)
    if dtype == "uint8":
        # the stored bytes themselves, not libsndfile's reading of them
        with wave.open(str(path)) as w:
            frames = w.readframes(w.getnframes())
        ints = np.frombuffer(frames, dtype=np.uint8).reshape(-1, 2)
    elif dtype == "int8":
        # libsndfile reads 8-bit PCM as int16 by shifting it left by 8 bits
        ints = (sf.read(path, dtype="int16")[0] >> 8).astype(np.int8)
    else:
        ints = sf.read(path, dtype=dtype)[0]
    assert ints.dtype == np.dtype(dtype)
    assert len(np.unique(ints)) > 100  # the whole range is exercised, not one value
    return path, np.ascontiguousarray(ints.T)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32"])
@pytest.mark.parametrize("channel", [None, 1, 2])
@pytest.mark.parametrize("rate", [8000, 16000])
def test_a_pcm_array_reads_as_the_file_it_came_from(tmp_path, dtype, channel, rate):
    path, ints = _pcm_file_and_array(tmp_path, dtype)
    array = {"waveform": ints, "sample_rate": 8000, "channel": channel}
    with AudioReader({"audio": path, "channel": channel}, rate) as from_file:
        expected = from_file.read()
    with AudioReader(array, rate) as from_array:
        np.testing.assert_array_equal(from_array.read(), expected)
    # the same samples as the file read alone, at its own rate
    if channel is not None and rate == 8000:
        alone = sf.read(path, dtype="float32", always_2d=True)[0][:, channel - 1]
        np.testing.assert_array_equal(expected, alone)


def test_uint8_silence_reads_as_zero():
    # 8-bit WAV is unsigned: 128 is silence, and 0 and 255 the two extremes
    silence = np.full((1, 16000), 128, dtype=np.uint8)
    with AudioReader({"waveform": silence, "sample_rate": 16000}) as reader:
        assert not reader.read().any()
    extremes = np.tile(np.uint8([0, 255, 128, 64]), 4000)[None]
    with AudioReader({"waveform": extremes, "sample_rate": 16000}) as reader:
        np.testing.assert_array_equal(
            reader.read(0, 4), np.float32([-1.0, 127 / 128, 0.0, -0.5])
        )


@pytest.mark.parametrize(
    "dtype",
    [
        "bool",
        "complex64",
        "complex128",
        "object",
        "int64",
        "uint16",
        "uint32",
        "uint64",
    ],
)
def test_dtypes_without_a_pcm_scale_are_refused_in_one_line(dtype):
    file = {
        "waveform": np.zeros((1, 16000), dtype=dtype),
        "sample_rate": 16000,
        "uri": "call-7",
    }
    for read in (AudioReader, file_identity):
        with pytest.raises(AudioError) as info:
            read(file)
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith("call-7: ")
        assert str(np.dtype(dtype)) in message
        assert "convert it to float in [-1, 1]" in message


def test_the_cache_key_follows_the_samples_read():
    x = (np.sin(np.arange(16000) / 5.0) * 20000).astype(np.int16)[None]
    as_float = x.astype(np.float32) / 32768
    same_bytes = x.view(np.float16)  # other samples in the very same buffer
    keys = {
        file_identity({"waveform": w, "sample_rate": 16000})
        for w in (x, as_float, same_bytes)
    }
    assert len(keys) == 3
    # the key the unscaled reading was cached under is not this one: a cache
    # directory filled before must not serve those scores for the scaled samples
    h = hashlib.sha256(b"waveform")
    h.update(str((x.shape, x.dtype.str, 16000)).encode())
    h.update(x.tobytes())
    assert h.hexdigest() not in keys
    # equal samples read equal, whichever dtype held them
    with AudioReader({"waveform": x, "sample_rate": 16000}) as a:
        with AudioReader({"waveform": as_float, "sample_rate": 16000}) as b:
            np.testing.assert_array_equal(a.read(), b.read())
