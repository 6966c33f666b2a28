"""`skseg stream` and the stream sources against hostile input (issue 25, round 3):
rates and headers that would amplify work, malformed and garbage streams, uris
that would forge RTTM lines, and memory over an endless stream. Each refusal is
one line naming the input and the problem; memory is measured in a fresh
process."""

import io
import struct
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from skseg import VADEstimator
from skseg.cli import main
from skseg.sources import MAX_READ_BYTES, byte_blocks
from skseg.streaming import StreamError, stream

from .helpers import Recorder
from .hostile import peak_memory

SR = 16000


def run_stdin(monkeypatch, capsys, argv, data):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    status = main(["stream", *argv])
    out = capsys.readouterr()
    return status, out.out, out.err


def pcm16(audio):
    return (np.clip(audio, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()


def wav_header(rate=SR, channels=1, bits=16, tag=1, size=0xFFFFFFFF):
    """A streaming WAV header (data size unknown) with any fmt values."""
    align = channels * bits // 8
    byte_rate = (rate * align) & 0xFFFFFFFF  # as a writer overflowing would
    fmt = struct.pack("<HHIIHH", tag, channels, rate, byte_rate, align & 0xFFFF, bits)
    return (
        b"RIFF"
        + struct.pack("<I", 0xFFFFFFFF)
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", size)
    )


# -- --uri: refused as the file commands refuse it -----------------------------------
@pytest.mark.parametrize(
    "uri",
    ["a\tb", "a\nSPEAKER victim 1 0.000 9.000 <NA> <NA> SPEECH <NA> <NA>", "a b"],
    ids=["tab", "newline", "space"],
)
def test_a_uri_rttm_cannot_hold_is_refused_like_the_file_commands(
    monkeypatch, capsys, tmp_path, sample_waveform, uri
):
    speech = pcm16(sample_waveform[: 10 * SR])  # speech: lines would be written
    status, out, err = run_stdin(
        monkeypatch, capsys, ["vad", "-", "--uri", uri], speech
    )
    assert status == 1 and out == ""  # no line at all, forged or not
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"--uri: uri {uri!r} cannot be written to RTTM/UEM" in err
    # the same uri from a file name: the same refusal as `skseg vad`
    path = tmp_path / f"{uri}.wav"
    sf.write(path, sample_waveform[: 10 * SR], SR)
    status, out, err = run_stdin(monkeypatch, capsys, ["vad", str(path)], b"")
    assert status == 1 and out == "" and len(err.splitlines()) == 1
    assert f"uri {uri!r} cannot be written to RTTM/UEM" in err
    assert main(["vad", str(path), "--quiet"]) == 1
    file_command = capsys.readouterr()
    assert file_command.out == ""
    assert f"uri {uri!r} cannot be written to RTTM/UEM" in file_command.err


# -- rates and headers that amplify work ----------------------------------------------
AMPLIFY = """
import io
from skseg.sources import byte_blocks
from skseg.streaming import StreamError
try:
    list(byte_blocks(io.BytesIO({data!r}), {format!r}, rate={rate!r}))
    result["error"] = None
except StreamError as e:
    result["error"] = str(e)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "format, rate, data",
    [
        ("s16le", 383_999, bytes(3200)),  # --rate 383999: an 8 M-tap filter
        ("wav", None, wav_header(rate=383_999) + bytes(3200)),  # a WAV header's
    ],
    ids=["--rate", "wav-header"],
)
def test_a_rate_needing_a_huge_resampling_filter_is_refused_cheaply(format, rate, data):
    result = peak_memory(AMPLIFY.format(data=data, format=format, rate=rate))
    assert "needs a factor of 383999 (more than 65536)" in result["error"]
    assert result["grown_mib"] < 64  # unguarded: 400 MB and seconds


def test_a_header_with_absurd_channels_is_refused():
    data = wav_header(rate=384_000, channels=65535) + bytes(100)
    with pytest.raises(StreamError, match="65535 interleaved channels is implausible"):
        list(byte_blocks(io.BytesIO(data), "wav"))


def test_absurd_channels_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["stream", "vad", "-", "--channels", "100000000"])
    assert exit.value.code == 2
    assert "--channels must lie between 1 and 256" in capsys.readouterr().err


@pytest.mark.parametrize(
    "data, block",
    [
        (wav_header(rate=384_000, channels=64) + bytes(4096), 0.1),  # 4.9 MB a read
        (bytes(4096), 1e6),  # --block 1000000: 32 GB a read
        (bytes(4096), 1e300),  # an overflow
    ],
    ids=["wav-64-channels", "block-1e6", "block-1e300"],
)
def test_one_read_asks_for_a_bounded_number_of_bytes(data, block):
    reader = Recorder(data)
    fmt = "wav" if data.startswith(b"RIFF") else "s16le"
    sum(len(b) for b in byte_blocks(reader, fmt, block=block))
    assert max(reader.reads) <= MAX_READ_BYTES


# -- malformed and garbage streams ----------------------------------------------------
def test_garbage_floats_are_refused_not_read_as_silence(
    monkeypatch, capsys, sample_waveform
):
    """Random bytes as f32le are mostly enormous numbers: offline decoding refuses
    them (the network's statistics overflow and every score is NaN, which reads as
    "no speech"); the stream refuses them the same way, after what came before."""
    audio = sample_waveform[: 12 * SR]
    garbage = np.random.default_rng(0).bytes(4 * SR)
    data = audio.astype("<f4").tobytes() + garbage
    status, out, err = run_stdin(
        monkeypatch, capsys, ["vad", "-", "--format", "f32le"], data
    )
    assert status == 1 and "Traceback" not in err
    assert "has an implausible amplitude" in err and "scale the audio" in err
    assert out.count("SPEECH") >= 1  # the regions before the garbage are kept
    live = stream(VADEstimator())
    with pytest.raises(StreamError, match="sample 1 of the block has an implausible"):
        live.feed(np.array([0.0, 1e20], dtype=np.float32))


def test_truncated_and_mutated_headers_fail_clearly():
    """Every prefix of a WAV header, and every byte of it replaced by garbage: the
    blocks, or a StreamError; never another exception or a huge allocation."""
    header = wav_header(rate=44100, channels=2) + bytes(400)
    rng = np.random.default_rng(1)
    cases = [header[:n] for n in range(len(header))]
    for position in range(44):
        for value in (0, 0xFF, int(rng.integers(256))):
            data = bytearray(header)
            data[position] = value
            cases.append(bytes(data))
    for data in cases:
        reader = Recorder(data)
        try:
            list(byte_blocks(reader, "wav"))
        except StreamError as e:
            assert str(e).startswith("standard input")
        assert max(reader.reads, default=0) <= MAX_READ_BYTES


# -- an endless stream ----------------------------------------------------------------
ENDLESS = """
import gc
import tracemalloc
import types

import numpy as np
from skseg import SegmentationEstimator, VADEstimator
from skseg.inference import Inference

# the network replaced by random scores of its shape: an hour of audio in seconds,
# the stream's own state is what is measured (speakers come and go every chunk)
real, shape, rng = Inference.__call__, {{}}, np.random.default_rng(0)


def fake(self, file, hook=None):
    sr = self.model.sample_rate
    window, step = round(self.duration * sr), round(self.step * sr)
    if not shape:
        zeros = {{"waveform": np.zeros((1, window), "float32"), "sample_rate": sr}}
        shape["frames"] = real(self, zeros).data.shape[1:]
    n = file["waveform"].shape[1]
    chunks = max(1, (n - window) // step + 1)
    scores = rng.random((chunks, *shape["frames"])).astype("float32")
    return types.SimpleNamespace(data=scores)


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


Inference.__call__ = fake
live = {estimator}.stream(latency=0.5)
block = np.zeros(10 * 16000, dtype="float32")
emitted, frames = 0, []
for k in range({minutes} * 6):
    emitted += len(live.feed(block))
    frames.append(live.buffered_frames)
    if k == 5 * 6:  # after five minutes
        tracemalloc.start()
    if k == 10 * 6:  # what is alive at ten, and what grows from then on
        gc.collect()
        start_traced, start_rss = tracemalloc.get_traced_memory()[0], rss()
gc.collect()
result["traced_growth_mib"] = (tracemalloc.get_traced_memory()[0] - start_traced) / 2**20
result["rss_growth_mib"] = rss() - start_rss
result["emitted"] = emitted + len(live.close())
result["frames"] = [min(frames[30:]), max(frames[30:])]
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "estimator",
    ["VADEstimator()", "SegmentationEstimator(stitch_threshold=0.05)"],
    ids=["vad", "segment"],
)
def test_an_endless_stream_holds_bounded_state(estimator):
    """30 minutes fed as fast as the stream takes it: after the first ten, what
    the stream holds does not grow (regions are handed out, not kept; speakers
    that stopped are forgotten, names included: unguarded, the names of the 9,000
    speakers met in the last 20 minutes were kept, 1 MB)."""
    result = peak_memory(ENDLESS.format(estimator=estimator, minutes=30), timeout=600)
    assert result["emitted"] >= 10
    low, high = result["frames"]
    assert low == high  # the buffers' capacity is flat
    assert result["traced_growth_mib"] < 0.25  # Python and NumPy objects alive
    assert result["rss_growth_mib"] < 16


@pytest.mark.slow
def test_a_full_standard_output_is_one_named_error(sample_waveform):
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "skseg", "stream", "vad", "-"],
            input=pcm16(sample_waveform[: 12 * SR]),
            stdout=full,
            stderr=subprocess.PIPE,
            timeout=600,
        )
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert err.splitlines() == [
        "skseg stream vad: standard output: No space left on device"
    ]
