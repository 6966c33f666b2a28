"""Overlapped speech detection."""

from __future__ import annotations

from .base import DetectionEstimator
from .parameters import document_parameters

__all__ = ["OSDEstimator"]


@document_parameters
class OSDEstimator(DetectionEstimator):
    """Overlapped speech detection with pyannote/segmentation.

    The overlap score of a frame is the second-largest of the three speaker
    scores, taken per chunk before the Hamming overlap-add (pyannote.audio 3.x's
    ``OverlappedSpeechDetection``, removed from pyannote.audio 4); overlap regions
    come from hysteresis thresholding and the minimum-duration rules.

    Parameters
    ----------
    %(segmentation)s
    %(detection)s
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

    See Also
    --------
    VADEstimator : voice activity detection.

    Notes
    -----
    The defaults are pyannote's, tuned on the DIHARD III development set. Its
    default metric, like pyannote's, is the F-measure of overlap detection against
    the overlap regions derived from the reference speaker turns.

    Examples
    --------
    >>> from skseg import OSDEstimator, fetch_sample
    >>> overlap = OSDEstimator()(fetch_sample())
    >>> [(round(s.start, 3), round(s.end, 3)) for s in overlap.itersegments()]
    [(9.852, 11.118), (14.273, 14.797), (18.172, 18.593), (27.79, 28.685)]
    """

    default_scoring = "overlap_fmeasure"
    output_key = "overlap"
    default_thresholds = (0.43, 0.32)
    reduction = "overlap"
    region_label = "OVERLAP"

    def __init__(
        self,
        segmentation="pyannote/segmentation",
        *,
        onset="auto",
        offset="auto",
        min_duration_on=0.091,
        min_duration_off=0.144,
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
        self.step = step
        self.mode = mode
        self.batch_size = batch_size
        self.device = device
        self.cache = cache
