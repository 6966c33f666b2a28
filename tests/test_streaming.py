"""Streaming (skseg.streaming, skseg.sources, `skseg stream`): at latency = chunk
duration the stream's regions are the offline ones, on the sample and on generated
audio, through the Python API (random block sizes) and the command (a real pipe);
lower latencies give valid regions, in order, each once; bad input fails clearly
without losing or repeating what was emitted."""

import io
import subprocess
import sys
import types

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly
from sklearn.base import clone

from skseg import (
    OSDEstimator,
    ResegmentationEstimator,
    SegmentationEstimator,
    VADEstimator,
)
from skseg.cli import main
from skseg.sources import PCMDecoder, Resampler, byte_blocks, microphone
from skseg.streaming import Region, StreamError, stream, to_annotation

from .helpers import Recorder, max_boundary_diff, rttm_segments, segments

SR = 16000


def regions_of(estimator, audio, latency=None, blocks=None, seed=0):
    """Stream `audio` in random blocks; return (regions, the times they came out)."""
    rng = np.random.default_rng(seed)
    live = stream(estimator, latency)
    out, when = [], []
    i = 0
    while i < len(audio):
        size = int(rng.integers(1, 24000)) if blocks is None else blocks
        new = live.feed(audio[i : i + size])
        i += size
        out += new
        when += [min(i, len(audio)) / SR] * len(new)
    new = live.close()
    return out + new, when + [len(audio) / SR] * len(new)


def offline(estimator, audio):
    # no score cache: the process-wide one would serve other tests' excerpts of
    # the sample (tests that count network runs)
    estimator = clone(estimator).set_params(cache=False)
    annotation = estimator({"waveform": audio[None], "sample_rate": SR, "uri": "x"})
    return segments(annotation)


def as_segments(regions):
    return sorted((r.start, r.end, r.label) for r in regions)


@pytest.fixture(scope="module")
def mixture(sample_waveform):
    """21.37 s of generated audio: two stretches of the sample's speech, one on top
    of the other for a while (overlap), in low noise, with a long quiet start."""
    rng = np.random.default_rng(7)
    n = int(21.37 * SR)
    x = 0.003 * rng.standard_normal(n).astype(np.float32)
    speech = sample_waveform
    x[int(3 * SR) : int(13 * SR)] += speech[int(7 * SR) : int(17 * SR)]
    x[int(9 * SR) : int(19 * SR)] += 0.8 * speech[int(18 * SR) : int(28 * SR)]
    return np.clip(x, -1, 1).astype(np.float32)


DETECTORS = [
    VADEstimator(),
    OSDEstimator(),
    # big gaps filled and short regions dropped: the duration rules' finality
    VADEstimator(onset=0.6, offset=0.4, min_duration_on=1.0, min_duration_off=0.8),
    OSDEstimator(onset=0.3, offset=0.3, min_duration_on=0.0, min_duration_off=0.0),
    # the powerset model: pyannote's hard rule ("auto") and thresholds on soft scores
    VADEstimator("pyannote/segmentation-3.0"),
    OSDEstimator("pyannote/segmentation-3.0"),
    VADEstimator("pyannote/segmentation-3.0", onset=0.7, offset=0.4),
    OSDEstimator("pyannote/segmentation-3.0", onset=0.3, min_duration_on=0.0),
]


# -- the guarantee: latency = chunk duration gives the offline regions -------------
@pytest.mark.slow
@pytest.mark.parametrize("estimator", DETECTORS, ids=lambda e: repr(e)[:60])
def test_offline_regions_at_chunk_latency(estimator, sample_waveform, mixture):
    for audio in (sample_waveform, mixture, mixture[: int(4.2 * SR)]):
        expected = offline(estimator, audio)
        for seed in (1, 2):
            got, _ = regions_of(estimator, audio, seed=seed)
            assert as_segments(got) == expected  # exactly: same floats


def test_offline_regions_tiny_and_huge_blocks(sample_waveform):
    vad = VADEstimator()
    audio = sample_waveform[: int(12.3 * SR)]
    expected = offline(vad, audio)
    for size in (len(audio), 7919):
        assert as_segments(regions_of(vad, audio, blocks=size)[0]) == expected
    # sample by sample over the part that holds speech boundaries
    live = stream(vad)
    got = live.feed(audio[: int(6 * SR)])
    for value in audio[int(6 * SR) : int(8 * SR)]:
        got += live.feed(np.array([value]))
    got += live.feed(audio[int(8 * SR) :]) + live.close()
    assert as_segments(got) == expected


def test_each_chunk_runs_once(sample_waveform):
    live = stream(VADEstimator())
    for i in range(0, len(sample_waveform), 1000):
        live.feed(sample_waveform[i : i + 1000])
    assert live.num_chunks == 51  # offline: (30 - 5) / 0.5 + 1
    live.close()
    assert live.num_chunks == 51  # 30 s ends on a chunk: no padded chunk


# -- lower latencies: valid, in order, each region once -----------------------------
@pytest.mark.slow
@pytest.mark.parametrize("latency", [0.5, 1.0, 2.0, 4.5])
@pytest.mark.parametrize("estimator", DETECTORS[:3], ids=lambda e: repr(e)[:60])
def test_lower_latencies_emit_valid_regions(estimator, latency, mixture):
    regions, when = regions_of(estimator, mixture, latency=latency, seed=3)
    previous_end = -np.inf
    for region, t in zip(regions, when, strict=True):
        assert region.start < region.end
        assert region.start >= previous_end  # monotonic, non-overlapping
        previous_end = region.end
        assert region.delay == pytest.approx(max(0.0, t - region.end), abs=1e-9)
        if t < len(mixture) / SR:  # emitted before the end of the stream
            # decided frames are `latency` old; the gap rule waits min_duration_off
            bound = latency + estimator.min_duration_off + 24000 / SR + 0.05
            assert region.delay <= bound
        if estimator.min_duration_on > 0:
            assert region.end - region.start >= estimator.min_duration_on
    assert regions, "speech is detected"
    if latency <= 1.0 and estimator.min_duration_off < 0.5:
        # some region comes out before the end (the mixture's speech ends 1.4 s
        # before it does)
        assert when[0] < len(mixture) / SR


def test_latency_range(sample_waveform):
    assert stream(VADEstimator(), latency=0.5).latency == 0.5
    assert stream(VADEstimator(mode="fast"), latency=1.25).latency == 1.25
    for bad in (0.2, 5.5, "1", True):
        with pytest.raises(StreamError, match="latency"):
            stream(VADEstimator(), latency=bad)
    with pytest.raises(StreamError, match="one step \\(1.25 s\\)"):
        VADEstimator(mode="fast").stream(latency=1.0)
    with pytest.raises(StreamError, match="cannot stream"):
        stream(ResegmentationEstimator())


# -- the API's bad input ---------------------------------------------------------------
def test_feed_checks_samples():
    live = stream(VADEstimator())
    with pytest.raises(StreamError, match="sample 2 of the block is not finite"):
        live.feed(np.array([0.0, 0.1, np.nan]))
    with pytest.raises(StreamError, match="1-D samples"):
        live.feed(np.zeros((2, 2, 2)))
    with pytest.raises(StreamError, match="real numbers"):
        live.feed(np.array(["a"]))
    # (samples, channels) blocks are averaged, as offline decoding does
    assert live.feed(np.zeros((800, 2), dtype=np.float32)) == []
    assert live.num_samples == 800
    assert live.close() == [] and live.close() == []
    with pytest.raises(StreamError, match="after close"):
        live.feed(np.zeros(10))


@pytest.mark.slow
def test_long_silence_keeps_memory_flat(sample_waveform):
    """Three minutes of digital silence, then speech: nothing from the silence, the
    speech at its place, and buffers that do not grow with the stream."""
    vad = VADEstimator()
    silence = np.zeros(180 * SR, dtype=np.float32)
    audio = np.concatenate([silence, sample_waveform])
    live = stream(vad, latency=0.5)
    sizes, out = [], []
    for i in range(0, len(audio), 8000):
        out += live.feed(audio[i : i + 8000])
        sizes.append((live.buffered_samples, live.buffered_frames))
    out += live.close()
    samples, frames = np.array(sizes).T
    assert samples.max() <= 5 * SR + 8000  # one chunk and one block
    assert frames.max() == frames[len(frames) // 10]  # flat after the start
    assert out and min(r.start for r in out) > 180
    # the same at chunk latency equals offline
    assert as_segments(regions_of(vad, audio, blocks=16000)[0]) == offline(vad, audio)


def test_clipping_is_audio_like_any_other(sample_waveform):
    """A clipped signal (x30 gain, limited to [-1, 1]) is not special: no rescaling,
    and the stream matches offline on the same clipped audio."""
    clipped = np.clip(30 * sample_waveform, -1, 1).astype(np.float32)
    assert np.mean(np.abs(clipped) == 1) > 0.01
    vad = VADEstimator()
    assert as_segments(regions_of(vad, clipped)[0]) == offline(vad, clipped)


def test_to_annotation():
    regions = [Region(0.0, 1.0, "SPEECH", 0.5), Region(2.0, 3.0, "SPEECH", 0.1)]
    annotation = to_annotation(regions, uri="mic")
    assert annotation.uri == "mic" and len(annotation) == 2


# -- sources -----------------------------------------------------------------------------
@pytest.mark.parametrize("rates", [(44100, SR), (8000, SR), (48000, SR), (22050, SR)])
def test_resampler_is_resample_poly(rates):
    rate_in, rate_out = rates
    x = np.random.default_rng(0).standard_normal(rate_in * 2 + 123).astype("f4")
    resample = Resampler(rate_in, rate_out)
    parts, i = [], 0
    rng = np.random.default_rng(1)
    while i < len(x):
        size = int(rng.integers(1, 3000))
        parts.append(resample(x[i : i + size]))
        i += size
    parts.append(resample.flush())
    y = np.concatenate(parts)
    g = np.gcd(rate_in, rate_out)
    expected = resample_poly(x, rate_out // g, rate_in // g)
    assert len(y) == len(expected)
    np.testing.assert_allclose(y, expected, atol=2e-6)


def test_pcm_decoder_odd_bytes_and_channels():
    decode = PCMDecoder("s16le", channels=2)
    pcm = np.array([16384, -16384, 8192, 8192], dtype="<i2").tobytes()
    assert decode(pcm[:5]).tolist() == [0.0]  # a frame and a byte
    assert decode(pcm[5:]).tolist() == [0.25]
    decode(b"\x01")
    with pytest.raises(StreamError, match="ended inside a sample: 1 trailing byte"):
        decode.finish()
    nan = np.array([0.5, np.nan], dtype="<f4").tobytes()
    decode = PCMDecoder("f32le")
    assert decode(nan).tolist() == [0.5]  # what comes before a NaN counts
    with pytest.raises(StreamError, match="sample 1 is not a finite number"):
        decode(nan)
    with pytest.raises(StreamError, match="sample 1 is not a finite number"):
        decode.finish()
    with pytest.raises(StreamError, match="unknown sample format"):
        PCMDecoder("s24le")


def test_reads_are_pulled_one_block_at_a_time():
    """Back-pressure: the source reads a block only when the previous one has been
    consumed, and never more than one block, so a fast writer blocks on the pipe
    instead of skseg buffering without bound."""
    pcm = np.zeros(10 * SR, dtype="<i2").tobytes()
    reader = Recorder(pcm)
    blocks = byte_blocks(reader, "s16le", block=0.1)
    next(blocks)  # the first 4 bytes (the header check)
    next(blocks)
    assert max(reader.reads) <= 3200 and len(reader.reads) == 2
    assert reader.position <= 4 + 3200
    rest = sum(len(b) for b in blocks)
    assert rest + 2 + 1600 == 10 * SR and max(reader.reads) <= 3200


def test_wav_stream_header_checks(tmp_path, sample_waveform):
    path = tmp_path / "x.wav"
    sf.write(path, sample_waveform[:SR], SR, subtype="PCM_16")
    data = path.read_bytes()
    blocks = list(byte_blocks(io.BytesIO(data), "wav"))
    expected, _ = sf.read(path, dtype="float32")
    np.testing.assert_array_equal(np.concatenate(blocks), expected)
    with pytest.raises(StreamError, match="says 16000 Hz, but the rate given is 8000"):
        list(byte_blocks(io.BytesIO(data), "wav", rate=8000))
    with pytest.raises(StreamError, match="starts with a WAV header"):
        list(byte_blocks(io.BytesIO(data), "s16le"))
    with pytest.raises(StreamError, match="not a WAV stream"):
        list(byte_blocks(io.BytesIO(data[44:]), "wav"))
    with pytest.raises(StreamError, match="ended inside the WAV header"):
        list(byte_blocks(io.BytesIO(data[:30]), "wav"))
    sf.write(path, sample_waveform[:SR], SR, subtype="PCM_24")
    with pytest.raises(StreamError, match="24-bit samples is not supported"):
        list(byte_blocks(io.BytesIO(path.read_bytes()), "wav"))
    with pytest.raises(StreamError, match="not plausible"):
        list(byte_blocks(io.BytesIO(data), "s16le", rate=10))


# -- the microphone, with a fake device ----------------------------------------------------
def fake_sounddevice(audio, blocks_at_once=None):
    """A `sounddevice` whose InputStream plays `audio` through the callback."""

    class InputStream:
        def __init__(self, samplerate, blocksize, channels, dtype, device, callback):
            assert samplerate == SR and dtype == "float32"
            self.blocksize, self.callback, self.channels = blocksize, callback, channels

        def __enter__(self):
            n = (
                len(audio)
                if blocks_at_once is None
                else blocks_at_once * self.blocksize
            )
            for i in range(0, n, self.blocksize):
                block = audio[i : i + self.blocksize, None]
                self.callback(np.repeat(block, self.channels, 1), len(block), None, 0)
            return self

        def __exit__(self, *exc):
            return False

    return types.SimpleNamespace(InputStream=InputStream)


def test_microphone_gives_offline_regions(monkeypatch, sample_waveform):
    audio = sample_waveform[: int(12.3 * SR)]
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(audio))
    blocks = microphone(block=0.1, max_lag=60.0)
    got = []
    live = stream(VADEstimator())
    for block in blocks:
        got += live.feed(block)
        if live.num_samples >= len(audio):
            blocks.close()  # Ctrl-C, in a program
            break
    got += live.close()
    assert as_segments(got) == offline(VADEstimator(), audio)


def test_microphone_command(monkeypatch, capsys, sample_waveform):
    """`skseg stream vad --mic` with a fake device that plays 9.3 s then stops:
    the regions of those 9.3 s (as offline), then the device's silence is named."""
    audio = sample_waveform[: int(9.3 * SR)]
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(audio))
    assert main(["stream", "vad", "--mic", "--block", "0.05"]) == 1
    out = capsys.readouterr()
    assert "microphone: no audio from the device for 1 s" in out.err
    got = [line.split() for line in out.out.splitlines()]
    assert all(row[1] == "microphone" for row in got)
    expected = offline(VADEstimator(), audio)
    assert len(got) == len(expected) > 0
    for row, (start, end, _) in zip(got, expected, strict=True):
        assert abs(float(row[3]) - start) <= 0.001
        assert abs(float(row[3]) + float(row[4]) - end) <= 0.001


def test_microphone_lagging_reader_fails_clearly(monkeypatch):
    audio = np.zeros(5 * SR, dtype=np.float32)
    monkeypatch.setitem(sys.modules, "sounddevice", fake_sounddevice(audio))
    blocks = microphone(block=0.1, max_lag=1.0)  # 10 blocks of queue, 50 arrive
    with pytest.raises(StreamError, match="fell more than 1 s behind real time"):
        list(blocks)


def test_microphone_without_sounddevice(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails
    with pytest.raises(ImportError, match="skseg\\[mic\\]"):
        next(microphone())
    with pytest.raises(SystemExit) as exit:
        main(["stream", "vad", "--mic"])
    assert exit.value.code == 2
    assert "skseg[mic]" in capsys.readouterr().err


# -- the command ---------------------------------------------------------------------------
def pipe(args, data):
    """`python -m skseg stream ARGS` with `data` on a real pipe."""
    return subprocess.run(
        [sys.executable, "-m", "skseg", "stream", *map(str, args)],
        input=data,
        capture_output=True,
        timeout=600,
    )


def pcm16(audio):
    return (np.clip(audio, -1, 32767 / 32768) * 32768).astype("<i2").tobytes()


@pytest.mark.slow
@pytest.mark.parametrize("task", ["vad", "osd"])
def test_command_on_stdin_prints_offline_regions(
    task, tmp_path, capsys, sample, mixture
):
    gen = tmp_path / "generated.wav"
    sf.write(gen, mixture, SR, subtype="PCM_16")
    for path in (sample["audio"], gen):
        assert main([task, str(path), "--rttm", str(tmp_path / "off.rttm")]) == 0
        pcm = sf.read(path, dtype="int16")[0].tobytes()  # raw PCM of the file
        done = pipe([task, "-"], pcm)
        assert done.returncode == 0, done.stderr
        (tmp_path / "on.rttm").write_bytes(done.stdout)
        on, off = (
            rttm_segments(tmp_path / "on.rttm"),
            rttm_segments(tmp_path / "off.rttm"),
        )
        assert len(on) == len(off) and on
        assert max_boundary_diff(on, off) <= 0.001


@pytest.mark.slow
def test_command_resamples_other_rates(tmp_path, capsys, mixture):
    """8 kHz raw PCM with --rate 8000 gives the regions of the 8 kHz file."""
    low = resample_poly(mixture, 1, 2).astype(np.float32)
    path = tmp_path / "low.wav"
    sf.write(path, low, 8000, subtype="FLOAT")
    assert main(["vad", str(path), "--rttm", str(tmp_path / "off.rttm")]) == 0
    capsys.readouterr()
    monkeypatch_stdin = io.TextIOWrapper(io.BytesIO(low.astype("<f4").tobytes()))
    sys_stdin, sys.stdin = sys.stdin, monkeypatch_stdin
    try:
        status = main(["stream", "vad", "-", "--format", "f32le", "--rate", "8000"])
    finally:
        sys.stdin = sys_stdin
    assert status == 0
    (tmp_path / "on.rttm").write_text(capsys.readouterr().out)
    on, off = rttm_segments(tmp_path / "on.rttm"), rttm_segments(tmp_path / "off.rttm")
    assert len(on) == len(off) and on
    assert max_boundary_diff(on, off) <= 0.001


def run_stdin(monkeypatch, capsys, argv, data):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    status = main(["stream", *argv])
    out = capsys.readouterr()
    return status, out.out.splitlines(), out.err


@pytest.mark.slow
def test_command_bad_input_keeps_what_was_emitted(monkeypatch, capsys, sample_waveform):
    """An odd byte at the end, or a NaN part-way: the regions of the audio before it
    are printed (each once, as offline), then the problem; exit status 1."""
    audio = sample_waveform[: int(15 * SR)]
    expected = offline(VADEstimator(), audio)
    status, lines, err = run_stdin(
        monkeypatch, capsys, ["vad", "-"], pcm16(audio) + b"\x00"
    )
    assert status == 1 and "ended inside a sample: 1 trailing byte" in err
    assert len(lines) == len(expected) == len(set(lines))
    floats = np.concatenate([audio, [np.nan], np.zeros(SR)]).astype("<f4").tobytes()
    status, lines2, err = run_stdin(
        monkeypatch, capsys, ["vad", "-", "--format", "f32le"], floats
    )
    assert status == 1 and f"sample {len(audio)} is not a finite number" in err
    assert lines2 == lines


def test_command_usage_errors(monkeypatch, capsys, tmp_path, sample_waveform):
    wav = tmp_path / "x.wav"
    sf.write(wav, sample_waveform[:SR], SR)
    status, lines, err = run_stdin(monkeypatch, capsys, ["vad", "-"], wav.read_bytes())
    assert status == 1 and not lines and "starts with a WAV header" in err
    raw = pcm16(sample_waveform[:SR])
    status, lines, err = run_stdin(
        monkeypatch, capsys, ["vad", "-", "--format", "wav"], raw
    )
    assert status == 1 and "not a WAV stream" in err
    status, lines, err = run_stdin(
        monkeypatch,
        capsys,
        ["vad", "-", "--format", "wav", "--rate", "8000"],
        wav.read_bytes(),
    )
    assert status == 1 and "says 16000 Hz, but the rate given is 8000" in err
    for argv, message in [
        (["vad", "-", "--rate", "0"], "not a plausible audio rate"),
        (["vad", "-", "--latency", "0.1"], "latency must lie between one step"),
        (["vad", "-", "--latency", "9"], "latency must lie between one step"),
        (["vad", "-", "--latency", "-1"], "must be a positive number, got -1"),
        (["vad", "-", "--latency", "soon"], "not a number: 'soon'"),
        (["vad"], "give '-'"),
        (["vad", str(tmp_path / "gone.wav")], "no such file"),
        (["vad", str(wav), "--rate", "8000"], "--rate is for raw PCM"),
        (["resegment", "-"], "invalid choice"),
    ]:
        with pytest.raises(SystemExit) as exit:
            main(["stream", *argv])
        assert exit.value.code == 2
        assert message in capsys.readouterr().err, argv


def test_command_reads_a_file_and_shows_delays(tmp_path, capsys, sample):
    status = main(["stream", "osd", sample["audio"], "--latency", "1", "--delays"])
    out = capsys.readouterr()
    assert status == 0
    lines = out.out.splitlines()
    assert lines and all(line.startswith("SPEAKER sample 1 ") for line in lines)
    delays = [float(line.split()[-1]) for line in out.err.splitlines()]
    assert len(delays) == len(lines) and 0 <= min(delays) and max(delays) < 2.5


def test_command_irregular_reads(monkeypatch, capsys, sample_waveform):
    """A pipe delivering uneven pieces (input stopping mid-block): same regions."""
    audio = sample_waveform[: int(11.1 * SR)]
    pcm = pcm16(audio)

    class Uneven(io.RawIOBase):
        def __init__(self):
            self.position, self.rng = 0, np.random.default_rng(5)

        def readable(self):
            return True

        def readinto(self, buffer):
            n = min(len(buffer), int(self.rng.integers(1, 5000)))
            piece = pcm[self.position : self.position + n]
            buffer[: len(piece)] = piece
            self.position += len(piece)
            return len(piece)

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(Uneven(), 7)))
    assert main(["stream", "vad", "-"]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = offline(VADEstimator(), (np.frombuffer(pcm, "<i2") / 32768).astype("f4"))
    got = sorted(
        (float(x.split()[3]), float(x.split()[3]) + float(x.split()[4])) for x in lines
    )
    assert len(got) == len(expected)
    assert (
        max(abs(a - b[0]) for a, b in zip([g[0] for g in got], expected, strict=True))
        <= 0.001
    )


# -- speaker turns -----------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    "latency, estimator",
    [
        (0.5, SegmentationEstimator()),
        (2.0, SegmentationEstimator()),
        (None, SegmentationEstimator()),
        # the powerset model: its speaker activities by pyannote's (hard) rule
        (None, SegmentationEstimator("pyannote/segmentation-3.0")),
        (1.0, SegmentationEstimator("pyannote/segmentation-3.0", onset=0.6)),
    ],
    ids=["0.5", "2", "chunk", "3.0-chunk", "3.0-soft-1"],
)
def test_segmentation_stream_turns(latency, estimator, sample_waveform, mixture):
    """Turns are valid, each speaker's in time order and never overlapping itself;
    at the chunk latency, who-speaks-at-all (the union of turns) is offline's: the
    speaker count is aggregated exactly, only the stitching is online."""
    for audio in (sample_waveform, mixture):
        turns, when = regions_of(estimator, audio, latency=latency, seed=4)
        assert turns and all(t.label.startswith("SPEAKER_") for t in turns)
        by_speaker = {}
        for turn, t in zip(turns, when, strict=True):
            assert turn.start < turn.end <= len(audio) / SR + 0.1
            assert turn.delay == pytest.approx(max(0.0, t - turn.end), abs=1e-9)
            if by_speaker.get(turn.label):
                assert turn.start >= by_speaker[turn.label][-1].end
            by_speaker.setdefault(turn.label, []).append(turn)
        labels = sorted(by_speaker)
        assert labels == [f"SPEAKER_{k:02d}" for k in range(len(labels))]
        if latency is None:
            ours = to_annotation(turns).get_timeline().support()
            theirs = (
                clone(estimator)
                .set_params(cache=False)({"waveform": audio[None], "sample_rate": SR})
                .get_timeline()
                .support()
            )
            assert len(ours) == len(theirs)
            for a, b in zip(ours, theirs, strict=True):
                assert abs(a.start - b.start) < 1e-6 and abs(a.end - b.end) < 1e-6


@pytest.mark.slow
def test_segmentation_stream_memory_and_command(capsys, sample_waveform, sample):
    live = SegmentationEstimator().stream(latency=0.5)
    audio = np.tile(sample_waveform, 4)  # speakers come and go for 2 minutes
    frames = []
    for i in range(0, len(audio), 8000):
        live.feed(audio[i : i + 8000])
        frames.append(live.buffered_frames)
        assert live.buffered_samples <= 5 * SR + 8000
    live.close()
    assert max(frames) == frames[len(frames) // 4]
    assert main(["stream", "segment", sample["audio"], "--latency", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len({line.split()[7] for line in lines}) >= 2
