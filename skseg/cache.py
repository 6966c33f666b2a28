"""A cache of raw chunk scores, so each file goes through the network once.

None of the tuned hyper-parameters (onset, offset, min durations) changes what the
network outputs, so a grid search needs the network once per file, not once per
candidate. Scores are keyed (:class:`ScoreKey`) by the digest of the network's
weights, the kind of its outputs (segmentation scores, embeddings: any
:class:`skseg.inference.ChunkNetwork`), the file's identity (its resolved path,
size and modification time, or a hash of its samples), the inference step and
mode; scores derived from them
(aggregated frame scores) by the same key plus what was derived. They live in a
bounded in-memory LRU shared by the process, and, when a directory is named, chunk
scores also in ``.npz`` files written atomically there, so several processes (or
a cluster on a shared filesystem) reuse them.

:meth:`ScoreCache.get_or_compute` is a single flight: threads asking for the same
missing key wait for the one that computes it (a per-key lock), and, with a
directory, so do other processes (an advisory ``flock`` on ``<key>.lock`` beside
the ``.npz``), so that a cold grid search on a cluster still runs the network once
per file rather than once per worker that happens to reach it first.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import stat
import tempfile
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from pyannote.core import SlidingWindow

from .aggregation import ChunkScores
from .hub import make_dirs

try:  # POSIX; elsewhere processes sharing a directory may compute a file twice
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["ScoreCache", "ScoreKey", "score_key", "get_cache"]


@dataclass(frozen=True)
class ScoreKey:
    """Where one file's scores live in a :class:`ScoreCache`.

    Parameters
    ----------
    chunks : str
        Digest naming the file's raw chunk scores (:func:`score_key`).
    derived : tuple, default=()
        What was computed from those chunk scores, e.g. ``("aggregate",
        "speech")``; empty for the chunk scores themselves.

    Examples
    --------
    >>> key = ScoreKey("ab" * 32)
    >>> key.persistent, key.derive("aggregate", "speech").persistent
    (True, False)
    >>> key.derive("aggregate", "speech").chunks == key.chunks
    True
    """

    chunks: str
    derived: tuple = ()

    @property
    def persistent(self) -> bool:
        """Whether the entry is shared through a cache directory.

        Only chunk scores are: derived entries are cheap to recompute from them
        and stay in memory.
        """
        return not self.derived

    def derive(self, *what: object) -> ScoreKey:
        """Return the key of something computed from these chunk scores."""
        return replace(self, derived=self.derived + what)


def _as_key(key: ScoreKey | str) -> ScoreKey:
    return key if isinstance(key, ScoreKey) else ScoreKey(key)


def score_key(
    weights_digest: str,
    file_identity: str,
    step: float,
    duration: float,
    mode: str = "exact",
    output_kind: str = "segmentation",
) -> ScoreKey:
    """Return the cache key of a file's chunk scores.

    Parameters
    ----------
    weights_digest : str
        ``weights_digest`` of the network that computes them
        (:attr:`skseg.SegmentationModel.weights_digest`; never a checkpoint's
        path: two networks never share a key).
    file_identity : str
        :func:`skseg.audio.file_identity` of the file.
    step, duration : float
        Inference step and chunk duration, in seconds.
    mode : str, default="exact"
        Inference mode (:data:`skseg.inference.MODES`): fast mode's scores differ.
    output_kind : str, default="segmentation"
        The network's ``output_kind`` (:class:`skseg.inference.ChunkNetwork`):
        networks of different kinds never share an entry, whatever their digests.

    Returns
    -------
    key : ScoreKey

    Examples
    --------
    >>> from skseg import fetch_sample, load_model
    >>> from skseg.audio import file_identity
    >>> model, sample = load_model(), fetch_sample()
    >>> digest, identity = model.weights_digest, file_identity(sample)
    >>> key = score_key(digest, identity, 0.5, model.duration)
    >>> len(key.chunks), key == score_key(digest, identity, 1.0, 5.0)
    (64, False)
    """
    text = f"{weights_digest}|{file_identity}|step={step!r}|duration={duration!r}"
    # the defaults add nothing, so that the keys made before a mode or another
    # kind of network existed (a persistent cache directory's) still hit
    if mode != "exact":
        text += f"|mode={mode}"
    if output_kind != "segmentation":
        text += f"|output={output_kind}"
    return ScoreKey(hashlib.sha256(text.encode()).hexdigest())


class ScoreCache:
    """Chunk scores by key, in memory (LRU, bounded) and optionally on disk.

    Parameters
    ----------
    directory : str or PathLike, optional
        Where to also keep scores as ``.npz`` files.
    max_bytes : int, default=1 GiB
        Memory budget of the in-memory part; least recently used entries go first.

    Attributes
    ----------
    hits, misses : int
        Lookups answered, and not answered, by :meth:`get`.
    computed : int
        Chunk scores (persistent entries) this process computed through
        :meth:`get_or_compute`: network runs. Derived entries are not counted.

    Examples
    --------
    >>> cache = ScoreCache()
    >>> cache.get("missing") is None
    True
    >>> cache.get_or_compute("k", lambda: "value"), cache.get("k"), cache.computed
    ('value', 'value', 1)
    """

    def __init__(
        self, directory: str | os.PathLike | None = None, max_bytes: int = 1 << 30
    ):
        self.directory = Path(directory) if directory is not None else None
        self.max_bytes = int(max_bytes)
        self._memory: OrderedDict[ScoreKey, object] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        # key -> [lock, number of threads holding or waiting for it]; entries go
        # when unused, so the table does not grow with the number of files
        self._key_locks: dict[ScoreKey, list] = {}
        self.hits = 0
        self.misses = 0
        self.computed = 0

    def _path(self, key: ScoreKey) -> Path:
        return self.directory / key.chunks[:2] / f"{key.chunks}.npz"

    def get(self, key: ScoreKey | str) -> object | None:
        """Return the cached value for ``key`` (a str: chunk scores), or None."""
        key = _as_key(key)
        value = self._lookup(key)
        with self._lock:
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
        return value

    def _lookup(self, key: ScoreKey) -> object | None:
        with self._lock:
            if key in self._memory:
                self._memory.move_to_end(key)
                return self._memory[key]
        if self.directory is not None and key.persistent:
            value = self._read(self._path(key))
            if value is not None:
                self._remember(key, value)
                return value
        return None

    def get_or_compute(
        self, key: ScoreKey | str, compute: Callable[[], object]
    ) -> object:
        """Return the value for ``key``, computing and storing it on a miss.

        Concurrent callers with the same key, in this process (threads) or, with
        a directory, in other processes sharing it, wait for one computation
        instead of each running their own.

        Parameters
        ----------
        key : ScoreKey or str
            Cache key (a str names chunk scores).
        compute : callable
            Called without arguments on a miss; its result is stored with
            :meth:`put` and returned.

        Returns
        -------
        value : object
        """
        key = _as_key(key)
        if (value := self.get(key)) is not None:
            return value
        with self._key_lock(key), self._file_lock(key):
            # whoever held the lock before us may have just stored it
            if (value := self._lookup(key)) is not None:
                return value
            value = compute()
            if key.persistent:
                with self._lock:
                    self.computed += 1
            self.put(key, value)
            return value

    @contextlib.contextmanager
    def _key_lock(self, key: ScoreKey) -> Iterator[None]:
        with self._lock:
            entry = self._key_locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._lock:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._key_locks[key]

    @contextlib.contextmanager
    def _file_lock(self, key: ScoreKey) -> Iterator[None]:
        # Only chunk scores are shared through the directory. The lock file stays
        # (0 bytes): deleting it would let a waiter lock an unlinked inode while a
        # newcomer locks a new file, and both compute.
        if self.directory is None or not key.persistent or fcntl is None:
            yield
            return
        path = self._path(key).with_suffix(".lock")
        try:
            _entry_directory(path)
            # O_NOFOLLOW: a planted link is not opened, nor its target created
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError:
            # read-only or odd filesystem: computing twice is still correct
            yield
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                pass  # no lock support (some network filesystems): same as above
            yield
        finally:
            os.close(fd)  # releases the flock

    def put(self, key: ScoreKey | str, value: object) -> None:
        """Store ``value`` (chunk scores are also written to the directory)."""
        key = _as_key(key)
        self._remember(key, value)
        if (
            self.directory is not None
            and key.persistent
            and isinstance(value, ChunkScores)
        ):
            self._write(self._path(key), value)

    def _remember(self, key: ScoreKey, value: object) -> None:
        size = _nbytes(value)
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._memory:
                self._bytes -= _nbytes(self._memory.pop(key))
            self._memory[key] = value
            self._bytes += size
            while self._bytes > self.max_bytes and self._memory:
                _, old = self._memory.popitem(last=False)
                self._bytes -= _nbytes(old)

    def clear(self) -> None:
        """Forget the in-memory entries (files on disk are kept)."""
        with self._lock:
            self._memory.clear()
            self._bytes = 0

    @staticmethod
    def _write(path: Path, scores: ChunkScores) -> None:
        try:
            _entry_directory(path)
        except OSError:
            return  # the entry stays in memory only
        w, f = scores.sliding_window, scores.frames
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                np.savez(
                    handle,
                    data=scores.data,
                    window=np.array([w.start, w.duration, w.step]),
                    frames=np.array([f.start, f.duration, f.step]),
                    num_samples=np.array(scores.num_samples),
                    sample_rate=np.array(scores.sample_rate),
                )
                # on disk before it is renamed into place: after a crash the entry
                # is the old file or the whole new one, never a renamed empty one
                handle.flush()
                os.fsync(handle.fileno())
            # atomic: concurrent readers see the old file or the whole new one; an
            # entry that is a symbolic link is itself replaced, its target untouched
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @staticmethod
    def _read(path: Path) -> ChunkScores | None:
        """Return the entry at ``path``, or None if it is missing or unusable.

        Whatever the file holds (0 bytes, a truncated or foreign archive, a bare
        ``.npy``, a FIFO, values no inference makes), it is never trusted: an
        entry that is not exactly what :meth:`_write` writes, with consistent
        geometry, is a miss, recomputed and replaced by :meth:`get_or_compute`.
        Reading costs at most the file's own size.
        """
        try:
            arrays = _read_npz(path)
            if arrays is None:
                return None
            return _plausible_scores(arrays)
        except Exception:  # noqa: BLE001 -- numpy's header parser alone raises
            # several types (TokenError, SyntaxError...): any failure is a miss
            # missing, partial or foreign file: recompute rather than fail
            return None


def _entry_directory(path: Path) -> None:
    """Create the directory of the entry ``path``, refusing a symbolic link.

    Whoever else can write a shared cache directory may plant a link in it:
    entries written through it would land wherever it points.

    Raises
    ------
    OSError
        If the directory is a symbolic link (or cannot be made).
    """
    make_dirs(path.parent, 0o700)
    if stat.S_ISLNK(os.lstat(path.parent).st_mode):
        raise OSError(f"{path.parent} is a symbolic link")


_ENTRY_ARRAYS = ("data", "window", "frames", "num_samples", "sample_rate")


def _read_npz(path: Path) -> dict[str, np.ndarray] | None:
    """Read the arrays of an ``np.savez`` archive, each within its stored size."""
    if stat.S_ISLNK(os.lstat(path.parent).st_mode):
        return None  # a planted link: what it points at is not an entry
    # O_NOFOLLOW: a link is never read; O_NONBLOCK: a FIFO opens at once, and is
    # then refused as not a regular file
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    handle = os.fdopen(fd, "rb")
    with handle:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return _read_archive(handle, st.st_size)


def _read_archive(
    handle: io.BufferedReader, st_size: int
) -> dict[str, np.ndarray] | None:
    """Read the arrays of the archive open as ``handle``, ``st_size`` bytes long."""
    arrays = {}
    with zipfile.ZipFile(handle) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        if len(infos) != len(archive.infolist()):
            return None  # the same name twice
        for name in _ENTRY_ARRAYS:
            info = infos[f"{name}.npy"]
            if info.compress_type != zipfile.ZIP_STORED or info.file_size > st_size:
                return None
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    header = np.lib.format.read_array_header_1_0(member)
                elif version == (2, 0):
                    header = np.lib.format.read_array_header_2_0(member)
                else:
                    return None
                shape, fortran, dtype = header
                if dtype.hasobject or dtype.kind not in "fiu":
                    return None
                nbytes = math.prod(shape) * dtype.itemsize
                if nbytes > info.file_size:
                    return None  # a header claiming more than the entry holds
                raw = member.read(nbytes)
                if len(raw) != nbytes:
                    return None
            array = np.frombuffer(bytearray(raw), dtype=dtype)
            arrays[name] = array.reshape(shape, order="F" if fortran else "C")
    return arrays


def _plausible_scores(z: dict[str, np.ndarray]) -> ChunkScores | None:
    """Return chunk scores from an entry's arrays, if they are what inference makes."""
    data, w, f = z["data"], z["window"], z["frames"]
    if data.ndim != 3 or data.dtype.kind != "f" or 0 in data.shape:
        return None
    if w.shape != (3,) or f.shape != (3,) or z["num_samples"].shape != ():
        return None
    if z["sample_rate"].shape != () or not np.isfinite(np.r_[w, f]).all():
        return None
    num_samples, sample_rate = int(z["num_samples"]), int(z["sample_rate"])
    if not (1_000 <= sample_rate <= 384_000 and num_samples > 0):
        return None
    if min(w[1], w[2], f[1], f[2]) <= 0:
        return None
    # the chunks must be those of the file: this bounds num_samples (and every
    # array later sized from it) by the scores actually stored
    window = round(float(w[1]) * sample_rate)
    step = round(float(w[2]) * sample_rate)
    if window <= 0 or step <= 0:
        return None
    chunks = 1 if num_samples < window else 1 - (-(num_samples - window) // step)
    if data.shape[0] != chunks:
        return None
    if abs(data.shape[1] - ((w[1] - f[1]) / f[2] + 1)) > 2:
        return None
    if not np.isfinite(data).all():
        return None
    return ChunkScores(
        data,
        SlidingWindow(start=w[0], duration=w[1], step=w[2]),
        SlidingWindow(start=f[0], duration=f[1], step=f[2]),
        num_samples,
        sample_rate,
    )


def _nbytes(value: object) -> int:
    data = getattr(value, "data", None)
    return int(getattr(data, "nbytes", 0)) + 256


_MEMORY = ScoreCache()
_DIRECTORIES: dict[str, ScoreCache] = {}
_LOCK = threading.Lock()


def get_cache(cache: bool | str | os.PathLike | None) -> ScoreCache | None:
    """Return the process-wide cache an estimator's ``cache`` parameter names.

    Parameters
    ----------
    cache : bool, str, PathLike or None
        ``True``: the shared in-memory cache; ``False`` or ``None``: no cache; a
        path: a cache kept in that directory (and in memory).

    Returns
    -------
    cache : ScoreCache or None

    Examples
    --------
    >>> import tempfile
    >>> get_cache(True) is get_cache(True), get_cache(False)
    (True, None)
    >>> directory = tempfile.mkdtemp()
    >>> get_cache(directory) is get_cache(directory)  # one per directory
    True
    """
    if cache is True:
        return _MEMORY
    if cache is False or cache is None:
        return None
    key = str(Path(cache).expanduser().resolve())
    with _LOCK:
        if key not in _DIRECTORIES:
            _DIRECTORIES[key] = ScoreCache(key)
        return _DIRECTORIES[key]
