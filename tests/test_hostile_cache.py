"""Score cache entries on disk are never trusted: anything odd is recomputed."""

import io
import os
import zipfile

import numpy as np
import pytest
from pyannote.core import SlidingWindow

from skseg.audio import file_identity
from skseg.cache import ScoreCache, ScoreKey
from skseg.inference import ChunkScores

from .hostile import peak_memory

KEY = ScoreKey("ab" + "0" * 62)


def scores(num_samples=16000 * 12, seed=0):
    """Chunk scores with the geometry inference gives a 12 s file."""
    chunks = 1 + -(-(num_samples - 80000) // 8000)
    data = np.random.default_rng(seed).random((chunks, 293, 3), dtype=np.float32)
    return ChunkScores(
        data,
        SlidingWindow(start=0.0, duration=5.0, step=0.5),
        SlidingWindow(start=0.0, duration=991 / 16000, step=270 / 16000),
        num_samples,
        16000,
    )


def _npz(**overrides) -> bytes:
    good = scores()
    w, f = good.sliding_window, good.frames
    arrays = {
        "data": good.data,
        "window": np.array([w.start, w.duration, w.step]),
        "frames": np.array([f.start, f.duration, f.step]),
        "num_samples": np.array(good.num_samples),
        "sample_rate": np.array(good.sample_rate),
    }
    arrays.update(overrides)
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def _bare_npy() -> bytes:
    out = io.BytesIO()
    np.save(out, np.zeros(10))
    return out.getvalue()


def _huge_header() -> bytes:
    # a data.npy whose header claims 30 M floats (119 MB): 53 KB are present
    data = _npz()
    assert data.count(b"(15, 293, 3)") == 1
    return data.replace(b"(15, 293, 3)", b"(99999,99,3)")


def _bomb() -> bytes:
    out = io.BytesIO()
    good = scores()
    w = np.array([0.0, 5.0, 0.5])
    np.savez_compressed(
        out,
        data=np.zeros((20000, 293, 3), np.float32),  # 70 MB inflated
        window=w,
        frames=np.array([0.0, 991 / 16000, 270 / 16000]),
        num_samples=np.array(16000 * 10_000),
        sample_rate=np.array(good.sample_rate),
    )
    return out.getvalue()


_ENTRIES = {
    "0 bytes": lambda: b"",
    "truncated zip": lambda: _npz()[:3000],
    "bare .npy": _bare_npy,
    "random bytes": lambda: os.urandom(5000),
    "zero step": lambda: _npz(window=np.array([0.0, 5.0, 0.0])),
    "zero frame step": lambda: _npz(frames=np.array([0.0, 0.06, 0.0])),
    "absurd length": lambda: _npz(num_samples=np.array(10**15)),
    "NaN scores": lambda: _npz(data=np.full((15, 293, 3), np.nan, np.float32)),
    "no chunks": lambda: _npz(data=np.zeros((0, 293, 3), np.float32)),
    "2-D scores": lambda: _npz(data=np.zeros((15, 293), np.float32)),
    "object array": lambda: _npz(window=np.array([0.0, 5.0, 0.5], dtype=object)),
    "zero rate": lambda: _npz(sample_rate=np.array(0)),
    "huge header": _huge_header,
    "compressed": _bomb,
}


@pytest.mark.parametrize("name", sorted(_ENTRIES))
def test_unusable_entries_are_recomputed_and_replaced(tmp_path, name):
    cache = ScoreCache(tmp_path)
    path = cache._path(KEY)
    path.parent.mkdir(parents=True)
    path.write_bytes(_ENTRIES[name]())
    fresh = scores(seed=1)
    got = cache.get_or_compute(KEY, lambda: fresh)
    assert got is fresh and cache.computed == 1
    # replaced on disk: another process (a new cache) reads the good entry back
    again = ScoreCache(tmp_path).get(KEY)
    np.testing.assert_array_equal(again.data, fresh.data)
    assert again.num_samples == fresh.num_samples


def test_a_fifo_entry_is_a_miss(tmp_path):
    cache = ScoreCache(tmp_path)
    path = cache._path(KEY)
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    assert cache.get(KEY) is None  # returns at once: a FIFO is never opened


def test_a_good_entry_reads_back_unchanged(tmp_path):
    cache = ScoreCache(tmp_path)
    good = scores()
    cache.put(KEY, good)
    back = ScoreCache(tmp_path).get(KEY)
    np.testing.assert_array_equal(back.data, good.data)
    assert back.data.dtype == good.data.dtype and back.data.flags.writeable
    for a, b in (
        (back.sliding_window, good.sliding_window),
        (back.frames, good.frames),
    ):
        assert (a.start, a.duration, a.step) == (b.start, b.duration, b.step)
    assert (back.num_samples, back.sample_rate) == (good.num_samples, 16000)


def test_a_fortran_ordered_entry_reads_back_unchanged(tmp_path):
    cache = ScoreCache(tmp_path)
    good = scores()
    good = ChunkScores(
        np.asfortranarray(good.data),
        good.sliding_window,
        good.frames,
        good.num_samples,
        good.sample_rate,
    )
    cache.put(KEY, good)
    np.testing.assert_array_equal(ScoreCache(tmp_path).get(KEY).data, good.data)


def test_reading_a_compressed_entry_costs_no_memory(tmp_path):
    path = tmp_path / "entry.npz"
    path.write_bytes(_bomb())
    result = peak_memory(
        f"""
        from pathlib import Path
        from skseg.cache import ScoreCache
        result["value"] = repr(ScoreCache._read(Path({str(path)!r})))
        """
    )
    assert result["value"] == "None"
    assert result["grown_mib"] < 32


def test_entries_are_fsynced_before_they_are_renamed(tmp_path, monkeypatch):
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(
        os, "replace", lambda a, b: calls.append("replace") or real_replace(a, b)
    )
    ScoreCache(tmp_path).put(KEY, scores())
    assert calls[:2] == ["fsync", "replace"]


def test_a_rewrite_with_the_same_size_and_mtime_changes_the_identity(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(b"A" * 1000)
    st = path.stat()
    before = file_identity(path)
    with open(path, "r+b") as handle:  # in place: same inode, same size
        handle.write(b"B" * 1000)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_mtime_ns == st.st_mtime_ns
    assert path.stat().st_size == st.st_size
    assert file_identity(path) != before


def test_the_identity_is_stable_while_the_file_is_untouched(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(b"A" * 1000)
    first = file_identity(path)
    path.read_bytes()
    assert file_identity(path) == first


def test_duplicate_names_in_an_entry_are_a_miss(tmp_path, recwarn):
    cache = ScoreCache(tmp_path)
    cache.put(KEY, scores())
    with zipfile.ZipFile(cache._path(KEY), "a") as z:
        z.writestr("num_samples.npy", _npz())
    assert ScoreCache(tmp_path).get(KEY) is None
