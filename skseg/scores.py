"""Where the estimators get their scores: one network, one way through the data.

A :class:`ScoreSource` stands between the estimators and :mod:`skseg.inference`.
It is one network (any :class:`skseg.inference.ChunkNetwork`: the segmentation
model, or a second kind of network such as a speaker-embedding model) run one
way (mode, step, batch size, device) with one cache setting; it checks those
parameters in one place (:func:`skseg.inference.check_inference_params`), keeps one
:class:`~skseg.inference.Inference` (built on the first cache miss), and serves
each file's scores through :meth:`ScoreSource.file`: a :class:`FileScores` that
computes the file's cache key once, then gives its raw chunk scores
(:meth:`FileScores.chunks`) and the frame scores aggregated from them
(:meth:`FileScores.aggregated`), each computed once per cache (single flight),
under structured keys (:class:`skseg.cache.ScoreKey`).

:func:`score_source` returns the process-wide source for a model and settings, so
the many clones of an estimator in a grid search share one.

Nothing here depends on what the network is: the key is made of the network's
``weights_digest`` and ``output_kind``, the file's identity and the settings; the
chunking, batching and forward pass are :class:`~skseg.inference.Inference`'s over
the protocol's members. A network of another kind therefore plugs in by
implementing :class:`~skseg.inference.ChunkNetwork` and is served by
``score_source(network).file(f).chunks()`` with the same cache (never shared with
another network's entries), single flight and batching.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import torch
from pyannote.core import SlidingWindowFeature

from .aggregation import ChunkScores, aggregate
from .audio import AudioFile, file_identity, validate_file
from .cache import ScoreCache, ScoreKey, get_cache, score_key
from .inference import ChunkNetwork, Inference, check_inference_params, check_network

__all__ = ["FileScores", "ScoreSource", "score_source"]


class ScoreSource:
    """One network, run one way, with one cache: the scores of any file.

    Parameters
    ----------
    model : ChunkNetwork
        The network: a :class:`~skseg.model.SegmentationModel` or any other
        :class:`~skseg.inference.ChunkNetwork`.
    step : float, optional
        Seconds between chunk starts; None: the mode's fraction of the chunk
        duration.
    mode : {"exact", "balanced", "fast"}, default="exact"
        See :data:`skseg.inference.MODES`.
    batch_size : int, default=32
        Chunks per forward pass.
    device : str, torch.device or None, default=None
        Where the network runs; None: CPU.
    cache : bool, str or PathLike, default=True
        As an estimator's ``cache`` (see :func:`skseg.cache.get_cache`).
    owner : str, default="ScoreSource"
        Named in parameter errors (the estimator's class name).

    Attributes
    ----------
    step : float
        Resolved step, in seconds.
    device : torch.device
        Resolved device.

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        If a parameter is invalid (one check for every way in).
    TypeError
        If ``model`` is not a :class:`~skseg.inference.ChunkNetwork`.

    Examples
    --------
    >>> from skseg import fetch_sample, load_model
    >>> source = ScoreSource(load_model(), mode="fast")
    >>> scores = source.file(fetch_sample())
    >>> scores.chunks().data.shape, scores.aggregated("speech").data.shape
    ((21, 293, 3), (1779, 1))
    """

    def __init__(
        self,
        model: ChunkNetwork,
        *,
        step: float | None = None,
        mode: str = "exact",
        batch_size: int = 32,
        device: str | torch.device | None = None,
        cache: bool | str | os.PathLike | None = True,
        owner: str = "ScoreSource",
    ):
        check_network(model, owner)
        self.step, self.device = check_inference_params(
            step=step,
            mode=mode,
            batch_size=batch_size,
            device=device,
            duration=model.duration,
            owner=owner,
        )
        self.settings = (self.step, mode, int(batch_size), str(self.device))
        self.model = model
        self.mode = mode
        self.batch_size = int(batch_size)
        self.cache: ScoreCache | None = get_cache(cache)
        self._inference: Inference | None = None
        self._lock = threading.Lock()

    @property
    def inference(self) -> Inference:
        """The one :class:`~skseg.inference.Inference` behind every cache miss."""
        with self._lock:
            if self._inference is None:
                self._inference = Inference(
                    self.model,
                    step=self.step,
                    batch_size=self.batch_size,
                    device=self.device,
                    mode=self.mode,
                )
            return self._inference

    def key(self, file: dict) -> ScoreKey:
        """Return the cache key of a validated file's chunk scores.

        It may hash an in-memory waveform: :class:`FileScores` computes it once.
        """
        return score_key(
            self.model.weights_digest,
            file_identity(file),
            self.step,
            self.model.duration,
            self.mode,
            self.model.output_kind,
        )

    def file(self, file: AudioFile) -> FileScores:
        """Return the scores of one file (computed when first asked for).

        Parameters
        ----------
        file : str, PathLike or mapping
            See :func:`skseg.audio.validate_file`.

        Returns
        -------
        scores : FileScores
        """
        return FileScores(self, validate_file(file))


class FileScores:
    """One file's scores from a :class:`ScoreSource`, its cache key computed once.

    Parameters
    ----------
    source : ScoreSource
    file : dict
        The validated file.

    Examples
    --------
    >>> from skseg import fetch_sample, load_model
    >>> scores = ScoreSource(load_model()).file(fetch_sample())
    >>> scores.aggregated("overlap").data.shape, scores.file["uri"]
    ((1779, 1), 'sample')
    """

    def __init__(self, source: ScoreSource, file: dict):
        self.source = source
        self.file = file
        self._key: ScoreKey | None = None

    @property
    def key(self) -> ScoreKey:
        """The cache key of the file's chunk scores."""
        if self._key is None:
            self._key = self.source.key(self.file)
        return self._key

    def chunks(self) -> ChunkScores:
        """Return the raw chunk scores, running the network on a cache miss.

        Single flight: threads (and processes sharing a cache directory) asking
        for the same cold file wait for one network run instead of each running
        it.
        """
        cache = self.source.cache
        if cache is None:
            return self.source.inference(self.file)
        return cache.get_or_compute(self.key, lambda: self.source.inference(self.file))

    def aggregated(self, reduction: str) -> SlidingWindowFeature:
        """Return frame scores after a per-chunk reduction (cached beside the chunks).

        Parameters
        ----------
        reduction : str
            A name in :data:`skseg.aggregation.REDUCTIONS` (``"speech"``,
            ``"overlap"``).

        Returns
        -------
        scores : SlidingWindowFeature
        """
        cache = self.source.cache
        if cache is None:
            return aggregate(self.chunks(), reduction=reduction)
        return cache.get_or_compute(
            self.key.derive("aggregate", reduction),
            lambda: aggregate(self.chunks(), reduction=reduction),
        )


# the sources live in their model's memo, so they go with it (a source holds its
# model: a table keyed weakly by models would keep every model alive)
_SOURCES_LOCK = threading.Lock()


def score_source(
    model: ChunkNetwork,
    *,
    step: float | None = None,
    mode: str = "exact",
    batch_size: int = 32,
    device: str | torch.device | None = None,
    cache: bool | str | os.PathLike | None = True,
    owner: str = "ScoreSource",
) -> ScoreSource:
    """Return the process-wide :class:`ScoreSource` for a model and settings.

    Parameters are :class:`ScoreSource`'s (``model``: any
    :class:`~skseg.inference.ChunkNetwork`). The parameters are checked on every
    call (so an estimator's bad value always raises), but the source, and its
    :class:`~skseg.inference.Inference` (a device copy of the network, a
    quantised network in fast mode) are built once per model and settings, and
    kept in the network's ``memo``.

    Returns
    -------
    source : ScoreSource

    Examples
    --------
    >>> from skseg import load_model
    >>> score_source(load_model()) is score_source(load_model())
    True
    """
    # checked on every call (a bad value set on an estimator always raises),
    # built once per model and settings
    candidate = ScoreSource(
        model,
        step=step,
        mode=mode,
        batch_size=batch_size,
        device=device,
        cache=cache,
        owner=owner,
    )
    key: tuple[Any, ...] = (*candidate.settings, id(candidate.cache))
    with _SOURCES_LOCK:
        sources = model.memo.setdefault("score_sources", {})
        return sources.setdefault(key, candidate)
