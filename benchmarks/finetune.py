"""Fine-tuning on a generated domain: pretrained vs tuned vs fine-tuned + tuned.

Usage, from the repository root::

    .venv/bin/python benchmarks/finetune.py DATA [--generate] [options]

``DATA`` holds ``train/``, ``val/`` and ``test/`` folders of audio + RTTM (+ UEM)
files (what ``skseg tune`` reads). With ``--generate`` (or when ``DATA`` has no
such folders) they are written first by :func:`skseg.synthetic.make_corpus`:
TTS conversations whose speakers *and voices* differ between train, validation
and test.

For each task on the test files it prints:

* VAD: speech detection error rate (DetER);
* OSD: overlap F-measure and overlap DetER;
* resegmentation: DER of a degraded baseline refined by the network (the
  baseline is the reference with jittered boundaries, its overlaps given to one
  speaker and its short turns given to the most talkative speaker);

for three networks/settings: the pretrained network at its default thresholds;
the pretrained network with thresholds tuned on ``val`` (:func:`skseg.tune`);
the network fine-tuned on ``train`` (early stopping on ``val``) with thresholds
tuned on ``val``; and the fine-tuning time. Every line's thresholds are tuned for
that line's metric, for both networks alike: the overlap F line with the OSD
thresholds that maximise F on ``val``, the overlap DetER line with those that
minimise DetER. ``--seeds`` fine-tunes once per seed; the fine-tuned column is
the mean over seeds (each seed's figures are in ``--json``). Several
``--mix-probability`` values are candidates for the recipe: each is trained at
every seed and scored on ``val`` only (the thresholds' cross-validated score),
and only the one better on most lines is scored on ``test``.

``--peer PYTHON`` adds the side-by-side with pyannote.audio 3.4's own
fine-tuning (``benchmarks/peer_finetune34.py``, run by ``PYTHON`` of its own
environment): the same train folder, optimizer steps, batch size, learning rate,
seed and threads, no validation and no augmentation on either side (pyannote's
task has none by default); each side runs in a fresh process so its peak RSS is
its own, the two alternating seed by seed (``--side-seeds``) so that a change in
the machine's load falls on both; every fine-tuned network is then evaluated by
skseg as above, and the table gives each side's mean and standard deviation over
the seeds.

The defaults fit a 2-core CPU in about an hour: 40 train, 24 validation and 40
test files of 30 s (the overlap lines need that much test audio to be read at
all); 3 seeds of up to 10 epochs of 16 steps of 32 chunks at ``lr=1e-3`` with
early stopping; the side-by-side 5 seeds of 64 steps of 32.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from pyannote.core import Annotation, Segment  # noqa: E402

from skseg import (  # noqa: E402
    OSDEstimator,
    ResegmentationEstimator,
    VADEstimator,
    load_folder,
    tune,
)
from skseg.metrics import get_scorer  # noqa: E402

# wide enough that no network's best thresholds sit on the grid's edge
THRESHOLDS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
GRID = {
    "onset": THRESHOLDS,
    "offset": THRESHOLDS,
    "min_duration_on": [0.0],
    "min_duration_off": [0.0, 0.1],
}


def degrade(reference: Annotation, seed: int) -> Annotation:
    """A plausible imperfect diarization of ``reference`` (deterministic)."""
    rng = np.random.default_rng(seed)
    labels = reference.labels()
    if not labels:
        return Annotation(uri=reference.uri)
    main = max(labels, key=reference.label_duration)
    out = Annotation(uri=reference.uri)
    for segment, track, label in reference.itertracks(yield_label=True):
        start = max(0.0, segment.start + rng.uniform(-0.25, 0.25))
        end = segment.end + rng.uniform(-0.25, 0.25)
        if end - start < 0.1:
            continue
        out[Segment(start, end), track] = main if segment.duration < 1.0 else label
    overlap = out.get_overlap()
    others = out.subset([label for label in out.labels() if label != main])
    return out.subset([main]).update(others.extrude(overlap))


def with_baselines(X: list[dict], seed: int) -> list[dict]:
    return [
        dict(f, baseline=degrade(f["annotation"], seed + i)) for i, f in enumerate(X)
    ]


# (row, pipeline, metric the thresholds are tuned for, then scored with)
LINES = [
    ("vad_speech_deter", "vad", "neg_speech_detection_error_rate"),
    ("osd_overlap_f", "osd", "overlap_fmeasure"),
    ("osd_overlap_deter", "osd", "neg_overlap_detection_error_rate"),
    ("reseg_der", "reseg", "neg_greedy_diarization_error_rate"),
]
PIPELINES = {
    "vad": VADEstimator,
    "osd": OSDEstimator,
    "reseg": ResegmentationEstimator,
}
# scorers report "greater is better"; the table gives error rates as they are
SIGN = {
    "neg_speech_detection_error_rate": -1,
    "overlap_fmeasure": 1,
    "neg_overlap_detection_error_rate": -1,
    "neg_greedy_diarization_error_rate": -1,
}


def evaluate(segmentation, val, test, tuned: bool) -> dict:
    """Each line's score on ``test``, its thresholds tuned on ``val`` for it."""
    return score_lines(*fit_lines(segmentation, val, tuned), test)


def fit_lines(segmentation, val, tuned: bool) -> tuple[dict, dict]:
    """Each line's estimator (thresholds tuned on ``val`` for it, or the defaults).

    Returns the rows so far (tuned: each line's ``{line}_params`` and
    ``{line}_val``, the best cross-validated score on ``val``, which is what
    choosing a recipe may look at) and ``{line: estimator}``.
    """
    rows: dict = {}
    estimators: dict = {}
    default = {}
    for key, pipeline, scoring in LINES:
        t = time.perf_counter()
        estimator = PIPELINES[pipeline](segmentation=segmentation)
        if tuned:
            result = tune(estimator, val, param_grid=GRID, folds=2, scoring=scoring)
            estimator = result.estimator
            rows[f"{key}_params"] = {
                name: estimator.get_params()[name] for name in GRID
            }
            rows[f"{key}_val"] = result.best_score
        else:  # the defaults do not depend on the line: one fit per pipeline
            estimator = default.setdefault(pipeline, estimator.fit())
        estimators[key] = estimator
        rows[f"{key}_seconds"] = time.perf_counter() - t
    return rows, estimators


def score_lines(rows: dict, estimators: dict, test) -> dict:
    """``rows`` with each line's score on ``test`` (its seconds include scoring)."""
    rows = dict(rows)
    for key, _, scoring in LINES:
        t = time.perf_counter()
        rows[key] = SIGN[scoring] * get_scorer(scoring)(estimators[key], test)
        rows[f"{key}_seconds"] += time.perf_counter() - t
    return rows


def choose(candidates: dict) -> float:
    """The mix probability whose networks are best on validation on most lines.

    ``candidates`` maps each mix probability to its runs (one per seed); each
    line is won by the candidate with the best mean ``{line}_val`` over seeds;
    a tie in lines won goes to the candidate listed first.
    """
    wins = dict.fromkeys(candidates, 0)
    for key, _, scoring in LINES:
        mean = {
            p: np.mean([run["val"][f"{key}_val"] for run in runs])
            for p, runs in candidates.items()
        }
        better = max if SIGN[scoring] > 0 else min
        wins[better(mean, key=mean.get)] += 1
    return max(wins, key=wins.get)


def side(args, out: Path) -> dict:
    """skseg's fine-tuning, as the side-by-side runs it (in its own process)."""
    import torch

    from skseg.training import SegmentationTrainer

    torch.set_num_threads(args.threads)
    X, y = load_folder(Path(args.data) / "train")
    began = time.perf_counter()
    trainer = SegmentationTrainer(
        max_epochs=1,
        steps_per_epoch=args.side_steps,
        batch_size=args.batch_size,
        lr=args.lr,
        freeze=None,
        l2_sp=0.0,
        mix_probability=0.0,
        validation_fraction=0,
        random_state=args.seed,
    )
    losses: list[float] = []
    trainer.fit(X, y, callback=lambda p: p.event == "step" and losses.append(p.loss))
    trainer.save(out, overwrite=True)
    return {
        "steps": trainer.n_steps_,
        "batch_size": args.batch_size,
        "chunks_per_second": trainer.chunks_per_second_,
        "wall_s": time.perf_counter() - began,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "final_loss": losses[-1],  # the last batch's, as the peer reports
        "mean_loss": float(np.mean(losses)),
        "out": str(out),
    }


def run_json(cmd: list[str], env: dict | None = None) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])}...: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt(value, pct=True) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f} %" if pct else f"{value:.3f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="folder with train/, val/, test/")
    parser.add_argument("--generate", action="store_true", help="write the corpus")
    parser.add_argument("--train", type=int, default=40)
    parser.add_argument("--val", type=int, default=24)
    parser.add_argument("--test", type=int, default=40)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=0, help="corpus seed")
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[0, 1, 2], help="fine-tuning seeds"
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps-per-epoch", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument(
        "--mix-probability",
        type=float,
        nargs="+",
        default=[0.0],
        help="overlap augmentation; several: each is trained for every seed and "
        "the one best on validation (most lines won) is scored on test",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peer", help="python of the pyannote.audio 3.4 peer venv")
    parser.add_argument("--side-steps", type=int, default=64)
    parser.add_argument("--side-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--side-only", action="store_true", help="only the side-by-side (with --peer)"
    )
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument(
        "--report",
        nargs="+",
        metavar="JSON",
        help="print the tables of earlier --json runs, their side-by-side seeds "
        "pooled (runs on the same DATA), instead of running anything",
    )
    parser.add_argument("--_side", help=argparse.SUPPRESS)  # child process mode
    args = parser.parse_args(argv)

    if args._side:
        print(json.dumps(side(args, Path(args._side))))
        return 0
    if args.report:
        print_tables(args, pooled(args.report))
        return 0

    import torch

    torch.set_num_threads(args.threads)
    data = Path(args.data)
    if args.generate or not all((data / s).is_dir() for s in ("train", "val", "test")):
        from skseg.synthetic import make_corpus

        t = time.perf_counter()
        make_corpus(
            data,
            n_train=args.train,
            n_val=args.val,
            n_test=args.test,
            duration=args.duration,
            seed=args.seed,
            overwrite=True,
        )
        print(f"generated {data} in {time.perf_counter() - t:.0f} s", flush=True)
    train = load_folder(data / "train")[0]
    val = with_baselines(load_folder(data / "val")[0], 1000)
    test = with_baselines(load_folder(data / "test")[0], 2000)
    hours = {
        name: sum(float(f["annotated"].duration()) for f in files) / 3600
        if all("annotated" in f for f in files)
        else None
        for name, files in (("train", train), ("val", val), ("test", test))
    }
    print(
        f"data: {len(train)} train, {len(val)} val, {len(test)} test files; "
        f"annotated hours {hours}",
        flush=True,
    )

    results: dict = {"args": {k: v for k, v in vars(args).items() if k != "_side"}}
    if not args.side_only:
        main_table(args, data, val, test, results)
    if args.peer:
        side_by_side(args, data, val, test, results)
    print_tables(args, results)
    save(args, results)
    return 0


def save(args, results: dict) -> None:
    """Write ``results`` to ``--json``, if given (whole, so never half a file)."""
    if args.json:
        path = Path(args.json)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(results, indent=2, default=str) + "\n")
        partial.replace(path)


def main_table(args, data, val, test, results) -> None:
    from skseg.training import SegmentationTrainer

    results["pretrained"] = evaluate("pyannote/segmentation", val, test, tuned=False)
    print("pretrained defaults:", results["pretrained"], flush=True)
    results["pretrained_tuned"] = evaluate("pyannote/segmentation", val, test, True)
    print("pretrained + tuned:", results["pretrained_tuned"], flush=True)

    def progress(p):
        if p.event == "epoch":
            print(
                f"  epoch {p.epoch}/{p.max_epochs} step {p.step}/{p.total_steps} "
                f"loss {p.loss:.4f} validation DER {fmt(p.validation)} "
                f"(best {fmt(p.best)}) {p.elapsed:.0f} s, ~{p.time_left:.0f} s left",
                flush=True,
            )

    X, y = load_folder(data / "train")
    Xv, yv = load_folder(data / "val")
    # the recipe is chosen on validation only; test is scored once, after
    candidates: dict = {}
    tuned: dict = {}  # each run's tuned estimators, in memory (not in --json)
    for mix in args.mix_probability:
        candidates[mix] = []
        tuned[mix] = []
        for seed in args.seeds:
            print(f"fine-tuning, mix_probability {mix}, seed {seed}", flush=True)
            trainer = SegmentationTrainer(
                max_epochs=args.epochs,
                steps_per_epoch=args.steps_per_epoch,
                batch_size=args.batch_size,
                lr=args.lr,
                mix_probability=mix,
                patience=args.patience,
                random_state=seed,
            )
            trainer.fit(X, y, validation=(Xv, yv), callback=progress)
            finetuned = trainer.save(
                data / f"finetuned-mix{mix:g}-seed{seed}", overwrite=True
            )
            training = {
                "seed": seed,
                "batch_size": args.batch_size,
                "mix_probability": mix,
                "seconds": trainer.training_time_,
                "steps": trainer.n_steps_,
                "best_epoch": trainer.best_epoch_,
                "validation_der": trainer.best_score_,
                "chunks_per_second": trainer.chunks_per_second_,
                "stopped": trainer.stopped_,
                "history": trainer.history_,
            }
            print("training:", {k: v for k, v in training.items() if k != "history"})
            # tuned once: the candidate chosen is scored on test with these
            scores, estimators = fit_lines(finetuned, val, tuned=True)
            print(f"  validation: {scores}", flush=True)
            tuned[mix].append(estimators)
            candidates[mix].append(
                {"training": training, "val": scores, "path": str(finetuned)}
            )
            results["candidates"] = candidates
            save(args, results)
    chosen = choose(candidates)
    results["mix_probability"] = chosen
    print(f"chosen on validation: mix_probability {chosen}", flush=True)
    results["finetuned"] = []
    for run, estimators in zip(candidates[chosen], tuned[chosen], strict=True):
        scores = score_lines(run["val"], estimators, test)
        print(f"fine-tuned (seed {run['training']['seed']}) + tuned:", scores)
        results["finetuned"].append({"training": run["training"], "test": scores})
    results["finetuned_tuned"] = {
        key: float(np.mean([run["test"][key] for run in results["finetuned"]]))
        for key, _, _ in LINES
    }


def side_by_side(args, data, val, test, results) -> None:
    from skseg.hub import resolve_checkpoint
    from skseg.serialization import model_from_state_dict, save_model

    checkpoint = str(resolve_checkpoint("pyannote/segmentation"))
    runs: dict = {"skseg": [], "pyannote": []}
    for seed in args.side_seeds:
        out = data / f"side-skseg-seed{seed}"
        me = [sys.executable, __file__, str(data), "--_side", str(out)]
        me += ["--batch-size", str(args.batch_size), "--lr", str(args.lr)]
        me += ["--seed", str(seed), "--threads", str(args.threads)]
        me += ["--side-steps", str(args.side_steps)]
        ours = run_json(me)
        print(f"side-by-side, skseg, seed {seed}:", ours, flush=True)
        peer_out = data / f"side-pyannote-seed{seed}.safetensors"
        theirs = run_json(
            [
                args.peer,
                str(HERE / "peer_finetune34.py"),
                str(data / "train"),
                "--checkpoint",
                checkpoint,
                "--out",
                str(peer_out),
                "--steps",
                str(args.side_steps),
                "--batch-size",
                str(args.batch_size),
                "--seed",
                str(seed),
                "--lr",
                str(args.lr),
                "--threads",
                str(args.threads),
                "--force",
            ],
            env=dict(os.environ, PYANNOTE_METRICS_ENABLED="false"),
        )
        print(f"side-by-side, pyannote.audio 3.4, seed {seed}:", theirs, flush=True)
        peer_net = save_model(
            model_from_state_dict(peer_out),
            data / f"side-pyannote-seed{seed}",
            provenance={"peer": "pyannote.audio 3.4.0", **theirs},
            overwrite=True,
        )
        ours["test"] = evaluate(ours["out"], val, test, True)
        theirs["test"] = evaluate(str(peer_net), val, test, True)
        print(f"  skseg test: {ours['test']}", flush=True)
        print(f"  pyannote test: {theirs['test']}", flush=True)
        runs["skseg"].append(ours)
        runs["pyannote"].append(theirs)
        results["side_by_side"] = runs
        save(args, results)  # a long run stopped early keeps the seeds it finished


def pooled(paths: list[str]) -> dict:
    """The results of several ``--json`` files, side-by-side seeds concatenated."""
    runs = [json.loads(Path(path).read_text()) for path in paths]
    data = {run["args"]["data"] for run in runs}
    if len(data) > 1:
        raise SystemExit(f"--report: runs on different data: {sorted(data)}")
    results = next((dict(run) for run in runs if "finetuned_tuned" in run), {})
    sides = [run["side_by_side"] for run in runs if "side_by_side" in run]
    if sides:
        results["side_by_side"] = {
            side: [seed for s in sides for seed in s[side]]
            for side in ("skseg", "pyannote")
        }
    return results


def mean_std(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def print_tables(args, results) -> None:
    names = {
        "vad_speech_deter": ("VAD", "speech DetER"),
        "osd_overlap_f": ("OSD", "overlap F"),
        "osd_overlap_deter": ("OSD", "overlap DetER"),
        "reseg_der": ("resegmentation", "DER"),
    }
    print()
    candidates = results.get("candidates", {})
    if len(candidates) > 1:
        print(
            "| validation (2-fold, mean over seeds) | "
            + " | ".join(f"mix_probability {float(p):g}" for p in candidates)
            + " |"
        )
        print("|---|" + "---|" * len(candidates))
        for key, _, _ in LINES:
            task, metric = names[key]
            cells = [
                fmt(np.mean([run["val"][f"{key}_val"] for run in runs]))
                for runs in candidates.values()
            ]
            print(f"| {task} {metric} | {' | '.join(cells)} |")
        print(f"chosen: mix_probability {float(results['mix_probability']):g}\n")
    if "finetuned_tuned" in results:
        runs = results["finetuned"]
        print(
            "| task | metric | pretrained | pretrained + tuned | "
            f"fine-tuned + tuned (mean of {len(runs)}) | per seed |"
        )
        print("|---|---|---|---|---|---|")
        for key, _, _ in LINES:
            task, metric = names[key]
            cells = [
                fmt(results[k][key])
                for k in ("pretrained", "pretrained_tuned", "finetuned_tuned")
            ]
            each = ", ".join(fmt(run["test"][key]) for run in runs)
            print(f"| {task} | {metric} | {' | '.join(cells)} | {each} |")
        for run in runs:
            tr = run["training"]
            batch = tr.get("batch_size", args.batch_size)
            print(
                f"seed {tr['seed']}: fine-tuning {tr['seconds']:.0f} s, {tr['steps']} "
                f"steps of {batch} chunks ({tr['chunks_per_second']:.1f} "
                f"chunks/s), best epoch {tr['best_epoch']} (validation DER "
                f"{fmt(tr['validation_der'])}), stopped: {tr['stopped']}"
            )
    if "side_by_side" in results:
        s = results["side_by_side"]
        n = len(s["skseg"])
        print(
            f"\n| mean ± std over {n} seeds | skseg | pyannote.audio 3.4 | "
            "skseg vs pyannote, per seed |"
        )
        print("|---|---|---|---|")

        def cell(side, get, pct):
            m, sd = mean_std([get(run) for run in s[side]])
            if pct:
                return f"{100 * m:.1f} ± {100 * sd:.1f} %"
            return f"{m:.2f} ± {sd:.2f}"

        def paired(get, ratio=False):
            a = np.array([get(run) for run in s["skseg"]])
            b = np.array([get(run) for run in s["pyannote"]])
            if ratio:  # geometric mean of the per-seed ratios, and their range
                r = a / b
                return (
                    f"× {np.exp(np.log(r).mean()):.2f} ({r.min():.2f} to {r.max():.2f})"
                )
            d = 100 * (a - b)
            se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0
            return f"{d.mean():+.2f} ± {se:.2f} (standard error)"

        for label, key in [
            ("chunks/s", "chunks_per_second"),
            ("peak RSS (MB)", "peak_rss_mb"),
            ("wall (s)", "wall_s"),
        ]:
            a = cell("skseg", lambda run, k=key: run[k], False)
            b = cell("pyannote", lambda run, k=key: run[k], False)
            r = paired(lambda run, k=key: run[k], ratio=True)
            print(f"| {label} | {a} | {b} | {r} |")
        for key, _, _ in LINES:
            task, metric = names[key]
            a = cell("skseg", lambda run, k=key: run["test"][k], True)
            b = cell("pyannote", lambda run, k=key: run["test"][k], True)
            d = paired(lambda run, k=key: run["test"][k])
            print(f"| {task} {metric} (tuned) | {a} | {b} | {d} points |")


if __name__ == "__main__":
    sys.exit(main())
