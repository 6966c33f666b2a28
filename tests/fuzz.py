"""Property-based fuzzing of the readers of untrusted files (hypothesis).

Targets: the checkpoint loader (mutated archives, mutated pickles, opcode soup),
the audio decoder (forged WAV headers, mutated WAVs, in-memory waveforms), the
RTTM/UEM readers (arbitrary text, and a write/read round trip) and the score
cache's entry reader (mutated entries). The invariant of
each: a clear skseg error (``CheckpointError``, ``AudioError``, ``FileError``) or
a correct result; never another exception type, a hang or unbounded memory.

``tests/test_fuzz.py`` runs every target in a subprocess, bounded to well under a
minute in all, and checks the subprocess's peak memory. A release runs longer::

    SKSEG_FUZZ_EXAMPLES=5000 make fuzz     # random seeds, about 30 minutes

Usage: ``python -m tests.fuzz [TARGET ...]``; it prints one JSON line with the
peak memory growth (MiB) and the examples run per target.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import resource
import struct
import sys
import tempfile
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyannote.core import Annotation, Segment, Timeline

from skseg.audio import AudioReader
from skseg.checkpoint import Checkpoint, load_checkpoint
from skseg.exceptions import AudioError, CheckpointError, FileError
from skseg.io import read_rttm, read_uem, write_rttm, write_uem

#: examples per target; the default keeps the whole run well under a minute
EXAMPLES = int(os.environ.get("SKSEG_FUZZ_EXAMPLES", "60"))
#: a release run (SKSEG_FUZZ_EXAMPLES set) draws new examples; the test suite's
#: run is the same every time
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,  # hangs are caught by the subprocess's timeout instead
    database=None,
    derandomize="SKSEG_FUZZ_EXAMPLES" not in os.environ,
    suppress_health_check=list(HealthCheck),
)
WORK = Path(tempfile.mkdtemp(prefix="skseg-fuzz-"))
COUNTS: dict[str, int] = {}


def _count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


# -- checkpoints ---------------------------------------------------------------------------


class _Storage:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
        return None


class _Tensor:
    def __init__(self, storage, size):
        self.storage, self.size = storage, size

    def __reduce__(self):
        from torch._utils import _rebuild_tensor_v2

        stride = (self.size[1], 1) if len(self.size) == 2 else (1,)
        return _rebuild_tensor_v2, (
            self.storage,
            0,
            self.size,
            stride,
            False,
            OrderedDict(),
        )


def _pickle_bytes() -> bytes:
    state = {
        "state_dict": OrderedDict(
            [
                ("a.weight", _Tensor(_Storage("0", 6), (2, 3))),
                ("a.bias", _Tensor(_Storage("1", 2), (2,))),
            ]
        ),
        "hyper_parameters": {"sample_rate": 16000, "lstm": {"hidden_size": 8}},
        "pyannote.audio": {
            "versions": {"torch": "2.1"},
            "architecture": {"module": "m", "class": "PyanNet"},
            "specifications": {
                "problem": 2,
                "resolution": 1,
                "duration": 5.0,
                "classes": ["a", "b"],
                "warm_up": (0.0, 0.0),
                "permutation_invariant": True,
            },
        },
    }
    out = io.BytesIO()
    _Pickler(out, protocol=2).dump(state)
    return out.getvalue()


def _archive(pkl: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/data/0", np.arange(6, dtype="<f4").tobytes())
        z.writestr("archive/data/1", np.ones(2, dtype="<f4").tobytes())
        z.writestr("archive/version", "3\n")
    return out.getvalue()


PICKLE = _pickle_bytes()
ARCHIVE = _archive(PICKLE)


def check_checkpoint(data: bytes) -> None:
    """Invariant: a Checkpoint with finite float weights, or a CheckpointError."""
    path = WORK / "model.ckpt"
    path.write_bytes(data)
    try:
        ck = load_checkpoint(path)
    except CheckpointError as e:
        assert str(path) in str(e), e
        return
    assert isinstance(ck, Checkpoint)
    for tensor in ck.state_dict.values():
        assert tensor.is_floating_point() and bool(torch.isfinite(tensor).all())
    spec = ck.specifications
    assert math.isfinite(spec.duration) and spec.duration > 0


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for position, value in edits:
        out[position % len(out)] = value
    return bytes(out[:cut] if cut is not None else out)


_EDITS = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=8)


@SETTINGS
@given(edits=_EDITS, cut=st.none() | st.integers(0, len(ARCHIVE)))
def fuzz_checkpoint_archive(edits, cut):
    _count("checkpoint_archive")
    check_checkpoint(_mutate(ARCHIVE, edits, cut))


@SETTINGS
@given(
    edits=_EDITS,
    cut=st.none() | st.integers(0, len(PICKLE)),
    insert=st.binary(max_size=16),
    at=st.integers(0, len(PICKLE)),
)
def fuzz_checkpoint_pickle(edits, cut, insert, at):
    _count("checkpoint_pickle")
    pkl = _mutate(PICKLE, edits, cut)
    check_checkpoint(_archive(pkl[:at] + insert + pkl[at:]))


def _text(s: str) -> bytes:
    b = s.encode()
    return b"X" + struct.pack("<I", len(b)) + b


_SNIPPETS = [
    b"(",
    b")",
    b"]",
    b"}",
    b"N",
    b"\x88",
    b"\x89",
    b"K\x01",
    b"K\x00",
    b"J\xff\xff\xff\x7f",
    b"G\x7f\xf8\x00\x00\x00\x00\x00\x00",
    b"t",
    b"l",
    b"d",
    b"\x85",
    b"\x86",
    b"\x87",
    b"a",
    b"e",
    b"s",
    b"u",
    b"b",
    b"R",
    b"\x81",
    b"Q",
    b"0",
    b"1",
    b"2",
    b"q\x00",
    b"q\x01",
    b"h\x00",
    b"h\x01",
    b"r\xff\xff\xff\x7f",
    _text("state_dict"),
    _text("hyper_parameters"),
    _text("pyannote.audio"),
    _text("specifications"),
    _text("storage"),
    _text("0"),
    _text("cpu"),
    _text("duration"),
    _text("qualname"),
    _text("__class__"),
    b"ctorch\nFloatStorage\n",
    b"ctorch\nLongStorage\n",
    b"ctorch._utils\n_rebuild_tensor_v2\n",
    b"ctorch._utils\n_rebuild_parameter\n",
    b"ccollections\nOrderedDict\n",
    b"cbuiltins\nset\n",
    b"cbuiltins\nlist\n",
    b"cbuiltins\nstr\n",
    b"comegaconf.dictconfig\nDictConfig\n",
    b"cpyannote.audio.core.task\nProblem\n",
    b"cbuiltins\neval\n",
]


@SETTINGS
@given(st.lists(st.sampled_from(_SNIPPETS), max_size=60))
def fuzz_checkpoint_opcodes(snippets):
    _count("checkpoint_opcodes")
    check_checkpoint(_archive(b"\x80\x02" + b"".join(snippets) + b"."))


# -- audio ----------------------------------------------------------------------------------


def check_audio(file) -> None:
    """Invariant: finite float32 samples of the announced length, or an AudioError."""
    try:
        with AudioReader(file) as reader:
            n = min(reader.num_samples, 16000 * 20)
            samples = reader.read(0, n)
    except AudioError as e:
        assert e.file, e
        return
    assert samples.dtype == np.float32 and samples.shape == (n,)
    assert np.isfinite(samples).all()


def _wav(rate, channels, bits, fmt_tag, frames_declared, body) -> bytes:
    block = max(1, channels * bits // 8)
    fmt = struct.pack(
        "<HHIIHH",
        fmt_tag & 0xFFFF,
        channels & 0xFFFF,
        rate & 0xFFFFFFFF,
        (rate * block) & 0xFFFFFFFF,
        block & 0xFFFF,
        bits & 0xFFFF,
    )
    data_size = (frames_declared * block) & 0xFFFFFFFF
    out = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    out += b"data" + struct.pack("<I", data_size) + body
    return b"RIFF" + struct.pack("<I", len(out) & 0xFFFFFFFF) + out


@SETTINGS
@given(
    rate=st.one_of(
        st.sampled_from([1, 8000, 16000, 44100, 383999, 384001, 3_000_000]),
        st.integers(0, 1 << 32),
    ),
    channels=st.sampled_from([0, 1, 2, 6, 255, 65535]),
    bits=st.sampled_from([0, 8, 16, 24, 32, 64, 7]),
    fmt_tag=st.sampled_from([1, 3, 0xFFFE, 0, 2, 17]),
    frames=st.integers(0, 1 << 32),
    body=st.binary(max_size=4096),
)
def fuzz_audio_header(rate, channels, bits, fmt_tag, frames, body):
    _count("audio_header")
    path = WORK / "a.wav"
    path.write_bytes(_wav(rate, channels, bits, fmt_tag, frames, body))
    check_audio(path)


_GOOD_WAV = _wav(16000, 1, 16, 1, 4000, np.zeros(4000, "<i2").tobytes())


@SETTINGS
@given(edits=_EDITS, cut=st.none() | st.integers(0, len(_GOOD_WAV)))
def fuzz_audio_bytes(edits, cut):
    _count("audio_bytes")
    path = WORK / "b.wav"
    path.write_bytes(_mutate(_GOOD_WAV, edits, cut))
    check_audio(path)


_FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=32)


@SETTINGS
@given(
    samples=st.lists(_FLOATS, min_size=0, max_size=64),
    channels=st.integers(1, 3),
    rate=st.one_of(
        st.integers(-5, 500_000),
        st.booleans(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.just("16000"),
        st.none(),
    ),
)
def fuzz_audio_waveform(samples, channels, rate):
    _count("audio_waveform")
    wav = np.array(samples * channels, dtype=np.float32).reshape(channels, -1)
    check_audio({"waveform": wav, "sample_rate": rate, "uri": "w"})


# -- RTTM / UEM ---------------------------------------------------------------------------

_FIELD = st.one_of(
    st.sampled_from(["SPEAKER", "a", "1", "0", "1.5", "-1", "1e300", "nan", "<NA>"]),
    st.text(max_size=6),
)
_LINE = st.lists(_FIELD, max_size=11).map(" ".join)


def check_reader(read, text: str) -> None:
    """Invariant: {uri: Annotation/Timeline} with finite valid times, or FileError."""
    path = WORK / "f.txt"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        result = read(path)
    except FileError as e:
        assert e.file == str(path), e
        return
    for uri, value in result.items():
        assert isinstance(uri, str)
        segments = value.itersegments() if hasattr(value, "itersegments") else value
        for segment in segments:
            assert math.isfinite(segment.start) and math.isfinite(segment.end)
            assert 0 <= segment.start <= segment.end


@SETTINGS
@given(st.lists(_LINE, max_size=6).map("\n".join))
def fuzz_rttm_reader(text):
    _count("rttm_reader")
    check_reader(read_rttm, text)


@SETTINGS
@given(st.lists(_LINE, max_size=6).map("\n".join))
def fuzz_uem_reader(text):
    _count("uem_reader")
    check_reader(read_uem, text)


@SETTINGS
@given(
    uri=st.text(min_size=1, max_size=8),
    label=st.text(min_size=1, max_size=8),
    start=st.floats(0, 1e4),
    length=st.floats(0.002, 1e3),
)
def fuzz_rttm_round_trip(uri, label, start, length):
    """What the writers accept, the readers read back as written (to the ms)."""
    _count("rttm_round_trip")
    annotation = Annotation(uri=uri)
    annotation[Segment(start, start + length)] = label
    rttm, uem = WORK / "r.rttm", WORK / "r.uem"
    try:
        write_rttm(annotation, rttm)
        write_uem({uri: Timeline([Segment(start, start + length)])}, uem)
    except FileError:
        return
    back = read_rttm(rttm)
    assert list(back) == [uri]
    ((segment, _, got),) = back[uri].itertracks(yield_label=True)
    assert got == label
    assert (
        abs(segment.start - start) <= 6e-4
        and abs(segment.end - start - length) <= 1.2e-3
    )
    assert list(read_uem(uem)) == [uri]


# -- score cache entries -------------------------------------------------------------------


def _entry() -> bytes:
    from pyannote.core import SlidingWindow

    from skseg.cache import ScoreCache, ScoreKey
    from skseg.inference import ChunkScores

    scores = ChunkScores(
        np.random.default_rng(0).random((3, 293, 2), dtype=np.float32),
        SlidingWindow(start=0.0, duration=5.0, step=0.5),
        SlidingWindow(start=0.0, duration=991 / 16000, step=270 / 16000),
        16000 * 6,
        16000,
    )
    cache = ScoreCache(WORK / "cache")
    key = ScoreKey("ab" + "0" * 62)
    cache.put(key, scores)
    return cache._path(key).read_bytes()


ENTRY = _entry()


@SETTINGS
@given(edits=_EDITS, cut=st.none() | st.integers(0, len(ENTRY)))
def fuzz_cache_entry(edits, cut):
    """Invariant: a mutated entry is a miss (None) or consistent chunk scores."""
    from skseg.cache import ScoreCache

    _count("cache_entry")
    path = WORK / "entry.npz"
    path.write_bytes(_mutate(ENTRY, edits, cut))
    value = ScoreCache._read(path)
    if value is not None:
        assert value.data.ndim == 3 and np.isfinite(value.data).all()
        assert value.sliding_window.step > 0 and value.frames.step > 0
        assert value.num_samples > 0


TARGETS = {
    name.removeprefix("fuzz_"): value
    for name, value in dict(globals()).items()
    if name.startswith("fuzz_")
}


def main(argv: list[str]) -> int:
    names = argv or list(TARGETS)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for name in names:
        TARGETS[name]()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"grown_mib": (after - before) / 1024, "examples": COUNTS}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
