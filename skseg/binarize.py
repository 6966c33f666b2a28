"""From frame scores to regions: hysteresis thresholding and duration rules.

:class:`Binarize` follows pyannote.audio's ``Binarize`` (3.2 ... 4.0.7): a region
starts at the middle of the first frame whose score is strictly above ``onset``
and ends at the middle of the first frame strictly below ``offset`` (or at the
last frame's middle); then, per label, gaps shorter than ``min_duration_off`` are
filled (``Annotation.support``) and only then are regions shorter than
``min_duration_on`` removed. One deliberate difference: pyannote writes
``offset or onset``, which silently turns ``offset=0.0`` into ``onset``; here
only ``offset=None`` means "same as onset".

:class:`RegionTracker` is the same rule for one track taking frames as they
come and releasing each region once no later frame can change it (what
:mod:`skseg.streaming` emits); fed a whole track, it gives :class:`Binarize`'s
regions. :func:`binarize` is pyannote's batch hysteresis over ``(..., frames)``
rows, used to count speakers per chunk.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pyannote.core import Annotation, Segment, SlidingWindowFeature

__all__ = ["Binarize", "RegionTracker", "binarize", "hysteresis_regions"]


def _hysteresis_states(x: np.ndarray, onset: float, offset: float) -> np.ndarray:
    """State of pyannote's Binarize state machine after each frame of ``x``."""
    on = x > onset
    off = x < offset
    # A frame sets the state (only "on" holds), clears it (only "off"), flips it
    # (both: a score between onset < offset) or holds it (neither: NaN). The state
    # is that of the last set/clear, flipped once per flip since (before any:
    # inactive, so a first flip switches on). With onset >= offset no frame flips.
    # Vectorised: no Python loop over frames.
    flip = on & off
    decided = on ^ off
    last = np.where(decided, np.arange(len(x)), -1)
    np.maximum.accumulate(last, out=last)
    flips = np.cumsum(flip)
    since = flips - np.where(last >= 0, flips[np.maximum(last, 0)], 0)
    base = np.where(last >= 0, on[np.maximum(last, 0)], False)
    return base ^ (since % 2 == 1)


def hysteresis_regions(
    x: np.ndarray, timestamps: np.ndarray, onset: float, offset: float
) -> list[tuple[float, float]]:
    """Return the ``(start, end)`` regions of one score track.

    Parameters
    ----------
    x : ndarray, shape (num_frames,)
        Scores.
    timestamps : ndarray, shape (num_frames,)
        Frame middles, in seconds.
    onset, offset : float
        Strict thresholds to switch on and off.

    Returns
    -------
    regions : list of (float, float)

    Examples
    --------
    >>> hysteresis_regions(np.array([0., .9, .6, .2, .9]), np.arange(5.), 0.8, 0.5)
    [(1.0, 3.0), (4.0, 4.0)]
    """
    if len(x) == 0:
        return []
    states = _hysteresis_states(np.asarray(x), onset, offset)
    edges = np.diff(states.astype(np.int8))
    starts = list(np.flatnonzero(edges == 1) + 1)
    ends = list(np.flatnonzero(edges == -1) + 1)
    if states[0]:
        starts.insert(0, 0)
    regions = [
        (float(timestamps[s]), float(timestamps[e]))
        for s, e in zip(starts, ends, strict=False)
    ]
    if states[-1]:
        regions.append((float(timestamps[starts[-1]]), float(timestamps[-1])))
    return regions


class Binarize:
    """Turn ``(num_frames, num_classes)`` scores into an :class:`Annotation`.

    Parameters
    ----------
    onset : float, default=0.5
        Start a region when the score goes strictly above it.
    offset : float, optional
        End a region when the score goes strictly below it; ``None`` means onset.
    min_duration_on : float, default=0.0
        Remove regions shorter than this (after gap filling), in seconds.
    min_duration_off : float, default=0.0
        Fill gaps shorter than this, in seconds.
    pad_onset, pad_offset : float, default=0.0
        Extend each region by this much before and after.

    Examples
    --------
    >>> from pyannote.core import SlidingWindow, SlidingWindowFeature
    >>> frames = SlidingWindow(start=0.0, duration=1.0, step=1.0)
    >>> scores = SlidingWindowFeature(np.array([[0.], [.9], [.9], [0.], [.9]]), frames)
    >>> regions = Binarize(onset=0.5)(scores)
    >>> for segment, _, label in regions.itertracks(yield_label=True):
    ...     print(segment.start, segment.end, label)
    1.5 3.5 0
    """

    def __init__(
        self,
        onset: float = 0.5,
        offset: float | None = None,
        min_duration_on: float = 0.0,
        min_duration_off: float = 0.0,
        pad_onset: float = 0.0,
        pad_offset: float = 0.0,
    ):
        self.onset = onset
        self.offset = onset if offset is None else offset
        self.min_duration_on = min_duration_on
        self.min_duration_off = min_duration_off
        self.pad_onset = pad_onset
        self.pad_offset = pad_offset

    def __call__(
        self, scores: SlidingWindowFeature, uri: str | None = None
    ) -> Annotation:
        """Binarize scores.

        Parameters
        ----------
        scores : SlidingWindowFeature
            ``(num_frames, num_classes)`` scores; ``scores.labels`` name the
            classes (else their indices).
        uri : str, optional
            URI of the returned annotation.

        Returns
        -------
        active : Annotation
        """
        data = np.asarray(scores.data)
        if data.ndim != 2:
            raise ValueError(f"scores must be (frames, classes), got {data.shape}")
        num_frames, num_classes = data.shape
        frames = scores.sliding_window
        # frames[i].middle, with pyannote.core's own arithmetic
        starts = frames.start + np.arange(num_frames) * frames.step
        timestamps = 0.5 * (starts + (starts + frames.duration))
        active = Annotation(uri=uri)
        for k in range(num_classes):
            label = k if scores.labels is None else scores.labels[k]
            track = _track_name(k)
            for start, end in hysteresis_regions(
                data[:, k], timestamps, self.onset, self.offset
            ):
                region = Segment(start - self.pad_onset, end + self.pad_offset)
                active[region, track] = label
        if self.pad_offset > 0.0 or self.pad_onset > 0.0 or self.min_duration_off > 0.0:
            active = active.support(collar=self.min_duration_off)
        if self.min_duration_on > 0:
            for segment, track in list(active.itertracks()):
                if segment.duration < self.min_duration_on:
                    del active[segment, track]
        return active


class RegionTracker:
    """:class:`Binarize`'s rules for one track, frame after frame.

    The hysteresis (a region starts at the first frame above ``onset`` and ends
    at the first below ``offset``), then ``Annotation.support(min_duration_off)``
    (gaps shorter than it filled) and the ``min_duration_on`` filter, each region
    released as soon as it is final: it has ended, and the frames seen reach
    ``min_duration_off`` past its end (no later region can be merged into it).

    Parameters
    ----------
    min_duration_on, min_duration_off : float, default=0.0
        As :class:`Binarize`'s.
    first : bool, default=True
        Whether the first frame pushed is the track's first (its state is then
        that frame's, as offline); ``False`` for a track that starts inactive.

    Attributes
    ----------
    idle : bool
        Nothing open and nothing held.

    Examples
    --------
    >>> tracker = RegionTracker(min_duration_off=1.5)
    >>> on = np.array([0., .9, .9, 0., .9, 0., 0., 0., 0.]) > 0.5
    >>> tracker.push(on[:6], ~on[:6], np.arange(6.0), 6.0)  # 3.0-4.0 may merge
    []
    >>> tracker.push(on[6:], ~on[6:], np.arange(6.0, 9.0), 9.0)
    [<Segment(1, 5)>]
    >>> tracker.close()
    []
    """

    def __init__(
        self,
        min_duration_on: float = 0.0,
        min_duration_off: float = 0.0,
        first: bool = True,
    ):
        self.min_duration_on = min_duration_on
        self.min_duration_off = min_duration_off
        self.active = False
        self.open_start = 0.0
        # a track that starts inactive has no first-frame rule
        self.started = not first
        self.last_time: float | None = None
        self.pending: Segment | None = None  # the (merged) region that may grow

    @property
    def idle(self) -> bool:
        """Nothing open and nothing held: no later frame below onset changes it."""
        return not self.active and self.pending is None

    def push(
        self, above: Any, below: Any, times: Any, next_time: float
    ) -> list[Segment]:
        """Take frames; return the regions made final.

        Parameters
        ----------
        above, below : sequence of bool
            Whether each frame is above ``onset`` and below ``offset``.
        times : sequence of float
            Each frame's middle, in seconds.
        next_time : float
            The middle of the frame after them (a later region starts there at
            the earliest).

        Returns
        -------
        regions : list of Segment
            In time order.
        """
        out: list[Segment] = []
        for on, off, time in zip(above, below, times, strict=True):
            if not self.started:  # the track's first frame
                self.started = True
                self.active = bool(on)
                self.open_start = time
            elif self.active:
                if off:
                    out += self._ended(self.open_start, time)
                    self.active = False
                    self.open_start = time
            elif on:
                # a region opens: the held one now knows whether it is merged
                if self.pending is not None and not self._merges(self.pending, time):
                    pending, self.pending = self.pending, None
                    out += self._final(pending)
                self.open_start = time
                self.active = True
            self.last_time = time
        if not self.active and self.pending is not None:
            # no later region can start before the next frame
            if not self._merges(self.pending, next_time):
                out += self._final(self.pending)
                self.pending = None
        return out

    def close(self) -> list[Segment]:
        """End the track: a region still open ends at the last frame's middle."""
        out: list[Segment] = []
        if self.active and self.last_time is not None:
            out += self._ended(self.open_start, self.last_time)
            self.active = False
        if self.pending is not None:
            out += self._final(self.pending)
            self.pending = None
        return out

    def _merges(self, region: Segment, start: float) -> bool:
        """Whether a region starting at ``start`` would be merged into ``region``."""
        if self.min_duration_off <= 0.0:
            return False
        # Timeline.support's gap test (a gap is only defined between non-empty ones)
        gap = Segment(start, start + 1.0) ^ region
        return not gap or gap.duration < self.min_duration_off

    def _ended(self, start: float, end: float) -> list[Segment]:
        """Take a hysteresis region that ended (before the duration rules)."""
        segment = Segment(start, end)
        if not segment:  # an Annotation drops empty segments
            return []
        if self.min_duration_off <= 0.0:
            return self._final(segment)
        if self.pending is not None and self._merges(self.pending, start):
            self.pending = self.pending | segment
            return []
        out = self._final(self.pending) if self.pending is not None else []
        self.pending = segment
        return out

    def _final(self, segment: Segment) -> list[Segment]:
        if self.min_duration_on > 0 and segment.duration < self.min_duration_on:
            return []
        return [segment]


def _track_name(k: int) -> str:
    # pyannote.core's string_generator: A..Z, then AA, AB, ...
    name = ""
    k += 1
    while k > 0:
        k, r = divmod(k - 1, 26)
        name = chr(65 + r) + name
    return name


def binarize(
    scores: np.ndarray,
    onset: float = 0.5,
    offset: float | None = None,
    initial_state: bool | np.ndarray | None = None,
) -> np.ndarray:
    """Batch hysteresis thresholding along the last axis (pyannote's ``binarize``).

    Parameters
    ----------
    scores : ndarray, shape (..., num_frames)
        Each row is thresholded independently; NaN counts as 0.
    onset : float, default=0.5
        Switch on strictly above it.
    offset : float, optional
        Switch off strictly below it; ``None`` means onset.
    initial_state : bool or ndarray, optional
        State before the first frame; defaults to
        ``scores[..., 0] >= (onset + offset) / 2``.

    Returns
    -------
    binarized : ndarray of bool, same shape as ``scores``
        When a frame is both above onset and below offset, "on" wins.

    Examples
    --------
    >>> binarize(np.array([[0.1, 0.7, 0.5, 0.2]]), onset=0.6, offset=0.4).astype(int)
    array([[0, 1, 1, 0]])
    """
    offset = onset if offset is None else offset
    x = np.nan_to_num(np.asarray(scores, dtype=float))
    if initial_state is None:
        init = x[..., 0] >= 0.5 * (onset + offset)
    else:
        init = np.broadcast_to(np.asarray(initial_state, dtype=bool), x.shape[:-1])
    on = x > onset
    decided = on | (x < offset)
    n = x.shape[-1]
    last = np.where(decided, np.arange(n), -1)
    last = np.maximum.accumulate(last, axis=-1)
    value = np.take_along_axis(on, np.maximum(last, 0), axis=-1)
    return np.where(last >= 0, value, init[..., None])
