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
rolling buffer of frame scores by :class:`skseg.aggregation.OverlapAdd`, the
overlap-add :func:`skseg.aggregation.aggregate` runs offline. A frame is
*decided* (its score frozen and fed to the hysteresis) at the earlier of

* the moment every chunk that covers it has been computed (then its score is the
  offline one), and
* ``latency`` seconds of audio after its middle, from the chunks seen so far
  (``latency < duration`` only).

At ``latency`` = the chunk duration, the second never comes first, so every frame
is decided from all the chunks offline inference gives it; the end of the stream
adds the zero-padded last chunk and crops the frames as offline inference ends a
file. The hysteresis and the minimum-duration rules are then pyannote's, applied
as frames are decided (:class:`skseg.binarize.RegionTracker`, tested equal to
:class:`skseg.binarize.Binarize`), so the stream's regions are **the offline
regions** (the
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

Speaker turns (:class:`SegmentationStream`) count speakers exactly as offline,
but stitch each chunk's speakers to the previous chunks' as it arrives (offline
stitching is global), so their turns are the stream's own.

Memory does not grow with the stream: audio is kept from the next chunk's start
on, frame scores from the first undecided frame on, and speakers (their columns,
tracks and names) only while they may still speak or have a turn to emit.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
from pyannote.core import Annotation, Segment, SlidingWindow
from scipy.optimize import linear_sum_assignment

from .aggregation import FrameBuffer, OverlapAdd
from .audio import MAX_AMPLITUDE
from .binarize import RegionTracker, binarize
from .exceptions import SksegError

__all__ = [
    "DetectionStream",
    "Region",
    "SegmentationStream",
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
    if len(x) and max(-float(x.min()), float(x.max())) > MAX_AMPLITUDE:
        # the network's statistics overflow: every score NaN, read as silence
        bad = int(np.flatnonzero(np.abs(x) > MAX_AMPLITUDE)[0])
        raise StreamError(
            f"{where}: sample {bad} of the block has an implausible amplitude "
            f"({float(x[bad]):.3g}, beyond {MAX_AMPLITUDE:.3g}); scale the audio to "
            "[-1, 1]"
        )
    return x


class _ChunkStream:
    """What the streams share: audio in, each chunk through the network once.

    Subclasses place a chunk's scores (:meth:`_add`), decide frames up to a
    horizon (:meth:`_decide`) and end the stream (:meth:`_finish`).
    """

    def __init__(self, estimator: Any, latency: float | None, warm_up: float = 0.0):
        source = estimator.score_source()  # checks every parameter, loads the model
        self.estimator = estimator
        self._inference = source.inference
        model = source.model
        self._model = model
        self.sample_rate = int(model.sample_rate)
        self.duration = float(model.duration)
        self.step = float(source.step)
        self.batch_size = int(source.batch_size)
        owner = type(estimator).__name__
        self.latency = _check_latency(latency, self.step, self.duration, owner)
        self._exact = self.latency >= self.duration
        # chunk c covers [c * step, c * step + duration], minus the warm-up that
        # the pipeline trims; frames as aggregate() places them on that window
        self._chunks = SlidingWindow(
            start=warm_up * self.duration,
            duration=(1 - warm_up - warm_up) * self.duration,
            step=self.step,
        )
        receptive = model.receptive_field
        self._frames = SlidingWindow(
            start=self._chunks.start, duration=receptive.duration, step=receptive.step
        )
        self._window = round(self.duration * self.sample_rate)
        self._hop = round(self.step * self.sample_rate)
        # audio from sample _audio_start on (the next chunk's start)
        self._audio = np.zeros(0, dtype=np.float32)
        self._audio_start = 0
        self.num_samples = 0
        self.num_chunks = 0
        self._decided = 0  # frames [0, _decided) are decided
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
            Each emitted once.

        Raises
        ------
        StreamError
            If the stream is closed, or the samples are not finite real numbers
            (the block is refused as a whole).
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
        when the audio does not end on a chunk boundary, and the pipeline's last
        frames.

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
        out = self._finish(self._overlap.num_frames(), padded)
        self._audio = np.zeros(0, dtype=np.float32)
        return out

    @property
    def buffered_samples(self) -> int:
        """Samples held: from the next chunk's start to the last sample fed."""
        return len(self._audio)

    def __iter__(self) -> Iterator[Region]:
        raise TypeError("a stream is fed, not iterated: use feed() and close()")

    # -- audio and chunks ---------------------------------------------------------
    def _now(self) -> float:
        return self.num_samples / self.sample_rate

    def _chunk_start(self, c: int) -> int:
        return c * self._hop

    def _append(self, x: np.ndarray) -> None:
        keep = self._audio[self._chunk_start(self.num_chunks) - self._audio_start :]
        self._audio = np.concatenate([keep, x]) if len(keep) else x.copy()
        self._audio_start = self._chunk_start(self.num_chunks)
        self.num_samples += len(x)

    def _score(self, block: np.ndarray, num_chunks: int) -> np.ndarray:
        """Raw scores ``(num_chunks, frames, classes)`` of the chunks of a block."""
        file = {"waveform": block[None, :], "sample_rate": self.sample_rate}
        data = np.asarray(self._inference({**file, "uri": "stream"}).data)
        assert len(data) == num_chunks  # noqa: S101 -- the block was cut for them
        return data

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

    def _horizon(self) -> int:
        """Frames ``[0, horizon)`` may be decided now."""
        if self.num_chunks == 0:
            return 0
        # frames before the next chunk's first frame have all their chunks
        covered = self._overlap.covered
        complete = min(self._overlap.placement(self.num_chunks), covered)
        if self._exact:
            return complete
        # frames whose middle is `latency` seconds old, from the chunks seen so far
        frames = self._frames
        due = math.floor(
            (self._now() - self.latency - frames.start - 0.5 * frames.duration)
            / frames.step
        )
        return max(complete, min(due + 1, covered))

    def _times(self, first: int, stop: int) -> np.ndarray:
        """Middles of frames ``[first, stop)``, with Binarize's arithmetic."""
        starts = self._frames.start + np.arange(first, stop) * self._frames.step
        return 0.5 * (starts + (starts + self._frames.duration))

    def _regions(self, segments: list[Segment], label: str) -> list[Region]:
        now = self._now()
        return [Region(s.start, s.end, label, max(0.0, now - s.end)) for s in segments]

    def _add(self, scores: np.ndarray) -> None:
        raise NotImplementedError

    def _decide(self, horizon: int) -> list[Region]:
        raise NotImplementedError

    def _finish(self, num_frames: int, padded: bool) -> list[Region]:
        raise NotImplementedError


class DetectionStream(_ChunkStream):
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
        super().__init__(estimator, latency)
        # the offline rule: "auto" thresholds and the head's reduction are
        # resolved exactly as the estimator resolves them for this network
        self.onset, self.offset, self._reduce = estimator.frame_reduction(self._model)
        self.label = estimator.region_label
        self.min_duration_on = float(estimator.min_duration_on)
        self.min_duration_off = float(estimator.min_duration_off)
        # the offline overlap-add (Hamming weights), fed chunk by chunk
        self._overlap = OverlapAdd(self._chunks, self._frames)
        self._track = RegionTracker(self.min_duration_on, self.min_duration_off)

    @property
    def buffered_frames(self) -> int:
        """Frame scores held by the overlap-add buffer (its capacity)."""
        return self._overlap.buffered_frames

    def _add(self, raw: np.ndarray) -> None:
        """Overlap-add the next chunks in order."""
        for score in self._reduce(raw):
            self._overlap.add(score)
            self.num_chunks += 1

    def _decide(self, horizon: int) -> list[Region]:
        """Decide frames ``[_decided, horizon)``; return the regions made final."""
        first = self._decided
        if horizon <= first:
            return []
        values = self._overlap.release(horizon)[:, 0]  # uncovered: aggregate()'s 0
        self._decided = horizon
        # compared as Binarize compares them: float32 scores, thresholds cast to
        # float32 (0.767 is not above a score of float32(0.767))
        above = (values > self.onset).tolist()
        below = (values < self.offset).tolist()
        times = self._times(first, horizon + 1).tolist()
        segments = self._track.push(above, below, times[:-1], times[-1])
        return self._regions(segments, self.label)

    def _finish(self, num_frames: int, padded: bool) -> list[Region]:
        if padded:
            # aggregate()'s loose crop to the audio when the last chunk is padded
            (_, stop), *_ = self._frames.crop(
                Segment(0.0, self._now()), mode="loose", return_ranges=True
            )
            num_frames = min(max(stop, 0), num_frames)
        out = self._decide(num_frames)
        out += self._regions(self._track.close(), self.label)
        self._overlap = OverlapAdd(self._chunks, self._frames)  # frees the buffers
        return out


class SegmentationStream(_ChunkStream):
    """Speaker turns on a live stream: feed samples, get final turns.

    Made by :func:`stream` (or ``SegmentationEstimator().stream(latency)``). The
    estimator's pipeline, streamed: per chunk, speakers are binarized and counted
    (the speaker count is overlap-added exactly as offline), the chunk's local
    speakers are matched to those of the previous chunks on their common frames
    (Hungarian assignment on the mean absolute difference, as offline) and take
    their global identity when the cost is at most ``stitch_threshold``, or a new
    one; each frame keeps its ``count`` speakers with the largest summed scores;
    turns follow with the minimum-duration rules.

    Offline stitching is global (connected components of the whole file's graph,
    its threshold halving until they fit): a stream cannot wait for the whole
    file, so here a chunk's speakers are matched once, when it arrives, and keep
    their identity. Turns therefore differ from :meth:`predict`'s even at the
    chunk latency, unlike the detection streams; labels are ``SPEAKER_00``,
    ``SPEAKER_01``... in the order speakers are first emitted.

    Parameters
    ----------
    estimator : SegmentationEstimator
    latency : float, optional
        From one step to the chunk duration (the default).

    Attributes
    ----------
    latency, sample_rate, duration, step, num_samples, num_chunks
        As :class:`DetectionStream`'s.

    Examples
    --------
    >>> import soundfile as sf
    >>> from skseg import SegmentationEstimator, fetch_sample
    >>> audio, sr = sf.read(fetch_sample()["audio"], dtype="float32")
    >>> live = SegmentationEstimator().stream(latency=2.0)
    >>> turns = []
    >>> for start in range(0, len(audio), 8000):
    ...     turns += live.feed(audio[start : start + 8000])
    >>> turns += live.close()
    >>> sorted({turn.label for turn in turns})
    ['SPEAKER_00', 'SPEAKER_01']
    """

    def __init__(self, estimator: Any, latency: float | None = None):
        self.warm_up = float(estimator.warm_up)
        super().__init__(estimator, latency, warm_up=self.warm_up)
        # the chunks become speaker activities by the offline rule (the head's)
        self.onset, self.offset, self._speakers = estimator.speaker_reduction(
            self._model
        )
        self.min_duration_on = float(estimator.min_duration_on)
        self.min_duration_off = float(estimator.min_duration_off)
        self.stitch_threshold = float(estimator.stitch_threshold)
        self._lookahead = max(
            1, math.floor(self._chunks.duration / self._chunks.step - 1)
        )
        # binarized speakers per frame, averaged over chunks (offline's count)
        self._overlap = OverlapAdd(self._chunks, self._frames, hamming=False)
        self._summed = FrameBuffer(0)  # scores of each live speaker (columns)
        self._columns: list[int] = []  # speaker of each column
        self._last_frame: dict[int, int] = {}  # speaker -> end of its last chunk
        self._recent: deque = deque(maxlen=self._lookahead)  # (scores, speakers)
        self._tracks: dict[int, RegionTracker] = {}
        self._names: dict[int, str] = {}  # speakers emitted and still tracked
        self._num_speakers = 0
        self._num_named = 0

    @property
    def buffered_frames(self) -> int:
        """Frames held by the overlap-add buffers (their capacity)."""
        return self._overlap.buffered_frames

    @property
    def buffered_speakers(self) -> int:
        """Speakers the stream holds state for (bounded: those heard lately)."""
        return len(set(self._tracks) | set(self._names) | set(self._columns))

    def _match(self, scores: np.ndarray, active: np.ndarray) -> list[int]:
        """Global speaker of each slot of a new chunk (-1: inactive)."""
        num_frames, num_slots = scores.shape
        speakers = [-1] * num_slots
        used: set[int] = set()
        for d, (previous, identities) in enumerate(reversed(self._recent), start=1):
            shift = abs(round(-d * num_frames * self.step / self._chunks.duration))
            if shift >= num_frames:
                break
            early, late = previous[shift:], scores[: num_frames - shift]
            # cost[j, i]: this chunk's slot j against the earlier chunk's slot i
            cost = np.abs(late[:, :, None] - early[:, None, :]).mean(
                axis=0, dtype=np.float64
            )
            permutation = linear_sum_assignment(cost)[1]
            for j, i in enumerate(permutation):
                g = identities[i]
                if (
                    speakers[j] < 0
                    and active[j]
                    and g >= 0
                    and g not in used
                    and cost[j, i] <= self.stitch_threshold
                ):
                    speakers[j] = g
                    used.add(g)
        for j in range(num_slots):
            if active[j] and speakers[j] < 0:
                speakers[j] = self._num_speakers
                self._num_speakers += 1
        return speakers

    def _add(self, raw: np.ndarray) -> None:
        raw = self._speakers(raw)
        num_frames = raw.shape[1]
        left = round(num_frames * self.warm_up)
        stop_frame = num_frames - left
        # per-slot hysteresis from inactive, before trimming (speaker_count's)
        binarized = binarize(
            np.swapaxes(raw, 1, 2), self.onset, self.offset, initial_state=False
        )
        binarized = np.swapaxes(binarized, 1, 2).astype(np.float64)
        for chunk, states in zip(raw, binarized, strict=True):
            scores = chunk[left:stop_frame]
            count = np.sum(states[left:stop_frame], axis=-1, keepdims=True)
            width = len(scores)
            active = np.any(scores > self.onset, axis=0)
            speakers = self._match(scores, active)
            self._recent.append((scores, speakers))
            for g in speakers:
                if g >= 0 and g not in self._tracks:
                    self._tracks[g] = RegionTracker(
                        self.min_duration_on, self.min_duration_off, first=False
                    )
                    self._columns.append(g)
            start = self._overlap.placement(self.num_chunks)
            stop = start + width
            self._overlap.add(count)
            self._summed.reserve(self._decided, stop, len(self._columns))
            lo = max(start, self._decided)
            if lo < stop:
                k = lo - start
                summed = self._summed.rows(lo, stop)
                for j, g in enumerate(speakers):
                    if g >= 0:
                        summed[:, self._columns.index(g)] += scores[k:, j]
            for g in speakers:
                if g >= 0:
                    self._last_frame[g] = stop
            self.num_chunks += 1

    def _decide(self, horizon: int) -> list[Region]:
        first = self._decided
        if horizon <= first:
            return []
        n = horizon - first
        covered = max(0, min(self._overlap.covered, horizon) - first)
        average = self._overlap.release(horizon)[:covered, 0]
        num_columns = len(self._columns)
        discrete = np.zeros((n, num_columns), dtype=bool)
        if covered and num_columns:
            counts = np.rint(average).astype(np.int64)
            counts = np.minimum(counts, num_columns)
            scores = self._summed.rows(first, first + covered)[:, :num_columns]
            top = int(counts.max(initial=0))
            if top:
                order = np.argsort(-scores, axis=-1)[:, :top]
                chosen = np.arange(top)[None, :] < counts[:, None]
                rows, k = np.nonzero(chosen)
                discrete[rows, order[rows, k]] = True
        self._decided = horizon
        times = self._times(first, horizon + 1).tolist()
        out: list[Region] = []
        silent = [False] * n
        done = []
        for g, track in self._tracks.items():
            if g in self._columns:
                on = discrete[:, self._columns.index(g)]
                segments = track.push(
                    on.tolist(), (~on).tolist(), times[:-1], times[-1]
                )
            else:  # retired: zeros from now on, until its turn is out
                segments = track.push(silent, [True] * n, times[:-1], times[-1])
            out += self._regions(segments, str(g))
            if g not in self._columns and track.idle:
                done.append(g)
        out = self._named(out)
        for g in done:  # never heard again: forget it, its name included
            del self._tracks[g]
            self._names.pop(g, None)
        self._retire()
        return out

    def _retire(self) -> None:
        """Drop the columns of speakers that no undecided frame can hear."""
        gone = [
            k
            for k, g in enumerate(self._columns)
            if self._last_frame[g] <= self._decided
            and all(g not in speakers for _, speakers in self._recent)
        ]
        if not gone:
            return
        keep = [k for k in range(len(self._columns)) if k not in gone]
        for k in gone:
            del self._last_frame[self._columns[k]]
        self._summed.data = np.ascontiguousarray(self._summed.data[:, keep])
        self._columns = [self._columns[k] for k in keep]

    def _named(self, regions: list[Region]) -> list[Region]:
        out = []
        for region in sorted(regions, key=lambda r: (r.start, r.end)):
            g = int(region.label)
            if g not in self._names:
                self._names[g] = f"SPEAKER_{self._num_named:02d}"
                self._num_named += 1
            out.append(Region(region.start, region.end, self._names[g], region.delay))
        return out

    def _finish(self, num_frames: int, padded: bool) -> list[Region]:
        out = self._decide(num_frames)
        rest: list[Region] = []
        for g, track in self._tracks.items():
            rest += self._regions(track.close(), str(g))
        out += self._named(rest)
        self._tracks, self._names, self._columns = {}, {}, []
        self._summed, self._last_frame = FrameBuffer(0), {}
        self._recent.clear()
        self._overlap = OverlapAdd(self._chunks, self._frames, hamming=False)
        return out


def stream(
    estimator: Any, latency: float | None = None
) -> DetectionStream | SegmentationStream:
    """Return a live stream of an estimator's regions.

    Parameters
    ----------
    estimator : VADEstimator, OSDEstimator or SegmentationEstimator
        Its network, runtime parameters and hyper-parameters are used unchanged.
    latency : float, optional
        From one inference step to the chunk duration (the default, which gives the
        offline regions for VAD and OSD). See :class:`DetectionStream`.

    Returns
    -------
    stream : DetectionStream or SegmentationStream

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
    if hasattr(estimator, "reduction") and hasattr(estimator, "region_label"):
        return DetectionStream(estimator, latency)
    if hasattr(estimator, "stitch_threshold"):
        return SegmentationStream(estimator, latency)
    raise StreamError(
        f"{type(estimator).__name__} cannot stream: streaming needs VADEstimator, "
        "OSDEstimator or SegmentationEstimator"
    )
