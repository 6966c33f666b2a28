"""Chunk scores and their overlap-add aggregation, as pyannote.audio does them.

:class:`ChunkScores` holds one file's raw per-chunk scores and what placing them
needs; :func:`aggregate` turns them into one frame-level score: a per-chunk
reduction (``"speech"``: max over speakers; ``"overlap"``: second-largest;
``None``: none, see :data:`REDUCTIONS`; any output head's reductions, see
:mod:`skseg.heads`), then Hamming-weighted overlap-add, with
pyannote's frame placement, float32 accumulation in chunk order, uncovered frames
set to ``missing``, and the loose crop to the file's extent when the last chunk
was padded. :class:`OverlapAdd` is the same overlap-add taking chunks as they come
and releasing frames once no later chunk changes them: :func:`aggregate` runs it on
a whole file, :mod:`skseg.streaming` on a live stream. :class:`FrameBuffer` is the
rolling frame store under it.

This module needs NumPy and pyannote.core only (no torch), so that the score
cache and anything else that only stores or reduces scores can import it without
the network.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pyannote.core import Segment, SlidingWindow, SlidingWindowFeature

__all__ = [
    "ChunkScores",
    "FrameBuffer",
    "OverlapAdd",
    "REDUCTIONS",
    "aggregate",
    "overlap_reduction",
    "speech_reduction",
]


class ChunkScores(SlidingWindowFeature):
    """Raw per-chunk scores ``(num_chunks, num_frames, num_classes)`` of one file.

    A :class:`pyannote.core.SlidingWindowFeature` on the chunk window, which also
    records what :func:`aggregate` needs to place and crop frames.

    Parameters
    ----------
    data : ndarray, shape (num_chunks, num_frames, num_classes)
        Scores.
    sliding_window : pyannote.core.SlidingWindow
        Chunk window (start 0, model duration, inference step).
    frames : pyannote.core.SlidingWindow
        Frames of a chunk that starts at 0 (the model's receptive field).
    num_samples : int
        Length of the file at ``sample_rate``.
    sample_rate : int
        Rate the model ran at.

    Examples
    --------
    >>> from skseg import Inference, fetch_sample
    >>> chunks = Inference("pyannote/segmentation")(fetch_sample())
    >>> chunks.data.shape  # (chunks, frames per chunk, speakers)
    (51, 293, 3)
    >>> chunks.sliding_window.step, chunks.frames.step, chunks.duration
    (0.5, 0.016875, 30.0)
    >>> chunks.last_chunk_padded  # 30 s is a whole number of 0.5 s steps after 5 s
    False
    """

    def __init__(
        self,
        data: np.ndarray,
        sliding_window: SlidingWindow,
        frames: SlidingWindow,
        num_samples: int,
        sample_rate: int,
    ):
        super().__init__(data, sliding_window)
        self.frames = frames
        self.num_samples = int(num_samples)
        self.sample_rate = int(sample_rate)

    @property
    def duration(self) -> float:
        """Duration of the file in seconds."""
        return self.num_samples / self.sample_rate

    @property
    def last_chunk_padded(self) -> bool:
        """Whether the last chunk ran on zero-padded audio (pyannote's crop rule)."""
        window = round(self.sliding_window.duration * self.sample_rate)
        step = round(self.sliding_window.step * self.sample_rate)
        n = self.num_samples
        return n < window or (n - window) % step > 0

    def __reduce__(self):
        return (
            type(self),
            (
                self.data,
                self.sliding_window,
                self.frames,
                self.num_samples,
                self.sample_rate,
            ),
        )


def speech_reduction(scores: np.ndarray) -> np.ndarray:
    """Return the speech score of each frame: the largest speaker score.

    Parameters
    ----------
    scores : ndarray, shape (..., num_classes)

    Returns
    -------
    speech : ndarray, shape (..., 1)

    Examples
    --------
    >>> speech_reduction(np.array([[0.1, 0.7, 0.3]])).tolist()
    [[0.7]]
    """
    return np.max(scores, axis=-1, keepdims=True)


def overlap_reduction(scores: np.ndarray) -> np.ndarray:
    """Return the overlap score of each frame: the second-largest speaker score.

    Parameters
    ----------
    scores : ndarray, shape (..., num_classes)
        At least 2 classes.

    Returns
    -------
    overlap : ndarray, shape (..., 1)

    Examples
    --------
    >>> overlap_reduction(np.array([[0.1, 0.7, 0.3]])).tolist()
    [[0.3]]
    """
    if scores.shape[-1] < 2:
        raise ValueError("the 'overlap' reduction needs at least 2 classes")
    return np.partition(scores, -2, axis=-1)[..., -2, np.newaxis]


def _identity(scores: np.ndarray) -> np.ndarray:
    return scores


#: per-chunk reductions :func:`aggregate` knows by name
REDUCTIONS: dict[str | None, Callable[[np.ndarray], np.ndarray]] = {
    "speech": speech_reduction,
    "overlap": overlap_reduction,
    None: _identity,
    "none": _identity,
}


def _num_frames(window: SlidingWindow, frames: SlidingWindow, num_chunks: int) -> int:
    # pyannote's count: to the middle of the frame after the last chunk's end
    return (
        frames.closest_frame(
            window.start
            + window.duration
            + (num_chunks - 1) * window.step
            + 0.5 * frames.duration
        )
        + 1
    )


class FrameBuffer:
    """Rows of frame values from a first held frame on, growing as frames come.

    Frames are addressed by their absolute index; :meth:`reserve` keeps the rows
    from a given frame on (the ones before it are forgotten), so a stream holds
    about one chunk of frames however long it runs.

    Parameters
    ----------
    num_columns : int, default=1
    dtype : numpy dtype, default=float32
    capacity : int, default=0
        Rows allocated up front (a whole file: no reallocation).

    Attributes
    ----------
    start : int
        Absolute index of the first row held.
    data : ndarray, shape (capacity, num_columns)

    Examples
    --------
    >>> buffer = FrameBuffer()
    >>> buffer.reserve(0, 4)
    >>> buffer.rows(1, 3)[...] += 1.0
    >>> buffer.reserve(2, 12)  # frames before 2 are no longer needed
    >>> buffer.start, buffer.rows(2, 4).ravel().tolist()
    (2, [1.0, 0.0])
    """

    def __init__(
        self, num_columns: int = 1, dtype: Any = np.float32, capacity: int = 0
    ):
        self.start = 0
        self.data = np.zeros((capacity, num_columns), dtype=dtype)

    def reserve(
        self, keep_from: int, stop: int, num_columns: int | None = None
    ) -> None:
        """Hold frames ``[keep_from, stop)`` (and ``num_columns`` columns)."""
        columns = self.data.shape[1] if num_columns is None else num_columns
        if stop - self.start <= len(self.data) and columns <= self.data.shape[1]:
            return
        # doubling: a chunk at a time costs amortised O(1) copies per frame
        capacity = max(len(self.data), 2 * (stop - keep_from))
        new = np.zeros(
            (capacity, max(columns, self.data.shape[1])), dtype=self.data.dtype
        )
        kept = self.data[keep_from - self.start :]
        new[: len(kept), : kept.shape[1]] = kept
        self.data, self.start = new, keep_from

    def rows(self, first: int, stop: int) -> np.ndarray:
        """Return a view of frames ``[first, stop)`` (all held)."""
        return self.data[first - self.start : stop - self.start]


class OverlapAdd:
    """Weighted overlap-add of chunks that arrive in order, frames released when final.

    :func:`aggregate`'s placement and arithmetic (float32 sums in chunk order,
    NaN scores masked out, uncovered frames set to ``missing``), one chunk at a
    time: :meth:`add` places the next chunk, :meth:`release` returns the averaged
    frames up to a given frame and forgets them. Frames before the next chunk's
    first frame (:meth:`placement`) are final. Memory holds the frames from the
    first unreleased one to the last chunk's end.

    Parameters
    ----------
    chunks : pyannote.core.SlidingWindow
        The chunk window (chunk ``c`` is ``chunks[c]``).
    frames : pyannote.core.SlidingWindow
        Frames of a chunk starting at 0 (the model's receptive field).
    num_columns : int, default=1
        Values per frame.
    hamming : bool, default=True
        Weight each chunk's frames with a Hamming window.
    warm_up : (float, float), default=(0, 0)
        Seconds at each end of a chunk whose frames get weight ``epsilon``.
    epsilon : float, default=1e-12
    capacity : int, default=0
        Frames allocated up front.

    Attributes
    ----------
    frames : pyannote.core.SlidingWindow
        The aggregated frames (starting where the chunk window starts).
    num_chunks : int
        Chunks added.
    covered : int
        Frames ``[0, covered)`` lie under a chunk added.
    released : int
        Frames ``[0, released)`` were released.

    Examples
    --------
    >>> from pyannote.core import SlidingWindow
    >>> live = OverlapAdd(SlidingWindow(start=0, duration=4, step=1),
    ...                   SlidingWindow(start=0, duration=1, step=1), hamming=False)
    >>> for _ in range(3):
    ...     live.add(np.ones((4, 1), dtype="float32"))
    >>> live.release(live.placement(live.num_chunks)).ravel().tolist()  # final
    [1.0, 1.0, 1.0]
    >>> live.release(live.num_frames()).ravel().tolist()  # the end
    [1.0, 1.0, 1.0, 0.0]
    """

    def __init__(
        self,
        chunks: SlidingWindow,
        frames: SlidingWindow,
        num_columns: int = 1,
        *,
        hamming: bool = True,
        warm_up: tuple[float, float] = (0.0, 0.0),
        epsilon: float = 1e-12,
        capacity: int = 0,
    ):
        self.chunks = chunks
        self.frames = SlidingWindow(
            start=chunks.start, duration=frames.duration, step=frames.step
        )
        self.hamming = hamming
        self.warm_up = warm_up
        self.epsilon = epsilon
        self.num_chunks = 0
        self.covered = 0
        self.released = 0
        self._total = FrameBuffer(num_columns, np.float32, capacity)
        self._count = FrameBuffer(num_columns, np.float32, capacity)
        self._seen = FrameBuffer(num_columns, bool, capacity)
        self._weight: np.ndarray | None = None

    @property
    def buffered_frames(self) -> int:
        """Frames the buffers can hold now (their capacity)."""
        return len(self._total.data)

    def placement(self, c: int) -> int:
        """First frame of chunk ``c``."""
        return self.frames.closest_frame(
            self.chunks[c].start + 0.5 * self.frames.duration
        )

    def num_frames(self, num_chunks: int | None = None) -> int:
        """Frames of ``num_chunks`` chunks (default: those added), to the last's end."""
        n = self.num_chunks if num_chunks is None else num_chunks
        return _num_frames(self.chunks, self.frames, n)

    def weight(self, num_frames: int) -> np.ndarray:
        """Return the ``(num_frames, 1)`` weight of a chunk's frames."""
        if self._weight is None or len(self._weight) != num_frames:
            hamming_window = (
                np.hamming(num_frames).reshape(-1, 1)
                if self.hamming
                else np.ones((num_frames, 1))
            )
            warm_up_window = np.ones((num_frames, 1))
            duration = self.chunks.duration
            left = round(self.warm_up[0] / duration * num_frames)
            right = round(self.warm_up[1] / duration * num_frames)
            warm_up_window[:left] = self.epsilon
            warm_up_window[num_frames - right :] = self.epsilon
            self._weight = hamming_window * warm_up_window
        return self._weight

    def add(self, score: np.ndarray) -> None:
        """Overlap-add the next chunk's ``(num_frames, num_columns)`` values.

        Frames already released are left out.
        """
        num_frames = len(score)
        weight = self.weight(num_frames)
        start = self.placement(self.num_chunks)
        stop = start + num_frames
        for buffer in (self._total, self._count, self._seen):
            buffer.reserve(self.released, stop, score.shape[1])
        lo = max(start, self.released)
        if lo < stop:
            k = lo - start
            score, weight = score[k:], weight[k:]
            if np.isnan(score).any():
                mask = ~np.isnan(score)
                score = np.where(mask, score, 0.0)
                self._total.rows(lo, stop)[...] += score * mask * weight
                self._count.rows(lo, stop)[...] += mask * weight
                self._seen.rows(lo, stop)[...] |= mask
            else:
                self._total.rows(lo, stop)[...] += score * weight
                self._count.rows(lo, stop)[...] += weight
                self._seen.rows(lo, stop)[...] = True
        self.covered = max(self.covered, stop)
        self.num_chunks += 1

    def release(
        self, stop: int, missing: float = 0.0, skip_average: bool = False
    ) -> np.ndarray:
        """Return frames ``[released, stop)`` and forget them.

        Parameters
        ----------
        stop : int
            Frames up to it are released (final only before
            ``placement(num_chunks)``, or at the end of the chunks).
        missing : float, default=0.0
            Value of frames no chunk covers.
        skip_average : bool, default=False
            Return the weighted sums instead of the weighted averages.

        Returns
        -------
        values : ndarray of float32, shape (stop - released, num_columns)
        """
        first = self.released
        if stop <= first:
            return np.zeros((0, self._total.data.shape[1]), dtype=np.float32)
        n = stop - first
        held = max(0, min(stop, self._total.start + len(self._total.data)) - first)
        total = self._total.rows(first, first + held)
        if not skip_average:
            total = total / np.maximum(
                self._count.rows(first, first + held), self.epsilon
            )
        out = np.full((n, total.shape[1]), missing, dtype=np.float32)
        seen = self._seen.rows(first, first + held)
        out[:held] = np.where(seen, total, np.float32(missing))
        self.released = stop
        return out


def aggregate(
    chunks: SlidingWindowFeature,
    frames: SlidingWindow | None = None,
    *,
    reduction: str | Callable[[np.ndarray], np.ndarray] | None = None,
    hamming: bool = True,
    warm_up: tuple[float, float] = (0.0, 0.0),
    missing: float = 0.0,
    skip_average: bool = False,
    epsilon: float = 1e-12,
    crop: bool | None = None,
) -> SlidingWindowFeature:
    """Overlap-add chunk scores into one frame-level score.

    Parameters
    ----------
    chunks : SlidingWindowFeature or ChunkScores
        ``(num_chunks, num_frames, num_classes)`` scores on the chunk window.
    frames : pyannote.core.SlidingWindow, optional
        Frames of a chunk starting at 0; defaults to ``chunks.frames``.
    reduction : {"speech", "overlap", None}, str or callable, default=None
        Applied to each chunk's ``(num_frames, num_classes)`` scores before the
        overlap-add: maximum over classes, second-largest class, nothing, or an
        output head's reduction (:class:`skseg.heads.Reduction`, or its name).
    hamming : bool, default=True
        Weight each chunk's frames with a Hamming window.
    warm_up : (float, float), default=(0, 0)
        Seconds at each end of a chunk whose frames get (almost) no weight.
    missing : float, default=0.0
        Value of frames that no chunk covers.
    skip_average : bool, default=False
        Return the weighted sum instead of the weighted average.
    epsilon : float, default=1e-12
        Weight of warm-up frames and floor of the normaliser.
    crop : bool, optional
        Crop to the file's extent (loose mode). Defaults to
        ``chunks.last_chunk_padded`` for :class:`ChunkScores`, as pyannote does.

    Returns
    -------
    scores : SlidingWindowFeature
        ``(num_frames, dimension)`` scores on the frame window.

    Examples
    --------
    >>> from pyannote.core import SlidingWindow, SlidingWindowFeature
    >>> chunks = SlidingWindowFeature(np.ones((3, 4, 2), dtype="float32"),
    ...                               SlidingWindow(start=0, duration=4, step=1))
    >>> out = aggregate(chunks, SlidingWindow(start=0, duration=1, step=1),
    ...                 reduction="speech", hamming=False)
    >>> out.data.ravel().tolist()
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    """
    if not isinstance(chunks, SlidingWindowFeature):
        raise TypeError(
            f"chunks must be ChunkScores or a SlidingWindowFeature, not "
            f"{type(chunks).__name__}"
        )
    if frames is None:
        frames = getattr(chunks, "frames", None)
        if frames is None:
            raise ValueError("frames must be given for a plain SlidingWindowFeature")
    reduce = reduction if callable(reduction) else REDUCTIONS.get(reduction)
    if reduce is None and isinstance(reduction, str):
        # a head's reduction by name (as the score cache keys it); imported here
        # because the heads build on this module's reductions
        from .heads import named_reduction

        reduce = named_reduction(reduction)
    if reduce is None:
        raise ValueError(
            f"unknown reduction {reduction!r}; use 'speech', 'overlap', None, an "
            "output head's reduction (skseg.heads.Reduction) or its name, or a "
            "callable"
        )
    data = np.asarray(chunks.data)
    if data.ndim != 3:
        raise ValueError(f"chunks must be (chunks, frames, classes), got {data.shape}")
    scores = reduce(data)
    num_chunks, num_frames_per_chunk, dim = scores.shape
    window = chunks.sliding_window
    overlap = OverlapAdd(
        window,
        frames,
        dim,
        hamming=hamming,
        warm_up=warm_up,
        epsilon=epsilon,
        capacity=_num_frames(window, frames, num_chunks),
    )
    for score in scores:
        overlap.add(score)
    average = overlap.release(
        overlap.num_frames(), missing=missing, skip_average=skip_average
    )
    frames = overlap.frames
    out = SlidingWindowFeature(average, frames)
    if crop is None:
        crop = bool(getattr(chunks, "last_chunk_padded", False))
    if crop:
        duration = chunks.duration if hasattr(chunks, "duration") else None
        if duration is None:
            raise ValueError("crop=True needs ChunkScores (the file's duration)")
        out.data = out.crop(Segment(0.0, duration), mode="loose")
    return out
