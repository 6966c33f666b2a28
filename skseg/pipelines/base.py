"""What the four pipeline estimators share: the scikit-learn contract.

An estimator holds parameters, checks them on every call, and turns one file's
scores into its output (:meth:`BaseSegmentationEstimator._decide`, the only step
that depends on the tuned hyper-parameters). Where the scores come from is
:mod:`skseg.scores`' business: :meth:`BaseSegmentationEstimator.score_source`
returns the process-wide :class:`~skseg.scores.ScoreSource` for the estimator's
network and runtime parameters, which runs the network at most once per file and
cache, so a grid search runs it once per file.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pyannote.core import Annotation, SlidingWindowFeature
from sklearn.base import BaseEstimator

from ..aggregation import ChunkScores
from ..audio import AudioFile, check_files
from ..binarize import Binarize
from ..heads import Reduction
from ..model import SegmentationModel, resolve_model
from ..scores import FileScores, ScoreSource, score_source
from .parameters import constraints

__all__ = ["BaseSegmentationEstimator", "DetectionEstimator"]


class BaseSegmentationEstimator(BaseEstimator):
    """Base class of the pipeline estimators; not meant to be used directly.

    Subclasses set :attr:`output_key` and implement :meth:`_decide`, which turns
    one file's chunk scores into ``(annotation, frame_scores)``.

    Examples
    --------
    The four pipelines share this API; ``transform`` adds each one's output to
    the files under its ``output_key``:

    >>> from skseg import (OSDEstimator, ResegmentationEstimator,
    ...                    SegmentationEstimator, VADEstimator)
    >>> pipelines = (VADEstimator, OSDEstimator, SegmentationEstimator,
    ...              ResegmentationEstimator)
    >>> all(issubclass(p, BaseSegmentationEstimator) for p in pipelines)
    True
    >>> [p.output_key for p in pipelines]
    ['speech', 'overlap', 'segmentation', 'diarization']
    """

    #: key under which :meth:`transform` adds the output to each file
    output_key: str = ""
    #: name of the pipeline's own metric (:func:`skseg.metrics.get_scorer`):
    #: what :meth:`score` and :func:`skseg.tuning.tune` use by default
    default_scoring: str = ""

    _parameter_constraints: dict = constraints()

    @classmethod
    def from_preset(cls, dataset: str, **params: Any) -> BaseSegmentationEstimator:
        """Return the estimator with the model card's values for a dataset.

        See :mod:`skseg.pipelines.presets` (pyannote/segmentation's model card,
        ``Interspeech2021`` revision: its weights may differ from the shipped
        checkpoint's).

        Parameters
        ----------
        dataset : {"ami", "dihard3", "voxconverse"}
        **params
            Other parameters (they override the preset's).

        Returns
        -------
        estimator : BaseSegmentationEstimator

        Examples
        --------
        >>> from skseg import OSDEstimator
        >>> OSDEstimator.from_preset("voxconverse", mode="fast").onset
        0.587
        """
        from .loading import pipeline_name
        from .presets import preset

        return cls(**{**preset(pipeline_name(cls), dataset), **params})

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # X is a list of files (paths or dicts), y a list of Annotations
        tags.input_tags.two_d_array = False
        tags.input_tags.dict = True
        # pretrained: predict works without fit
        tags.requires_fit = False
        tags.target_tags.required = False
        tags.non_deterministic = False
        return tags

    #: ``(onset, offset)`` that ``"auto"`` means on a multi-label model:
    #: pyannote's defaults for pyannote/segmentation (DIHARD III)
    default_thresholds: tuple[float, float] = (0.5, 0.5)

    def resolve_thresholds(
        self, model: SegmentationModel | None = None
    ) -> tuple[float, float, str]:
        """Return the thresholds and the score rule this estimator applies.

        ``onset`` and ``offset`` are never overwritten: ``"auto"`` is resolved
        here, per model, on every call (:meth:`fit` stores the result in
        ``onset_``, ``offset_`` and ``rule_``), by the model's output head
        (:meth:`skseg.heads.OutputHead.thresholds`):

        - multi-label head (pyannote/segmentation): ``"auto"`` means the
          pipeline's :attr:`default_thresholds` (pyannote's); an ``offset`` of
          None means ``onset``. Rule ``"multi-label"``: thresholds on the speaker
          probabilities, as pyannote.
        - pyannote/segmentation-3.0's head: both ``"auto"`` is pyannote.audio
          3.x/4.x's rule, ``"powerset-hard"``: the most probable set of speakers
          per frame (0/1 speaker activities), aggregated, then thresholded at
          0.5. Any number switches to ``"powerset-soft"``: thresholds on the
          probabilities (P(speech) = 1 - P(non-speech), the mass of the pairs for
          overlap, the mass of the sets containing a speaker); an ``"auto"``
          onset is then 0.5 and an ``"auto"`` (or None) offset is ``onset``.

        Parameters
        ----------
        model : SegmentationModel, optional
            Defaults to the estimator's network.

        Returns
        -------
        onset, offset : float
        rule : str
            One of the head's :attr:`~skseg.heads.OutputHead.rules`.

        Examples
        --------
        >>> from skseg import VADEstimator
        >>> VADEstimator().resolve_thresholds()
        (0.767, 0.377, 'multi-label')
        >>> vad = VADEstimator("pyannote/segmentation-3.0")
        >>> vad.resolve_thresholds()
        (0.5, 0.5, 'powerset-hard')
        >>> vad.set_params(onset=0.7).resolve_thresholds()
        (0.7, 0.7, 'powerset-soft')
        """
        self._validate_params()
        if model is None:
            model = self._model()
        return model.head.thresholds(self.onset, self.offset, self.default_thresholds)

    def speaker_reduction(
        self, model: SegmentationModel
    ) -> tuple[float, float, Reduction]:
        """Return the thresholds and how ``model``'s chunks become speaker scores.

        The head's ``"speakers"`` reduction under :meth:`resolve_thresholds`'
        rule (the outputs as they are on a multi-label network, the hard or soft
        speakers of a powerset one); offline speaker pipelines and their streams
        both use it.

        Parameters
        ----------
        model : SegmentationModel

        Returns
        -------
        onset, offset : float
        reduce : skseg.heads.Reduction
            ``(..., num_outputs)`` chunk scores to ``(..., num_speakers)``.

        Examples
        --------
        >>> from skseg import SegmentationEstimator
        >>> segmentation = SegmentationEstimator()
        >>> segmentation.speaker_reduction(segmentation.fit().model_)
        (0.84, 0.46, Reduction('speakers'))
        """
        return self._reduction("speakers", model)

    def _reduction(
        self, kind: str, model: SegmentationModel
    ) -> tuple[float, float, Reduction]:
        onset, offset, rule = self.resolve_thresholds(model)
        return onset, offset, model.head.reduction(kind, rule)

    def _speaker_chunks(self, scores: FileScores) -> tuple[float, float, ChunkScores]:
        """Thresholds and per-chunk speaker scores (a powerset network's converted)."""
        chunks = scores.chunks()
        onset, offset, reduce = self.speaker_reduction(scores.source.model)
        return (
            onset,
            offset,
            ChunkScores(
                reduce(chunks.data),
                chunks.sliding_window,
                chunks.frames,
                chunks.num_samples,
                chunks.sample_rate,
            ),
        )

    # -- fitting --------------------------------------------------------------------
    def fit(self, X: Iterable[AudioFile] | None = None, y: Any = None):
        """Validate the parameters and bind the shared pretrained network.

        The network is pretrained: nothing is learnt from ``X`` or ``y``, which are
        accepted so that the estimator composes with scikit-learn tools. Tune the
        hyper-parameters with :class:`~sklearn.model_selection.GridSearchCV`.

        Parameters
        ----------
        X : list of files, optional
            Ignored.
        y : list of Annotation, optional
            Ignored.

        Returns
        -------
        self : object
            Fitted estimator, with ``model_`` set.
        """
        self._validate_params()
        self.model_ = resolve_model(self.segmentation)
        self.segmentation_ = self.segmentation
        self.score_source()  # the runtime parameters, checked against the network
        self.onset_, self.offset_, self.rule_ = self.resolve_thresholds(self.model_)
        return self

    def score_source(self) -> ScoreSource:
        """Check the parameters; return the source of this estimator's scores.

        Called by every :meth:`predict`, :meth:`transform`,
        :meth:`decision_function` and :meth:`__call__`, fitted or not, so a bad
        value set after :meth:`fit` raises there. Estimators with the same network
        and runtime parameters (clones in a grid search) share one source.

        Returns
        -------
        source : skseg.scores.ScoreSource

        Raises
        ------
        sklearn.utils._param_validation.InvalidParameterError
            If a parameter is invalid (CUDA asked for but not available, a step
            longer than the model's chunks...).
        CheckpointError, WeightsUnavailableError
            If ``segmentation`` names weights that cannot be loaded.

        Examples
        --------
        >>> from skseg import VADEstimator
        >>> source = VADEstimator(mode="fast").score_source()
        >>> source.mode, source.step
        ('fast', 1.25)
        """
        self._validate_params()
        return score_source(
            self._model(),
            step=self.step,
            mode=self.mode,
            batch_size=self.batch_size,
            device=self.device,
            cache=self.cache,
            owner=type(self).__name__,
        )

    def _model(self) -> SegmentationModel:
        # Fitted: the bound (possibly unpickled, file-less) model. Unfitted, or
        # `segmentation` changed since fit: resolved anew, without mutating self.
        model = getattr(self, "model_", None)
        if model is not None and getattr(self, "segmentation_", None) is not None:
            if _same(self.segmentation_, self.segmentation):
                return model
        return resolve_model(self.segmentation)

    def _decide(self, scores: FileScores) -> tuple[Annotation, SlidingWindowFeature]:
        """Turn one file's scores into ``(annotation, frame_scores)``."""
        raise NotImplementedError

    def _run(
        self, file: AudioFile, source: ScoreSource
    ) -> tuple[dict, Annotation, SlidingWindowFeature]:
        scores = source.file(file)
        annotation, frames = self._decide(scores)
        annotation.uri = scores.file["uri"]
        return scores.file, annotation, frames

    @staticmethod
    def _files(X: Any) -> list:
        return check_files(X, "use [file], or call the estimator on one file")

    # -- public API -----------------------------------------------------------------
    def predict(self, X: Iterable[AudioFile]) -> list[Annotation]:
        """Return one :class:`~pyannote.core.Annotation` per file.

        Parameters
        ----------
        X : list of files
            Paths or dicts (see :func:`skseg.audio.validate_file`).

        Returns
        -------
        y_pred : list of Annotation
        """
        source = self.score_source()
        return [self._run(file, source)[1] for file in self._files(X)]

    def decision_function(self, X: Iterable[AudioFile]) -> list[SlidingWindowFeature]:
        """Return the frame-level scores behind :meth:`predict`'s decisions.

        Parameters
        ----------
        X : list of files

        Returns
        -------
        scores : list of SlidingWindowFeature
            ``(num_frames, dimension)`` per file.
        """
        source = self.score_source()
        return [self._run(file, source)[2] for file in self._files(X)]

    def transform(self, X: Iterable[AudioFile]) -> list[dict]:
        """Return the files as dicts with the output added under :attr:`output_key`.

        The input files are not modified. This lets estimators chain in a
        :class:`~sklearn.pipeline.Pipeline` (e.g. a baseline, then resegmentation).

        Parameters
        ----------
        X : list of files

        Returns
        -------
        Xt : list of dict
        """
        source = self.score_source()
        out = []
        for file in self._files(X):
            file, annotation, _ = self._run(file, source)
            file[self.output_key] = annotation
            out.append(file)
        return out

    def fit_transform(self, X: Iterable[AudioFile], y: Any = None) -> list[dict]:
        """Fit, then :meth:`transform`."""
        return self.fit(X, y).transform(X)

    def __call__(self, file: AudioFile) -> Annotation:
        """Return the output for one file, as pyannote pipelines do.

        Parameters
        ----------
        file : str, PathLike or dict

        Returns
        -------
        annotation : Annotation
        """
        return self._run(file, self.score_source())[1]

    def score(
        self, X: Iterable[AudioFile], y: Iterable[Annotation] | None = None
    ) -> float:
        """Return the pipeline's own metric on ``X`` (higher is better).

        Parameters
        ----------
        X : list of files
        y : list of Annotation, optional
            References (speaker turns); defaults to each file's ``"annotation"``.

        Returns
        -------
        score : float
        """
        from ..metrics import get_scorer

        return get_scorer(self.default_scoring)(self, X, y)

    # -- persistence ----------------------------------------------------------------
    def __getstate__(self):
        # never mutate the live estimator (BaseEstimator returns __dict__ itself)
        return dict(super().__getstate__())


class DetectionEstimator(BaseSegmentationEstimator):
    """Base of the detection pipelines: one reduced score, binarized.

    Subclasses name the per-chunk :attr:`reduction` (see
    :data:`skseg.aggregation.REDUCTIONS`) and the :attr:`region_label` of the
    detected regions.

    Examples
    --------
    >>> from skseg import OSDEstimator, VADEstimator, fetch_sample
    >>> sample = fetch_sample()
    >>> for detector in (VADEstimator(), OSDEstimator()):
    ...     regions = detector(sample)
    ...     print(type(detector).__name__, regions.labels(), len(regions))
    VADEstimator ['SPEECH'] 3
    OSDEstimator ['OVERLAP'] 4
    """

    reduction: str = ""
    region_label: str = ""

    def stream(self, latency: float | None = None):
        """Return a live stream of this estimator's regions (:mod:`skseg.streaming`).

        Parameters
        ----------
        latency : float, optional
            Seconds of audio after a frame before it is decided, from one
            inference step to the chunk duration (the default, at which the
            stream's regions are :meth:`predict`'s).

        Returns
        -------
        stream : skseg.streaming.DetectionStream
            ``feed(samples) -> regions``, then ``close() -> regions``.

        Examples
        --------
        >>> import numpy as np
        >>> from skseg import VADEstimator
        >>> live = VADEstimator().stream(latency=1.0)
        >>> live.feed(np.zeros(8000, dtype="float32")), live.close()
        ([], [])
        """
        from ..streaming import stream

        return stream(self, latency)

    def frame_reduction(
        self, model: SegmentationModel
    ) -> tuple[float, float, Reduction]:
        """Return the thresholds and the per-chunk reduction run on ``model``.

        The head's :attr:`reduction` under :meth:`resolve_thresholds`' rule
        (``reduction`` itself on a multi-label model, its hard or soft form on
        pyannote/segmentation-3.0); offline prediction and streaming both use it.

        Parameters
        ----------
        model : SegmentationModel

        Returns
        -------
        onset, offset : float
        reduction : skseg.heads.Reduction
            Callable on chunk scores; :func:`skseg.aggregation.aggregate` and the
            score cache take it (its name keys the cache).

        Examples
        --------
        >>> from skseg import VADEstimator
        >>> vad = VADEstimator()
        >>> vad.frame_reduction(vad.fit().model_)
        (0.767, 0.377, Reduction('speech'))
        """
        return self._reduction(self.reduction, model)

    def _decide(self, scores: FileScores) -> tuple[Annotation, SlidingWindowFeature]:
        onset, offset, reduction = self.frame_reduction(scores.source.model)
        frames = scores.aggregated(reduction)
        binarize = Binarize(onset, offset, self.min_duration_on, self.min_duration_off)
        return binarize(frames).rename_labels({0: self.region_label}), frames


def _same(a: Any, b: Any) -> bool:
    # a model object is the same network only if it is the same object
    if isinstance(a, SegmentationModel) or isinstance(b, SegmentationModel):
        return a is b
    return a == b
