"""Chunk scores and their overlap-add aggregation, as pyannote.audio does them.

:class:`ChunkScores` holds one file's raw per-chunk scores and what placing them
needs; :func:`aggregate` turns them into one frame-level score: a per-chunk
reduction (``"speech"``: max over speakers; ``"overlap"``: second-largest;
``None``: none, see :data:`REDUCTIONS`; any output head's reductions, see
:mod:`skseg.heads`), then Hamming-weighted overlap-add, with
pyannote's frame placement, float32 accumulation in chunk order, uncovered frames
set to ``missing``, and the loose crop to the file's extent when the last chunk
was padded.

This module needs NumPy and pyannote.core only (no torch), so that the score
cache and anything else that only stores or reduces scores can import it without
the network.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pyannote.core import Segment, SlidingWindow, SlidingWindowFeature

__all__ = [
    "ChunkScores",
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
    frames = SlidingWindow(
        start=window.start, duration=frames.duration, step=frames.step
    )

    hamming_window = (
        np.hamming(num_frames_per_chunk).reshape(-1, 1)
        if hamming
        else np.ones((num_frames_per_chunk, 1))
    )
    warm_up_window = np.ones((num_frames_per_chunk, 1))
    left = round(warm_up[0] / window.duration * num_frames_per_chunk)
    right = round(warm_up[1] / window.duration * num_frames_per_chunk)
    warm_up_window[:left] = epsilon
    warm_up_window[num_frames_per_chunk - right :] = epsilon
    weight = hamming_window * warm_up_window

    num_frames = (
        frames.closest_frame(
            window.start
            + window.duration
            + (num_chunks - 1) * window.step
            + 0.5 * frames.duration
        )
        + 1
    )
    # float32 accumulators fed in chunk order: pyannote's arithmetic, bit for bit
    total = np.zeros((num_frames, dim), dtype=np.float32)
    count = np.zeros((num_frames, dim), dtype=np.float32)
    seen = np.zeros((num_frames, dim), dtype=bool)
    has_nan = bool(np.isnan(scores).any())
    for c in range(num_chunks):
        score = scores[c]
        start = frames.closest_frame(window[c].start + 0.5 * frames.duration)
        stop = start + num_frames_per_chunk
        if has_nan:
            mask = ~np.isnan(score)
            score = np.where(mask, score, 0.0)
            total[start:stop] += score * mask * weight
            count[start:stop] += mask * weight
            seen[start:stop] |= mask
        else:
            total[start:stop] += score * weight
            count[start:stop] += weight
            seen[start:stop] = True
    average = total if skip_average else total / np.maximum(count, epsilon)
    average[~seen] = missing
    out = SlidingWindowFeature(average, frames)
    if crop is None:
        crop = bool(getattr(chunks, "last_chunk_padded", False))
    if crop:
        duration = chunks.duration if hasattr(chunks, "duration") else None
        if duration is None:
            raise ValueError("crop=True needs ChunkScores (the file's duration)")
        out.data = out.crop(Segment(0.0, duration), mode="loose")
    return out
