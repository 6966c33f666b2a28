"""``skseg finetune``: adapt the segmentation network to a folder of annotated audio.

Wraps :class:`skseg.training.SegmentationTrainer`: ``DATA`` is what ``skseg tune``
reads (audio files with their RTTM, optional UEM, loaded by
:func:`skseg.io.load_folder`), and ``--out`` is a saved network folder
(safetensors + ``config.json``) that every command's ``--segmentation`` and every
estimator's ``segmentation=`` accept.

Exit codes: 0 trained and saved; 1 the loss became NaN or infinite (the best
weights so far are saved); 2 usage error (nothing trained or written); 130
interrupted with Ctrl-C (the best weights so far are saved).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any

from .common import (
    UsageError,
    add_progress_flags,
    positive_float,
    positive_int,
    progress,
    refuse_overwriting,
)

__all__ = ["register", "summary_table"]


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _unit(text: str, *, one: bool) -> float:
    """``text`` as a number in [0, 1] (``one``) or [0, 1)."""
    value = _number(text)
    if not (0.0 <= value <= 1.0 if one else 0.0 <= value < 1.0):
        raise argparse.ArgumentTypeError(
            f"must be in [0, 1{']' if one else ')'}, got {text}"
        )
    return value


def _fraction(text: str) -> float:
    return _unit(text, one=False)


def _probability(text: str) -> float:
    return _unit(text, one=True)


def _non_negative(text: str) -> float:
    value = _number(text)
    if not (value >= 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text}")
    return value


def register(commands: Any) -> None:
    """Add ``skseg finetune``.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="skseg")
    >>> register(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["finetune", "data", "--out", "net", "--epochs", "3"])
    >>> args.epochs, args.seed, args.segmentation
    (3, 0, 'pyannote/segmentation')
    """
    from ..training import (
        EARLY_STOPPING_MIN_VALIDATION,
        FREEZE_BLOCKS,
        MIN_STEPS_PER_EPOCH,
        SegmentationTrainer,
    )

    # the trainer's own defaults, so the two cannot disagree
    default = SegmentationTrainer().get_params()
    mix_probability = default["mix_probability"]
    finetune = commands.add_parser(
        "finetune",
        help="fine-tune the segmentation network on annotated audio",
        description=(
            "Fine-tune the segmentation network on a folder of audio files with "
            "their RTTM (and UEM) files, compare the result with the starting "
            "network on the validation files (keeping the starting one when the "
            "result is not better, unless --if-worse keep-trained), and save it as "
            "a network folder (safetensors + config.json) usable as --segmentation "
            "by every command. Exit codes: 0 saved, 1 the "
            "loss became NaN (best weights saved), 2 usage error (nothing written), "
            "130 interrupted (best weights saved)."
        ),
    )
    finetune.add_argument("data_dir", metavar="DATA_DIR")
    finetune.add_argument(
        "--out", required=True, metavar="PATH", help="network folder to write"
    )
    finetune.add_argument(
        "--force", action="store_true", help="replace an existing --out"
    )
    finetune.add_argument(
        "--segmentation",
        default="pyannote/segmentation",
        metavar="BASE",
        help="network to start from: identifier, checkpoint or a saved network "
        '(default: "pyannote/segmentation")',
    )
    finetune.add_argument(
        "--epochs",
        type=positive_int,
        default=default["max_epochs"],
        metavar="N",
        help=f"at most ({default['max_epochs']})",
    )
    finetune.add_argument(
        "--steps-per-epoch",
        type=positive_int,
        metavar="N",
        help="optimizer steps per epoch (default: the annotated duration in chunks, "
        f"at least {MIN_STEPS_PER_EPOCH})",
    )
    finetune.add_argument(
        "--batch-size",
        type=positive_int,
        default=default["batch_size"],
        metavar="N",
        help=f"({default['batch_size']})",
    )
    finetune.add_argument(
        "--lr",
        type=positive_float,
        default=default["lr"],
        help=f"Adam's learning rate ({default['lr']:g})",
    )
    finetune.add_argument(
        "--freeze",
        choices=FREEZE_BLOCKS,
        help="keep the blocks up to and including this one fixed",
    )
    finetune.add_argument(
        "--l2-sp",
        type=_non_negative,
        default=default["l2_sp"],
        metavar="ALPHA",
        help="penalty ALPHA * sum((w - w_start)^2) holding the weights near the "
        f"starting ones ({default['l2_sp']:g}: off)",
    )
    finetune.add_argument(
        "--mix-probability",
        type=_probability,
        default=mix_probability,
        metavar="P",
        help="probability that a chunk is mixed with another to make artificial "
        f"overlap ({mix_probability:g}; choose it on validation data)",
    )
    finetune.add_argument(
        "--patience",
        type=positive_int,
        default=default["patience"],
        metavar="N",
        help="epochs without a better validation error before stopping, with early "
        f"stopping ({default['patience']})",
    )
    finetune.add_argument(
        "--early-stopping",
        choices=("auto", "on", "off"),
        default="auto",
        help="stop when the validation error stops improving and keep the best "
        "epoch (on), or run every epoch and keep the last (off); auto (default): "
        f"on with at least {EARLY_STOPPING_MIN_VALIDATION / 60:g} min of "
        "validation audio",
    )
    finetune.add_argument(
        "--if-worse",
        choices=("keep-start", "keep-trained"),
        default="keep-start" if default["keep_start_if_worse"] else "keep-trained",
        help="when the trained network is not better than the starting one on the "
        "validation files: save the starting one (keep-start, default) or the "
        "trained one, with a warning",
    )
    held_out = finetune.add_mutually_exclusive_group()
    held_out.add_argument(
        "--validation-fraction",
        type=_fraction,
        default=default["validation_fraction"],
        metavar="F",
        help="fraction of DATA's files held out for validation "
        f"({default['validation_fraction']:g}; 0: none, train for --epochs and "
        "keep the last weights, not compared with the starting network)",
    )
    held_out.add_argument(
        "--validation",
        metavar="DIR",
        help="a folder like DATA_DIR held out for validation instead",
    )
    finetune.add_argument(
        "--seed", type=int, default=0, help="random seed (0): same seed, same weights"
    )
    finetune.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="torch CPU threads (default: torch's); weights are reproducible for "
        "the same seed and the same number of threads",
    )
    finetune.add_argument(
        "--device", default="cpu", help='"cpu" (default), "cuda" or "cuda:N"'
    )
    add_progress_flags(finetune)
    finetune.set_defaults(run=_run, parser=finetune)


def summary_table(trainer: Any, out: str) -> str:
    """Return the summary of a fitted trainer, one ``name  value`` row per line.

    Parameters
    ----------
    trainer : SegmentationTrainer
        Fitted (or stopped: interrupted, NaN).
    out : str
        Where the network was saved.

    Returns
    -------
    table : str

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> trainer = SimpleNamespace(
    ...     history_=[{"epoch": 1}, {"epoch": 2}], max_epochs=5, n_steps_=20,
    ...     start_score_=0.1301, trained_score_=0.1234, best_epoch_=2,
    ...     better_fraction_=0.81,
    ...     kept_="trained", early_stopping_=False, validation_duration_=60.0,
    ...     stopped_="max_epochs", training_time_=61.5, chunks_per_second_=10.4)
    >>> print(summary_table(trainer, "net"))
    epochs            2 / 5
    steps             20
    validation error  13.01 % before, 12.34 % after training (epoch 2)
    comparison        trained better on 81 % of chunk resamples: within the noise
    kept              the fine-tuned network
    early stopping    off: 1.0 min of validation audio (< 10 min), every epoch run
    stopped           max_epochs
    time              61.5 s (10.4 chunks/s)
    output            net
    """
    from ..training import EARLY_STOPPING_MIN_VALIDATION, within_noise

    if trainer.start_score_ is None:
        validation = "no validation files: not compared with the starting network"
    elif trainer.trained_score_ is None:
        validation = f"{100 * trainer.start_score_:.2f} % before training"
    else:
        validation = (
            f"{100 * trainer.start_score_:.2f} % before, "
            f"{100 * trainer.trained_score_:.2f} % after training "
            f"(epoch {trainer.best_epoch_ if trainer.kept_ == 'trained' else '-'})"
        )
    fraction = getattr(trainer, "better_fraction_", None)
    comparison = []
    if fraction is not None:
        comparison = [
            (
                "comparison",
                "no difference on the validation chunks"
                if trainer.trained_score_ == trainer.start_score_
                else f"trained better on {100 * fraction:.0f} % of chunk resamples: "
                f"{'within the noise' if within_noise(fraction) else 'firm'}",
            )
        ]
    if trainer.kept_ == "trained":
        kept = "the fine-tuned network"
    elif trainer.trained_score_ is None:
        kept = "the starting network"
    else:
        # kept on a lower error only when it is firm (SegmentationTrainer)
        lower = trainer.trained_score_ < trainer.start_score_
        kept = (
            f"the starting network (the fine-tuned one is not "
            f"{'firmly better' if lower else 'better'} on validation)"
        )
    minutes = trainer.validation_duration_ / 60
    if trainer.early_stopping_:
        stopping = f"on ({minutes:.1f} min of validation audio)"
    elif trainer.start_score_ is None:
        stopping = "off: no validation files, every epoch run"
    elif trainer.validation_duration_ >= EARLY_STOPPING_MIN_VALIDATION:
        stopping = "off, as asked: every epoch run"
    else:
        stopping = (
            f"off: {minutes:.1f} min of validation audio (< "
            f"{EARLY_STOPPING_MIN_VALIDATION / 60:g} min), every epoch run"
        )
    rows = [
        ("epochs", f"{len(trainer.history_)} / {trainer.max_epochs}"),
        ("steps", str(trainer.n_steps_)),
        ("validation error", validation),
        *comparison,
        ("kept", kept),
        ("early stopping", stopping),
        ("stopped", trainer.stopped_),
        (
            "time",
            f"{trainer.training_time_:.1f} s "
            f"({trainer.chunks_per_second_:.1f} chunks/s)",
        ),
        ("output", out),
    ]
    width = max(len(name) for name, _ in rows) + 2
    return "\n".join(f"{name:<{width}}{value}" for name, value in rows)


def _load(folder: str, option: str) -> tuple[list, list]:
    from ..exceptions import FileError
    from ..io import load_folder

    try:
        return load_folder(folder)
    except FileError as e:
        raise UsageError(f"{option}{e}") from None


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[list[int]]:
    """Hold Ctrl-C back while the network is written; yield the signals caught.

    The save takes a second: a second Ctrl-C then (the first one stopped the
    training) would otherwise leave no network at all. Only the main thread can
    set a signal handler; elsewhere nothing is deferred.
    """
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    caught: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        if not caught:
            print(
                "skseg finetune: saving the network; it is written whole first",
                file=sys.stderr,
            )
        caught.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield caught
    finally:
        signal.signal(signal.SIGINT, previous)


def _run(args: argparse.Namespace) -> int:
    """Run ``skseg finetune``; return its exit status."""
    import torch

    from ..exceptions import CheckpointError, FileError, WeightsUnavailableError
    from ..io import annotation_files
    from ..serialization import CONFIG_NAME, WEIGHTS_NAME, is_saved_network
    from ..training import SegmentationTrainer, TrainingError

    out = args.out
    # refused before anything is read or trained: nothing is written
    if os.path.lexists(out):
        if not args.force:
            raise UsageError(
                f"--out {out}: already exists (pass --force to replace it)"
            )
        if not os.path.isdir(out):
            raise UsageError(f"--out {out}: is a file, not a network folder")
        if not is_saved_network(out):
            # --force replaces a network, never a folder of something else
            raise UsageError(
                f"--out {out}: exists and is not a saved network: refusing to "
                f"replace it, even with --force"
            )
    X, y = _load(args.data_dir, "")
    validation = (
        _load(args.validation, "--validation ") if args.validation is not None else None
    )
    inputs = [args.segmentation]
    for folder, files in (
        (args.data_dir, X),
        (args.validation, (validation or [[]])[0]),
    ):
        if folder is not None:
            inputs += [file["audio"] for file in files]
            inputs += itertools.chain(*annotation_files(folder))
    refuse_overwriting(
        [os.path.join(out, name) for name in (WEIGHTS_NAME, CONFIG_NAME)], inputs
    )
    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        raise UsageError(f"--device {args.device}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device}: no CUDA device is available")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    trainer = SegmentationTrainer(
        args.segmentation,
        max_epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        batch_size=args.batch_size,
        lr=args.lr,
        freeze=args.freeze,
        l2_sp=args.l2_sp,
        mix_probability=args.mix_probability,
        validation_fraction=0.0 if validation is not None else args.validation_fraction,
        patience=args.patience,
        early_stopping={"auto": "auto", "on": True, "off": False}[args.early_stopping],
        keep_start_if_worse=args.if_worse == "keep-start",
        random_state=args.seed,
        device=args.device,
    )

    with progress(args, "finetune", "steps") as bar:

        def callback(p: Any) -> None:
            val = (
                ""
                if p.validation is None
                else f", validation {100 * p.validation:.2f} %"
            )
            bar.set_description_str(
                f"finetune epoch {p.epoch}/{p.max_epochs} loss {p.loss:.4f}{val}",
                refresh=False,
            )
            if bar.total != p.total_steps:
                bar.total = p.total_steps
            bar.update(p.step - bar.n)
            if p.event == "epoch" and not bar.disable:
                bar.write(
                    f"epoch {p.epoch}/{p.max_epochs}: train loss {p.loss:.4f}{val}; "
                    f"{p.elapsed:.0f} s, at most {p.time_left:.0f} s left"
                )

        status, failure = 0, None
        try:
            with warnings.catch_warnings():
                # files skipped (no region as long as a chunk): one line each
                warnings.showwarning = lambda message, *_, **__: bar.write(
                    f"skseg finetune: {message}", file=sys.stderr
                )
                trainer.fit(X, y, validation=validation, callback=callback)
        except KeyboardInterrupt:
            status, failure = 130, "interrupted"
        except TrainingError as e:
            status, failure = 1, str(e)
        except (CheckpointError, WeightsUnavailableError) as e:
            raise UsageError(f"--segmentation {args.segmentation}: {e}") from None
        except FileError as e:
            raise UsageError(str(e)) from None
        except ValueError as e:
            # no file with an annotated region as long as a chunk, or too few
            # files for --validation-fraction
            where = args.data_dir
            if args.validation is not None:
                where += f" (--validation {args.validation})"
            # the trainer's advice, in this command's words
            message = (
                str(e)
                .replace("validation=(X_val, y_val)", "--validation DIR")
                .replace("validation_fraction=", "--validation-fraction ")
            )
            raise UsageError(f"{where}: {message}") from None

    if not hasattr(trainer, "model_"):  # interrupted before training began
        print(
            "skseg finetune: interrupted before training; nothing written",
            file=sys.stderr,
        )
        return status
    try:
        with _interrupts_deferred() as interrupted:
            trainer.save(out, overwrite=args.force)
    except FileError as e:
        raise UsageError(f"--out {e}") from None
    if interrupted and status == 0:
        status = 130  # Ctrl-C during the save of a finished training
    print(summary_table(trainer, out))
    if status == 130:
        print(
            f"skseg finetune: interrupted after {trainer.n_steps_} step(s); the best "
            f"weights so far (epoch {trainer.best_epoch_}) are saved to {out}",
            file=sys.stderr,
        )
    elif status == 1:
        print(
            f"skseg finetune: training stopped: {failure}; the best weights so far "
            f"(epoch {trainer.best_epoch_}) are saved to {out}",
            file=sys.stderr,
        )
    else:
        print(f"skseg finetune: {trainer.decision_}", file=sys.stderr)
        print(
            f"skseg finetune: {len(trainer.train_files_)} training and "
            f"{len(trainer.validation_files_)} validation file(s); saved to {out} "
            f"(use it as --segmentation {out})",
            file=sys.stderr,
        )
    return status
