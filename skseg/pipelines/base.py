"""What the four pipeline estimators share.

Each estimator wraps the one shared pretrained network (loaded once per process
and checkpoint), asks the score cache for a file's raw chunk scores (computing them
only on a miss), and turns them into its output with its own post-processing. Only
that last step depends on the tuned hyper-parameters, so a grid search runs the
network once per file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from numbers import Integral, Real
from typing import Any

import torch
from pyannote.core import Annotation, SlidingWindowFeature
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
)

from ..audio import AudioFile, file_identity, file_label, validate_file
from ..binarize import Binarize
from ..cache import get_cache, score_key
from ..inference import MODES, ChunkScores, Inference, aggregate
from ..model import SegmentationModel, load_model

__all__ = ["BaseSegmentationEstimator", "DetectionEstimator"]


def _valid_device(device: Any) -> bool:
    if device is None:
        return True
    try:
        torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        return False
    return True


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

    _parameter_constraints: dict = {
        "segmentation": [str, os.PathLike],
        "onset": [Interval(Real, 0, 1, closed="both")],
        "offset": [Interval(Real, 0, 1, closed="both"), None],
        "min_duration_on": [Interval(Real, 0, None, closed="left")],
        "min_duration_off": [Interval(Real, 0, None, closed="left")],
        "step": [Interval(Real, 0, None, closed="neither"), None],
        "mode": [StrOptions(set(MODES))],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device, None],
        "cache": ["boolean", str, os.PathLike, None],
    }

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

    # -- parameters ---------------------------------------------------------------
    def _check_params(self) -> None:
        self._validate_params()
        if not _valid_device(self.device):
            raise InvalidParameterError(
                f"The 'device' parameter of {type(self).__name__} must be None or a "
                f"torch device such as 'cpu', 'cuda' or 'cuda:1'. Got {self.device!r} "
                f"instead."
            )
        if self.device is not None:
            device = torch.device(self.device)
            if device.type == "cuda" and not torch.cuda.is_available():
                raise InvalidParameterError(
                    f"The 'device' parameter of {type(self).__name__} is "
                    f"{self.device!r} but CUDA is not available on this machine."
                )

    @property
    def _offset(self) -> float:
        return self.onset if self.offset is None else self.offset

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
        self._check_params()
        self.model_ = load_model(self.segmentation)
        self.segmentation_ = self.segmentation
        return self

    def _model(self) -> SegmentationModel:
        # Fitted: the bound (possibly unpickled, file-less) model. Unfitted, or
        # `segmentation` changed since fit: the shared one, without mutating self.
        model = getattr(self, "model_", None)
        if (
            model is not None
            and getattr(self, "segmentation_", None) == self.segmentation
        ):
            return model
        self._check_params()
        return load_model(self.segmentation)

    # -- scores ---------------------------------------------------------------------
    def _step(self, model: SegmentationModel) -> float:
        if self.step is None:
            return MODES[self.mode]["step_fraction"] * model.duration
        return float(self.step)

    def _score_key(self, file: dict, model: SegmentationModel) -> str:
        # hashes an in-memory waveform: compute once per file and call
        return score_key(
            model.sha256,
            file_identity(file),
            self._step(model),
            model.duration,
            self.mode,
        )

    def _chunk_scores(
        self, file: dict, model: SegmentationModel, key: str | None = None
    ) -> ChunkScores:
        def compute() -> ChunkScores:
            inference = Inference(
                model,
                step=self._step(model),
                batch_size=self.batch_size,
                device=self.device,
                mode=self.mode,
            )
            return inference(file)

        cache = get_cache(self.cache)
        if cache is None:
            return compute()
        # single flight: threads (and processes sharing a cache directory) asking
        # for the same cold file wait for one network run instead of each running it
        return cache.get_or_compute(key or self._score_key(file, model), compute)

    def _aggregated(
        self, file: dict, model: SegmentationModel, reduction: str
    ) -> SlidingWindowFeature:
        """Frame scores after a per-chunk reduction, cached beside the chunks."""
        cache = get_cache(self.cache)
        if cache is None:
            return aggregate(self._chunk_scores(file, model), reduction=reduction)
        key = self._score_key(file, model)
        derived = f"{key}:{reduction}"
        if (hit := cache.get(derived)) is not None:
            return hit
        scores = aggregate(self._chunk_scores(file, model, key), reduction=reduction)
        cache.put(derived, scores)
        return scores

    def _decide(
        self, file: dict, model: SegmentationModel
    ) -> tuple[Annotation, SlidingWindowFeature]:
        raise NotImplementedError

    def _run(
        self, file: AudioFile, model: SegmentationModel
    ) -> tuple[Annotation, SlidingWindowFeature]:
        file = validate_file(file)
        annotation, scores = self._decide(file, model)
        annotation.uri = file["uri"]
        return annotation, scores

    @staticmethod
    def _files(X: Any) -> list:
        if isinstance(X, str | os.PathLike | Mapping):
            raise TypeError(
                f"X must be a list of files, got a single {type(X).__name__} "
                f"({file_label(X)!r}); use [file], or call the estimator on one file"
            )
        return list(X)

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
        model = self._model()
        return [self._run(file, model)[0] for file in self._files(X)]

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
        model = self._model()
        return [self._run(file, model)[1] for file in self._files(X)]

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
        model = self._model()
        out = []
        for file in self._files(X):
            file = validate_file(file)
            file[self.output_key] = self._run(file, model)[0]
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
        return self._run(file, self._model())[0]

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
        return self._default_scorer()(self, X, y)

    def _default_scorer(self):
        raise NotImplementedError

    # -- persistence ----------------------------------------------------------------
    def __getstate__(self):
        # never mutate the live estimator (BaseEstimator returns __dict__ itself)
        return dict(super().__getstate__())


class DetectionEstimator(BaseSegmentationEstimator):
    """Base of the detection pipelines: one reduced score, binarized.

    Subclasses name the per-chunk reduction (see :data:`skseg.inference.REDUCTIONS`)
    and the label of the detected regions.

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

    _reduction: str = ""
    _label: str = ""

    def _decide(
        self, file: dict, model: SegmentationModel
    ) -> tuple[Annotation, SlidingWindowFeature]:
        scores = self._aggregated(file, model, self._reduction)
        binarize = Binarize(
            self.onset, self._offset, self.min_duration_on, self.min_duration_off
        )
        return binarize(scores).rename_labels({0: self._label}), scores
