"""Hostile audio: implausible rates and amplitudes are named errors at bounded cost."""

import struct

import numpy as np
import pytest

from skseg.audio import (
    MAX_AMPLITUDE,
    MAX_RESAMPLING_FACTOR,
    SAMPLE_RATE_RANGE,
    AudioReader,
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
    import soundfile as sf

    path = tmp_path / "loud.wav"
    sf.write(path, x[0], 16000, subtype="FLOAT")
    reader = AudioReader(path)
    with pytest.raises(AudioError, match=f"^{path}: implausible amplitude"):
        reader.read()


def test_integer_pcm_scale_is_accepted():
    # int32 PCM arrays (up to 2**31) are plausible and read unchanged
    x = (np.sin(np.arange(16000) / 5.0) * (2**31 - 1)).astype(np.int32)
    reader = AudioReader({"waveform": x[None], "sample_rate": 16000})
    np.testing.assert_array_equal(reader.read(), x.astype(np.float32))
    assert MAX_AMPLITUDE >= 2**31
