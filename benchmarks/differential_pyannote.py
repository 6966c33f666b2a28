"""Reference outputs of pyannote.audio's own algorithms for the differential tests.

Run in the pyannote.audio 3.4.0 peer environment (``benchmarks/setup_peer34.sh``),
from the repository root::

    PEER=${SKSEG_PEER34_DIR:-$HOME/.cache/skseg/peer34}
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 PYANNOTE_METRICS_ENABLED=false \\
        $PEER/venv/bin/python benchmarks/differential_pyannote.py [--cases 400]

For every case of ``tests/differential_cases.py`` (random and adversarial chunk
scores, no network involved) it runs

* resegmentation: pyannote.audio 3.4.0's ``Resegmentation.apply`` itself, with the
  model's inference replaced by the case's chunk scores (its receptive-field
  frames, chunk step and file duration are the case's);
* speaker diarization: pyannote.audio 3.4.0's ``SpeakerDiarization.apply`` itself,
  the segmentation replaced by the case's chunk scores and the embedding network
  by the case's embeddings (``tests/differential_cases.py``'s
  ``diarization_case``), its clustering an ``AgglomerativeClustering``; it stores
  the hard clusters (what ``reconstruct`` receives), the turns and a digest of the
  pooling masks ``get_embeddings`` made (``embedding_exclude_overlap``);
* speaker segmentation: pyannote.audio 2.1.1's ``SpeakerSegmentation`` algorithm
  (2.1.1 does not install next to a modern torch; its stitching functions are
  copied below verbatim from tag 2.1.1, its ``speaker_count`` / ``to_diarization``
  differ from 3.4.0's only as marked) on 3.4.0's ``Inference.trim`` /
  ``aggregate``, ``permutate`` and ``Binarize``: the frames skseg computes;

and writes the turns to ``tests/data/differential/*.json`` with the digest of
each case's inputs and the platform (numpy version, SIMD extensions) they were
made on. ``tests/test_differential.py`` feeds the same inputs to skseg.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import sys
import warnings
from pathlib import Path

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
warnings.filterwarnings("ignore")

import networkx as nx  # noqa: E402
import numpy  # noqa: E402
import numpy as np  # noqa: E402
import pyannote.audio  # noqa: E402
from pyannote.audio.core.inference import Inference  # noqa: E402
from pyannote.audio.core.task import Problem, Resolution, Specifications  # noqa: E402
from pyannote.audio.models.segmentation import PyanNet  # noqa: E402
from pyannote.audio.pipelines import Resegmentation  # noqa: E402
from pyannote.audio.pipelines.utils import SpeakerDiarizationMixin  # noqa: E402
from pyannote.audio.utils.permutation import mae_cost_func, permutate  # noqa: E402
from pyannote.audio.utils.signal import binarize  # noqa: E402
from pyannote.core import (  # noqa: E402
    Annotation,
    Segment,
    SlidingWindow,
    SlidingWindowFeature,  # noqa: E402
)

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests import differential_cases as cases  # noqa: E402

OUT = ROOT / "tests" / "data" / "differential"
FRAMES = SlidingWindow(
    start=cases.FRAME_START, duration=cases.FRAME_DURATION, step=cases.FRAME_STEP
)


def chunk_window(step: float) -> SlidingWindow:
    return SlidingWindow(start=0.0, duration=cases.CHUNK_DURATION, step=step)


def annotation(turns, uri="case") -> Annotation:
    out = Annotation(uri=uri)
    for k, (start, end, label) in enumerate(turns):
        out[Segment(start, end), k] = label
    return out


def as_turns(result: Annotation, names=None) -> list:
    """Sorted ``[start, end, label]``; integer labels mapped through ``names``."""
    rows = []
    for segment, _, label in result.itertracks(yield_label=True):
        if names is not None:
            label = names[label] if label < len(names) else f"EXTRA_{label}"
        rows.append([segment.start, segment.end, str(label)])
    return sorted(rows)


# ---------------------------------------------------------------------------
# resegmentation: pyannote.audio 3.4.0's pipeline, inference replaced
# ---------------------------------------------------------------------------


class _Scores:
    """Stands for ``Inference(model)``: returns the case's chunk scores."""

    def __init__(self, scores: SlidingWindowFeature, step: float):
        self.scores = scores
        self.step = step
        self.model = type("M", (), {"receptive_field": FRAMES})()

    def __call__(self, file, hook=None):
        return SlidingWindowFeature(self.scores.data.copy(), self.scores.sliding_window)


class _Audio:
    def __init__(self, duration: float):
        self.duration = duration

    def get_duration(self, file) -> float:
        return self.duration


def _model() -> PyanNet:
    model = PyanNet(sincnet={"stride": 10})
    model.specifications = Specifications(
        problem=Problem.MULTI_LABEL_CLASSIFICATION,
        resolution=Resolution.FRAME,
        duration=cases.CHUNK_DURATION,
        classes=["speaker#1", "speaker#2", "speaker#3"],
        permutation_invariant=True,
    )
    model.build()
    return model


def resegmentation(case: dict, pipeline: Resegmentation) -> list:
    scores = SlidingWindowFeature(case["scores"], chunk_window(case["step"]))
    pipeline._segmentation = _Scores(scores, case["step"])
    pipeline._audio = _Audio(case["num_samples"] / cases.SAMPLE_RATE)
    pipeline.instantiate(case["params"])
    seen = {}

    def hook(name, artefact, file=None, **kwargs):
        if name == "@resegmentation/original":
            seen["labels"] = artefact.labels

    result = pipeline.apply(
        {"uri": "case"}, diarization=annotation(case["baseline"]), hook=hook
    )
    # pyannote's labels are column indices into the discretized baseline's labels
    # (sorted, only those with a turn before the end of the file)
    return as_turns(result, names=seen["labels"])


# ---------------------------------------------------------------------------
# speaker segmentation: pyannote.audio 2.1.1's algorithm
# ---------------------------------------------------------------------------
# get_stitching_graph and stitchable_components: verbatim from pyannote.audio 2.1.1
# pyannote/audio/pipelines/segmentation.py (MIT licence, (c) CNRS), staticmethods
# of SpeakerSegmentation there.


def get_stitching_graph(segmentations: SlidingWindowFeature, onset: float = 0.5):
    chunks = segmentations.sliding_window
    num_chunks, num_frames, _ = segmentations.data.shape
    max_lookahead = math.floor(chunks.duration / chunks.step - 1)
    lookahead = 2 * (max_lookahead,)

    stitching_graph = nx.Graph()

    for C, (_chunk, segmentation) in enumerate(segmentations):
        for c in range(max(0, C - lookahead[0]), min(num_chunks, C + lookahead[1] + 1)):
            if c == C:
                continue

            # extract common temporal support
            shift = round((C - c) * num_frames * chunks.step / chunks.duration)

            if shift < 0:
                shift = -shift
                this_segmentations = segmentation[shift:]
                that_segmentations = segmentations[c, : num_frames - shift]
            else:
                this_segmentations = segmentation[: num_frames - shift]
                that_segmentations = segmentations[c, shift:]

            # find the optimal one-to-one mapping
            _, (permutation,), (cost,) = permutate(
                this_segmentations[np.newaxis],
                that_segmentations,
                cost_func=mae_cost_func,
                return_cost=True,
            )

            for this, that in enumerate(permutation):
                this_is_active = np.any(this_segmentations[:, this] > onset)
                that_is_active = np.any(that_segmentations[:, that] > onset)

                if this_is_active:
                    stitching_graph.add_node((C, this))

                if that_is_active:
                    stitching_graph.add_node((c, that))

                if this_is_active and that_is_active:
                    stitching_graph.add_edge(
                        (C, this), (c, that), cost=cost[this, that]
                    )

    return stitching_graph


def stitchable_components(
    stitching_graph, stitch_threshold: float, factor: float = 0.5
):
    f = stitching_graph.copy()
    rounds = 0  # not in 2.1.1: the guard against its endless loop
    while f:
        rounds += 1
        if rounds > MAX_ROUNDS:
            raise EndlessLoop
        f.remove_edges_from(
            [
                (n1, n2)
                for n1, n2, cost in f.edges(data="cost")
                if cost > stitch_threshold
            ]
        )
        for component in list(nx.connected_components(f)):
            if len(set(c for c, _ in component)) == len(component):
                yield component
                f.remove_nodes_from(component)
        stitch_threshold *= factor


# After this many halvings the threshold is below every nonzero float32 cost: only
# zero-cost edges are left, which 2.1.1 never removes (it loops forever).
MAX_ROUNDS = 1200


class EndlessLoop(Exception):
    pass


def to_diarization_21(segmentations, count):
    """2.1.1's SpeakerDiarizationMixin.to_diarization: count clipped, not padded."""
    activations = Inference.aggregate(
        segmentations,
        count.sliding_window,
        hamming=False,
        missing=0.0,
        skip_average=True,
    )
    _, num_speakers = activations.data.shape
    count.data = np.minimum(count.data, num_speakers)  # 3.x pads instead
    extent = activations.extent & count.extent
    activations = activations.crop(extent, return_data=False)
    count = count.crop(extent, return_data=False)
    sorted_speakers = np.argsort(-activations, axis=-1)
    binary = np.zeros_like(activations.data)
    for t, ((_, c), speakers) in enumerate(zip(count, sorted_speakers, strict=False)):
        for i in range(c.item()):
            binary[t, speakers[i]] = 1.0
    return SlidingWindowFeature(binary, activations.sliding_window)


def segmentation(case: dict) -> list | None:
    """2.1.1's SpeakerSegmentation.apply (stitching); None if it loops forever."""
    p = case["params"]
    warm_up = (p["warm_up"], p["warm_up"])
    segmentations = SlidingWindowFeature(case["scores"], chunk_window(case["step"]))
    # 2.1.1's speaker_count binarizes itself; 3.4.0's takes binarized scores
    binarized = binarize(
        segmentations, onset=p["onset"], offset=p["offset"], initial_state=False
    )
    count = SpeakerDiarizationMixin.speaker_count(binarized, FRAMES, warm_up=warm_up)
    segmentations = Inference.trim(segmentations, warm_up=warm_up)
    graph = get_stitching_graph(segmentations, onset=p["onset"])
    try:
        components = list(
            stitchable_components(graph, stitch_threshold=p["stitch_threshold"])
        )
    except EndlessLoop:
        return None
    num_chunks, num_frames, _ = segmentations.data.shape
    stitched = np.nan * np.zeros((num_chunks, num_frames, len(components)))
    for k, component in enumerate(components):
        for c, s in component:
            stitched[c, :, k] = segmentations.data[c, :, s]
    stitched = SlidingWindowFeature(stitched, segmentations.sliding_window)
    discrete = to_diarization_21(stitched, count)
    # remove inactive speakers
    discrete.data = discrete.data[:, np.nonzero(np.sum(discrete.data, axis=0))[0]]
    result = SpeakerDiarizationMixin.to_annotation(
        discrete,
        min_duration_on=p["min_duration_on"],
        min_duration_off=p["min_duration_off"],
    )
    classes = (f"SPEAKER_{k:02d}" for k in range(len(result.labels())))
    return as_turns(
        result.rename_labels(dict(zip(result.labels(), classes, strict=False)))
    )


# ---------------------------------------------------------------------------
# speaker diarization: pyannote.audio 3.4.0's SpeakerDiarization.apply, with the
# segmentation and the embedding networks replaced by the case's arrays
# ---------------------------------------------------------------------------


class _Segmentations(_Scores):
    """``Inference(model)`` of a multi-label network: the case's chunk scores."""

    def __init__(self, scores: SlidingWindowFeature, step: float):
        super().__init__(scores, step)
        specifications = type("S", (), {"powerset": False, "duration": 5.0})()
        self.model = type(
            "M", (), {"receptive_field": FRAMES, "specifications": specifications}
        )()


class _Embeddings:
    """The embedding network: hands out the case's embeddings in (chunk, slot)
    order and records the masks pyannote pools them with."""

    sample_rate = cases.SAMPLE_RATE
    metric = "cosine"

    def __init__(self, embeddings: np.ndarray, min_num_samples: int):
        self.rows = embeddings.reshape(-1, embeddings.shape[-1])
        self.min_num_samples = min_num_samples
        self.dimension = embeddings.shape[-1]
        self.masks = []

    def __call__(self, waveforms, masks=None):
        start = sum(len(m) for m in self.masks)
        self.masks.append(masks.numpy().astype(np.float32))
        return self.rows[start : start + len(masks)]


class _SilentAudio:
    def crop(self, file, segment, duration=None, mode="pad"):
        import torch

        return torch.zeros(1, 16), cases.SAMPLE_RATE


def diarization_pipeline():
    from pyannote.audio.pipelines import SpeakerDiarization

    # OracleClustering: no embedding network is loaded; both are replaced below
    return SpeakerDiarization(segmentation=_model(), clustering="OracleClustering")


def masks_digest(masks: np.ndarray) -> str:
    """Digest of the ``(chunks * slots, frames)`` float32 pooling masks."""
    import hashlib

    return hashlib.sha256(
        np.ascontiguousarray(masks, dtype="<f4").tobytes()
    ).hexdigest()[:16]


def diarization(case: dict, pipeline) -> dict:
    from pyannote.audio.pipelines.clustering import AgglomerativeClustering

    p = case["params"]
    scores = SlidingWindowFeature(case["scores"], chunk_window(case["step"]))
    pipeline._segmentation = _Segmentations(scores, case["step"])
    embedding = _Embeddings(case["embeddings"], p["min_num_samples"])
    pipeline._embedding = embedding
    pipeline._audio = _SilentAudio()
    pipeline.klustering = "AgglomerativeClustering"
    pipeline.clustering = AgglomerativeClustering(
        metric="cosine", constrained_assignment=p["constrained"]
    )
    pipeline.embedding_exclude_overlap = p["exclude_overlap"]
    pipeline.embedding_batch_size = 4
    pipeline.instantiate(
        {
            "segmentation": {
                "threshold": p["onset"],
                "min_duration_off": p["min_duration_off"],
            },
            "clustering": {
                "method": p["method"],
                "threshold": p["threshold"],
                "min_cluster_size": p["min_cluster_size"],
            },
        }
    )
    seen = {}
    reconstruct = type(pipeline).reconstruct

    def spy(self, segmentations, hard_clusters, count):
        seen["hard"] = np.asarray(hard_clusters).tolist()
        return reconstruct(self, segmentations, hard_clusters, count)

    pipeline.reconstruct = spy.__get__(pipeline)
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # "Found only N clusters"
        result = pipeline.apply(
            {"uri": "case"},
            num_speakers=p["num_speakers"],
            min_speakers=p["min_speakers"],
            max_speakers=p["max_speakers"],
        )
    masks = np.concatenate(embedding.masks) if embedding.masks else None
    return dict(
        turns=as_turns(result),
        hard=seen.get("hard"),
        masks=None if masks is None else masks_digest(masks),
    )


# ---------------------------------------------------------------------------


def platform_info() -> dict:
    from numpy.core._multiarray_umath import __cpu_features__

    return dict(
        pyannote_audio=pyannote.audio.__version__,
        numpy=np.__version__,
        machine=platform.machine(),
        avx512=bool(__cpu_features__.get("AVX512_SKX")),
        avx2=bool(__cpu_features__.get("AVX2")),
    )


class _StableNumpy:
    """numpy, but ``argsort`` breaks ties by index (a stable sort)."""

    def __getattr__(self, name):
        return getattr(numpy, name)

    @staticmethod
    def argsort(a, axis=-1, kind=None, order=None):
        return numpy.argsort(a, axis=axis, kind="stable", order=order)


def with_stable_argsort(run, *args):
    """``run(*args)`` with pyannote's ``to_diarization`` ranking ties by index
    (and its clustering's dendrogram search trying equally distant merges in
    merge order)."""
    from pyannote.audio.pipelines import clustering
    from pyannote.audio.pipelines.utils import diarization as module

    global np
    saved, saved_clustering, saved_here = module.np, clustering.np, np
    module.np = clustering.np = np = _StableNumpy()
    try:
        return run(*args)
    finally:
        module.np, clustering.np, np = saved, saved_clustering, saved_here


def reference_rows(run, make_case, count: int, digest=cases.digest) -> list:
    rows = []
    for seed in range(count):
        case = make_case(seed)
        out = run(case)
        extra = out if isinstance(out, dict) else {"turns": out}
        row = dict(seed=seed, digest=digest(case), **extra)
        # where pyannote's output depends on the order numpy's default (unstable)
        # argsort gives equal activations, also store what a stable sort gives
        stable = with_stable_argsort(run, case)
        if isinstance(stable, dict) and stable["hard"] != row["hard"]:
            row["hard_stable"] = stable["hard"]
        stable = stable["turns"] if isinstance(stable, dict) else stable
        if stable != row["turns"]:
            row["turns_stable"] = stable
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument(
        "--only", choices=["resegmentation", "segmentation", "diarization"]
    )
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    info = platform_info()
    if args.only in (None, "diarization"):
        pipeline = diarization_pipeline()
        rows = reference_rows(
            lambda case: diarization(case, pipeline),
            cases.diarization_case,
            args.cases,
            digest=cases.diarization_digest,
        )
        write(OUT / "diarization_pyannote340.json.gz", info, rows)
    if args.only == "diarization":
        return
    if args.only != "segmentation":
        pipeline = Resegmentation(segmentation=_model())
        rows = reference_rows(
            lambda case: resegmentation(case, pipeline), cases.case, args.cases
        )
        write(OUT / "resegmentation_pyannote340.json.gz", info, rows)
    if args.only != "resegmentation":
        rows = reference_rows(
            segmentation, lambda seed: cases.case(seed, baseline=False), args.cases
        )
        write(OUT / "segmentation_pyannote211.json.gz", info, rows)


def write(path: Path, info: dict, rows: list) -> None:
    """One JSON object per line (platform first), gzipped without a timestamp."""
    lines = [json.dumps({"platform": info})]
    lines += [json.dumps(row, separators=(",", ":")) for row in rows]
    with open(path, "wb") as f:
        f.write(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    dependent = sum("turns_stable" in row for row in rows)
    print(
        f"{path}: {len(rows)} cases ({dependent} depend on argsort's tie order), "
        f"{path.stat().st_size} bytes"
    )


if __name__ == "__main__":
    main()
