"""skseg vs pyannote.audio 4.0.7: speed and parity on the same audio, in one run.

Each tool (and each skseg inference variant) runs in its own long-lived worker
process: skseg's in this environment, pyannote.audio's in the peer environment
built by ``benchmarks/setup_peer.sh`` (never a dependency of skseg). The parent
alternates repetitions between the workers (ABAB..., so slow phases of a noisy
machine hit every tool alike) and prints, per worker: wall time per repetition
(median, min, max), CPU time, real-time factor, peak RSS, the speed-up
pyannote / skseg, and the max abs difference to pyannote's raw chunk scores and
overlap-added speech, overlap and per-speaker scores, all from the timed runs.
Then, per variant, the speech detection error rate on pyannote's sample with the
VAD pipeline defaults, next to pyannote's own (Binarize and DetectionErrorRate
of pyannote.audio 4.0.7).

What is timed, for both tools: raw chunk scores (5 s chunks, batch 32) plus the
Hamming overlap-add of the per-chunk speech score (max over speakers), i.e. what
the VAD pipeline binarizes. pyannote gets the waveform in memory (as in
shared/peers/REPORT.md); skseg reads the WAV file itself (decoding included).
Audio: pyannote's 30 s sample tiled to ``--duration`` seconds, written once.

``--segmentation pyannote/segmentation-3.0`` runs the powerset model instead (10 s
chunks, step 1 s): the raw chunk scores are its log-probabilities, the timed
speech score is pyannote's hard rule (the argmax set non-empty, as
``Powerset.to_multilabel`` then the max over speakers) overlap-added, and the
DetER uses the VAD pipeline's rule for this model (0.5/0.5, no minimum
durations). The step variants are the 2021 model's (0.5 s default step).
Each worker sets torch's thread count (``--threads``, default 2) and runs one
untimed warm-up on the 30 s sample.

``--floor`` adds a second pyannote worker whose oneDNN may only use AVX2 kernels
(``ONEDNN_MAX_CPU_ISA=AVX2``): on a CPU with AVX-512 its distance to the first
pyannote worker is how far pyannote's own scores move between two x86 CPUs, the
floor below which a parity figure means "the same kernels", not "the same model".
``--peer-malloc`` adds pyannote run with skseg's glibc malloc settings
(:mod:`skseg.allocator`, here through ``MALLOC_*`` environment variables): how
much of the speed-up a pyannote user could get from the environment alone.

usage:
  bash benchmarks/setup_peer.sh                 # once: the peer environment
  python benchmarks/speed.py [--repeat 3] [--duration 600] [--threads 2]
                             [--variants exact,fast] [--floor] [--peer-malloc]
                             [--peer-python PATH] [--json PATH]
                             [--segmentation pyannote/segmentation-3.0]

``--variants`` takes any of: exact, balanced, fast (the three modes of
:class:`skseg.Inference`), exact-nomalloc (the exact mode with glibc's default
malloc settings), and the single levers of the fast mode for the
trade-off table: step1 (exact network, step 1 s), step2.5, shared (shared first
convolution only), int8 (int8 dynamic LSTM/linear only), fast-step0.5
(fast network at the exact step), fast-step2.5.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
VAD_DEFAULTS = (0.767, 0.377, 0.136, 0.067)  # onset, offset, min on, min off
# pyannote's VoiceActivityDetection on a powerset model: 0.5/0.5 on hard scores,
# default_parameters() of pyannote/segmentation-3.0: no minimum durations
VAD_DEFAULTS_POWERSET = (0.5, 0.5, 0.0, 0.0)

# name -> (Inference mode, step in seconds or None, shared_conv, int8) overrides
VARIANTS: dict[str, tuple[str, float | None, bool | None, bool | None]] = {
    "exact": ("exact", None, None, None),
    # the exact mode with glibc's default malloc settings (SKSEG_MALLOC_TUNING=0)
    "exact-nomalloc": ("exact", None, None, None),
    "balanced": ("balanced", None, None, None),
    "fast": ("fast", None, None, None),
    "step1": ("exact", 1.0, None, None),
    "step2.5": ("exact", 2.5, None, None),
    "shared": ("exact", None, True, None),
    "int8": ("exact", None, None, True),
    "fast-step0.5": ("fast", 0.5, None, None),
    "fast-step2.5": ("fast", 2.5, None, None),
}

# --------------------------------------------------------------------------------
# workers: read one command per stdin line, answer one JSON line on stdout


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def skseg_worker(args: argparse.Namespace) -> None:
    """Serve timed runs of one skseg variant (runs in skseg's environment)."""
    import torch

    from skseg import Binarize, Inference, aggregate, fetch_sample
    from skseg.heads import PowersetHead
    from skseg.inference import _quantized
    from skseg.metrics import DetectionErrorRateScorer
    from skseg.model import load_model

    torch.set_num_threads(args.threads)
    if args.variant.endswith("-nomalloc"):
        os.environ["SKSEG_MALLOC_TUNING"] = "0"
    mode, step, shared, int8 = VARIANTS[args.variant]
    model = load_model(args.segmentation)
    inference = Inference(model, step=step, mode=mode)
    # the head's default rule: pyannote's hard decision on a powerset network
    reduction = model.head.reduction("speech")
    powerset = isinstance(model.head, PowersetHead)
    defaults = VAD_DEFAULTS_POWERSET if powerset else VAD_DEFAULTS
    # the variants outside the three modes swap the forward methods it runs
    runner = _quantized(model) if int8 else model
    if int8:
        inference._forward_chunks = runner.forward_chunks
    if shared is not None:
        inference._forward_overlapping = runner.forward_overlapping if shared else None
    sample = fetch_sample()

    def speech(file):
        return aggregate(inference(file), reduction=reduction)

    class Predictor:
        def predict(self, X):
            binarize = Binarize(*defaults)
            return [binarize(speech(f)).rename_labels({0: "SPEECH"}) for f in X]

    deter = -DetectionErrorRateScorer(target="speech")(Predictor(), [sample])
    print(json.dumps({"ready": True, "deter": deter}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        torch.set_num_threads(args.threads)
        t0, c0 = time.perf_counter(), time.process_time()
        chunks = inference(cmd["audio"])
        agg = aggregate(chunks, reduction=reduction)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if cmd.get("save"):
            np.save(cmd["save"] + "_chunks.npy", chunks.data)
            np.save(cmd["save"] + "_speech.npy", agg.data)
        answer = {"wall": wall, "cpu": cpu, "rss_mb": _peak_rss_mb()}
        print(json.dumps(answer), flush=True)


PEER_WORKER = textwrap.dedent(
    """
    import json, os, resource, sys, time, warnings
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "false")
    warnings.filterwarnings("ignore")
    import numpy as np, soundfile as sf, torch
    from pyannote.audio import Inference, Model
    from pyannote.audio.utils.signal import Binarize
    from pyannote.core import Segment, Timeline
    from pyannote.database.util import load_rttm
    from pyannote.metrics.detection import DetectionErrorRate

    checkpoint, sample_wav, sample_rttm, threads = sys.argv[1:5]
    torch.set_num_threads(int(threads))
    model = Model.from_pretrained(checkpoint)
    powerset = model.specifications.powerset
    raw = []

    def hook(scores):  # the VAD pipeline's pre-aggregation hook, keeping raw chunks
        raw.append(scores)
        if powerset:
            # Powerset.to_multilabel then the max over speakers: 1 unless the
            # empty set wins (kept as log-probabilities for the parity columns)
            return (np.argmax(scores, axis=-1) != 0)[..., None].astype("float32")
        return np.max(scores, axis=-1, keepdims=True)

    if powerset:
        inference = Inference(model, batch_size=32, pre_aggregation_hook=hook,
                              skip_conversion=True)
    else:
        inference = Inference(model, step=0.5, batch_size=32,
                              pre_aggregation_hook=hook)

    def as_file(wav, uri):
        return {"waveform": torch.from_numpy(wav)[None], "sample_rate": 16000,
                "uri": uri}

    wav, _ = sf.read(sample_wav, dtype="float32")
    speech = inference(as_file(wav, "sample"))
    if powerset:
        binarize = Binarize(onset=0.5, offset=0.5, min_duration_on=0.0,
                            min_duration_off=0.0)
    else:
        binarize = Binarize(onset=0.767, offset=0.377, min_duration_on=0.136,
                            min_duration_off=0.067)
    reference = load_rttm(sample_rttm)["sample"].get_timeline().support()
    metric = DetectionErrorRate(collar=0.0, skip_overlap=False)
    deter = metric(reference.to_annotation(generator="string", modality="speech"),
                   binarize(speech), uem=Timeline([Segment(0, len(wav) / 16000)]))
    print(json.dumps({"ready": True, "deter": abs(deter)}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        wav, _ = sf.read(cmd["audio"], dtype="float32")
        file = as_file(wav, "bench")
        raw.clear()
        torch.set_num_threads(int(threads))
        t0, c0 = time.perf_counter(), time.process_time()
        speech = inference(file)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if cmd.get("save"):
            np.save(cmd["save"] + "_chunks.npy", raw[0])
            np.save(cmd["save"] + "_speech.npy", speech.data)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"wall": wall, "cpu": cpu, "rss_mb": rss}), flush=True)
    """
)

# --------------------------------------------------------------------------------
# parent


class Worker:
    def __init__(self, name: str, argv: list[str], env: dict | None = None):
        self.name = name
        env = dict(os.environ, PYANNOTE_METRICS_ENABLED="false", **(env or {}))
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.runs: list[dict] = []
        self.info = self._read()

    def _read(self) -> dict:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"worker {self.name} died (see its stderr above)")
            if line.startswith("{"):
                return json.loads(line)

    def run(self, audio: str, save: str | None = None) -> dict:
        self.proc.stdin.write(json.dumps({"audio": audio, "save": save}) + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        self.runs.append(answer)
        return answer

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def make_audio(directory: Path, duration: float) -> tuple[str, dict]:
    import soundfile as sf

    from skseg import fetch_sample

    sample = fetch_sample()
    wav, sr = sf.read(sample["audio"], dtype="float32")
    n = round(duration * sr)
    tiled = np.tile(wav, -(-n // len(wav)))[:n]
    path = directory / f"sample_x{duration:g}s.wav"
    sf.write(path, tiled, sr, subtype="FLOAT")  # float: no requantisation
    return str(path), sample


def _aggregated(
    chunks: np.ndarray, duration: float, segmentation: str = "pyannote/segmentation"
) -> dict[str, np.ndarray]:
    """Overlap-added overlap and per-class scores of raw default-step chunks.

    Both tools' raw chunks go through the same (pyannote-identical) aggregation,
    so the differences are the networks'. A powerset model's overlap score is
    pyannote's hard one, its classes its log-probabilities.
    """
    from pyannote.core import SlidingWindow

    from skseg import ChunkScores, aggregate
    from skseg.model import load_model

    model = load_model(segmentation)
    overlap = model.head.reduction("overlap")  # hard on a powerset network
    scores = ChunkScores(
        chunks,
        SlidingWindow(start=0.0, duration=model.duration, step=model.duration / 10),
        model.receptive_field,
        round(duration * 16000),
        16000,
    )
    return {
        "overlap": aggregate(scores, reduction=overlap).data,
        "classes": aggregate(scores).data,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", default="exact,fast")
    default_peer = Path(
        os.environ.get("SKSEG_PEER_DIR", Path.home() / ".cache/skseg/peer")
    )
    parser.add_argument("--peer-python", default=str(default_peer / "venv/bin/python"))
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also run pyannote with oneDNN limited to AVX2 kernels: how far "
        "pyannote's own scores move between CPUs (the parity noise floor)",
    )
    parser.add_argument(
        "--peer-malloc",
        action="store_true",
        help="also run pyannote with skseg's glibc malloc settings "
        "(skseg.allocator), set through the environment",
    )
    parser.add_argument(
        "--segmentation",
        default="pyannote/segmentation",
        help="model identifier: pyannote/segmentation or pyannote/segmentation-3.0",
    )
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "skseg":
        skseg_worker(args)
        return
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
    if not Path(args.peer_python).exists():
        parser.error(
            f"no peer environment at {args.peer_python}: run "
            "`bash benchmarks/setup_peer.sh` first (or pass --peer-python)"
        )

    from skseg.hub import resolve_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        audio, sample = make_audio(tmp, args.duration)
        peer_script = tmp / "peer_worker.py"
        peer_script.write_text(PEER_WORKER)
        ckpt = str(resolve_checkpoint(args.segmentation))
        rttm = str(Path(sample["audio"]).with_suffix(".rttm"))
        print(
            f"audio: {args.duration:g} s (sample tiled), threads {args.threads}, "
            f"{args.repeat} repetitions alternating, variants {variants}",
            flush=True,
        )
        peer_argv = [
            args.peer_python,
            str(peer_script),
            ckpt,
            sample["audio"],
            rttm,
            str(args.threads),
        ]
        workers = [Worker("pyannote", peer_argv)]
        if args.peer_malloc:
            from skseg.allocator import MMAP_THRESHOLD, TRIM_THRESHOLD

            malloc = {
                "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD),
                "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD),
            }
            workers.append(Worker("pyannote:malloc", peer_argv, malloc))
        if args.floor:
            # the same pyannote, torch and weights; only oneDNN's kernel choice
            # (and so its float32 summation order) differs, as between two CPUs
            workers.append(
                Worker("pyannote:avx2", peer_argv, {"ONEDNN_MAX_CPU_ISA": "AVX2"})
            )
        for v in variants:
            workers.append(
                Worker(
                    f"skseg:{v}",
                    [
                        sys.executable,
                        __file__,
                        "--worker",
                        "skseg",
                        "--variant",
                        v,
                        "--threads",
                        str(args.threads),
                        "--segmentation",
                        args.segmentation,
                    ],
                )
            )
        for rep in range(args.repeat):
            # alternate the order too, so no tool always follows the same one
            order = workers if rep % 2 == 0 else workers[::-1]
            for w in order:
                save = str(tmp / w.name.replace(":", "_")) if rep == 0 else None
                r = w.run(audio, save)
                print(
                    f"  rep {rep + 1} {w.name:18s} wall {r['wall']:7.2f} s "
                    f"cpu {r['cpu']:7.2f} s",
                    flush=True,
                )
        for w in workers:
            w.close()

        peer = workers[0]
        ref_chunks = np.load(tmp / "pyannote_chunks.npy")
        ref_speech = np.load(tmp / "pyannote_speech.npy")
        ref = _aggregated(ref_chunks, args.duration, args.segmentation)
        peer_median = statistics.median(r["wall"] for r in peer.runs)
        rows = []
        for w in workers:
            walls = [r["wall"] for r in w.runs]
            row = {
                "tool": w.name,
                "wall_median": statistics.median(walls),
                "wall_min": min(walls),
                "wall_max": max(walls),
                "cpu_median": statistics.median(r["cpu"] for r in w.runs),
                "rtf": statistics.median(walls) / args.duration,
                "peak_rss_mb": max(r["rss_mb"] for r in w.runs),
                "speedup": peer_median / statistics.median(walls),
                "deter_sample": w.info["deter"],
            }
            if w is not peer:
                chunks = np.load(tmp / f"{w.name.replace(':', '_')}_chunks.npy")
                speech = np.load(tmp / f"{w.name.replace(':', '_')}_speech.npy")
                row["chunks_shape"] = list(chunks.shape)
                row["max_diff_speech"] = float(np.abs(speech - ref_speech).max())
                if chunks.shape == ref_chunks.shape:
                    row["max_diff_chunks"] = float(np.abs(chunks - ref_chunks).max())
                    mine = _aggregated(chunks, args.duration, args.segmentation)
                    for key in ("overlap", "classes"):
                        diff = np.abs(mine[key] - ref[key]).max()
                        row[f"max_diff_{key}"] = float(diff)
            rows.append(row)

    columns = [
        ("max_diff_chunks", "|d chunks|"),
        ("max_diff_speech", "|d speech|"),
        ("max_diff_overlap", "|d overlap|"),
        ("max_diff_classes", "|d classes|"),
    ]
    head = (
        f"{'tool':18s} {'median s':>9s} {'min':>7s} {'max':>7s} {'cpu s':>7s} "
        f"{'RTF':>7s} {'RSS MB':>7s} {'speed-up':>8s} "
        + " ".join(f"{title:>11s}" for _, title in columns)
        + f" {'DetER %':>7s}"
    )
    print("\n" + head)
    for r in rows:
        diffs = " ".join(
            f"{'-' if r.get(key) is None else f'{r[key]:.1e}':>11s}"
            for key, _ in columns
        )
        print(
            f"{r['tool']:18s} {r['wall_median']:9.2f} {r['wall_min']:7.2f} "
            f"{r['wall_max']:7.2f} {r['cpu_median']:7.2f} {r['rtf']:7.4f} "
            f"{r['peak_rss_mb']:7.0f} {r['speedup']:7.2f}x {diffs} "
            f"{100 * r['deter_sample']:7.2f}"
        )
    print(
        "\nspeed-up = pyannote's median wall / the tool's; |d| = max abs difference "
        "to pyannote's scores in the same run ('-': different chunking): raw chunk "
        "scores, and the overlap-added speech (max over speakers), overlap "
        "(second-largest) and per-speaker scores; DetER: speech detection error "
        "rate on the 30 s sample, VAD pipeline defaults."
    )
    if args.json:
        meta = {
            "segmentation": args.segmentation,
            "duration_s": args.duration,
            "threads": args.threads,
            "repeat": args.repeat,
            "python": sys.version.split()[0],
            "cpu_count": os.cpu_count(),
        }
        Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
