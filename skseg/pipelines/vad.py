"""Voice activity detection."""

from __future__ import annotations

from .base import DetectionEstimator
from .parameters import document_parameters

__all__ = ["VADEstimator"]


@document_parameters
class VADEstimator(DetectionEstimator):
    """Voice activity detection with pyannote/segmentation.

    The speech score of a frame is the largest of the three speaker scores, taken
    per chunk before the Hamming overlap-add (pyannote.audio's
    ``VoiceActivityDetection``); speech regions come from hysteresis thresholding
    and the minimum-duration rules.

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
    OSDEstimator : overlapped speech detection.

    Notes
    -----
    The defaults are pyannote's, tuned on the DIHARD III development set for the
    pretrained checkpoint. They apply to other checkpoints only as a starting
    point: tune them.

    Examples
    --------
    >>> from skseg import VADEstimator, fetch_sample
    >>> vad = VADEstimator(onset=0.5, offset=0.5, min_duration_on=0.0,
    ...                    min_duration_off=0.0)
    >>> speech = vad(fetch_sample())
    >>> [(round(s.start, 3), round(s.end, 3)) for s in speech.itersegments()]
    [(6.713, 7.152), (7.574, 21.53), (21.749, 29.967)]
    """

    default_scoring = "neg_speech_detection_error_rate"
    output_key = "speech"
    default_thresholds = (0.767, 0.377)
    reduction = "speech"
    region_label = "SPEECH"

    def __init__(
        self,
        segmentation="pyannote/segmentation",
        *,
        onset="auto",
        offset="auto",
        min_duration_on=0.136,
        min_duration_off=0.067,
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
