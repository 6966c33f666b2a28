"""Speaker-level post-processing of raw chunk scores: resegmentation and segmentation.

Both algorithms start from the raw ``(num_chunks, num_frames, 3)`` scores of
:class:`skseg.inference.Inference`, in which the three slots of a chunk are *local*
speakers (the model is permutation-invariant, so slot 0 of one chunk need not be
slot 0 of the next). They share the building blocks of pyannote.audio's
``SpeakerDiarizationMixin``:

* :func:`speaker_count`: per-frame number of active speakers, estimated from the
  binarized, warm-up-trimmed chunks averaged over the chunks that cover a frame;
* :func:`trim`: drop the warm-up frames at both ends of every chunk;
* :func:`to_diarization`: sum the (now globally labelled) chunk scores over
  chunks and mark, per frame, the ``count`` speakers with the largest sums;
* :func:`to_annotation`: turn that 0/1 matrix into turns with
  ``Binarize(0.5, 0.5, min_duration_on, min_duration_off)``.

They differ in how local speakers get a global identity:

* :func:`resegment` is pyannote.audio 3.4.0's ``Resegmentation``: each chunk's
  slots are mapped onto the speakers of a baseline diarization (discretised on the
  model frames) by a Hungarian assignment on the mean absolute difference.
* :func:`segment_speakers` is pyannote.audio 2.1.1's ``SpeakerSegmentation``:
  slots of chunks at most ``duration / step - 1`` chunks apart are compared on their
  common frames, pairs of matched slots become edges of a "stitching graph"
  weighted by that difference, and connected components with at most one slot per
  chunk become speakers, the threshold on edge weights halving until every slot
  is placed.

Frames. Both run here on the frames that :class:`~skseg.inference.Inference` gives,
i.e. pyannote.audio >= 3.2's receptive-field frames (step 270 samples, duration
991 samples, chunk ``c`` placed at frame ``rint(c * step / 0.016875)``).
pyannote.audio 3.4.0's ``Resegmentation`` used exactly these, so :func:`resegment`
reproduces it. pyannote.audio 2.1.1's ``SpeakerSegmentation`` used the 2.x frames
(frame middles 22.5 ms earlier, chunk ``c`` placed at ``rint(c * 29.63 - 0.5)``)
and 2.x's last-chunk handling; the algorithm is ported unchanged but run on the
3.2+ frames, the only ones this package computes, so its timestamps are those
pyannote 3.x would give, not 2.1.1's (turn boundaries differ by about 20 ms, up to
a frame more where the chunk placement rounds the other way).

Exactness. Both give pyannote's output bit for bit from the same chunk scores
(``tests/test_differential.py``, against pyannote's own code on a few hundred random
and adversarial cases): the Hungarian costs are computed with pyannote's very torch
calls (float32 means; the last bit decides between equal assignments, e.g. between
zero-padded baseline columns), edge costs are compared with the threshold in
float64 (numpy 1.x's rule for pyannote's float32 scalars), and stitched speakers
are named in ``Annotation.labels()`` order (column indices sorted as strings).
Where pyannote's result hinges on the order numpy's default argsort gives *equal*
activations (exact ties, which that sort breaks differently across numpy versions
and CPUs), skseg ranks the lower column first, on every machine.

Deliberate differences from pyannote.audio, each for a case where it crashes,
hangs or returns nothing useful:

* ``offset=None`` (not ``offset=0.0``) means "same as onset" (pyannote writes
  ``offset or onset``), as in :mod:`skseg.binarize`.
* :func:`resegment`: when a chunk reaches past the discretised baseline (files
  shorter than about 4.1 s with ``warm_up=0.05``), the baseline is zero-padded;
  pyannote fails on a shape mismatch. An empty baseline gives an empty
  annotation (pyannote would invent speakers ``0, 1, 2`` for the padded columns).
* :func:`segment_speakers`: with a single chunk there is no chunk pair, hence no
  node in pyannote's graph and an empty output; here each slot active in the
  trimmed chunk becomes a speaker. When the slots left in the graph are joined only
  by zero-cost edges (none stitchable), pyannote loops forever (a zero cost never
  exceeds the halving threshold); here those edges are dropped and each remaining
  slot becomes its own speaker.

Like pyannote, turns may run a few frames past the end of the file when speech
reaches it (the last chunk is zero-padded audio). :func:`segment_speakers` sums
each stitched speaker's scores directly instead of building pyannote's NaN-filled
``(chunks, frames, speakers)`` float64 array: same float32 sums, ~18x less memory.
"""

from __future__ import annotations

import math

import numpy as np
from pyannote.core import Annotation, Segment, SlidingWindow, SlidingWindowFeature
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..aggregation import OverlapAdd
from ..binarize import Binarize, binarize
from ..clustering import agglomerative_clustering
from ..inference import ChunkScores, aggregate

__all__ = [
    "binarize_speakers",
    "cluster_speakers",
    "embedding_weights",
    "reconstruct",
    "resegment",
    "segment_speakers",
    "speaker_count",
    "trim",
    "to_diarization",
    "to_annotation",
    "optimal_permutation",
]


# ---------------------------------------------------------------------------
# shared building blocks (pyannote.audio's SpeakerDiarizationMixin)
# ---------------------------------------------------------------------------


def trim(scores: SlidingWindowFeature, warm_up: float) -> SlidingWindowFeature:
    """Drop the warm-up frames at both ends of every chunk (``Inference.trim``).

    Parameters
    ----------
    scores : SlidingWindowFeature
        ``(num_chunks, num_frames, num_classes)`` scores on the chunk window.
    warm_up : float
        Fraction of the chunk duration dropped on each side.

    Returns
    -------
    trimmed : SlidingWindowFeature
        ``(num_chunks, num_frames - 2 * round(num_frames * warm_up), num_classes)``
        view of ``scores.data`` on the shrunk chunk window (same step).
    """
    data = np.asarray(scores.data)
    if data.ndim != 3:
        raise ValueError(f"scores must be (chunks, frames, classes), got {data.shape}")
    num_frames = data.shape[1]
    left = right = round(num_frames * warm_up)
    chunks = scores.sliding_window
    # same float expressions as pyannote: chunk boundaries feed crop/closest_frame
    window = SlidingWindow(
        start=chunks.start + warm_up * chunks.duration,
        step=chunks.step,
        duration=(1 - warm_up - warm_up) * chunks.duration,
    )
    return SlidingWindowFeature(data[:, left : num_frames - right], window)


def _binarize_chunks(
    data: np.ndarray, onset: float, offset: float | None
) -> np.ndarray:
    """Per-chunk, per-slot hysteresis, starting inactive, as 0./1. floats."""
    # skseg's binarize runs along the last axis: put frames there and back
    states = binarize(np.swapaxes(data, 1, 2), onset, offset, initial_state=False)
    return np.swapaxes(states, 1, 2).astype(np.float64)


def speaker_count(
    chunks: SlidingWindowFeature,
    frames: SlidingWindow,
    *,
    onset: float,
    offset: float | None,
    warm_up: float,
) -> SlidingWindowFeature:
    """Estimate the number of active speakers per frame.

    Each chunk's slots are binarized (hysteresis starting inactive), the warm-up is
    trimmed, active slots are counted per frame, and the counts are averaged over
    the chunks covering each frame (no Hamming window) and rounded half-to-even.

    Parameters
    ----------
    chunks : SlidingWindowFeature
        Raw ``(num_chunks, num_frames, num_slots)`` chunk scores.
    frames : SlidingWindow
        Frames of a chunk starting at 0.
    onset, offset : float
        Hysteresis thresholds (``offset=None`` means onset).
    warm_up : float
        Fraction of the chunk duration trimmed on each side.

    Returns
    -------
    count : SlidingWindowFeature
        ``(num_frames, 1)`` uint8 counts on frames starting at the trimmed chunk
        window's start.
    """
    active = _binarize_chunks(np.asarray(chunks.data), onset, offset)
    trimmed = trim(SlidingWindowFeature(active, chunks.sliding_window), warm_up)
    summed = SlidingWindowFeature(
        np.sum(trimmed.data, axis=-1, keepdims=True), trimmed.sliding_window
    )
    count = aggregate(summed, frames, hamming=False, missing=0.0, crop=False)
    count.data = np.rint(count.data).astype(np.uint8)
    return count


def optimal_permutation(reference: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Hungarian assignment of score columns to reference columns, on the MAE.

    Parameters
    ----------
    reference : ndarray, shape (num_frames, num_classes)
    scores : ndarray, shape (num_frames, num_classes)

    Returns
    -------
    permutation : ndarray of int, shape (num_classes,)
        ``scores[:, permutation]`` is aligned with ``reference``.

    Examples
    --------
    >>> ref = np.array([[1.0, 0.0], [1.0, 0.0]])
    >>> optimal_permutation(ref, ref[:, ::-1]).tolist()
    [1, 0]
    """
    return _assign(_mae_cost_as_pyannote(reference, scores))


def _mae_cost_as_pyannote(reference: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``cost[i, j] = mean_t |scores[t, j] - reference[t, i]|``, as pyannote gets it.

    pyannote.audio's ``permutate(..., cost_func=mae_cost_func)`` takes a float32
    torch mean over frames, one reference column at a time. Which of two *equal*
    assignments :func:`scipy.optimize.linear_sum_assignment` returns (zero-padded
    baseline columns have identical cost rows) depends on the last bit of the
    costs, and a float32 torch reduction rounds differently from numpy's or from a
    float64 mean, and even from the same reduction batched over columns or chunks.
    So this runs the very same torch calls, on tensors of the same shapes and
    layout.
    """
    import torch

    scores_t = torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32))
    reference_t = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float32))
    num_cols = scores_t.shape[1]
    with torch.no_grad():
        cost = torch.stack(
            [
                torch.mean(
                    torch.abs(
                        scores_t - reference_t[:, i : i + 1].expand(-1, num_cols)
                    ),
                    axis=0,
                )
                for i in range(reference_t.shape[1])
            ]
        )
    return cost.numpy().astype(np.float64)


def _assign(cost: np.ndarray) -> np.ndarray:
    """Hungarian assignment: ``perm[i]`` is the column given to row ``i``."""
    return linear_sum_assignment(cost)[1]


def to_diarization(
    segmentations: SlidingWindowFeature,
    count: SlidingWindowFeature,
    *,
    pad: bool = True,
) -> tuple[SlidingWindowFeature, SlidingWindowFeature]:
    """Keep, per frame, the ``count`` speakers with the largest summed scores.

    Parameters
    ----------
    segmentations : SlidingWindowFeature
        ``(num_chunks, num_frames, num_speakers)`` chunk scores whose columns are
        global speakers (NaN where a speaker is absent from a chunk).
    count : SlidingWindowFeature
        ``(num_frames, 1)`` speaker count from :func:`speaker_count`.
    pad : bool, default=True
        pyannote 3.x: add zero columns when the count exceeds the number of
        speakers. ``False`` is pyannote 2.x: clip the count to that number.

    Returns
    -------
    discrete : SlidingWindowFeature
        ``(num_frames, num_speakers')`` 0./1. float32 diarization.
    activations : SlidingWindowFeature
        The summed scores it was decided from, same shape and frames.
    """
    # a plain sum over chunks (skip_average) on the count's frames, no Hamming
    activations = aggregate(
        segmentations,
        count.sliding_window,
        hamming=False,
        missing=0.0,
        skip_average=True,
        crop=False,
    )
    return _decide_top(activations, count, pad=pad)


def _decide_top(
    activations: SlidingWindowFeature, count: SlidingWindowFeature, *, pad: bool
) -> tuple[SlidingWindowFeature, SlidingWindowFeature]:
    scores, rows, cols = _top_count(activations.data, count.data, pad=pad)
    binary = np.zeros_like(scores)
    binary[rows, cols] = 1.0
    frames = activations.sliding_window
    return (
        SlidingWindowFeature(binary, frames),
        SlidingWindowFeature(scores, frames),
    )


def reconstruct(
    segmentations: SlidingWindowFeature,
    hard_clusters: np.ndarray,
    count: SlidingWindowFeature,
) -> tuple[SlidingWindowFeature, SlidingWindowFeature]:
    """Global speakers from clustered local ones (pyannote 3.1's ``reconstruct``).

    Each chunk's local speakers are relabelled with their cluster (the maximum
    of the local scores where several go to one cluster, absent where none
    does), summed over chunks, and the ``count`` best clusters kept per frame
    (:func:`to_diarization`).

    Parameters
    ----------
    segmentations : SlidingWindowFeature
        ``(num_chunks, num_frames, num_local_speakers)`` chunk scores (hard 0/1
        for a powerset network, probabilities for a multi-label one).
    hard_clusters : ndarray of int, shape (num_chunks, num_local_speakers)
        Cluster of each local speaker; ``-2`` for none (inactive speakers).
    count : SlidingWindowFeature
        ``(num_frames, 1)`` speaker count from :func:`speaker_count`.

    Returns
    -------
    discrete : SlidingWindowFeature
        ``(num_frames, num_clusters')`` 0./1. diarization (zero columns added
        when the count exceeds the number of clusters).
    activations : SlidingWindowFeature
        The summed scores it was decided from.

    Notes
    -----
    pyannote fills a ``(num_chunks, num_frames, num_clusters)`` float64 array
    with NaN and overlap-adds it; here each chunk's clustered scores go straight
    into the overlap-add (:class:`skseg.aggregation.OverlapAdd`, the same float32
    sums in the same order), so memory grows with the number of frames only.
    """
    data = np.asarray(segmentations.data)
    num_chunks, num_frames, _ = data.shape
    hard_clusters = np.asarray(hard_clusters)
    num_clusters = int(np.max(hard_clusters, initial=-1)) + 1
    overlap = OverlapAdd(
        segmentations.sliding_window,
        count.sliding_window,
        max(num_clusters, 1),
        hamming=False,
    )
    for c in range(num_chunks):
        clustered = np.full((num_frames, max(num_clusters, 1)), np.nan)
        cluster = hard_clusters[c]
        for k in np.unique(cluster):
            if k == -2:
                continue
            clustered[:, k] = np.max(data[c][:, cluster == k], axis=1)
        overlap.add(clustered)
    summed = overlap.release(overlap.num_frames(), missing=0.0, skip_average=True)
    if num_clusters == 0:
        summed = summed[:, :0]
    activations = SlidingWindowFeature(summed, overlap.frames)
    return _decide_top(activations, count, pad=True)


def _top_count(
    scores: np.ndarray, count: np.ndarray, *, pad: bool, block: int = 4096
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where ``to_diarization`` puts its ones, as ``(rows, columns)`` indices.

    Returns the (possibly zero-padded, cropped) scores and the indices. Rows are
    sorted in blocks so that long files with many speakers stay within memory.
    """
    counts = np.asarray(count)[:, 0].astype(np.int64)
    num_speakers = scores.shape[1]
    max_count = int(counts.max(initial=0))
    if pad and num_speakers < max_count:
        scores = np.pad(scores, ((0, 0), (0, max_count - num_speakers)))
    elif not pad:
        counts = np.minimum(counts, num_speakers)
    # both come from chunk windows with the same start, step and number of chunks,
    # so pyannote's crop to the intersection of their extents keeps common frames
    num_frames = min(len(scores), len(counts))
    scores, counts = scores[:num_frames], counts[:num_frames]
    rows, cols = [], []
    top = int(counts.max(initial=0))
    for t0 in range(0, num_frames, block):
        # equal scores: lower column first. pyannote uses numpy's default argsort,
        # whose order between equals depends on the numpy version and the CPU
        # (an AVX-512 sorting network from 4 columns on); a stable sort is the
        # same everywhere (docs/pipelines/resegmentation.md, "Ties")
        order = np.argsort(-scores[t0 : t0 + block], axis=-1, kind="stable")[:, :top]
        chosen = np.arange(top)[np.newaxis, :] < counts[t0 : t0 + block, np.newaxis]
        r, k = np.nonzero(chosen)
        rows.append(r + t0)
        cols.append(order[r, k])
    empty = np.zeros(0, dtype=np.int64)
    return (
        scores,
        np.concatenate(rows) if rows else empty,
        np.concatenate(cols) if cols else empty,
    )


def to_annotation(
    discrete: SlidingWindowFeature,
    *,
    min_duration_on: float = 0.0,
    min_duration_off: float = 0.0,
    uri: str | None = None,
) -> Annotation:
    """Turn a 0/1 frame-level diarization into speaker turns.

    Parameters
    ----------
    discrete : SlidingWindowFeature
        ``(num_frames, num_speakers)`` 0./1. values; ``discrete.labels`` name the
        speakers (else column indices).
    min_duration_on : float, default=0.0
        Remove turns shorter than this, in seconds (after gap filling).
    min_duration_off : float, default=0.0
        Fill same-speaker gaps shorter than this, in seconds.
    uri : str, optional
        URI of the annotation.

    Returns
    -------
    annotation : Annotation
    """
    binarizer = Binarize(
        onset=0.5,
        offset=0.5,
        min_duration_on=min_duration_on,
        min_duration_off=min_duration_off,
    )
    return binarizer(discrete, uri=uri).rename_tracks(generator="string")


# ---------------------------------------------------------------------------
# resegmentation (pyannote.audio 3.4.0)
# ---------------------------------------------------------------------------


def _speaker_turns(
    discrete: SlidingWindowFeature,
    min_duration_on: float,
    min_duration_off: float,
    uri: str | None,
) -> tuple[Annotation, list, list[str]]:
    """Return the turns of the discrete columns, named ``SPEAKER_00``... as pyannote.

    Returns the annotation, the surviving columns and their names, in order.
    """
    annotation = to_annotation(
        discrete,
        min_duration_on=min_duration_on,
        min_duration_off=min_duration_off,
        uri=uri,
    )
    # pyannote: surviving column indices in Annotation.labels() order, which sorts
    # them as strings (pyannote.core >= 4: 0, 1, 10, 11, 2, ...) -> SPEAKER_00, ...
    columns = sorted(annotation.labels(), key=str)
    names = [f"SPEAKER_{i:02d}" for i in range(len(columns))]
    annotation = annotation.rename_labels(dict(zip(columns, names, strict=True)))
    return annotation, columns, names


def _local_baseline(
    baseline: SlidingWindowFeature, chunks: SlidingWindow, num_chunks: int, n: int
) -> np.ndarray:
    """``baseline.crop(chunk)[:n]`` for every chunk, zero-padded to ``n`` frames."""
    data = np.asarray(baseline.data, dtype=np.float32)
    out = np.zeros((num_chunks, n, data.shape[1]), dtype=np.float32)
    for c in range(num_chunks):
        # pyannote.core's own "loose" crop: frames overlapping the trimmed chunk
        local = baseline.crop(chunks[c], mode="loose")[:n]
        out[c, : len(local)] = local
    return out


def resegment(
    chunks: ChunkScores,
    baseline: Annotation,
    *,
    onset: float,
    offset: float | None,
    min_duration_on: float,
    min_duration_off: float,
    warm_up: float = 0.05,
    uri: str | None = None,
) -> tuple[Annotation, SlidingWindowFeature]:
    """Refine a diarization with the segmentation model (pyannote 3.4.0).

    Parameters
    ----------
    chunks : ChunkScores
        Raw chunk scores of the file (:class:`skseg.inference.Inference`).
    baseline : Annotation
        Diarization to refine; its labels are the output's.
    onset, offset : float
        Hysteresis thresholds used to count speakers (``offset=None``: onset).
    min_duration_on : float
        Remove turns shorter than this, in seconds.
    min_duration_off : float
        Fill same-speaker gaps shorter than this, in seconds.
    warm_up : float, default=0.05
        Fraction of the chunk duration ignored at each side of a chunk.
    uri : str, optional
        URI of the output; defaults to the baseline's.

    Returns
    -------
    annotation : Annotation
        Turns labelled with the baseline's labels; a speaker beyond them (more
        active speakers than the baseline has) is labelled ``EXTRA_<column>``.
    activations : SlidingWindowFeature
        ``(num_frames, num_labels)`` summed, permuted chunk scores the decision was
        made from: one column per baseline label (sorted; labels with no turn
        before the end of the file are left out, as pyannote does), then the
        ``EXTRA_`` columns that are active in the output.

    Notes
    -----
    The baseline is discretised on the model frames over ``[0, duration + step]``
    (pyannote.core ``Annotation.discretize``, frames whose middle is closest to each
    turn's ends). Each trimmed chunk's slots are permuted onto the baseline columns
    cropped to that chunk ("loose" crop, as pyannote), by a Hungarian assignment on
    the mean absolute difference; the permuted scores are summed over chunks and
    the ``count`` best columns kept per frame.
    """
    if uri is None:
        uri = baseline.uri
    frames = chunks.frames
    window = chunks.sliding_window
    count = speaker_count(chunks, frames, onset=onset, offset=offset, warm_up=warm_up)
    duration = float(chunks.duration)
    discrete_baseline = baseline.discretize(
        support=Segment(0.0, duration + window.step), resolution=frames
    )
    labels = list(discrete_baseline.labels or [])
    if not labels:
        # nothing to map the local speakers onto: nobody to output
        empty = SlidingWindowFeature(
            np.zeros((len(count), 0), dtype=np.float32), count.sliding_window, labels=[]
        )
        return Annotation(uri=uri), empty

    trimmed = trim(chunks, warm_up)
    num_chunks, num_frames, num_slots = trimmed.data.shape
    local = _local_baseline(
        discrete_baseline, trimmed.sliding_window, num_chunks, num_frames
    )
    # as many speakers as slots: pad whichever side has fewer with zero columns
    num_speakers = max(len(labels), num_slots)
    local = np.pad(local, ((0, 0), (0, 0), (0, num_speakers - len(labels))))
    scores = np.pad(
        np.asarray(trimmed.data), ((0, 0), (0, 0), (0, num_speakers - num_slots))
    )
    permuted = np.empty_like(scores)
    for c in range(num_chunks):
        # (speakers, slots) costs with pyannote's float32 rounding: ties between
        # zero-padded columns are then broken as pyannote breaks them
        permuted[c] = scores[c][:, _assign(_mae_cost_as_pyannote(local[c], scores[c]))]

    discrete, activations = to_diarization(
        SlidingWindowFeature(permuted, trimmed.sliding_window), count, pad=True
    )
    names = labels + [f"EXTRA_{k}" for k in range(len(labels), discrete.data.shape[1])]
    discrete.labels = names
    annotation = to_annotation(
        discrete,
        min_duration_on=min_duration_on,
        min_duration_off=min_duration_off,
        uri=uri,
    )
    present = set(annotation.labels())
    keep = [k for k, name in enumerate(names) if k < len(labels) or name in present]
    decision = SlidingWindowFeature(
        activations.data[:, keep],
        activations.sliding_window,
        labels=[names[k] for k in keep],
    )
    return annotation, decision


# ---------------------------------------------------------------------------
# speaker segmentation (pyannote.audio 2.1.1)
# ---------------------------------------------------------------------------


def _stitching_graph(
    trimmed: SlidingWindowFeature, onset: float
) -> tuple[list[tuple[int, int]], np.ndarray, np.ndarray]:
    """Nodes (in pyannote's insertion order) and weighted edges of the graph.

    Returns the nodes as ``(chunk, slot)`` pairs, the edges as an ``(E, 2)`` array
    of node indices and their ``(E,)`` costs.
    """
    data = np.asarray(trimmed.data)
    num_chunks, num_frames, num_slots = data.shape
    chunks = trimmed.sliding_window
    lookahead = math.floor(chunks.duration / chunks.step - 1)

    # Everything that does not depend on the traversal order, one chunk distance
    # at a time: for the pair (a, a + d), a's last frames against b's first ones.
    pairs: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}
    for d in range(1, min(lookahead, num_chunks - 1) + 1):
        shift = abs(round(-d * num_frames * chunks.step / chunks.duration))
        early = data[: num_chunks - d, shift:]
        late = data[d:, : num_frames - shift]
        pairs[d] = (
            shift,
            np.any(early > onset, axis=1),
            np.any(late > onset, axis=1),
        )

    index: dict[tuple[int, int], int] = {}
    edges: dict[tuple[int, int], float] = {}

    def add(node: tuple[int, int]) -> int:
        return index.setdefault(node, len(index))

    # pyannote's traversal: node ids follow the order networkx first saw them,
    # which fixes the order of the components, hence of the output speakers
    for C in range(num_chunks):
        for c in range(max(0, C - lookahead), min(num_chunks, C + lookahead + 1)):
            if c == C:
                continue
            d = abs(C - c)
            shift, early_active, late_active = pairs[d]
            if C < c:  # this chunk is the early one
                this_scores = data[C, shift:]
                that_scores = data[c, : num_frames - shift]
                this_active, that_active = early_active[C], late_active[C]
            else:  # this chunk is the late one
                this_scores = data[C, : num_frames - shift]
                that_scores = data[c, shift:]
                this_active, that_active = late_active[c], early_active[c]
            # this_cost[i, j]: this chunk's slot i against that chunk's slot j, with
            # pyannote's float32 rounding (it decides ties in the assignment and
            # which edges a threshold removes)
            this_cost = _mae_cost_as_pyannote(this_scores, that_scores)
            permutation = _assign(this_cost)
            for this, that in enumerate(permutation):
                if this_active[this]:
                    add((C, this))
                if that_active[that]:
                    add((c, that))
                if this_active[this] and that_active[that]:
                    u, v = index[(C, this)], index[(c, that)]
                    edges[(min(u, v), max(u, v))] = float(this_cost[this, that])

    if num_chunks == 1:
        # deviation: pyannote finds no pair, hence no node, and outputs nobody
        for s in range(num_slots):
            if np.any(data[0, :, s] > onset):
                add((0, s))

    nodes = list(index)
    edge_array = np.array(list(edges), dtype=np.int64).reshape(-1, 2)
    cost_array = np.array(list(edges.values()), dtype=np.float64)
    return nodes, edge_array, cost_array


def _stitchable_components(
    nodes: list[tuple[int, int]],
    edges: np.ndarray,
    costs: np.ndarray,
    threshold: float,
    factor: float = 0.5,
) -> list[list[tuple[int, int]]]:
    """Split the graph into components with at most one node per chunk.

    Each round removes the edges costlier than the threshold, takes out (in node
    order) every component that has at most one node per chunk, then multiplies
    the threshold by ``factor``, until no node is left.
    """
    num_nodes = len(nodes)
    chunk_of = np.array([c for c, _ in nodes], dtype=np.int64)
    alive = np.ones(num_nodes, dtype=bool)
    kept = np.ones(len(costs), dtype=bool)
    components: list[list[tuple[int, int]]] = []
    changed = True
    while alive.any():
        drop = kept & (costs > threshold)
        if drop.any():
            kept &= ~drop
            changed = True
        if changed:
            # components only change when edges go: skip the idle rounds
            changed = False
            found = _take_stitchable(nodes, chunk_of, alive, edges[kept], components)
            # edges of removed nodes go with them
            if found:
                kept &= alive[edges[:, 0]] & alive[edges[:, 1]]
            if alive.any() and not np.any(costs[kept] > 0):
                # deviation: what is left is joined by zero-cost edges only, which
                # never exceed the halving threshold, so no later round changes
                # anything and pyannote loops forever; split it into single nodes
                kept[:] = False
                changed = True
                continue
        threshold *= factor
    return components


def _take_stitchable(
    nodes: list[tuple[int, int]],
    chunk_of: np.ndarray,
    alive: np.ndarray,
    edges: np.ndarray,
    components: list[list[tuple[int, int]]],
) -> bool:
    """Append the stitchable components of the alive subgraph; mark them dead."""
    num_nodes = len(nodes)
    graph = coo_matrix(
        (np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(num_nodes, num_nodes)
    )
    _, label = connected_components(graph, directed=False)
    found = False
    members: dict[int, list[int]] = {}
    for node in np.flatnonzero(alive):  # increasing node order = networkx order
        members.setdefault(int(label[node]), []).append(int(node))
    for group in members.values():
        if len(np.unique(chunk_of[group])) == len(group):
            components.append([nodes[n] for n in group])
            alive[group] = False
            found = True
    return found


def _stitched_sum(
    data: np.ndarray,
    components: list[list[tuple[int, int]]],
    chunks: SlidingWindow,
    count: SlidingWindowFeature,
) -> np.ndarray:
    """Sum over chunks of each component's scores, on the count's frames.

    Equal to ``aggregate(stitched, hamming=False, missing=0, skip_average=True)``
    of pyannote's NaN-filled ``(chunks, frames, components)`` array: the same
    float32 additions in chunk order, without the zero (NaN) ones.
    """
    num_chunks, num_frames, _ = data.shape
    frames = count.sliding_window
    summed = np.zeros((len(count), len(components)), dtype=np.float32)
    members: list[list[tuple[int, int]]] = [[] for _ in range(num_chunks)]
    for k, component in enumerate(components):
        for c, s in component:
            members[c].append((s, k))
    for c in range(num_chunks):
        if not members[c]:
            continue
        # aggregate's placement: frame closest to the chunk start (+ half a frame)
        start = frames.closest_frame(chunks[c].start + 0.5 * frames.duration)
        slots, columns = map(list, zip(*members[c], strict=True))
        # one node per chunk and component: no repeated column in this update
        summed[start : start + num_frames, columns] += data[c][:, slots]
    return summed


def segment_speakers(
    chunks: ChunkScores,
    *,
    onset: float = 0.84,
    offset: float | None = 0.46,
    min_duration_on: float = 0.0,
    min_duration_off: float = 0.0,
    stitch_threshold: float = 0.39,
    warm_up: float = 0.05,
    uri: str | None = None,
) -> tuple[Annotation, SlidingWindowFeature]:
    """Speaker segmentation by stitching chunks together (pyannote 2.1.1).

    Parameters
    ----------
    chunks : ChunkScores
        Raw chunk scores of the file (:class:`skseg.inference.Inference`).
    onset, offset : float, default=0.84, 0.46
        Hysteresis thresholds (speaker count; a slot is a graph node when its
        score exceeds ``onset`` on the frames it shares with another chunk).
        ``offset=None`` means onset.
    min_duration_on : float, default=0.0
        Remove turns shorter than this, in seconds.
    min_duration_off : float, default=0.0
        Fill same-speaker gaps shorter than this, in seconds.
    stitch_threshold : float, default=0.39
        Initial maximum cost (mean absolute difference) of a stitch.
    warm_up : float, default=0.05
        Fraction of the chunk duration ignored at each side of a chunk.
    uri : str, optional
        URI of the output.

    Returns
    -------
    annotation : Annotation
        Turns labelled ``SPEAKER_00``, ``SPEAKER_01``, ... in pyannote's order.
    activations : SlidingWindowFeature
        ``(num_frames, num_labels)`` scores of the output speakers summed over
        chunks, the decision's input, labelled as the annotation.

    Notes
    -----
    Defaults are pyannote.audio 2.1.1's (tuned on DIHARD 3 development); the
    defaults' timestamps follow this package's (3.2+) frames, see the module
    docstring.
    """
    count = speaker_count(
        chunks, chunks.frames, onset=onset, offset=offset, warm_up=warm_up
    )
    trimmed = trim(chunks, warm_up)
    data = np.asarray(trimmed.data)
    nodes, edges, costs = _stitching_graph(trimmed, onset)
    components = _stitchable_components(nodes, edges, costs, stitch_threshold)

    # pyannote builds a (chunks, frames, components) array, NaN where a speaker is
    # absent from a chunk, and sums it over chunks: add each node's scores into its
    # component's column instead (float32, chunk order: the same sums), which
    # needs ~18x less memory
    summed = _stitched_sum(data, components, trimmed.sliding_window, count)
    _, rows, cols = _top_count(summed, count.data, pad=False)
    # drop the speakers that are never selected
    active, cols = np.unique(cols, return_inverse=True)
    discrete = np.zeros((len(summed), len(active)), dtype=np.float32)
    discrete[rows, cols] = 1.0
    discrete = SlidingWindowFeature(discrete, count.sliding_window)
    annotation, columns, names = _speaker_turns(
        discrete, min_duration_on, min_duration_off, uri
    )
    decision = SlidingWindowFeature(
        summed[:, active[columns]], count.sliding_window, labels=names
    )
    return annotation, decision


# ---------------------------------------------------------------------------
# speaker diarization (pyannote.audio 3.1's SpeakerDiarization)
# ---------------------------------------------------------------------------


def binarize_speakers(
    chunks: SlidingWindowFeature, onset: float, offset: float | None
) -> SlidingWindowFeature:
    """Per-chunk, per-speaker hysteresis, starting inactive, as 0./1. floats.

    pyannote's ``binarize(segmentations, onset, offset, initial_state=False)``.

    Parameters
    ----------
    chunks : SlidingWindowFeature
        ``(num_chunks, num_frames, num_speakers)`` chunk scores.
    onset, offset : float
        Thresholds (``offset=None``: onset).

    Returns
    -------
    binarized : SlidingWindowFeature
        Same shape and window, float64.
    """
    data = _binarize_chunks(np.asarray(chunks.data), onset, offset)
    return SlidingWindowFeature(data, chunks.sliding_window)


def embedding_weights(
    binarized: np.ndarray, *, exclude_overlap: bool, min_num_frames: int
) -> np.ndarray:
    """Return the frames each local speaker's embedding pools (pyannote's masks).

    With ``exclude_overlap`` (pyannote 3.1's default), a speaker's frames where
    another local speaker is active too are left out, unless that leaves
    ``min_num_frames`` frames or fewer: then all its frames are used.

    Parameters
    ----------
    binarized : ndarray, shape (num_chunks, num_frames, num_speakers)
        0/1 speaker activities (NaN counts as 0).
    exclude_overlap : bool
    min_num_frames : int

    Returns
    -------
    weights : ndarray of float32, same shape

    Examples
    --------
    >>> b = np.array([[[1, 0], [1, 1], [1, 1]]], dtype=float)
    >>> embedding_weights(b, exclude_overlap=True, min_num_frames=0)[0].T.tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]
    """
    masks = np.nan_to_num(np.asarray(binarized), nan=0.0).astype(np.float32)
    if not exclude_overlap:
        return masks
    clean = masks * (np.sum(binarized, axis=2, keepdims=True) < 2)
    enough = np.sum(clean, axis=1, keepdims=True) > min_num_frames
    return np.where(enough, clean, masks).astype(np.float32)


def cluster_speakers(
    segmentations: SlidingWindowFeature,
    binarized: SlidingWindowFeature,
    embeddings: np.ndarray | None,
    frames: SlidingWindow,
    *,
    threshold: float,
    min_cluster_size: int,
    method: str = "centroid",
    num_speakers: int | None = None,
    min_speakers: int | None = None,
    max_speakers: int | None = None,
    constrained: bool = False,
    min_duration_on: float = 0.0,
    min_duration_off: float = 0.0,
    uri: str | None = None,
) -> tuple[Annotation, np.ndarray, SlidingWindowFeature]:
    """Clustering and reconstruction of pyannote.audio 3.1's ``SpeakerDiarization``.

    What ``SpeakerDiarization.apply`` does once it has the segmentation and the
    embeddings: count speakers per frame, cluster the (chunk, local speaker)
    embeddings (:func:`skseg.clustering.agglomerative_clustering`), cap the count
    at ``max_speakers``, mark inactive speakers, :func:`reconstruct`, and turn
    the result into turns labelled ``SPEAKER_00``, ``SPEAKER_01``...

    Parameters
    ----------
    segmentations : SlidingWindowFeature
        ``(num_chunks, num_frames, num_local_speakers)`` chunk scores.
    binarized : SlidingWindowFeature
        The same, binarized (:func:`binarize_speakers`; the hard powerset
        speakers are their own binarization).
    embeddings : ndarray or None
        ``(num_chunks, num_local_speakers, dimension)``; None only when at most
        one speaker is allowed (no clustering).
    frames : SlidingWindow
        Frames of a chunk starting at 0 (the model's receptive field).
    threshold, min_cluster_size, method, constrained
        The clustering's (see :func:`~skseg.clustering.agglomerative_clustering`).
    num_speakers, min_speakers, max_speakers : int, optional
        Constraints on the number of speakers.
    min_duration_on, min_duration_off : float, default=0.0
        Turns shorter than ``min_duration_on`` are removed, same-speaker gaps
        shorter than ``min_duration_off`` filled (seconds).
    uri : str, optional

    Returns
    -------
    annotation : Annotation
    hard_clusters : ndarray of int, shape (num_chunks, num_local_speakers)
        ``-2`` for inactive local speakers (empty when nobody speaks).
    activations : SlidingWindowFeature
        ``(num_frames, num_labels)`` summed clustered scores, labelled as the
        output (the decision's input).

    Raises
    ------
    ValueError
        If ``min_speakers > max_speakers``.
    """
    min_speakers = num_speakers or min_speakers or 1
    max_speakers = num_speakers or max_speakers or np.inf
    if min_speakers > max_speakers:
        raise ValueError(
            f"min_speakers must be smaller than (or equal to) max_speakers (here: "
            f"min_speakers={min_speakers:g} and max_speakers={max_speakers:g})."
        )
    if min_speakers == max_speakers:
        num_speakers = min_speakers
    data = np.asarray(segmentations.data)
    num_chunks, _, local_num_speakers = data.shape
    count = speaker_count(binarized, frames, onset=0.5, offset=0.5, warm_up=0.0)
    if not len(count) or np.nanmax(count.data) == 0:
        empty = SlidingWindowFeature(
            np.zeros((len(count), 0), dtype=np.float32), count.sliding_window, labels=[]
        )
        return (
            Annotation(uri=uri),
            np.zeros((num_chunks, local_num_speakers), dtype=np.int8)[:0],
            empty,
        )
    active = np.sum(binarized.data, axis=1) > 0
    if max_speakers < 2 or embeddings is None:
        hard = np.zeros((num_chunks, local_num_speakers), dtype=np.int8)
    else:
        hard = agglomerative_clustering(
            embeddings,
            active,
            threshold=threshold,
            min_cluster_size=min_cluster_size,
            method=method,
            num_clusters=num_speakers,
            min_clusters=min_speakers,
            max_clusters=max_speakers,
            constrained=constrained,
        ).hard
    # segmentation errors may count more speakers than allowed
    count.data = np.minimum(count.data, max_speakers).astype(np.int8)
    hard = np.array(hard)
    hard[~active] = -2
    discrete, activations = reconstruct(segmentations, hard, count)
    annotation, columns, names = _speaker_turns(
        discrete, min_duration_on, min_duration_off, uri
    )
    decision = SlidingWindowFeature(
        activations.data[:, np.asarray(columns, dtype=np.int64)],
        activations.sliding_window,
        labels=names,
    )
    return annotation, hard, decision
