"""Speech, overlap and speaker turns from a live audio stream.

:func:`stream` (or an estimator's ``stream`` method) returns a stream object: feed
it blocks of samples of any size with :meth:`DetectionStream.feed`, and it returns
the regions that have become final, in stream time; :meth:`DetectionStream.close`
ends the stream and returns the rest. The estimator's network, inference settings
and hyper-parameters apply unchanged.

How it works
------------
The network runs on each chunk (the model's duration, every ``step`` seconds, as
offline) as soon as the chunk's audio has arrived, once. Its per-chunk reduction
(largest speaker score for VAD, second largest for OSD) is overlap-added into a
rolling buffer of frame scores with the offline Hamming weights, in chunk order
and float32, exactly as :func:`skseg.aggregation.aggregate` does. A frame is
*decided* (its score frozen and fed to the hysteresis) at the earlier of

* the moment every chunk that covers it has been computed (then its score is the
  offline one), and
* ``latency`` seconds of audio after its middle, from the chunks seen so far
  (``latency < duration`` only).

At ``latency`` = the chunk duration, the second never comes first, so every frame
is decided from all the chunks offline inference gives it; the end of the stream
adds the zero-padded last chunk and crops the frames as offline inference ends a
file. The hysteresis and the minimum-duration rules are then pyannote's, applied
as frames are decided, so the stream's regions are **the offline regions** (the
network sees one chunk per batch instead of 32, which moves scores by float32
rounding only).

When a region is final
----------------------
A region is emitted only when no later audio can change it:

* it must have ended: the hysteresis has seen a decided frame below ``offset``;
* ``min_duration_off``: a later region that starts less than ``min_duration_off``
  after its end would be merged into it (the gap filled), so the region waits
  until the decided frames reach ``min_duration_off`` past its end (or a region
  starts later than that);
* ``min_duration_on`` is judged on the merged region, once final: a short region
  that is dropped is never emitted.

Each emitted :class:`Region` carries its ``delay``: the seconds of audio received
after its end before it was emitted, roughly ``latency + min_duration_off`` (0 for
a region that reaches the end of the stream).

Memory does not grow with the stream: audio is kept from the next chunk's start
on, and frame scores from the first undecided frame on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
from pyannote.core import Annotation, Segment, SlidingWindow

from .aggregation import REDUCTIONS
from .exceptions import SksegError

__all__ = [
    "DetectionStream",
    "Region",
    "StreamError",
    "stream",
    "to_annotation",
]


class StreamError(SksegError, ValueError):
    """A stream was given something it cannot use (bad samples, fed after close).

    Examples
    --------
    >>> issubclass(StreamError, ValueError)
    True
    """


@dataclass(frozen=True)
class Region:
    """One final region of a stream.

    Parameters
    ----------
    start, end : float
        In seconds of stream time (0 is the first sample fed).
    label : str
        ``"SPEECH"``, ``"OVERLAP"``, or a speaker label.
    delay : float
        Seconds of audio received after ``end`` before the region was emitted.

    Examples
    --------
    >>> region = Region(1.5, 3.25, "SPEECH", 0.75)
    >>> region.segment.duration
    1.75
    """

    start: float
    end: float
    label: str
    delay: float

    @property
    def segment(self) -> Segment:
        """The region as a :class:`pyannote.core.Segment`."""
        return Segment(self.start, self.end)


def to_annotation(regions: Iterable[Region], uri: str = "stream") -> Annotation:
    """Collect regions into an :class:`~pyannote.core.Annotation`.

    Parameters
    ----------
    regions : iterable of Region
    uri : str, default="stream"

    Returns
    -------
    annotation : Annotation

    Examples
    --------
    >>> to_annotation([Region(0.0, 1.0, "SPEECH", 0.5)], uri="mic").labels()
    ['SPEECH']
    """
    annotation = Annotation(uri=uri)
    for k, region in enumerate(regions):
        annotation[region.segment, k] = region.label
    return annotation


def _check_latency(latency: Any, step: float, duration: float, owner: str) -> float:
    if latency is None:
        return duration
    if not isinstance(latency, Real) or isinstance(latency, bool):
        raise StreamError(f"latency must be a number of seconds, not {latency!r}")
    latency = float(latency)
    # a little slack: "0.5" must be accepted for a step computed as 0.1 * 5.0
    if not step - 1e-9 <= latency <= duration + 1e-9:
        raise StreamError(
            f"latency must lie between one step ({step:g} s) and the chunk "
            f"duration ({duration:g} s) of {owner}; got {latency:g} s"
        )
    return min(max(latency, step), duration)


def _samples(block: Any, where: str) -> np.ndarray:
    """One block as float32 mono samples, or a clear error."""
    x = np.asarray(block)
    if x.ndim == 2:  # (time, channels), as sounddevice gives: average
        x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    if x.ndim != 1:
        raise StreamError(
            f"{where}: a block must be 1-D samples or (samples, channels), "
            f"got shape {x.shape}"
        )
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise StreamError(f"{where}: samples must be real numbers, not {x.dtype}")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x))[0])
        raise StreamError(f"{where}: sample {bad} of the block is not finite")
    return x


class DetectionStream:
    """VAD or OSD on a live stream: feed samples, get final regions.

    Made by :func:`stream` (or ``estimator.stream(latency)``).

    Parameters
    ----------
    estimator : VADEstimator or OSDEstimator
        Any detection estimator (its ``reduction``, ``region_label``,
        hyper-parameters, network and runtime parameters are used as they are).
    latency : float, optional
        Seconds of audio after a frame before it is decided, from one step (0.5 s
        for the 2021 model) to the chunk duration (the default: the offline
        result).

    Attributes
    ----------
    latency : float
        Resolved latency, in seconds.
    sample_rate : int
        Rate the samples fed must have (the model's).
    duration, step : float
        The model's chunk duration and the inference step, in seconds.
    num_samples : int
        Samples fed so far.
    num_chunks : int
        Chunks the network has run on so far.
    buffered_samples, buffered_frames : int
        What the stream holds (bounded: about one chunk of each).

    Examples
    --------
    >>> import numpy as np
    >>> import soundfile as sf
    >>> from skseg import VADEstimator, fetch_sample
    >>> audio, sr = sf.read(fetch_sample()["audio"], dtype="float32")
    >>> live = VADEstimator().stream()  # latency = chunk duration: offline regions
    >>> regions = []
    >>> for start in range(0, len(audio), 4000):  # 0.25 s blocks
    ...     regions += live.feed(audio[start : start + 4000])
    >>> regions += live.close()
    >>> [(round(r.start, 2), round(r.end, 2), r.label) for r in regions]
    [(6.73, 7.17, 'SPEECH'), (7.61, 21.55, 'SPEECH'), (21.78, 29.97, 'SPEECH')]
    >>> offline = VADEstimator()(fetch_sample())
    >>> [r.segment for r in regions] == list(offline.itersegments())
    True
    >>> max(r.delay for r in regions) <= live.duration
    True
    """

    def __init__(self, estimator: Any, latency: float | None = None):
        source = estimator.score_source()  # checks every parameter, loads the model
        self.estimator = estimator
        self._inference = source.inference
        model = source.model
        self.sample_rate = int(model.sample_rate)
        self.duration = float(model.duration)
        self.step = float(source.step)
        self.batch_size = int(source.batch_size)
        owner = type(estimator).__name__
        self.latency = _check_latency(latency, self.step, self.duration, owner)
        self._reduce = REDUCTIONS[estimator.reduction]
        self.label = estimator.region_label
        self.onset = float(estimator.onset)
        offset = estimator.offset
        self.offset = self.onset if offset is None else float(offset)
        self.min_duration_on = float(estimator.min_duration_on)
        self.min_duration_off = float(estimator.min_duration_off)
        self._exact = self.latency >= self.duration
        # chunk c covers [c * step, c * step + duration]; frames as aggregate()'s
        self._chunks = SlidingWindow(start=0.0, duration=self.duration, step=self.step)
        receptive = model.receptive_field
        self._frames = SlidingWindow(
            start=0.0, duration=receptive.duration, step=receptive.step
        )
        self._window = round(self.duration * self.sample_rate)
        self._hop = round(self.step * self.sample_rate)
        # audio from sample _audio_start on (the next chunk's start)
        self._audio = np.zeros(0, dtype=np.float32)
        self._audio_start = 0
        self.num_samples = 0
        self.num_chunks = 0
        # overlap-add accumulators from frame _acc_start on
        self._total: np.ndarray | None = None
        self._count: np.ndarray | None = None
        self._weight: np.ndarray | None = None
        self._acc_start = 0
        self._covered = 0  # frames [0, _covered) are covered by a computed chunk
        self._decided = 0  # frames [0, _decided) are decided
        # hysteresis: whether a region is open, and its start
        self._active = False
        self._open_start = 0.0
        self._last_time: float | None = None  # timestamp of the last decided frame
        # min_duration_off: the (merged) region that may still grow
        self._pending: Segment | None = None
        self._closed = False

    # -- public API ---------------------------------------------------------------
    def feed(self, samples: Any) -> list[Region]:
        """Add samples; return the regions that became final.

        Parameters
        ----------
        samples : array-like, shape (n,) or (n, channels)
            At :attr:`sample_rate`, float (any scale the estimator was tuned on:
            [-1, 1] like soundfile). Channels are averaged. Any length, 0 included.

        Returns
        -------
        regions : list of Region
            In time order, each emitted once.

        Raises
        ------
        StreamError
            If the stream is closed, or the samples are not finite real numbers.
        """
        if self._closed:
            raise StreamError("feed() after close(): start a new stream")
        x = _samples(samples, "feed()")
        out: list[Region] = []
        # in slices of one batch of chunks: a long block never sits in memory twice
        piece = max(self._hop * self.batch_size, self._window)
        for start in range(0, len(x), piece):
            self._append(x[start : start + piece])
            self._run_chunks()
            out += self._decide(self._horizon())
        return out

    def close(self) -> list[Region]:
        """End the stream; return the remaining regions.

        The end is offline inference's end of a file: a last chunk, zero-padded,
        when the audio does not end on a chunk boundary, and frame scores cropped
        to the audio's extent.

        Returns
        -------
        regions : list of Region
        """
        if self._closed:
            return []
        self._closed = True
        n = self.num_samples
        if n == 0:
            return []
        padded = n < self._window or (n - self._window) % self._hop > 0
        if padded:
            tail = self._audio[self._chunk_start(self.num_chunks) - self._audio_start :]
            self._add(self._score(tail, 1))
        # aggregate()'s frame count, then its loose crop when the last chunk is padded
        num_frames = (
            self._frames.closest_frame(
                self._chunks.start
                + self._chunks.duration
                + (self.num_chunks - 1) * self._chunks.step
                + 0.5 * self._frames.duration
            )
            + 1
        )
        if padded:
            (first, stop), *_ = self._frames.crop(
                Segment(0.0, n / self.sample_rate), mode="loose", return_ranges=True
            )
            num_frames = min(max(stop, 0), num_frames)
        out = self._decide(num_frames)
        if self._active:
            out += self._raw_region(self._open_start, self._last_time)
            self._active = False
        if self._pending is not None:
            out += self._emit(self._pending)
            self._pending = None
        self._audio = np.zeros(0, dtype=np.float32)
        self._total = self._count = None
        return out

    @property
    def buffered_samples(self) -> int:
        """Samples held: from the next chunk's start to the last sample fed."""
        return len(self._audio)

    @property
    def buffered_frames(self) -> int:
        """Frame scores held by the overlap-add buffer (its capacity)."""
        return 0 if self._total is None else len(self._total)

    def __iter__(self) -> Iterator[Region]:
        raise TypeError("a stream is fed, not iterated: use feed() and close()")

    # -- audio and chunks ---------------------------------------------------------
    def _chunk_start(self, c: int) -> int:
        return c * self._hop

    def _append(self, x: np.ndarray) -> None:
        keep = self._audio[self._chunk_start(self.num_chunks) - self._audio_start :]
        self._audio = np.concatenate([keep, x]) if len(keep) else x.copy()
        self._audio_start = self._chunk_start(self.num_chunks)
        self.num_samples += len(x)

    def _score(self, block: np.ndarray, num_chunks: int) -> np.ndarray:
        """Reduced scores ``(num_chunks, frames, dim)`` of the chunks of a block."""
        chunks = self._inference(
            {
                "waveform": block[None, :],
                "sample_rate": self.sample_rate,
                "uri": "stream",
            }
        )
        data = np.asarray(chunks.data)
        assert len(data) == num_chunks  # noqa: S101 -- the block was cut for them
        return self._reduce(data)

    def _run_chunks(self) -> None:
        available = (
            (self.num_samples - self._window) // self._hop + 1
            if self.num_samples >= self._window
            else 0
        )
        while self.num_chunks < available:
            k = min(available - self.num_chunks, self.batch_size)
            a = self._chunk_start(self.num_chunks) - self._audio_start
            b = a + (k - 1) * self._hop + self._window
            self._add(self._score(self._audio[a:b], k))

    def _add(self, scores: np.ndarray) -> None:
        """Overlap-add the next chunks in order, with aggregate()'s arithmetic."""
        num_frames, dim = scores.shape[1], scores.shape[2]
        if self._total is None:
            capacity = 4 * num_frames
            self._total = np.zeros((capacity, dim), dtype=np.float32)
            self._count = np.zeros((capacity, dim), dtype=np.float32)
            self._weight = np.hamming(num_frames).reshape(-1, 1) * np.ones(
                (num_frames, 1)
            )
        for score in scores:
            c = self.num_chunks
            start = self._frames.closest_frame(
                self._chunks[c].start + 0.5 * self._frames.duration
            )
            stop = start + num_frames
            self._reserve(stop)
            lo = max(start, self._acc_start)
            if lo < stop:
                a, b = lo - self._acc_start, stop - self._acc_start
                k = lo - start
                self._total[a:b] += score[k:] * self._weight[k:]
                self._count[a:b] += self._weight[k:]
            self._covered = max(self._covered, stop)
            self.num_chunks += 1

    def _reserve(self, stop: int) -> None:
        """Make the accumulators hold frames ``[_decided, stop)``."""
        shift = self._decided - self._acc_start
        if stop - self._acc_start <= len(self._total):
            return
        need = stop - self._decided
        capacity = max(len(self._total), 2 * need)
        for name in ("_total", "_count"):
            old = getattr(self, name)
            new = np.zeros((capacity, old.shape[1]), dtype=np.float32)
            kept = old[shift:]
            new[: len(kept)] = kept
            setattr(self, name, new)
        self._acc_start = self._decided

    # -- decisions ----------------------------------------------------------------
    def _horizon(self) -> int:
        """Frames ``[0, horizon)`` may be decided now."""
        if self.num_chunks == 0:
            return 0
        # frames before the next chunk's first frame have all their chunks
        complete = self._frames.closest_frame(
            self._chunks[self.num_chunks].start + 0.5 * self._frames.duration
        )
        complete = min(complete, self._covered)
        if self._exact:
            return complete
        # frames whose middle is `latency` seconds old, from the chunks seen so far
        now = self.num_samples / self.sample_rate
        frames = self._frames
        due = math.floor(
            (now - self.latency - frames.start - 0.5 * frames.duration) / frames.step
        )
        return max(complete, min(due + 1, self._covered))

    def _decide(self, horizon: int) -> list[Region]:
        """Decide frames ``[_decided, horizon)``; return the regions made final."""
        if horizon <= self._decided:
            return []
        a = self._decided - self._acc_start
        b = horizon - self._acc_start
        covered = min(self._covered, horizon) - self._acc_start
        values = np.zeros(b - a, dtype=np.float32)  # aggregate()'s `missing`
        if covered > a:
            total = self._total[a:covered, 0]
            count = self._count[a:covered, 0]
            values[: covered - a] = total / np.maximum(count, 1e-12)
        first = self._decided
        self._decided = horizon
        # Binarize's timestamps: frame middles with pyannote.core's arithmetic
        starts = self._frames.start + np.arange(first, horizon) * self._frames.step
        times = 0.5 * (starts + (starts + self._frames.duration))
        # compared as Binarize compares them: float32 scores, thresholds cast to
        # float32 (0.767 is not above a score of float32(0.767))
        above = (values > self.onset).tolist()
        below = (values < self.offset).tolist()
        out: list[Region] = []
        for on, off, time in zip(above, below, times.tolist(), strict=True):
            if self._last_time is None:  # the stream's first frame
                self._active = on
                self._open_start = time
            elif self._active:
                if off:
                    out += self._raw_region(self._open_start, time)
                    self._active = False
                    self._open_start = time
            elif on:
                out += self._opened(time)
                self._open_start = time
                self._active = True
            self._last_time = time
        if not self._active and self._pending is not None:
            # no later region can start before the first undecided frame
            nxt = self._frames.start + horizon * self._frames.step
            nxt = 0.5 * (nxt + (nxt + self._frames.duration))
            if not self._merges(self._pending, nxt):
                out += self._emit(self._pending)
                self._pending = None
        return out

    def _merges(self, region: Segment, start: float) -> bool:
        """Whether a region starting at ``start`` would be merged into ``region``."""
        if self.min_duration_off <= 0.0:
            return False
        # Timeline.support's gap test (a gap is only defined between non-empty ones)
        gap = Segment(start, start + 1.0) ^ region
        return not gap or gap.duration < self.min_duration_off

    def _opened(self, start: float) -> list[Region]:
        # a region opens: the pending one now knows whether it is merged
        if self._pending is not None and not self._merges(self._pending, start):
            pending, self._pending = self._pending, None
            return self._emit(pending)
        return []

    def _raw_region(self, start: float, end: float) -> list[Region]:
        """Take a hysteresis region that ended (before the duration rules)."""
        segment = Segment(start, end)
        if not segment:  # an Annotation drops empty segments
            return []
        if self.min_duration_off <= 0.0:
            return self._emit(segment)
        if self._pending is not None and self._merges(self._pending, start):
            self._pending = self._pending | segment
        else:
            out = self._emit(self._pending) if self._pending is not None else []
            self._pending = segment
            return out
        return []

    def _emit(self, segment: Segment) -> list[Region]:
        if self.min_duration_on > 0 and segment.duration < self.min_duration_on:
            return []
        now = self.num_samples / self.sample_rate
        delay = max(0.0, now - segment.end)
        return [Region(segment.start, segment.end, self.label, delay)]


def stream(estimator: Any, latency: float | None = None) -> DetectionStream:
    """Return a live stream of an estimator's regions.

    Parameters
    ----------
    estimator : VADEstimator or OSDEstimator
        Its network, runtime parameters and hyper-parameters are used unchanged.
    latency : float, optional
        From one inference step to the chunk duration (the default, which gives the
        offline regions). See :class:`DetectionStream`.

    Returns
    -------
    stream : DetectionStream

    Raises
    ------
    StreamError
        If the latency is out of range or the estimator cannot stream.

    Examples
    --------
    >>> import numpy as np
    >>> from skseg import OSDEstimator
    >>> live = stream(OSDEstimator(), latency=0.5)
    >>> live.latency, live.duration, live.sample_rate
    (0.5, 5.0, 16000)
    >>> live.feed(np.zeros(16000, dtype="float32")) + live.close()
    []
    """
    if not hasattr(estimator, "reduction") or not hasattr(estimator, "region_label"):
        raise StreamError(
            f"{type(estimator).__name__} cannot stream: streaming needs a detection "
            "estimator (VADEstimator, OSDEstimator)"
        )
    return DetectionStream(estimator, latency)
