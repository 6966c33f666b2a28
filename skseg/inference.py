"""Sliding-window inference, as pyannote.audio does it.

:class:`Inference` cuts a file into chunks of the model's duration every ``step``
seconds (10 % of the duration by default), runs them through the network in
batches and returns the raw per-chunk scores, exactly as pyannote.audio 4.0.7's
``Inference(..., skip_aggregation=True)``: complete chunks first, then, when the
file does not end on a chunk boundary, one last chunk starting a step after the
last complete one, zero-padded to the full duration.

It runs any network that implements :class:`ChunkNetwork`, the few things
inference and the score cache (:mod:`skseg.scores`) need from a network: its
identity, sample rate, chunk duration, output geometry and a forward pass over a
batch of chunks. :class:`~skseg.model.SegmentationModel` is one; a second kind
of network (a speaker-embedding model, one vector per chunk) plugs in by
implementing the same few members, and gets the same chunking, batching, worker
threads, cache and single flight.

Audio is read in blocks of one batch, so memory does not grow with file length
beyond the score arrays. Turning chunks into frame scores is
:mod:`skseg.aggregation`'s (:func:`~skseg.aggregation.aggregate`, re-exported
here); :func:`check_inference_params` is the one check of the parameters an
inference runs with (mode, step, batch size, device), for :class:`Inference` and
the estimators alike.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import inspect
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from numbers import Integral, Real
from typing import Protocol

import numpy as np
import torch
from pyannote.core import SlidingWindow
from sklearn.utils._param_validation import InvalidParameterError

from .aggregation import REDUCTIONS, ChunkScores, aggregate
from .allocator import tune_malloc
from .audio import AudioFile, AudioReader
from .model import load_model

__all__ = [
    "ChunkNetwork",
    "ChunkScores",
    "Inference",
    "aggregate",
    "check_inference_params",
    "check_network",
    "chunk_progress",
    "current_chunk_progress",
    "REDUCTIONS",
    "MODES",
]


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


def check_inference_params(
    *,
    step: float | None,
    mode: str,
    batch_size: int,
    device: str | torch.device | None,
    duration: float,
    owner: str = "Inference",
) -> tuple[float, torch.device]:
    """Check the parameters an inference runs with; return its step and device.

    The one place these are checked: :class:`Inference` and the estimators'
    score sources (:mod:`skseg.scores`) both call it, so a bad value gets the same
    error whichever way it comes in.

    Parameters
    ----------
    step : float or None
        Seconds between chunk starts; None: the mode's fraction of ``duration``.
    mode : str
        A key of :data:`MODES`.
    batch_size : int
        Chunks per forward pass, at least 1.
    device : str, torch.device or None
        None: CPU. CUDA must be available if asked for.
    duration : float
        The model's chunk duration, in seconds (``step`` may not exceed it).
    owner : str, default="Inference"
        Named in the error message (the estimator's class name, for instance).

    Returns
    -------
    step : float
        In seconds.
    device : torch.device

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        A ``ValueError`` naming the parameter and the problem.

    Examples
    --------
    >>> check_inference_params(step=None, mode="fast", batch_size=32, device=None,
    ...                        duration=5.0)
    (1.25, device(type='cpu'))
    >>> check_inference_params(step=6.0, mode="exact", batch_size=32, device=None,
    ...                        duration=5.0)
    Traceback (most recent call last):
    ...
    sklearn.utils._param_validation.InvalidParameterError: The 'step' parameter \
of Inference must lie in (0, 5.0] seconds. Got 6.0 instead.
    """

    def fail(name: str, problem: str) -> InvalidParameterError:
        return InvalidParameterError(f"The {name!r} parameter of {owner} {problem}")

    if not isinstance(mode, str) or mode not in MODES:
        raise fail("mode", f"must be one of {sorted(MODES)}. Got {mode!r} instead.")
    if step is None:
        step = MODES[mode]["step_fraction"] * duration
    elif not isinstance(step, Real) or isinstance(step, bool):
        raise fail("step", f"must be a number of seconds or None. Got {step!r}.")
    step = float(step)
    if not 0 < step <= duration:
        raise fail("step", f"must lie in (0, {duration}] seconds. Got {step} instead.")
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, Integral | Real)
        or int(batch_size) != batch_size
        or batch_size < 1
    ):
        raise fail(
            "batch_size", f"must be a positive integer. Got {batch_size!r} instead."
        )
    if device is None:
        return step, torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise fail(
            "device",
            "must be None or a torch device such as 'cpu', 'cuda' or 'cuda:1'. "
            f"Got {device!r} instead.",
        ) from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise fail(
            "device",
            f"is {str(resolved)!r}: {str(resolved)!r} requested but CUDA is not "
            f"available (torch {torch.__version__}, built without CUDA or no GPU "
            "visible); use device='cpu' or install a CUDA build of torch",
        )
    return step, resolved


class ChunkNetwork(Protocol):
    """What :class:`Inference` and :mod:`skseg.scores` need from a network.

    A network maps a chunk of ``duration`` seconds of mono audio at
    ``sample_rate`` to ``num_frames(window)`` outputs of ``dimension`` values
    each. :class:`~skseg.model.SegmentationModel` implements it (per-frame
    speaker scores, ``output_kind="segmentation"``); a speaker-embedding network
    would give one vector per chunk (``num_frames`` 1, ``receptive_field`` the
    chunk itself, ``dimension`` the embedding size). Inference uses nothing
    else: no isinstance check, no reads of the network's internals.

    Implementations are :class:`torch.nn.Module` objects, so that a non-CPU
    :class:`Inference` can run a private copy (``copy.deepcopy(network)`` then
    ``.to(device)``), and put themselves in ``eval()`` mode.

    Two capabilities are optional, used when present and never assumed:

    - ``forward_overlapping(block, window, step)``: the same outputs as
      ``forward_chunks(block.unfold(0, window, step)[:, None])``, computed while
      sharing work between overlapping chunks (SincNet's first convolution, for
      PyanNet); the ``"balanced"`` and ``"fast"`` modes call it.
    - ``quantized()``: a copy of the network with int8 kernels, run in its
      place by the ``"fast"`` mode on CPU (only its forward methods are used).

    A network without them runs every mode through ``forward_chunks`` (the
    cache still keeps each mode's scores apart).

    Attributes
    ----------
    weights_digest : str
        Identifies the architecture and weights (64 hexadecimal digits by
        convention): it keys the score cache, so two networks whose outputs may
        differ must never share it.
    output_kind : str
        What the outputs are (``"segmentation"``, ``"embedding"``...): part of
        the cache key, so networks of different kinds never share an entry even
        on the same file.
    sample_rate : int
        Input sample rate in Hz.
    duration : float
        Chunk duration in seconds.
    dimension : int
        Values per output frame (classes, or the embedding size).
    receptive_field : pyannote.core.SlidingWindow
        Output frame ``i`` of a chunk starting at 0 covers
        ``receptive_field[i]``; for one output per chunk, the chunk itself
        (``SlidingWindow(start=0, duration=duration, step=duration)``).
    memo : dict
        Where :mod:`skseg.scores` keeps the objects derived from this network
        (its score sources), so that they go with it: never pickled or copied.

    Examples
    --------
    >>> from skseg import load_model
    >>> model = load_model()
    >>> model.output_kind, model.duration, model.num_frames(80000), model.dimension
    ('segmentation', 5.0, 293, 3)
    >>> with torch.inference_mode():
    ...     tuple(model.forward_chunks(torch.zeros(2, 1, 80000)).shape)
    (2, 293, 3)
    """

    weights_digest: str
    output_kind: str
    sample_rate: int
    duration: float
    dimension: int
    receptive_field: SlidingWindow
    memo: dict

    def num_frames(self, num_samples: int) -> int:
        """Return the outputs per chunk of ``num_samples`` samples (1: embeddings)."""
        ...

    def forward_chunks(self, chunks: torch.Tensor) -> torch.Tensor:
        """Return ``(batch, num_frames, dimension)`` outputs of a batch of chunks.

        ``chunks`` is ``(batch, 1, samples)``; called under
        :func:`torch.inference_mode`.
        """
        ...


#: the members every ChunkNetwork has (the optional capabilities are not here)
_REQUIRED = (
    "weights_digest",
    "output_kind",
    "sample_rate",
    "duration",
    "dimension",
    "receptive_field",
    "memo",
    "num_frames",
    "forward_chunks",
)


def check_network(network: object, owner: str = "Inference") -> None:
    """Raise ``TypeError`` unless ``network`` has every :class:`ChunkNetwork` member.

    Members are looked up statically: a property (a weights digest, say) is
    not evaluated.

    Parameters
    ----------
    network : object
    owner : str, default="Inference"
        Named in the error message.

    Raises
    ------
    TypeError
        Naming the missing members.

    Examples
    --------
    >>> check_network(object())
    Traceback (most recent call last):
    ...
    TypeError: Inference needs a network implementing skseg.inference.ChunkNetwork \
or a checkpoint path or identifier; object lacks weights_digest, output_kind, \
sample_rate, duration, dimension, receptive_field, memo, num_frames, forward_chunks
    """
    missing = [name for name in _REQUIRED if not _has(network, name)]
    if missing:
        raise TypeError(
            f"{owner} needs a network implementing skseg.inference.ChunkNetwork or "
            f"a checkpoint path or identifier; {type(network).__name__} lacks "
            f"{', '.join(missing)}"
        )


def _has(obj: object, name: str) -> bool:
    try:
        inspect.getattr_static(obj, name)
    except AttributeError:
        return False
    return True


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


def _quantized(network: ChunkNetwork) -> ChunkNetwork:
    """Return the network's int8 copy (its ``quantized()``), made once per network."""
    with _POOL_LOCK:
        q = _QUANTIZED.get(network)
        if q is None:
            q = _QUANTIZED[network] = network.quantized()
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


def current_chunk_progress() -> Callable[[int, int], None] | None:
    """Return the hook :func:`chunk_progress` set for this context, or None.

    For other chunk-by-chunk work of an estimator (a speaker-embedding pass, say)
    to report through the same progress line.

    Returns
    -------
    hook : callable or None

    Examples
    --------
    >>> current_chunk_progress() is None
    True
    >>> with chunk_progress(print):
    ...     current_chunk_progress() is print
    True
    """
    return _CHUNK_PROGRESS.get()


class Inference:
    """Run a network over a file in overlapping chunks.

    Parameters
    ----------
    model : ChunkNetwork or str or PathLike
        The network (a :class:`~skseg.model.SegmentationModel` or any
        :class:`ChunkNetwork`), or a checkpoint path or identifier of a
        segmentation model (loaded once per process).
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
        on the sample (see :data:`MODES`). A network without the optional
        capabilities of :class:`ChunkNetwork` runs the same arithmetic in every
        mode (the fast mode's longer step still applies).

    Raises
    ------
    TypeError
        If ``model`` is neither a path or identifier nor a :class:`ChunkNetwork`.

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
        model: ChunkNetwork | str | os.PathLike,
        step: float | None = None,
        batch_size: int = 32,
        device: str | torch.device | None = None,
        mode: str = "exact",
    ):
        if isinstance(model, str | os.PathLike):
            model = load_model(model)
        else:
            check_network(model)
        self.step, self.device = check_inference_params(
            step=step,
            mode=mode,
            batch_size=batch_size,
            device=device,
            duration=model.duration,
        )
        self.mode = mode
        options = MODES[mode]
        if self.device.type != "cpu":
            # a private copy: the shared CPU model may be in use elsewhere
            model = copy.deepcopy(model).to(self.device)
        self.model = model.eval()
        self.duration = model.duration
        self.batch_size = int(batch_size)
        # dynamic int8 kernels exist for CPU only
        quantize = options["quantize"] and self.device.type == "cpu"
        runner = (
            _quantized(self.model)
            if quantize and hasattr(self.model, "quantized")
            else self.model
        )
        # the optional capabilities, looked up once rather than per batch
        self._forward_chunks = runner.forward_chunks
        self._forward_overlapping = (
            getattr(runner, "forward_overlapping", None)
            if options["shared_conv"]
            else None
        )
        self._lock = threading.Lock()

    @property
    def chunk_window(self) -> SlidingWindow:
        """Chunk ``c`` covers ``[c * step, c * step + duration]``."""
        return SlidingWindow(start=0.0, duration=self.duration, step=self.step)

    def _forward(self, block: torch.Tensor, window: int, step: int) -> torch.Tensor:
        """Scores of the chunks ``block[c * step : c * step + window]``."""
        with torch.inference_mode():
            if self._forward_overlapping is not None:
                return self._forward_overlapping(block, window, step)
            return self._forward_chunks(block.unfold(0, window, step)[:, None, :])

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

        Each block's scores go straight into one ``(total, frames, dimension)``
        array, so the scores are never held twice (no list of per-block outputs
        to concatenate at the end: 50 MB less at the peak on a 2-hour file).
        """
        model = self.model
        frames = (int(model.num_frames(window)), int(model.dimension))
        out = np.empty((total, *frames), dtype=np.float32)
        filled = 0

        def store(scores: np.ndarray, done: int) -> None:
            nonlocal filled
            if scores.shape != (done - filled, *frames):
                # a network whose outputs break its own ChunkNetwork promises
                raise RuntimeError(
                    f"{type(model).__name__} returned outputs of shape "
                    f"{scores.shape} for {done - filled} chunks of {window} "
                    f"samples; its num_frames and dimension promise "
                    f"{(done - filled, *frames)}"
                )
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
            ``(num_chunks, num_frames, dimension)``.

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
