"""Speaker segmentation: speaker turns stitched across chunks."""

from __future__ import annotations

from pyannote.core import Annotation, SlidingWindowFeature

from ..scores import FileScores
from .base import BaseSegmentationEstimator
from .parameters import constraints, document_parameters

__all__ = ["SegmentationEstimator"]


@document_parameters
class SegmentationEstimator(BaseSegmentationEstimator):
    """Speaker segmentation: who speaks when, within the model's reach.

    pyannote.audio 2.1's ``SpeakerSegmentation``: local speakers are binarized
    per chunk, counted per frame, stitched into file-level speakers by matching
    neighbouring chunks on their common frames (Hungarian assignment, a cost
    threshold that halves until every component has one speaker per chunk), and
    the ``count`` most active stitched speakers are kept in each frame.

    Parameters
    ----------
    %(segmentation)s
    onset : float or "auto", default="auto"
        Speaker activation threshold (per chunk). ``"auto"``: the model's rule (see
        :meth:`resolve_thresholds`): 0.84 on pyannote/segmentation; on
        pyannote/segmentation-3.0, the hard powerset speakers (0/1) at 0.5, while a
        number switches to thresholds on the speaker probabilities.
    offset : float, None or "auto", default="auto"
        Speaker deactivation threshold; None: onset. ``"auto"``: 0.46 on
        pyannote/segmentation; ``onset`` on pyannote/segmentation-3.0.
    min_duration_on : float, default=0.0
        Turns shorter than this are removed (seconds).
    min_duration_off : float, default=0.0
        Same-speaker gaps shorter than this are filled (seconds).
    stitch_threshold : float, default=0.39
        Largest mean absolute difference for two chunks' speakers to be joined.
    warm_up : float, default=0.05
        Fraction of each chunk, at each end, that is not trusted.
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
    The algorithm is pyannote.audio 2.1.1's, run on pyannote.audio 3.2+'s frame
    timestamps and chunking (the same as every other skseg pipeline) rather than
    2.1's, which place frames 22.5 ms earlier. The defaults are pyannote 2.1.1's,
    tuned on DIHARD III. Labels are ``SPEAKER_00``, ``SPEAKER_01``, ...

    Examples
    --------
    >>> from skseg import SegmentationEstimator, fetch_sample
    >>> turns = SegmentationEstimator()(fetch_sample())
    >>> turns.labels()  # 2 people; a speaker back after a pause gets a new label
    ['SPEAKER_00', 'SPEAKER_01', 'SPEAKER_02', 'SPEAKER_03', 'SPEAKER_04']
    """

    default_scoring = "neg_greedy_diarization_error_rate"
    output_key = "segmentation"
    default_thresholds = (0.84, 0.46)

    _parameter_constraints: dict = constraints("stitch_threshold", "warm_up")

    def __init__(
        self,
        segmentation="pyannote/segmentation",
        *,
        onset="auto",
        offset="auto",
        min_duration_on=0.0,
        min_duration_off=0.0,
        stitch_threshold=0.39,
        warm_up=0.05,
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
        self.stitch_threshold = stitch_threshold
        self.warm_up = warm_up
        self.step = step
        self.mode = mode
        self.batch_size = batch_size
        self.device = device
        self.cache = cache

    def stream(self, latency: float | None = None):
        """Return a live stream of speaker turns (:mod:`skseg.streaming`).

        Parameters
        ----------
        latency : float, optional
            Seconds of audio after a frame before it is decided, from one
            inference step to the chunk duration (the default).

        Returns
        -------
        stream : skseg.streaming.SegmentationStream
            ``feed(samples) -> turns``, then ``close() -> turns``. Speakers are
            stitched online, so turns differ from :meth:`predict`'s.

        Examples
        --------
        >>> import numpy as np
        >>> live = SegmentationEstimator().stream(latency=0.5)
        >>> live.feed(np.zeros(8000, dtype="float32")), live.close()
        ([], [])
        """
        from ..streaming import stream

        return stream(self, latency)

    def _decide(self, scores: FileScores) -> tuple[Annotation, SlidingWindowFeature]:
        from ._diarization import segment_speakers

        onset, offset, chunks = self._speaker_chunks(scores)
        return segment_speakers(
            chunks,
            onset=onset,
            offset=offset,
            min_duration_on=self.min_duration_on,
            min_duration_off=self.min_duration_off,
            stitch_threshold=self.stitch_threshold,
            warm_up=self.warm_up,
        )
