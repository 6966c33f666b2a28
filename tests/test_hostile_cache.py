"""Score cache entries on disk are never trusted: anything odd is recomputed."""

import io
import os
import stat
import zipfile
from hashlib import sha256

import numpy as np
import pytest
from pyannote.core import SlidingWindow

from skseg.audio import file_identity
from skseg.cache import ScoreCache, ScoreKey
from skseg.exceptions import WeightsUnavailableError
from skseg.hub import WheelMember, fetch_wheel_member, verified_cached
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


@pytest.mark.slow
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


def _demo_wheel(tmp_path):
    """A local wheel holding ``demo/data.txt`` ("hello"), as a WheelMember."""
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("demo/data.txt", "hello")
        z.writestr(
            "demo-1.0.dist-info/METADATA",
            "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
        )
        z.writestr(
            "demo-1.0.dist-info/WHEEL",
            "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
    return WheelMember(str(wheel), "demo/data.txt", sha256(b"hello").hexdigest())


@pytest.fixture
def umask_zero():
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _no_group_or_world_write(root):
    for path in [root, *root.rglob("*")]:
        mode = os.lstat(path).st_mode
        assert not mode & (stat.S_IWGRP | stat.S_IWOTH), (path, oct(mode))


def test_cache_files_are_not_group_or_world_writable_under_umask_zero(
    tmp_path, umask_zero
):
    root = tmp_path / "deep" / "cache"
    cache = ScoreCache(root)
    cache.get_or_compute(KEY, scores)
    assert cache._path(KEY).is_file() and cache._path(KEY).with_suffix(".lock").exists()
    _no_group_or_world_write(tmp_path / "deep")


def test_weights_cache_is_not_group_or_world_writable_under_umask_zero(
    tmp_path, umask_zero
):
    spec = _demo_wheel(tmp_path)
    home = tmp_path / "home"
    fetch_wheel_member(spec, home / "a" / "b" / "data.txt")
    _no_group_or_world_write(home)


def test_a_symlinked_entry_is_neither_read_nor_written_through(tmp_path):
    victim = tmp_path / "victim.npz"
    victim.write_bytes(_npz())  # a valid entry: read through the link, it would hit
    cache = ScoreCache(tmp_path / "cache")
    path = cache._path(KEY)
    path.parent.mkdir(parents=True)
    path.symlink_to(victim)
    before = victim.read_bytes()
    assert cache.get(KEY) is None
    fresh = scores(seed=1)
    assert cache.get_or_compute(KEY, lambda: fresh) is fresh
    assert victim.read_bytes() == before
    assert not path.is_symlink()  # the link itself was replaced


def test_a_symlinked_lock_is_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("mine")
    cache = ScoreCache(tmp_path / "cache")
    lock = cache._path(KEY).with_suffix(".lock")
    lock.parent.mkdir(parents=True)
    lock.symlink_to(tmp_path / "planted")  # dangling: O_CREAT would create it
    cache.get_or_compute(KEY, scores)
    assert not (tmp_path / "planted").exists()


def test_a_symlinked_subdirectory_is_not_written_through(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cache = ScoreCache(tmp_path / "cache")
    cache.directory.mkdir()
    cache._path(KEY).parent.symlink_to(elsewhere)
    (elsewhere / cache._path(KEY).name).write_bytes(_npz())
    before = sorted((p.name, p.read_bytes()) for p in elsewhere.iterdir())
    assert ScoreCache(cache.directory).get(KEY) is None
    fresh = scores(seed=1)
    assert cache.get_or_compute(KEY, lambda: fresh) is fresh
    assert sorted((p.name, p.read_bytes()) for p in elsewhere.iterdir()) == before


def test_a_symlinked_weights_file_is_a_miss(tmp_path):
    victim = tmp_path / "victim.bin"
    victim.write_bytes(b"hello")
    link = tmp_path / "home" / "data.txt"
    link.parent.mkdir()
    link.symlink_to(victim)
    assert verified_cached(link, sha256(b"hello").hexdigest()) is None
    assert victim.read_bytes() == b"hello"


def test_no_joblib_or_pickle_file_is_loaded_unless_named(
    tmp_path, monkeypatch, checkpoint_path, sample
):
    import pickle

    import joblib

    from skseg import VADEstimator

    home, cwd = tmp_path / "home", tmp_path / "cwd"
    for folder in (home, home / "pyannote" / "segmentation", cwd):
        folder.mkdir(parents=True)
        for name in ("vad.joblib", "pipeline.joblib", "model.pkl"):
            (folder / name).write_bytes(b"planted")
    monkeypatch.setenv("SKSEG_HOME", str(home))
    monkeypatch.chdir(cwd)

    def refuse(*args, **kwargs):
        raise AssertionError(f"loaded implicitly: {args!r}")

    for module, name in ((joblib, "load"), (pickle, "load"), (pickle, "loads")):
        monkeypatch.setattr(module, name, refuse)
    (speech,) = VADEstimator(segmentation=checkpoint_path, cache=False).predict(
        [sample]
    )
    assert len(speech) > 0


def test_a_symlinked_weights_directory_is_not_written_through(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "demo").symlink_to(elsewhere)
    with pytest.raises(WeightsUnavailableError, match="symbolic link"):
        fetch_wheel_member(_demo_wheel(tmp_path), tmp_path / "home/demo/data.txt")
    assert list(elsewhere.iterdir()) == []
