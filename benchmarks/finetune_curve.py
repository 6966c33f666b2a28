"""Fine-tuning with the defaults: gain vs minutes of annotation, and their choice.

Usage, from the repository root::

    .venv/bin/python benchmarks/finetune_curve.py curve DATA --generate \
        [--minutes 5 2 10 20 40] [--seeds 0 1 2]
    .venv/bin/python benchmarks/finetune_curve.py ami [--files 3 5 7]
    .venv/bin/python benchmarks/finetune_curve.py dev DEV --generate [--files 4 10 40]
    .venv/bin/python benchmarks/finetune_curve.py dev ami:0 --candidates lr1e-3 ...
    .venv/bin/python benchmarks/finetune_curve.py report RUNS.jsonl ...

``curve``: ``DATA`` holds ``train/``, ``val/`` and ``test/`` (written by
:func:`skseg.synthetic.make_corpus` with ``--generate``: 80, 16 and 24 files of
30 s, ``--seed 2``). For each number of minutes, the first files of ``train``
are linked into a folder of their own and ``skseg finetune FOLDER --out NET
--seed S --if-worse keep-trained`` runs (the defaults otherwise, its own
validation split included; ``--if-worse keep-trained`` only saves the trained
network whatever the comparison says, and what the defaults keep is read from
its ``provenance``); then the pretrained and the fine-tuned network each get
their thresholds tuned on ``val`` for every line's metric (:func:`skseg.tune`,
the grid of ``benchmarks/finetune.py``) and are scored on ``test``: speech
DetER, overlap F, overlap DetER, resegmentation DER. The training's wall and
CPU time (the child's user + system seconds) are recorded with the decision.

``ami``: the same on real meetings, the 14 AMI excerpts of
:func:`skseg.datasets.fetch_ami_excerpts` (CC BY 4.0) cut into two folds of 7
(3.5 min of annotation each): fine-tune on the first ``--files`` excerpts of one
fold, tune and score on the other (the tuning's 2-fold cross-validated score,
for both networks alike), both ways.

``dev``: how the defaults were chosen, on validation data only: a corpus of its
own (``DEV``, ``--generate --seed 1``: 40 train and 16 validation files; other
voices than ``DATA``'s test files; ``--files N`` trains on the first N) or an
AMI fold (``ami:K``: train on fold K, validate on the other): each candidate
recipe trains for 128 steps with the validation error recorded every 16 steps,
no early stopping.

Every run is appended to ``--json`` as it ends; ``report FILE...`` prints the
tables of ``docs/finetuning.md`` from such files. Torch runs on ``--threads``
threads (1 by default: on a shared 2-core machine two threads spin against
other processes' load and train several times slower).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import soundfile as sf  # noqa: E402
from finetune import LINES, fit_lines, score_lines, with_baselines  # noqa: E402

from skseg import load_folder  # noqa: E402
from skseg.io import write_rttm, write_uem  # noqa: E402


def subset(X: list[dict], folder: Path) -> Path:
    """Link the audio of ``X`` into ``folder`` with one RTTM and one UEM."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "refs.rttm", "w") as rttm:
        for f in X:
            os.symlink(os.path.abspath(f["audio"]), folder / Path(f["audio"]).name)
            write_rttm(f["annotation"], rttm)
    uems = {f["uri"]: f["annotated"] for f in X if "annotated" in f}
    if uems:
        write_uem(uems, folder / "refs.uem")
    return folder


def finetune(folder: Path, out: Path, threads: int, options=()) -> dict:
    """``skseg finetune FOLDER --out OUT [OPTIONS]``; its times and outcome."""
    from skseg.serialization import read_config

    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    cmd = [sys.executable, "-m", "skseg", "finetune", str(folder), "--out", str(out)]
    cmd += list(options)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {proc.stderr.strip()[-2000:]}")
    provenance = read_config(out)["provenance"]
    return {
        "command": " ".join(["skseg finetune FOLDER --out NET", *options]),
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime)
        + (after.ru_stime - before.ru_stime),
        "threads": threads,
        "summary": proc.stdout,
        "stderr": proc.stderr[-1000:],
        "provenance": provenance,
    }


def lines(segmentation, tune_on, test=None) -> dict:
    """Each line's score: tuned on ``tune_on``, scored on ``test`` (or the CV)."""
    rows, estimators = fit_lines(segmentation, tune_on, tuned=True)
    if test is None:
        # tune's best score, error rates as they are (as benchmarks/finetune.py)
        return {key: rows[f"{key}_val"] for key, _, _ in LINES} | {"rows": rows}
    return score_lines(rows, estimators, test)


def append(path: str, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record, default=str) + "\n")
    print(
        json.dumps({k: v for k, v in record.items() if k != "run"}, default=str),
        flush=True,
    )


def corpus(args, n_test: int) -> Path:
    """``args.data``, generated first when asked or missing (16 validation files)."""
    data = Path(args.data)
    if args.generate or not (data / "train").is_dir():
        from skseg.synthetic import make_corpus

        make_corpus(
            data,
            n_train=args.n_train,
            n_val=16,
            n_test=n_test,
            seed=args.seed,
            overwrite=True,
        )
    return data


def ami_folds() -> list[list[dict]]:
    """The 14 AMI excerpts in two folds of 7, each mixing the package's splits."""
    from skseg.datasets import fetch_ami_excerpts

    splits = fetch_ami_excerpts()
    files = splits["train"] + splits["development"] + splits["test"]
    return [files[0::2], files[1::2]]


def finetune_both(folder: Path, net: Path, seed: int, args) -> dict:
    """The defaults' training, scoring what the command keeps and what it declines.

    The trained network is saved even when the defaults would keep the start
    (``--if-worse keep-trained``, which changes nothing in the training): what
    the command with no option keeps is read from its ``provenance``
    (``improved``), so one training gives both.
    """
    options = [*args.options, "--seed", str(seed), "--if-worse", "keep-trained"]
    run = finetune(folder, net, args.threads, options)
    provenance = run["provenance"]
    return {
        "seed": seed,
        "network": "finetuned",
        "improved": provenance["improved"],
        "kept": "trained" if provenance["improved"] else "start",
        "run": run,
        "wall_s": run["wall_s"],
        "cpu_s": run["cpu_s"],
        "start_validation_der": provenance["start_validation_der"],
        "trained_validation_der": provenance["trained_validation_der"],
        "validation_seconds": provenance["validation_seconds"],
        "better_fraction": provenance.get("better_fraction"),
    }


def curve(args) -> None:
    data = corpus(args, n_test=24)
    X, _ = load_folder(data / "train")
    val, _ = load_folder(data / "val")
    test, _ = load_folder(data / "test")
    val, test = with_baselines(val, 1000), with_baselines(test, 2000)
    if not args.skip_pretrained:
        append(
            args.json,
            {
                "data": str(data),
                "minutes": 0,
                "network": "pretrained",
                "test": lines("pyannote/segmentation", val, test),
            },
        )
    work = Path(tempfile.mkdtemp(prefix="finetune_curve_"))
    for seed in args.seeds:
        for minutes in args.minutes:
            n = round(minutes * 60 / 30)
            if n > len(X):
                raise SystemExit(f"{minutes:g} min needs {n} training files: {data}")
            folder = work / f"train{minutes:g}"
            if not folder.exists():
                subset(X[:n], folder)
            net = work / f"net{minutes:g}-seed{seed}"
            record = finetune_both(folder, net, seed, args)
            append(
                args.json,
                {
                    "data": str(data),
                    "minutes": minutes,
                    "files": n,
                    "trained": lines(str(net), val, test),
                    **record,
                },
            )


def ami(args) -> None:
    folds = ami_folds()
    work = Path(tempfile.mkdtemp(prefix="finetune_ami_"))
    for k, (train, held) in enumerate([(folds[0], folds[1]), (folds[1], folds[0])]):
        if k not in args.folds:
            continue
        held = with_baselines(held, 3000 + 100 * k)
        if not args.skip_pretrained:
            append(
                args.json,
                {
                    "data": "ami",
                    "fold": k,
                    "network": "pretrained",
                    "cv": lines("pyannote/segmentation", held),
                },
            )
        for n in args.files:
            folder = subset(train[:n], work / f"fold{k}-{n}")
            for seed in args.seeds:
                net = work / f"net{k}-{n}-seed{seed}"
                record = finetune_both(folder, net, seed, args)
                append(
                    args.json,
                    {
                        "data": "ami",
                        "fold": k,
                        "files": n,
                        "minutes": n / 2,
                        "trained_cv": lines(str(net), held),
                        **record,
                    },
                )


#: the candidate recipes compared on the development corpus
CANDIDATES = {
    "lr1e-3": {"lr": 1e-3},
    "lr3e-3": {"lr": 3e-3},
    "lr3e-4": {"lr": 3e-4},
    "lr1e-4": {"lr": 1e-4},
    "lr1e-3-freeze-sincnet": {"lr": 1e-3, "freeze": "sincnet"},
    "lr1e-3-freeze-lstm": {"lr": 1e-3, "freeze": "lstm"},
    "lr1e-3-l2sp1e-3": {"lr": 1e-3, "l2_sp": 1e-3},
    "lr1e-3-l2sp1e-2": {"lr": 1e-3, "l2_sp": 1e-2},
    "lr1e-3-mix0.5": {"lr": 1e-3, "mix_probability": 0.5},
    "lr3e-4-mix0.5": {"lr": 3e-4, "mix_probability": 0.5},
}


def ami_fold(k: int) -> tuple:
    """AMI fold ``k`` to train on and the other fold to validate on (X, y each)."""
    folds = ami_folds()
    train, held = folds[k], folds[1 - k]
    return (
        (train, [f["annotation"] for f in train]),
        (held, [f["annotation"] for f in held]),
    )


def dev(args) -> None:
    from skseg.training import SegmentationTrainer

    if args.data.startswith("ami:"):
        (X, y), (Xv, yv) = ami_fold(int(args.data[4:]))
    else:
        data = corpus(args, n_test=0)
        X, y = load_folder(data / "train")
        Xv, yv = load_folder(data / "val")
    for name in args.candidates:
        for files in args.files or [len(X)]:
            params = {"steps_per_epoch": 16, "max_epochs": 8, **CANDIDATES[name]}
            trainer = SegmentationTrainer(
                **params,
                early_stopping=False,
                keep_start_if_worse=False,
                random_state=args.train_seed,
            )
            cpu = time.process_time()
            trainer.fit(X[:files], y[:files], validation=(Xv, yv))
            append(
                args.json,
                {
                    "data": str(args.data),
                    "candidate": name,
                    "files": files,
                    "minutes": sum(sf.info(f["audio"]).duration for f in X[:files])
                    / 60,
                    "seed": args.train_seed,
                    "params": params,
                    "start": trainer.start_score_,
                    "validation": [h["validation"] for h in trainer.history_],
                    "train_loss": [h["train_loss"] for h in trainer.history_],
                    "wall_s": trainer.training_time_,
                    "cpu_s": time.process_time() - cpu,
                },
            )


def chunk_errors(segmentation, X) -> tuple:
    """Per 5 s chunk of ``X``: frame errors at each of 51 thresholds, speech frames.

    The trainer's validation error, chunk by chunk: warm-up frames left out,
    speakers permuted to the reference; the error of a set of chunks is
    ``errors[i].sum(0).min() / speech[i].sum()``.
    """
    import numpy as np
    import torch

    from skseg import load_model
    from skseg.audio import AudioReader
    from skseg.training import chunk_frame_errors, chunk_targets

    model = load_model(segmentation)
    net = model.network.eval()
    sr, duration = model.sample_rate, model.duration
    grid = model.head.validation_thresholds()
    errors, speech = [], []
    for f in X:
        with AudioReader(f, sample_rate=sr) as reader:
            audio = reader.read()
        for start in np.arange(0, len(audio) / sr - duration + 1e-6, duration):
            a = round(start * sr)
            x = torch.from_numpy(audio[a : a + round(duration * sr)])[None, None]
            y, _ = chunk_targets(f["annotation"], float(start), model)
            with torch.inference_mode():
                pred = model.head.speakers(net(x))
            y = torch.from_numpy(y)[None]
            warm_up = tuple(
                round(w / duration * y.shape[1]) for w in model.specifications.warm_up
            )
            e, s = chunk_frame_errors(pred, y, grid, warm_up)
            errors.append(e[0])
            speech.append(float(s[0]))
    return np.array(errors), np.array(speech)


def noise(args) -> None:
    """How much the validation error moves with the validation set alone.

    The standard deviation of the pretrained network's validation error over
    sets of ``k`` chunks drawn with replacement, for 1, 2.5, 5 and 10 minutes of
    validation audio; with ``--versus NET``, also that of the difference
    between NET's error and the pretrained network's on the same chunks (what
    keeping the start, or early stopping, decides on) and how often NET looks
    better.
    """
    import numpy as np

    out = {}
    for name, folder in (("generated", args.data), ("ami", None)):
        if folder is None:
            from skseg.datasets import fetch_ami_excerpts

            X = [f for split in fetch_ami_excerpts().values() for f in split]
        else:
            X, _ = load_folder(Path(folder))
        errors, speech = chunk_errors("pyannote/segmentation", X)
        versus = chunk_errors(args.versus, X)[0] if args.versus else None
        rng = np.random.default_rng(0)

        def der(e, i, speech=speech):
            return (e[i].sum(0) / max(speech[i].sum(), 1)).min()

        everything = np.arange(len(speech))
        row = {"chunks": len(speech), "der": float(der(errors, everything))}
        if versus is not None:
            row["der_versus"] = float(der(versus, everything))
        for minutes in (1, 2.5, 5, 10):
            k = round(minutes * 60 / 5.0)
            ders, diffs = [], []
            for _ in range(2000):
                i = rng.integers(0, len(speech), k)
                ders.append(der(errors, i))
                if versus is not None:
                    diffs.append(der(versus, i) - ders[-1])
            row[f"std_{minutes:g}min"] = float(np.std(ders))
            if diffs:
                row[f"std_diff_{minutes:g}min"] = float(np.std(diffs))
                row[f"better_{minutes:g}min"] = float(np.mean(np.array(diffs) < 0))
        out[name] = row
        print(name, row, flush=True)
    if args.json:
        append(args.json, {"noise": out, "versus": args.versus})


NAMES = {
    "vad_speech_deter": "speech DetER",
    "osd_overlap_f": "overlap F",
    "osd_overlap_deter": "overlap DetER",
    "reseg_der": "resegmentation DER",
}
#: lines where higher is better
HIGHER = {"osd_overlap_f"}


def _better(a: float, b: float, key: str) -> bool:
    """Whether ``a`` is better than ``b`` on line ``key``."""
    return a > b if key in HIGHER else a < b


def _pct(values) -> str:
    import numpy as np

    mean = 100 * float(np.mean(values))
    if len(values) == 1:
        return f"{mean:.1f}"
    return f"{mean:.1f} ({', '.join(f'{100 * v:.1f}' for v in values)})"


def _curve_tables(groups: dict, pretrained: dict, unit: str) -> list[str]:
    """The default's table, the trained network's and the decisions' table.

    ``groups``: ``{label: [run, ...]}`` (one run per seed); each run has the
    trained network's scores under ``unit`` (``trained`` or ``trained_cv``) and
    ``improved``: what the command keeps is the trained network when improved,
    else the start, i.e. ``pretrained``.
    """

    def table(title: str, *extra: str) -> list[str]:
        columns = ["annotation", *NAMES.values(), *extra]
        return [title, "", f"| {' | '.join(columns)} |", "|" + "---|" * len(columns)]

    out = table(
        "With the defaults (what `skseg finetune` keeps), pretrained + tuned → "
        "fine-tuned + tuned, mean over seeds (per seed):",
        "kept the trained network",
        "training wall / CPU",
    )
    for label, runs in groups.items():
        base = pretrained[label]
        cells = []
        for key in NAMES:
            kept = [r[unit][key] if r["improved"] else base[key] for r in runs]
            cells.append(f"{100 * base[key]:.1f} → {_pct(kept)} %")
        n_kept = sum(bool(r["improved"]) for r in runs)
        wall = sum(r["wall_s"] for r in runs) / len(runs)
        cpu = sum(r["cpu_s"] for r in runs) / len(runs)
        out.append(
            f"| {label} | {' | '.join(cells)} | {n_kept} of {len(runs)} | "
            f"{wall:.0f} s / {cpu:.0f} s |"
        )
    out += [""] + table(
        "The trained network whatever the comparison said (`--if-worse "
        "keep-trained`, the same trainings):"
    )
    for label, runs in groups.items():
        base = pretrained[label]
        cells = [
            f"{100 * base[key]:.1f} → {_pct([r[unit][key] for r in runs])} %"
            for key in NAMES
        ]
        out.append(f"| {label} | {' | '.join(cells)} |")
    out += [
        "",
        "Each decision: the validation the command compared on, and how the "
        "trained network did on the test lines:",
        "",
        "| annotation | seed | validation | validation error start → trained | "
        "trained better on resamples | kept | trained better than pretrained on "
        "test | decision |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, runs in groups.items():
        base = pretrained[label]
        for r in runs:
            wins = sum(_better(r[unit][k], base[k], k) for k in NAMES)
            losses = sum(_better(base[k], r[unit][k], k) for k in NAMES)
            if r["improved"]:
                verdict = "right" if losses == 0 else "cost a line"
            else:
                verdict = (
                    "right"
                    if wins == 0
                    else ("missed a gain" if losses == 0 else "declined a trade")
                )
            fraction = r.get("better_fraction")
            out.append(
                f"| {label} | {r['seed']} | {r['validation_seconds'] / 60:.1f} min | "
                f"{100 * r['start_validation_der']:.2f} → "
                f"{100 * r['trained_validation_der']:.2f} % | "
                f"{'-' if fraction is None else f'{100 * fraction:.0f} %'} | "
                f"{r['kept']} | {wins} of {len(NAMES)} lines (worse on {losses}) | "
                f"{verdict} |"
            )
    return out


def _dev_tables(runs: list[dict]) -> list[str]:
    """Validation error every 16 steps, per data and candidate."""
    out = []
    by_data: dict = {}
    for r in runs:
        by_data.setdefault(r["data"], []).append(r)
    for data, rows in by_data.items():
        epochs = max(len(r["validation"]) for r in rows)
        out += [
            "",
            f"`{data}` (validation error %, start {100 * rows[0]['start']:.1f} %):",
            "",
            "| candidate | minutes | "
            + " | ".join(str(16 * (e + 1)) for e in range(epochs))
            + " | best | CPU |",
            "|" + "---|" * (epochs + 4),
        ]
        for r in sorted(rows, key=lambda r: (r["files"], r["candidate"])):
            cells = [f"{100 * v:.1f}" for v in r["validation"]]
            out.append(
                f"| {r['candidate']} | {r['minutes']:.1f} | {' | '.join(cells)} | "
                f"{100 * min(r['validation']):.1f} | {r['cpu_s']:.0f} s |"
            )
    return out


def report(paths: list[str]) -> str:
    """Markdown tables of the runs in ``paths`` (JSON lines)."""
    runs = [json.loads(line) for p in paths for line in open(p) if line.strip()]
    out = []
    curve = [r for r in runs if r.get("network") == "finetuned" and "trained" in r]
    if curve:
        pretrained = {r["data"]: r["test"] for r in runs if r.get("minutes") == 0}
        groups: dict = {}
        for r in sorted(curve, key=lambda r: (r["minutes"], r["seed"])):
            groups.setdefault(f"{r['minutes']:g} min", []).append(r)
        base = {label: pretrained[g[0]["data"]] for label, g in groups.items()}
        out += ["## Generated conversations (test files)", ""]
        out += _curve_tables(groups, base, "trained")
    ami = [r for r in runs if r.get("data") == "ami" and "trained_cv" in r]
    if ami:
        pretrained = {
            r["fold"]: r["cv"]
            for r in runs
            if r.get("data") == "ami" and r.get("network") == "pretrained"
        }
        groups, base = {}, {}
        for r in sorted(ami, key=lambda r: (r["fold"], r["files"], r["seed"])):
            label = f"{r['minutes']:g} min of fold {r['fold']}"
            groups.setdefault(label, []).append(r)
            base[label] = pretrained[r["fold"]]
        out += ["", "## AMI excerpts (the held-out fold, cross-validated)", ""]
        out += _curve_tables(groups, base, "trained_cv")
    dev = [r for r in runs if "candidate" in r]
    if dev:
        out += ["", "## Candidates on validation data"]
        out += _dev_tables(dev)
    return "\n".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for mode in ("curve", "ami", "dev", "noise"):
        p = sub.add_parser(mode)
        if mode != "ami":
            p.add_argument("data")
            p.add_argument("--generate", action="store_true")
            p.add_argument(
                "--seed",
                type=int,
                default=2 if mode == "curve" else 1,
                help="the generated corpus's seed",
            )
        if mode in ("curve", "dev"):
            p.add_argument(
                "--n-train",
                type=int,
                default=80 if mode == "curve" else 40,
                help="training files of 30 s in a generated corpus",
            )
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--json", required=mode != "noise", help="append runs here")
        p.add_argument("--skip-pretrained", action="store_true")
    sub.choices["curve"].add_argument(
        "--minutes", type=float, nargs="+", default=[5, 2, 10, 20, 40]
    )
    sub.choices["curve"].add_argument(
        "--seeds", type=int, nargs="+", default=[0], help="skseg finetune --seed"
    )
    sub.choices["noise"].add_argument("--versus", help="a fine-tuned network")
    for mode in ("curve", "ami"):
        sub.choices[mode].add_argument(
            "--options",
            type=shlex.split,
            default=[],
            help="given to skseg finetune (e.g. --if-worse keep-trained, to score "
            "the trained network the defaults did not keep)",
        )
    sub.choices["ami"].add_argument("--folds", type=int, nargs="+", default=[0, 1])
    sub.choices["ami"].add_argument(
        "--files", type=int, nargs="+", default=[7], help="first N files of the fold"
    )
    sub.choices["ami"].add_argument("--seeds", type=int, nargs="+", default=[0])
    sub.choices["dev"].add_argument(
        "--candidates", nargs="+", default=list(CANDIDATES), choices=CANDIDATES
    )
    sub.choices["dev"].add_argument(
        "--files", type=int, nargs="+", help="first N training files (all)"
    )
    sub.choices["dev"].add_argument("--train-seed", type=int, default=0)
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["report"]:
        print(report(argv[1:]))
        return 0
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    {"curve": curve, "ami": ami, "dev": dev, "noise": noise}[args.mode](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
