"""Clustering the speakers of every chunk into the speakers of the file.

pyannote.audio 3.1's ``AgglomerativeClustering`` (``pipelines/clustering.py`` of
3.1 to 3.4, unchanged between them), the clustering step of its
``SpeakerDiarization`` pipeline, as plain functions over arrays:

* the embeddings of the (chunk, local speaker) pairs that are active and valid
  (no NaN) are the "training" embeddings;
* they are L2-normalised and clustered by scipy's hierarchical clustering
  (``linkage``, centroid method by default, on the Euclidean distance between
  unit vectors), cut at ``threshold``;
* clusters smaller than ``min_cluster_size`` (lowered to 10 % of the number of
  embeddings on short files) are merged into the nearest large one (cosine
  distance between centroids); when the number of large clusters is outside
  ``[min_clusters, max_clusters]`` (or differs from ``num_clusters``), the
  dendrogram is cut at the iteration whose number of large clusters is the
  closest to the target, searched from the threshold outwards;
* every embedding, active or not, is then assigned to the closest centroid
  (cosine similarity; with ``constrained=True``, the local speakers of a chunk
  go to distinct clusters by a Hungarian assignment).

The arithmetic is pyannote's, operation for operation (float32 normalisation in
place, scipy's linkage and ``fcluster``, numpy's argmax over NaN rows), so the
same embeddings give the same clusters (``tests/test_differential.py``). Where
pyannote's result hinges on the order numpy's default argsort gives merges
equally far from the threshold (duplicate embeddings: exact ties, which that
sort breaks differently across numpy versions and CPUs), skseg tries the
earlier merge first, on every machine.
Differences, each where pyannote's behaviour is not a result: nothing is printed
when no cut reaches the target number of clusters (``num_clusters`` reports what
was found), and no embedding at all gives one cluster instead of a mean of an
empty array.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist

__all__ = [
    "LINKAGE_METHODS",
    "Clusters",
    "agglomerative_clustering",
    "assign_embeddings",
    "cluster_embeddings",
    "set_num_clusters",
]

#: scipy's linkage methods, as pyannote's ``method`` hyper-parameter
LINKAGE_METHODS = (
    "average",
    "centroid",
    "complete",
    "median",
    "single",
    "ward",
    "weighted",
)


class Clusters(NamedTuple):
    """The result of :func:`agglomerative_clustering`.

    Attributes
    ----------
    hard : ndarray of int, shape (num_chunks, num_speakers)
        ``hard[c, s] = k``: local speaker ``s`` of chunk ``c`` is file speaker
        ``k`` (every pair gets one, inactive ones included: the caller marks them).
    soft : ndarray, shape (num_chunks, num_speakers, num_clusters)
        ``2 - cosine distance`` to each centroid (NaN for NaN embeddings).
    centroids : ndarray, shape (num_clusters, dimension)
        Mean of the (unnormalised) training embeddings of each cluster.

    Examples
    --------
    >>> x = np.array([[[1, 0]], [[0, 1]]], dtype="float32")
    >>> result = agglomerative_clustering(x, np.ones((2, 1), bool), threshold=0.5,
    ...                                   min_cluster_size=1)
    >>> result.hard.tolist(), result.centroids.tolist()
    ([[0], [1]], [[1.0, 0.0], [0.0, 1.0]])
    """

    hard: np.ndarray
    soft: np.ndarray
    centroids: np.ndarray


def set_num_clusters(
    num_embeddings: int,
    num_clusters: int | None = None,
    min_clusters: int | None = None,
    max_clusters: int | None = None,
) -> tuple[int | None, int, int]:
    """Resolve the cluster-count constraints against the number of embeddings.

    ``num_clusters`` overrides both bounds; the bounds are clipped to
    ``[1, num_embeddings]``; equal bounds fix the number.

    Parameters
    ----------
    num_embeddings : int
    num_clusters, min_clusters, max_clusters : int, optional

    Returns
    -------
    num_clusters : int or None
    min_clusters, max_clusters : int

    Raises
    ------
    ValueError
        If ``min_clusters > max_clusters`` after clipping.

    Examples
    --------
    >>> set_num_clusters(10, max_clusters=3)
    (None, 1, 3)
    >>> set_num_clusters(2, num_clusters=4)
    (2, 2, 2)
    """
    min_clusters = num_clusters or min_clusters or 1
    min_clusters = max(1, min(num_embeddings, min_clusters))
    max_clusters = num_clusters or max_clusters or num_embeddings
    max_clusters = max(1, min(num_embeddings, max_clusters))
    if min_clusters > max_clusters:
        raise ValueError(
            f"min_clusters must be smaller than (or equal to) max_clusters (here: "
            f"min_clusters={min_clusters:g} and max_clusters={max_clusters:g})."
        )
    if min_clusters == max_clusters:
        num_clusters = min_clusters
    return num_clusters, min_clusters, max_clusters


def _large(clusters: np.ndarray, min_cluster_size: int):
    unique, counts = np.unique(clusters, return_counts=True)
    return unique, counts, unique[counts >= min_cluster_size]


def cluster_embeddings(
    embeddings: np.ndarray,
    *,
    threshold: float,
    min_cluster_size: int = 12,
    method: str = "centroid",
    min_clusters: int = 1,
    max_clusters: int | None = None,
    num_clusters: int | None = None,
) -> np.ndarray:
    """Hierarchical clustering of embeddings, small clusters merged into large ones.

    pyannote.audio's ``AgglomerativeClustering.cluster`` (cosine metric).

    Parameters
    ----------
    embeddings : ndarray, shape (num_embeddings, dimension)
        Modified in place (L2-normalised) for the centroid, median and ward
        methods, as pyannote does.
    threshold : float
        Dendrogram cut (Euclidean distance between unit vectors for the centroid,
        median and ward methods, cosine distance for the others).
    min_cluster_size : int, default=12
        Clusters smaller than this are merged into the closest large one.
    method : str, default="centroid"
        One of :data:`LINKAGE_METHODS`.
    min_clusters, max_clusters, num_clusters : int
        As returned by :func:`set_num_clusters`.

    Returns
    -------
    clusters : ndarray of int, shape (num_embeddings,)
        0-indexed cluster of each embedding.

    Examples
    --------
    >>> x = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], dtype="float32")
    >>> cluster_embeddings(x, threshold=0.5, min_cluster_size=1).tolist()
    [0, 0, 1, 1]
    """
    num_embeddings = len(embeddings)
    if max_clusters is None:
        max_clusters = num_embeddings
    # fewer embeddings than the size: 10 % of them (pyannote's heuristic)
    min_cluster_size = min(min_cluster_size, max(1, round(0.1 * num_embeddings)))
    if num_embeddings == 1:
        return np.zeros((1,), dtype=np.uint8)
    if method in ("centroid", "median", "ward"):
        # Euclidean-only methods: unit vectors make the Euclidean distance a
        # function of the cosine one
        with np.errstate(divide="ignore", invalid="ignore"):
            embeddings /= np.linalg.norm(embeddings, axis=-1, keepdims=True)
        dendrogram = linkage(embeddings, method=method, metric="euclidean")
    else:
        dendrogram = linkage(embeddings, method=method, metric="cosine")

    clusters = fcluster(dendrogram, threshold, criterion="distance") - 1
    unique, counts, large = _large(clusters, min_cluster_size)
    num_large = len(large)
    if num_large < min_clusters:
        num_clusters = min_clusters
    elif num_large > max_clusters:
        num_clusters = max_clusters

    if num_clusters is not None and num_large != num_clusters:
        # cut by merge index instead of distance, trying the merges closest to
        # the threshold first
        by_iteration = np.copy(dendrogram)
        by_iteration[:, 2] = np.arange(num_embeddings - 1)
        best_iteration, best_num_large = num_embeddings - 1, 1
        # equally distant merges (duplicate embeddings) in merge order: pyannote
        # uses numpy's default sort, whose order between equals depends on the
        # numpy version and the CPU; a stable sort is the same everywhere
        distance = np.abs(dendrogram[:, 2] - threshold)
        for iteration in np.argsort(distance, kind="stable"):
            if by_iteration[iteration, 3] < min_cluster_size:
                continue  # this merge cannot change the number of large clusters
            clusters = fcluster(by_iteration, iteration, criterion="distance") - 1
            unique, counts, large = _large(clusters, min_cluster_size)
            num_large = len(large)
            if abs(num_large - num_clusters) < abs(best_num_large - num_clusters):
                best_iteration, best_num_large = iteration, num_large
            if num_large == num_clusters:
                break
        if best_num_large != num_clusters:
            clusters = fcluster(by_iteration, best_iteration, criterion="distance") - 1
            unique, counts, large = _large(clusters, min_cluster_size)
            num_large = len(large)

    if num_large == 0:
        clusters[:] = 0
        return clusters
    small = unique[counts < min_cluster_size]
    if len(small) == 0:
        return clusters
    large_centroids = np.vstack(
        [np.mean(embeddings[clusters == k], axis=0) for k in large]
    )
    small_centroids = np.vstack(
        [np.mean(embeddings[clusters == k], axis=0) for k in small]
    )
    distance = cdist(large_centroids, small_centroids, metric="cosine")
    for small_k, large_k in enumerate(np.argmin(distance, axis=0)):
        clusters[clusters == small[small_k]] = large[large_k]
    _, clusters = np.unique(clusters, return_inverse=True)
    return clusters


def _constrained_argmax(soft: np.ndarray) -> np.ndarray:
    soft = np.nan_to_num(soft, nan=np.nanmin(soft))
    num_chunks, num_speakers, _ = soft.shape
    hard = -2 * np.ones((num_chunks, num_speakers), dtype=np.int8)
    for c, cost in enumerate(soft):
        speakers, clusters = linear_sum_assignment(cost, maximize=True)
        hard[c, speakers] = clusters
    return hard


def assign_embeddings(
    embeddings: np.ndarray,
    train_chunk: np.ndarray,
    train_speaker: np.ndarray,
    train_clusters: np.ndarray,
    *,
    constrained: bool = False,
) -> Clusters:
    """Assign every embedding to the closest centroid of the training clusters.

    Parameters
    ----------
    embeddings : ndarray, shape (num_chunks, num_speakers, dimension)
    train_chunk, train_speaker : ndarray of int, shape (num_embeddings,)
        Which embeddings were clustered.
    train_clusters : ndarray of int, shape (num_embeddings,)
        Their clusters.
    constrained : bool, default=False
        Give the speakers of one chunk distinct clusters (Hungarian assignment
        on the similarities) instead of each its closest.

    Returns
    -------
    clusters : Clusters

    Examples
    --------
    >>> x = np.array([[[1, 0], [0, 1]], [[0.9, 0.1], [0.8, 0.2]]])
    >>> chunk, speaker = np.array([0, 0]), np.array([0, 1])
    >>> assign_embeddings(x, chunk, speaker, np.array([0, 1])).hard.tolist()
    [[0, 1], [0, 0]]
    >>> assign_embeddings(x, chunk, speaker, np.array([0, 1]),
    ...                   constrained=True).hard.tolist()
    [[0, 1], [0, 1]]
    """
    num_clusters = int(np.max(train_clusters)) + 1
    num_chunks, num_speakers, dimension = embeddings.shape
    train = embeddings[train_chunk, train_speaker]
    centroids = np.vstack(
        [np.mean(train[train_clusters == k], axis=0) for k in range(num_clusters)]
    )
    distance = cdist(
        embeddings.reshape(num_chunks * num_speakers, dimension),
        centroids,
        metric="cosine",
    ).reshape(num_chunks, num_speakers, num_clusters)
    soft = 2 - distance
    # a NaN row's argmax is its first column (pyannote's behaviour, kept)
    hard = _constrained_argmax(soft) if constrained else np.argmax(soft, axis=2)
    return Clusters(hard, soft, centroids)


def agglomerative_clustering(
    embeddings: np.ndarray,
    active: np.ndarray,
    *,
    threshold: float,
    min_cluster_size: int = 12,
    method: str = "centroid",
    num_clusters: int | None = None,
    min_clusters: int | None = None,
    max_clusters: int | None = None,
    constrained: bool = False,
) -> Clusters:
    """Cluster the local speakers of every chunk into file speakers.

    pyannote.audio 3.1's ``AgglomerativeClustering.__call__`` (cosine metric,
    every embedding used: no subsampling).

    Parameters
    ----------
    embeddings : ndarray, shape (num_chunks, num_speakers, dimension)
        One embedding per (chunk, local speaker); NaN where none could be made.
    active : ndarray of bool, shape (num_chunks, num_speakers)
        Whether the local speaker is active in the chunk.
    threshold : float
        Dendrogram cut (see :func:`cluster_embeddings`).
    min_cluster_size : int, default=12
    method : str, default="centroid"
    num_clusters : int, optional
        The number of clusters, when known (overrides the bounds).
    min_clusters, max_clusters : int, optional
        Bounds on the number of clusters.
    constrained : bool, default=False
        See :func:`assign_embeddings`.

    Returns
    -------
    clusters : Clusters

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> voices = np.eye(4, dtype="float32")[:2]
    >>> embeddings = voices[[[0, 1], [1, 0], [0, 1]]] + 0.01 * rng.random((3, 2, 4))
    >>> active = np.ones((3, 2), dtype=bool)
    >>> result = agglomerative_clustering(embeddings.astype("float32"), active,
    ...                                   threshold=0.5, min_cluster_size=1)
    >>> result.hard.tolist()
    [[0, 1], [1, 0], [0, 1]]
    """
    valid = ~np.any(np.isnan(embeddings), axis=2)
    train_chunk, train_speaker = np.where(active & valid)
    train = embeddings[train_chunk, train_speaker]
    num_clusters, min_clusters, max_clusters = set_num_clusters(
        len(train), num_clusters, min_clusters, max_clusters
    )
    num_chunks, num_speakers, dimension = embeddings.shape
    if max_clusters < 2:
        hard = np.zeros((num_chunks, num_speakers), dtype=np.int8)
        soft = np.ones((num_chunks, num_speakers, 1))
        if len(train):
            centroids = np.mean(train, axis=0, keepdims=True)
        else:
            centroids = np.zeros((1, dimension), dtype=embeddings.dtype)
        return Clusters(hard, soft, centroids)
    train_clusters = cluster_embeddings(
        train,
        threshold=threshold,
        min_cluster_size=min_cluster_size,
        method=method,
        min_clusters=min_clusters,
        max_clusters=max_clusters,
        num_clusters=num_clusters,
    )
    return assign_embeddings(
        embeddings, train_chunk, train_speaker, train_clusters, constrained=constrained
    )
