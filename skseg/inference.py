"""Sliding-window inference and overlap-add aggregation, as pyannote.audio does them.

:class:`Inference` cuts a file into chunks of the model's duration every ``step``
seconds (10 % of the duration by default), runs them through the network in
batches and returns the raw per-chunk scores, exactly as pyannote.audio 4.0.7's
``Inference(..., skip_aggregation=True)``: complete chunks first, then, when the
file does not end on a chunk boundary, one last chunk starting a step after the
last complete one, zero-padded to the full duration.

:func:`aggregate` turns those chunks into one frame-level score: a per-chunk
reduction (``"speech"``: max over speakers; ``"overlap"``: second-largest;
``None``: none), then Hamming-weighted overlap-add, with pyannote's frame
placement, float32 accumulation in chunk order, uncovered frames set to
``missing``, and the loose crop to the file's extent when the last chunk was padded.
Audio is read in blocks of one batch, so memory does not grow with file length
beyond the score arrays.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import os
import threading
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait

import numpy as np
import torch
from pyannote.core import Segment, SlidingWindow, SlidingWindowFeature

from .allocator import tune_malloc
from .audio import AudioFile, AudioReader
from .model import SegmentationModel, load_model

__all__ = [
    "ChunkScores",
    "Inference",
    "aggregate",
    "chunk_progress",
    "REDUCTIONS",
    "MODES",
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


def _speech(scores: np.ndarray) -> np.ndarray:
    return np.max(scores, axis=-1, keepdims=True)


def _overlap(scores: np.ndarray) -> np.ndarray:
    if scores.shape[-1] < 2:
        raise ValueError("the 'overlap' reduction needs at least 2 classes")
    return np.partition(scores, -2, axis=-1)[..., -2, np.newaxis]


REDUCTIONS: dict[str | None, Callable[[np.ndarray], np.ndarray]] = {
    "speech": _speech,
    "overlap": _overlap,
    None: lambda scores: scores,
    "none": lambda scores: scores,
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
    reduction : {"speech", "overlap", None} or callable, default=None
        Applied to each chunk's ``(num_frames, num_classes)`` scores before the
        overlap-add: maximum over classes, second-largest class, or nothing.
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
    if reduce is None:
        raise ValueError(
            f"unknown reduction {reduction!r}; "
            "use 'speech', 'overlap', None or a callable"
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


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {str(device)!r} requested but CUDA is not available "
            f"(torch {torch.__version__}, built without CUDA or no GPU visible); "
            "use device='cpu' or install a CUDA build of torch"
        )
    return device


#: What each inference ``mode`` changes (figures in docs/performance.md):
#:
#: - ``"exact"``: pyannote.audio's arithmetic, kernel for kernel (raw chunk scores
#:   within 1e-7 of it, aggregated scores bit-identical on the sample).
#: - ``"balanced"``: SincNet's first convolution runs once per block of audio and is
#:   rescaled per chunk (exact in real arithmetic). The network amplifies float32
#:   rounding about a thousandfold, so raw chunk scores move by up to ~4e-3, the
#:   aggregated speech scores by less than 1e-4 and the overlap ones by 2.4e-4 on
#:   the sample; 1.5x faster than pyannote.audio (the exact mode: 1.4x).
#: - ``"fast"``: a step of 25 % of the chunk duration (each frame still seen by 4
#:   chunks), the shared convolution, and dynamic int8 quantisation of the LSTM and
#:   linear layers where available (CPU); ~4x faster, detection error rate on the
#:   sample within a tenth of a point of pyannote's.
MODES: dict[str, dict] = {
    "exact": {"step_fraction": 0.1, "shared_conv": False, "quantize": False},
    "balanced": {"step_fraction": 0.1, "shared_conv": True, "quantize": False},
    "fast": {"step_fraction": 0.25, "shared_conv": True, "quantize": True},
}

# SincNet runs this many chunks at a time: its per-chunk tensors (80 x 7975
# floats) then fit the allocator's reuse and the cache (bit-identical results).
_SINCNET_BATCH = 4

_POOL_LOCK = threading.Lock()
_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def _single_threaded() -> None:
    torch.set_num_threads(1)


def _workers(n: int) -> ThreadPoolExecutor:
    # keyed by pid: a forked child must not inherit a pool whose threads are gone
    key = (os.getpid(), n)
    with _POOL_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = ThreadPoolExecutor(
                n, thread_name_prefix="skseg-inference", initializer=_single_threaded
            )
    return pool


_QUANTIZED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _quantized(network: torch.nn.Module) -> torch.nn.Module:
    """Return a copy of the network with int8 dynamic LSTM and linear layers."""
    with _POOL_LOCK:
        q = _QUANTIZED.get(network)
        if q is None:
            quantize_dynamic = torch.ao.quantization.quantize_dynamic
            with warnings.catch_warnings():
                # torch.ao.quantization announces its move to torchao
                warnings.simplefilter("ignore")
                q = quantize_dynamic(
                    copy.deepcopy(network).cpu(),
                    {torch.nn.LSTM, torch.nn.Linear},
                    dtype=torch.qint8,
                ).eval()
            _QUANTIZED[network] = q
    return q


def _split(num: int, parts: int) -> list[tuple[int, int]]:
    bounds = [round(i * num / parts) for i in range(parts + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


_CHUNK_PROGRESS: contextvars.ContextVar[Callable[[int, int], None] | None] = (
    contextvars.ContextVar("skseg_chunk_progress", default=None)
)


@contextlib.contextmanager
def chunk_progress(hook: Callable[[int, int], None]) -> Iterator[None]:
    """Report the chunks of every :class:`Inference` call made inside the block.

    The estimators do not pass a progress hook down to their inference; this
    reaches it anyway, for one long file (the command line's progress line). Calls
    given their own ``hook`` keep it. Scoped to the current thread / context.

    Parameters
    ----------
    hook : callable
        Called as ``hook(completed, total)`` after each batch of chunks.

    Examples
    --------
    >>> from skseg import VADEstimator, fetch_sample
    >>> seen = []
    >>> with chunk_progress(lambda done, total: seen.append((done, total))):
    ...     _ = VADEstimator(cache=False).predict([fetch_sample()])
    >>> seen
    [(32, 51), (51, 51)]
    """
    token = _CHUNK_PROGRESS.set(hook)
    try:
        yield
    finally:
        _CHUNK_PROGRESS.reset(token)


class Inference:
    """Run a segmentation model over a file in overlapping chunks.

    Parameters
    ----------
    model : SegmentationModel or str or PathLike
        The model, or a checkpoint path or identifier (loaded once per process).
    step : float, optional
        Seconds between chunk starts; defaults to 10 % of the model's duration
        (25 % in ``mode="fast"``).
    batch_size : int, default=32
        Chunks per forward pass. It changes the scores by float32 rounding only
        (below 1e-6 on the sample), never the decisions made from them.
    device : str or torch.device, optional
        Where the network runs; CPU by default. On CUDA, TF32 is disabled so
        results match CPU's within 1e-4.
    mode : {"exact", "balanced", "fast"}, default="exact"
        ``"exact"``: pyannote.audio's numbers, 1.4x faster than pyannote.audio.
        ``"balanced"``: 1.5x, speech frame scores within 1e-4 of pyannote's.
        ``"fast"``: ~4x, for a detection error rate within a fraction of a point
        on the sample (see :data:`MODES`).

    Notes
    -----
    On CPU, each batch is split between ``torch.get_num_threads()`` worker
    threads that run one intra-op thread each: the LSTM's 293 sequential steps
    are too small to share between threads, so coarse parallelism over chunks
    uses the cores better, and gives the same numbers. The first CPU run also
    raises glibc's malloc thresholds (:func:`skseg.allocator.tune_malloc`), so
    that each batch reuses the previous one's memory instead of page-faulting it
    in anew.

    Examples
    --------
    >>> from skseg import fetch_sample
    >>> inference = Inference("pyannote/segmentation")
    >>> chunks = inference(fetch_sample())  # or a path to an audio file
    >>> chunks.data.shape
    (51, 293, 3)
    >>> speech = aggregate(chunks, reduction="speech")
    >>> speech.data.shape
    (1779, 1)
    >>> Inference("pyannote/segmentation", mode="fast")(fetch_sample()).data.shape
    (21, 293, 3)
    """

    def __init__(
        self,
        model: SegmentationModel | str | os.PathLike,
        step: float | None = None,
        batch_size: int = 32,
        device: str | torch.device | None = None,
        mode: str = "exact",
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {sorted(MODES)}, got {mode!r}")
        self.mode = mode
        options = MODES[mode]
        if not isinstance(model, SegmentationModel):
            model = load_model(model)
        self.device = _resolve_device(device)
        if self.device.type != "cpu":
            # a private copy: the shared CPU model may be in use elsewhere
            model = copy.deepcopy(model).to(self.device)
        self.model = model.eval()
        self.duration = model.duration
        self.step = (
            options["step_fraction"] * self.duration if step is None else float(step)
        )
        if not 0 < self.step <= self.duration:
            raise ValueError(
                f"step must lie in (0, {self.duration}] seconds, got {self.step}"
            )
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        self.batch_size = int(batch_size)
        self._shared_conv = options["shared_conv"]
        # dynamic int8 kernels exist for CPU only
        quantize = options["quantize"] and self.device.type == "cpu"
        self._network = (
            _quantized(self.model.network) if quantize else self.model.network
        )
        self._lock = threading.Lock()

    @property
    def chunk_window(self) -> SlidingWindow:
        """Chunk ``c`` covers ``[c * step, c * step + duration]``."""
        return SlidingWindow(start=0.0, duration=self.duration, step=self.step)

    def _forward(self, block: torch.Tensor, window: int, step: int) -> torch.Tensor:
        """Scores of the chunks ``block[c * step : c * step + window]``."""
        with torch.inference_mode():
            if self._shared_conv:
                return self._network.forward_overlapping(block, window, step)
            chunks = block.unfold(0, window, step)[:, None, :]
            if self.device.type == "cpu":
                return self._network(chunks, sincnet_batch=_SINCNET_BATCH)
            return self._network(chunks)

    def _scores(self, block: torch.Tensor, window: int, step: int) -> np.ndarray:
        return self._forward(block, window, step).float().cpu().numpy()

    def _run(
        self,
        blocks: Iterator[tuple[np.ndarray, int]],
        window: int,
        step: int,
        hook: Callable[[int, int], None] | None,
        total: int,
    ) -> np.ndarray:
        """Score each ``(block, chunks done after it)`` in order, calling ``hook``.

        Each block's scores go straight into one ``(total, frames, classes)``
        array, so the scores are never held twice (no list of per-block outputs
        to concatenate at the end: 50 MB less at the peak on a 2-hour file).
        """
        out: np.ndarray | None = None
        filled = 0

        def store(scores: np.ndarray, done: int) -> None:
            nonlocal out, filled
            if out is None:
                out = np.empty((total, *scores.shape[1:]), dtype=np.float32)
            out[filled : filled + len(scores)] = scores
            filled += len(scores)
            if hook is not None:
                hook(done, total)

        threads = torch.get_num_threads()
        if self.device.type == "cpu":
            tune_malloc()
        if self.device.type == "cuda":
            # pyannote's fix_reproducibility: TF32 would break parity with CPU
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        if self.device.type != "cpu" or threads == 1:
            for block, done in blocks:
                tensor = torch.from_numpy(block).to(self.device)
                store(self._scores(tensor, window, step), done)
            return out
        # Each block is split between the worker threads, and the next block is
        # read and queued before this one is collected: a worker that finishes its
        # part goes on to the next block instead of waiting at a per-block barrier,
        # and reading overlaps the network. Two blocks in flight at most.
        pool = _workers(threads)
        pending: deque[tuple[int, list[Future]]] = deque()

        def collect() -> None:
            done, futures = pending.popleft()
            parts = [f.result() for f in futures]
            store(parts[0] if len(parts) == 1 else np.concatenate(parts), done)

        try:
            for block, done in blocks:
                tensor = torch.from_numpy(block)
                num_chunks = 1 + (len(block) - window) // step
                parts = _split(num_chunks, min(threads, num_chunks))
                futures = [
                    pool.submit(
                        self._scores,
                        tensor[a * step : (b - 1) * step + window],
                        window,
                        step,
                    )
                    for a, b in parts
                ]
                pending.append((done, futures))
                while len(pending) > 1:
                    collect()
            while pending:
                collect()
        finally:
            # a failed read or hook: do not leave queued work running after we return
            futures = [f for _, fs in pending for f in fs]
            for future in futures:
                future.cancel()
            wait(futures)
            # a worker's set_num_threads(1) also becomes torch's default for
            # threads started later: give them the caller's count back
            torch.set_num_threads(threads)
        return out

    def __call__(
        self, file: AudioFile, hook: Callable[[int, int], None] | None = None
    ) -> ChunkScores:
        """Return the raw chunk scores of a file.

        Parameters
        ----------
        file : str, PathLike or mapping
            The file (see :func:`skseg.audio.validate_file`).
        hook : callable, optional
            Called as ``hook(completed, total)`` after each batch; defaults to
            the one set by :func:`chunk_progress`, if any.

        Returns
        -------
        chunks : ChunkScores
            ``(num_chunks, num_frames, num_classes)``.

        Raises
        ------
        AudioError
            If the file cannot be read.
        """
        if hook is None:
            hook = _CHUNK_PROGRESS.get()
        sr = self.model.sample_rate
        window = round(self.duration * sr)
        step = round(self.step * sr)
        with AudioReader(file, sample_rate=sr) as reader:
            n = reader.num_samples
            num_complete = 1 + (n - window) // step if n >= window else 0
            has_last = n < window or (n - window) % step > 0
            total = num_complete + int(has_last)

            def blocks() -> Iterator[tuple[np.ndarray, int]]:
                for c0 in range(0, num_complete, self.batch_size):
                    c1 = min(c0 + self.batch_size, num_complete)
                    block = reader.read(c0 * step, (c1 - 1) * step + window)
                    # a private copy: the reader may hand out a read-only or cached one
                    yield np.array(block, dtype="float32"), c1
                if has_last:
                    last = np.zeros(window, dtype="float32")
                    tail = reader.read(num_complete * step, n)
                    last[: len(tail)] = tail
                    yield last, total

            data = self._run(blocks(), window, step, hook, total)
        return ChunkScores(data, self.chunk_window, self.model.receptive_field, n, sr)
