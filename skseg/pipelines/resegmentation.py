"""Resegmentation: refining a baseline diarization with the segmentation model."""

from __future__ import annotations

from pyannote.core import Annotation, SlidingWindowFeature

from ..audio import file_label
from ..exceptions import FileError
from ..scores import FileScores
from .base import BaseSegmentationEstimator
from .parameters import constraints, document_parameters

__all__ = ["ResegmentationEstimator"]


@document_parameters
class ResegmentationEstimator(BaseSegmentationEstimator):
    """Resegmentation of a baseline diarization (pyannote.audio 3.4's algorithm).

    The model counts speakers per frame; in each chunk its local speakers are
    mapped onto the baseline's speakers (Hungarian assignment on the overlap of
    their activities); each frame then keeps the ``count`` baseline speakers the
    mapped scores support most. Boundaries become the model's, labels stay the
    baseline's.

    Parameters
    ----------
    %(segmentation)s
    onset : float or "auto", default="auto"
        Speaker activation threshold used for counting. ``"auto"``: the model's rule
        (see :meth:`resolve_thresholds`): 0.810 on pyannote/segmentation; on
        pyannote/segmentation-3.0, the hard powerset speakers (0/1) at 0.5, while a
        number switches to thresholds on the speaker probabilities.
    offset : float, None or "auto", default="auto"
        Speaker deactivation threshold; None: onset. ``"auto"``: 0.481 on
        pyannote/segmentation; ``onset`` on pyannote/segmentation-3.0.
    min_duration_on : float, default=0.055
        Turns shorter than this are removed (seconds).
    min_duration_off : float, default=0.098
        Same-speaker gaps shorter than this are filled (seconds).
    warm_up : float, default=0.05
        Fraction of each chunk, at each end, that is not trusted.
    baseline : str, default="baseline"
        Key of each file that holds the baseline :class:`Annotation` (the model
        card's convention; use ``"segmentation"`` or ``"diarization"`` after a
        step that adds it under that key).
    %(runtime)s

    Attributes
    ----------
    model_ : SegmentationModel
        The network, bound by :meth:`fit` (the shared one for a checkpoint).
    segmentation_ : SegmentationModel, str or PathLike
        ``segmentation`` as it was at fit time.
    onset_, offset_ : float
        The thresholds applied, ``"auto"`` resolved for ``model_``.
    rule_ : {"multi-label", "powerset-hard", "powerset-soft"}
        How the model's outputs become scores (see :meth:`resolve_thresholds`).

    Notes
    -----
    Defaults are pyannote 2.1's (DIHARD III development set). The metric is the
    greedy diarization error rate, as in pyannote.

    Examples
    --------
    >>> from skseg import ResegmentationEstimator, SegmentationEstimator, fetch_sample
    >>> from sklearn.pipeline import make_pipeline
    >>> pipe = make_pipeline(SegmentationEstimator(),
    ...                      ResegmentationEstimator(baseline="segmentation"))
    >>> refined = pipe.predict([fetch_sample()])[0]
    >>> set(refined.labels()) <= {f"SPEAKER_0{k}" for k in range(5)}  # the baseline's
    True
    """

    default_scoring = "neg_greedy_diarization_error_rate"
    output_key = "diarization"
    default_thresholds = (0.81, 0.481)

    _parameter_constraints: dict = constraints("warm_up", "baseline")

    def __init__(
        self,
        segmentation="pyannote/segmentation",
        *,
        onset="auto",
        offset="auto",
        min_duration_on=0.055,
        min_duration_off=0.098,
        warm_up=0.05,
        baseline="baseline",
        step=None,
        mode="exact",
        batch_size=32,
        device=None,
        cache=True,
    ):
        self.segmentation = segmentation
        self.onset = onset
        self.offset = offset
        self.min_duration_on = min_duration_on
        self.min_duration_off = min_duration_off
        self.warm_up = warm_up
        self.baseline = baseline
        self.step = step
        self.mode = mode
        self.batch_size = batch_size
        self.device = device
        self.cache = cache

    def _decide(self, scores: FileScores) -> tuple[Annotation, SlidingWindowFeature]:
        file = scores.file
        baseline = file.get(self.baseline)
        if not isinstance(baseline, Annotation):
            problem = (
                f"no '{self.baseline}' key"
                if baseline is None
                else f"'{self.baseline}' is a {type(baseline).__name__}, "
                "not an Annotation"
            )
            raise FileError(
                file_label(file),
                f"{problem}: ResegmentationEstimator needs the baseline diarization "
                f"to refine under file['{self.baseline}'] (set baseline= to read "
                f"another key)",
            )
        from ._diarization import resegment

        onset, offset, chunks = self._speaker_chunks(scores)
        return resegment(
            chunks,
            baseline,
            onset=onset,
            offset=offset,
            min_duration_on=self.min_duration_on,
            min_duration_off=self.min_duration_off,
            warm_up=self.warm_up,
        )
