"""The ``skseg`` command: segment, tune, evaluate and plot from a shell.

``skseg vad|osd|segment|resegment`` write RTTM for many audio files, one file's
result as soon as it is done; ``skseg tune`` grid-searches a pipeline on a folder of
annotated audio and saves the tuned estimator; ``skseg evaluate`` scores an RTTM
against a reference; ``skseg plot`` draws one file; ``skseg download-weights``
fetches and verifies the pretrained weights; ``skseg demo`` runs VAD and OSD on
pyannote's sample.

Exit codes: 0 success; 1 some files failed (each is named on stderr with its
problem, and the others' results are written); 2 usage error (bad arguments, or an
argument naming something unusable: nothing was processed).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = ["main"]

#: subcommand -> estimator class name (in skseg.pipelines)
TASKS = {
    "vad": "VADEstimator",
    "osd": "OSDEstimator",
    "segment": "SegmentationEstimator",
    "resegment": "ResegmentationEstimator",
}
_THRESHOLDS = ("onset", "offset", "min_duration_on", "min_duration_off")
_RUNTIME = ("step", "batch_size", "device")


class UsageError(Exception):
    """An argument is unusable; reported like argparse's errors (exit code 2)."""


# -- progress -------------------------------------------------------------------------
def _clock(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return (f"{hours}:" if hours else "") + f"{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    """A one-line progress indicator on stderr: ``what: done/total unit, times``.

    On a terminal the line is redrawn in place, and refreshed every second so a
    long item still shows the time going by; on other streams (``--progress`` into
    a log) a line is printed when the count changes, at most every 5 seconds, and
    at the end. Disabled, it prints nothing but :meth:`message`'s lines.

    Parameters
    ----------
    what : str
        What is being done (the line's prefix).
    unit : str
        What is counted.
    enabled : bool
        Whether the indicator is shown.
    total : int, optional
        How many items there are, when known.
    stream : text file, optional
        Defaults to ``sys.stderr``.
    """

    def __init__(
        self,
        what: str,
        unit: str,
        enabled: bool,
        total: int | None = None,
        stream: IO[str] | None = None,
    ):
        self.what, self.unit, self.enabled = what, unit, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = _isatty(self.stream)
        self.done, self.total = 0, total
        self.start = time.monotonic()
        self._printed: tuple[int, float] | None = None  # (done, when) of last line
        self._on_screen = False  # a tty line waiting to be redrawn or ended
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> Progress:
        if self.enabled:
            with self._lock:
                self._draw()
            if self.tty:
                self._ticker = threading.Thread(target=self._tick, daemon=True)
                self._ticker.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self.enabled:
            with self._lock:
                self._draw(final=True)

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                self._draw()

    def _line(self) -> str:
        elapsed = time.monotonic() - self.start
        count = f"{self.done}/{self.total}" if self.total else f"{self.done}"
        line = f"{self.what}: {count} {self.unit}, {_clock(elapsed)}"
        if self.total and 0 < self.done < self.total:
            left = elapsed / self.done * (self.total - self.done)
            line += f", ~{_clock(left)} left"
        return line

    def _draw(self, final: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r\x1b[K" + self._line() + ("\n" if final else ""))
            self._on_screen = not final
        else:
            last = self._printed
            changed = last is None or last[0] != self.done
            if not changed or (not final and last and now - last[1] < 5.0):
                return
            self.stream.write(self._line() + "\n")
        self._printed = (self.done, now)
        self.stream.flush()

    def update(self, done: int, total: int | None = None) -> None:
        """Record ``done`` of ``total`` items and redraw."""
        if not self.enabled:
            return
        with self._lock:
            self.done = done
            if total is not None:
                self.total = total
            self._draw()

    def message(self, text: str) -> None:
        """Print a line on the stream without garbling the progress line."""
        with self._lock:
            if self._on_screen:
                self.stream.write("\r\x1b[K")
            self.stream.write(text + "\n")
            if self._on_screen:
                self.stream.write(self._line())
            self.stream.flush()


def _progress(
    args: argparse.Namespace, what: str, unit: str, total: int | None = None
) -> Progress:
    enabled = not args.quiet and (args.progress or _isatty(sys.stderr))
    return Progress(what, unit, enabled, total)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# -- estimators -----------------------------------------------------------------------
def _estimator_class(task: str) -> type:
    from . import pipelines

    return getattr(pipelines, TASKS[task])


def _load_joblib(path: str) -> Any:
    import joblib

    if not Path(path).is_file():
        raise UsageError(f"--pipeline {path}: no such file")
    try:
        # joblib files are pickles: only load files you trust (see docs/cli.md)
        return joblib.load(path)
    except Exception as e:  # noqa: BLE001 -- any unpickling problem is a bad file
        raise UsageError(
            f"--pipeline {path}: not a joblib file of a skseg estimator "
            f"({type(e).__name__}: {e})"
        ) from None


def _build_estimator(args: argparse.Namespace, task: str | None) -> Any:
    """Return the estimator the arguments describe: a tuned joblib, or options."""
    from .pipelines import BaseSegmentationEstimator

    thresholds = {
        name: getattr(args, name)
        for name in _THRESHOLDS
        if getattr(args, name) is not None
    }
    runtime = {
        name: getattr(args, name)
        for name in _RUNTIME
        if getattr(args, name) is not None
    }
    if args.segmentation is not None:
        runtime["segmentation"] = args.segmentation
    if args.pipeline is not None:
        if thresholds:
            given = ", ".join("--" + name.replace("_", "-") for name in thresholds)
            raise UsageError(
                f"--pipeline carries tuned thresholds: drop {given}, or drop "
                "--pipeline to set them by hand"
            )
        estimator = _load_joblib(args.pipeline)
        if not isinstance(estimator, BaseSegmentationEstimator):
            raise UsageError(
                f"--pipeline {args.pipeline} holds a {type(estimator).__name__}, not "
                "a skseg estimator (write one with `skseg tune`)"
            )
        if task is not None and not isinstance(estimator, _estimator_class(task)):
            holds = type(estimator).__name__
            wanted = TASKS[task]
            other = {v: k for k, v in TASKS.items()}.get(holds, "?")
            raise UsageError(
                f"--pipeline {args.pipeline} holds a {holds} (for `skseg {other}`), "
                f"but `skseg {task}` needs a {wanted} class estimator (tuned with "
                f"`skseg tune DATA --pipeline {task}`)"
            )
    else:
        estimator = _estimator_class(task or "vad")(**thresholds)
    # runtime options never change what a tuned estimator decides, except
    # --segmentation and --step, which the user asked for explicitly
    estimator.set_params(**runtime)
    if hasattr(args, "cache"):
        estimator.set_params(cache=args.cache if args.cache else args.default_cache)
    return estimator


def _check_ready(estimator: Any) -> None:
    """Fail once, as a usage error, on bad parameters or unusable weights."""
    from sklearn.utils._param_validation import InvalidParameterError

    from .exceptions import CheckpointError, WeightsUnavailableError

    try:
        # what predict_many and predict do first: bind (or check) the network
        estimator._model()
    except (InvalidParameterError, CheckpointError, WeightsUnavailableError) as e:
        raise UsageError(str(e)) from None


def _reference_for(path: str, uri: str, option: str) -> Any:
    from .exceptions import FileError
    from .io import read_rttm

    try:
        annotations = read_rttm(path)
    except FileError as e:
        raise UsageError(f"{option} {e}") from None
    if uri not in annotations:
        known = ", ".join(sorted(annotations)) or "none"
        raise UsageError(f"{option} {path}: no turns for uri {uri!r} (uris: {known})")
    return annotations[uri]


# -- vad / osd / segment / resegment --------------------------------------------------
class _RTTMWriter:
    """Writes each file's RTTM as soon as it is done: nothing is lost on a crash."""

    def __init__(self, rttm: str | None, out: str | None):
        self.rttm, self.out = rttm, out
        self.handle: IO[str] | None = None

    def __enter__(self) -> _RTTMWriter:
        if self.out is not None:
            try:
                Path(self.out).mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UsageError(f"--out {self.out}: {e.strerror or e}") from None
        elif self.rttm is not None and self.rttm != "-":
            try:
                self.handle = open(self.rttm, "w")  # noqa: SIM115 -- closed in __exit__
            except OSError as e:
                raise UsageError(f"--rttm {self.rttm}: {e.strerror or e}") from None
        else:
            self.handle = sys.stdout
        return self

    def __exit__(self, *exc) -> None:
        if self.handle is not None and self.handle is not sys.stdout:
            self.handle.close()

    def where(self) -> str:
        if self.out is not None:
            return f"{self.out}{os.sep}<uri>.rttm"
        return self.rttm if self.rttm not in (None, "-") else "standard output"

    def write(self, annotation: Any) -> None:
        from .io import write_rttm

        if self.handle is not None:
            write_rttm(annotation, self.handle)
            self.handle.flush()
            return
        # one file per uri, replaced atomically (and fsynced): never a partial RTTM
        write_rttm(annotation, Path(self.out) / f"{annotation.uri}.rttm")


def _files(args: argparse.Namespace, estimator: Any) -> tuple[list[dict], list[str]]:
    """Files to process, and problems of files that cannot even start."""
    from .audio import validate_file
    from .exceptions import FileError
    from .io import expand_inputs, read_rttm

    try:
        paths = expand_inputs(args.inputs)
    except FileError as e:
        raise UsageError(str(e)) from None
    if not paths:
        raise UsageError(
            f"no audio files in {' '.join(args.inputs)} (folders are not searched "
            "recursively)"
        )
    files, problems = [], []
    for path in paths:
        try:
            files.append(validate_file(path))
        except FileError as e:  # a bad input fails alone, like any other file
            problems.append(str(e))
    uris: dict[str, list[str]] = {}
    for file in files:
        uris.setdefault(file["uri"], []).append(file["audio"])
    clashes = {uri: p for uri, p in uris.items() if len(p) > 1}
    if clashes:
        uri, clash = next(iter(clashes.items()))
        raise UsageError(
            f"{len(clashes)} uri(s) name several inputs, e.g. {uri!r}: "
            f"{', '.join(clash)}; RTTM identifies files by uri (the file name "
            "without extension), so rename them or process them separately"
        )
    if args.command == "resegment":
        try:
            baselines = read_rttm(args.baseline)
        except FileError as e:
            raise UsageError(f"--baseline {e}") from None
        key = estimator.baseline
        kept = []
        for file in files:
            if file["uri"] in baselines:
                file[key] = baselines[file["uri"]]
                kept.append(file)
            else:
                problems.append(
                    f"{file['audio']}: no turns for uri {file['uri']!r} in the "
                    f"baseline {args.baseline}"
                )
        files = kept
    return files, problems


def _check_not_inputs(args: argparse.Namespace, files: list[dict]) -> None:
    """Refuse, before anything is written, an output that is also an input."""
    from .exceptions import FileError
    from .io import check_not_inputs

    outputs = [args.rttm] if args.rttm not in (None, "-") else []
    if args.out is not None:
        outputs += [Path(args.out) / f"{file['uri']}.rttm" for file in files]
    inputs = [file["audio"] for file in files]
    if getattr(args, "baseline", None):
        inputs.append(args.baseline)
    try:
        check_not_inputs(outputs, inputs)
    except FileError as e:
        raise UsageError(f"{e}; write the results elsewhere") from None


def _predict(args: argparse.Namespace) -> int:
    from .batch import predict_many
    from .inference import chunk_progress

    name = f"skseg {args.command}"
    estimator = _build_estimator(args, args.command)
    files, problems = _files(args, estimator)
    _check_not_inputs(args, files)
    _check_ready(estimator)
    total = len(files) + len(problems)
    # one file (a long meeting, typically): count its chunks, not the one file
    by_chunk = len(files) == 1 and (args.jobs or 1) == 1
    with (
        _RTTMWriter(args.rttm, args.out) as writer,
        _progress(
            args,
            args.command,
            "chunks" if by_chunk else "files",
            None if by_chunk else len(files),
        ) as progress,
        chunk_progress(progress.update) if by_chunk else contextlib.nullcontext(),
    ):
        for problem in problems:
            progress.message(f"{name}: {problem}")
        try:
            result = predict_many(
                estimator,
                files,
                errors="collect",
                n_jobs=args.jobs,
                on_result=lambda index, file, output: writer.write(output),
                on_error=lambda index, file, failure: progress.message(
                    f"{name}: {failure}"
                ),
                progress=None if by_chunk else progress.update,
            )
        except KeyboardInterrupt:
            progress.message(f"{name}: interrupted; finished files are written")
            return 130
    failed = len(result.failures) + len(problems)
    if failed:
        print(
            f"{name}: {failed} of {total} files failed; the results of the other "
            f"{total - failed} are in {writer.where()}",
            file=sys.stderr,
        )
        return 1
    return 0


# -- tune -----------------------------------------------------------------------------
class _CountingScorer:
    """A scorer that reports each (candidate, fold) evaluation to a callback."""

    def __init__(self, scorer: Any, tick: Callable[[], None]):
        self.scorer, self.tick = scorer, tick

    def __call__(self, estimator: Any, X: Any, y: Any = None) -> float:
        score = self.scorer(estimator, X, y)
        self.tick()
        return score

    def __getattr__(self, name: str) -> Any:
        return getattr(self.scorer, name)


def _grid(path: str | None) -> dict | None:
    if path is None:
        return None
    try:
        grid = json.loads(Path(path).read_text())
    except OSError as e:
        raise UsageError(f"--grid {path}: {e.strerror or e}") from None
    except json.JSONDecodeError as e:
        raise UsageError(f"--grid {path}: not JSON ({e})") from None
    if not isinstance(grid, dict) or not grid:
        raise UsageError(
            f"--grid {path}: expected an object of parameter -> list of values, "
            'e.g. {"onset": [0.5, 0.6], "offset": [0.4]}'
        )
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise UsageError(
                f"--grid {path}: {key!r} must map to a non-empty list of values, "
                f"got {values!r}"
            )
    return grid


def _tune(args: argparse.Namespace) -> int:
    import joblib
    from sklearn.model_selection import ParameterGrid

    from .exceptions import FileError
    from .io import load_folder, read_rttm
    from .tuning import _metric_name, default_grid, hyperparameter_table, tune

    args.default_cache = True  # the grid search reuses one network pass per file
    task = args.pipeline_task
    for name in ("pipeline",) + _THRESHOLDS:
        setattr(args, name, None)
    estimator = _build_estimator(args, task)
    grid = _grid(args.grid)
    try:
        X, y = load_folder(args.data_dir)
    except FileError as e:
        raise UsageError(str(e)) from None
    if task == "resegment":
        if args.baseline is None:
            raise UsageError(
                "tuning resegment needs --baseline RTTM: the diarization to refine "
                "for every file of the folder"
            )
        try:
            baselines = read_rttm(args.baseline)
        except FileError as e:
            raise UsageError(f"--baseline {e}") from None
        missing = [file["uri"] for file in X if file["uri"] not in baselines]
        if missing:
            raise UsageError(
                f"--baseline {args.baseline}: no turns for uri(s) {', '.join(missing)}"
            )
        for file in X:
            file[estimator.baseline] = baselines[file["uri"]]
    _check_ready(estimator)
    try:
        n_candidates = len(ParameterGrid(grid or default_grid(estimator)))
    except (TypeError, ValueError) as e:
        raise UsageError(f"--grid {args.grid}: {e}") from None
    unknown = sorted(set(grid or {}) - set(estimator.get_params()))
    if unknown:
        raise UsageError(
            f"--grid {args.grid}: {type(estimator).__name__} has no parameter "
            f"{', '.join(unknown)}"
        )
    splits = (
        min(args.folds, len(X))
        if args.excerpt is None and len(X) >= args.folds
        else args.folds
    )
    dataset = args.dataset or Path(args.data_dir).resolve().name
    out = args.out or f"{task}.joblib"
    scorer = estimator._default_scorer()
    with _progress(args, f"tune {task}", "fits", n_candidates * splits) as progress:
        counter = itertools.count(1)
        # a callback cannot reach joblib workers: with --jobs, time alone is shown
        scoring = (
            scorer
            if args.jobs not in (None, 1)
            else _CountingScorer(scorer, lambda: progress.update(next(counter)))
        )
        result = tune(
            estimator,
            X,
            y,
            param_grid=grid,
            scoring=scoring,
            n_jobs=args.jobs,
            folds=args.folds,
            excerpt=args.excerpt,
        )
    result.metric = _metric_name(scorer)
    try:
        joblib.dump(result.estimator, out)
    except OSError as e:
        raise UsageError(f"--out {out}: {e.strerror or e}") from None
    print(hyperparameter_table([result.table_row(dataset)]))
    print(
        f"skseg tune: {type(estimator).__name__} on {len(X)} file(s) of "
        f"{args.data_dir} ({result.n_files} cross-validated items, "
        f"{result.n_splits} folds, {result.n_candidates} candidates); "
        f"best mean {result.metric} {100 * result.best_score:.2f} %; "
        f"written to {out}",
        file=sys.stderr,
    )
    return 0


# -- evaluate -------------------------------------------------------------------------
#: --metric -> (skseg.metrics scorer name, what it reports)
METRICS = {
    "detection": "neg_speech_detection_error_rate",
    "overlap": "neg_overlap_detection_error_rate",
    "diarization": "neg_diarization_error_rate",
    "greedy-diarization": "neg_greedy_diarization_error_rate",
    "speech-fmeasure": "speech_fmeasure",
    "overlap-fmeasure": "overlap_fmeasure",
}


def _read(path: str, option: str) -> dict:
    from .exceptions import FileError
    from .io import read_rttm, read_uem

    try:
        return read_uem(path) if option == "--uem" else read_rttm(path)
    except FileError as e:
        raise UsageError(f"{option} {e}") from None


def _evaluate(args: argparse.Namespace) -> int:
    import copy
    import warnings

    from pyannote.core import Annotation

    from .metrics import get_scorer

    references = _read(args.reference, "--reference")
    hypotheses = _read(args.hypothesis, "--hypothesis")
    uems = _read(args.uem, "--uem") if args.uem else None
    scorer = get_scorer(METRICS[args.metric])
    for name in ("collar", "skip_overlap"):
        if hasattr(scorer, name):
            setattr(scorer, name, getattr(args, name))
    # the scorer's own metric and reference rule: the numbers skseg tunes with
    metric = scorer._metric()
    uris = sorted(set(references) | set(uems or {}))
    if not uris:
        raise UsageError(f"--reference {args.reference}: no turns at all")
    extra = sorted(set(hypotheses) - set(uris))
    for uri in extra:
        print(
            f"skseg evaluate: uri {uri!r} of {args.hypothesis} has no reference: "
            "not evaluated",
            file=sys.stderr,
        )
    rows = []
    for uri in uris:
        reference = scorer._reference(references.get(uri, Annotation(uri=uri)))
        hypothesis = hypotheses.get(uri)
        if hypothesis is None:
            print(
                f"skseg evaluate: no hypothesis for uri {uri!r}: counted as empty",
                file=sys.stderr,
            )
            hypothesis = Annotation(uri=uri)
        uem = None
        if uems is not None:
            if uri not in uems:
                raise UsageError(f"--uem {args.uem}: no region for uri {uri!r}")
            uem = uems[uri]
        with warnings.catch_warnings():
            # without a UEM pyannote warns on every file; said once below instead
            warnings.simplefilter("ignore")
            components = metric(reference, hypothesis, uem=uem, detailed=True)
        rows.append((uri, components))
    if uems is None:
        print(
            "skseg evaluate: no --uem: each file is evaluated over the extent of its "
            "reference and hypothesis",
            file=sys.stderr,
        )
    total = copy.deepcopy(metric.accumulated_)
    total[metric.name] = abs(metric)
    rows.append(("TOTAL", total))
    print(_table(metric, rows))
    return 0


def _table(metric: Any, rows: list[tuple[str, dict]]) -> str:
    name = metric.name
    components = [c for c in metric.metric_components() if c != name]
    header = ["uri", f"{name} %"] + [f"{c} (s)" for c in components]
    lines = [header]
    for uri, values in rows:
        cells = [uri, f"{100 * values[name]:.2f}"]
        cells += [f"{values.get(c, 0.0):.3f}" for c in components]
        lines.append(cells)
    widths = [max(len(row[k]) for row in lines) for k in range(len(header))]
    out = []
    for i, row in enumerate(lines):
        out.append(
            "  ".join(
                cell.ljust(w) if k == 0 else cell.rjust(w)
                for k, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if i == 0 or i == len(lines) - 2:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


# -- plot -----------------------------------------------------------------------------
def _plot(args: argparse.Namespace) -> int:
    from .audio import validate_file

    try:
        from .plot import plot_file
    except ImportError as e:  # pragma: no cover - only without the extra
        raise UsageError(str(e)) from None
    file = validate_file(args.audio)
    if not Path(file["audio"]).is_file():
        raise UsageError(f"{args.audio}: no such file")
    task = args.task
    estimator = _build_estimator(args, task)
    if task is None:
        task = {v: k for k, v in TASKS.items()}[type(estimator).__name__]
    if task == "resegment":
        if args.baseline is None:
            raise UsageError("plotting resegment needs --baseline RTTM")
        file[estimator.baseline] = _reference_for(
            args.baseline, file["uri"], "--baseline"
        )
    reference = (
        _reference_for(args.reference, file["uri"], "--reference")
        if args.reference
        else None
    )
    _check_ready(estimator)
    try:
        figure = plot_file(file, estimator, reference=reference, width=args.width)
    except ImportError as e:
        raise UsageError(str(e)) from None
    try:
        figure.savefig(args.out, dpi=args.dpi)
    except (OSError, ValueError) as e:
        raise UsageError(f"--out {args.out}: {e}") from None
    print(args.out)
    return 0


# -- download-weights -----------------------------------------------------------------
def _download_weights(args: argparse.Namespace) -> int:
    from .checkpoint import sha256sum
    from .exceptions import CheckpointError, WeightsUnavailableError
    from .hub import MIRRORS, resolve_checkpoint
    from .model import load_model

    try:
        path = resolve_checkpoint(args.checkpoint)
        digest = sha256sum(path)
        model = load_model(path)
    except (WeightsUnavailableError, CheckpointError) as e:
        print(f"skseg download-weights: {e}", file=sys.stderr)
        return 1
    pinned = MIRRORS.get(os.fspath(args.checkpoint))
    if pinned is not None and digest != pinned.sha256:
        print(
            f"skseg download-weights: {path} has sha256 {digest}, not the pinned "
            f"{pinned.sha256}",
            file=sys.stderr,
        )
        return 1
    if not args.quiet:
        verified = (
            f"matches the pinned sha256 of {args.checkpoint}"
            if pinned
            else "no pinned digest for it"
        )
        print(
            f"skseg download-weights: {verified}; loads as {type(model).__name__} "
            f"({model.duration:g} s chunks, {model.sample_rate} Hz)",
            file=sys.stderr,
        )
    # sha256sum's format: `sha256sum -c` can check it later
    print(f"{digest}  {path}")
    return 0


# -- demo -----------------------------------------------------------------------------
def _demo(args: argparse.Namespace) -> int:
    from pyannote.metrics.detection import DetectionErrorRate

    from .binarize import Binarize
    from .datasets import fetch_sample
    from .inference import Inference, aggregate
    from .model import load_model
    from .references import overlap_reference, speech_reference

    sample = fetch_sample()
    model = load_model(args.segmentation)
    chunks = Inference(model)(sample)
    print(f"{sample['audio']}: {chunks.duration:.1f} s, {chunks.data.shape[0]} chunks")
    tasks = [
        ("VAD", "speech", (0.767, 0.377, 0.136, 0.067), speech_reference),
        ("OSD", "overlap", (0.430, 0.320, 0.091, 0.144), overlap_reference),
    ]
    for name, reduction, params, to_reference in tasks:
        onset, offset, on, off = params
        scores = aggregate(chunks, reduction=reduction)
        hypothesis = Binarize(onset, offset, on, off)(scores, uri=sample["uri"])
        reference = to_reference(sample["annotation"])
        metric = DetectionErrorRate(collar=0.0, skip_overlap=False)
        rate = metric(reference, hypothesis, uem=sample["annotated"], detailed=True)
        print(
            f"\n{name} (onset={onset}, offset={offset}, min_duration_on={on}, "
            f"min_duration_off={off})"
        )
        for segment in hypothesis.get_timeline():
            print(f"  {segment.start:8.3f} {segment.end:8.3f}")
        print(
            f"  detection error rate {100 * rate['detection error rate']:.2f} % "
            f"(false alarm {rate['false alarm']:.3f} s, miss {rate['miss']:.3f} s, "
            f"reference {rate['total']:.2f} s)"
        )
    return 0


# -- parser ---------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1 and value != -1:
        raise argparse.ArgumentTypeError(
            f"must be >= 1 (or -1: all cores), got {value}"
        )
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress indicator"
    )
    parser.add_argument(
        "--progress",
        action="store_true",
        help="show progress even when stderr is not a terminal",
    )


def _model_options(parser: argparse.ArgumentParser, thresholds: bool = True) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--segmentation",
        metavar="CKPT",
        help='checkpoint path or identifier (default: "pyannote/segmentation")',
    )
    group.add_argument(
        "--step",
        type=_positive_float,
        metavar="SECONDS",
        help="seconds between chunks (default: 0.5)",
    )
    group.add_argument(
        "--batch-size",
        type=_positive_int,
        metavar="N",
        help="chunks per forward pass (default: 32)",
    )
    group.add_argument(
        "--device", metavar="DEVICE", help="cpu, cuda, cuda:1... (default: cpu)"
    )
    group.add_argument(
        "--cache", metavar="DIR", help="keep chunk scores in DIR for later runs"
    )
    if not thresholds:
        return
    group = parser.add_argument_group(
        "hyper-parameters",
        "a tuned estimator (--pipeline), or thresholds (defaults: the pipeline's)",
    )
    group.add_argument(
        "--pipeline", metavar="JOBLIB", help="tuned estimator from `skseg tune`"
    )
    for name in _THRESHOLDS:
        group.add_argument(
            "--" + name.replace("_", "-"), type=float, dest=name, metavar="X"
        )


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skseg",
        description=__doc__.split("\n\n")[0],
        epilog=(
            "exit codes: 0 success, 1 some files failed (named on stderr; the "
            "others' results are written), 2 usage error"
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    helps = {
        "vad": "voice activity detection: speech regions",
        "osd": "overlapped speech detection: regions where 2+ people speak",
        "segment": "speaker segmentation: speaker turns (labels local to each file)",
        "resegment": "refine a baseline diarization (--baseline RTTM)",
    }
    for task, help in helps.items():
        sub = commands.add_parser(
            task,
            help=help,
            description=f"{help[0].upper()}{help[1:]}; writes RTTM.",
        )
        sub.add_argument(
            "inputs",
            nargs="+",
            metavar="AUDIO_OR_LIST",
            help="audio files, folders of audio files, or list files (.txt/.lst: "
            "one path per line)",
        )
        if task == "resegment":
            sub.add_argument(
                "--baseline",
                required=True,
                metavar="RTTM",
                help="the diarization to refine, matched to files by uri",
            )
        out = sub.add_argument_group("output (default: RTTM on standard output)")
        exclusive = out.add_mutually_exclusive_group()
        exclusive.add_argument(
            "--rttm", metavar="FILE", help="one RTTM file for all uris ('-': stdout)"
        )
        exclusive.add_argument(
            "--out", metavar="DIR", help="one RTTM file per uri, DIR/<uri>.rttm"
        )
        sub.add_argument(
            "-j",
            "--jobs",
            type=_positive_int,
            metavar="N",
            help="files processed in parallel (joblib processes)",
        )
        _model_options(sub)
        _common(sub)
        sub.set_defaults(run=_predict, parser=sub, default_cache=False)

    tune = commands.add_parser(
        "tune",
        help="grid-search a pipeline's thresholds on annotated audio",
        description=(
            "Grid-search onset/offset/min_duration_on/min_duration_off on a folder "
            "of audio files with their RTTM (and UEM) files; write the tuned "
            "estimator (joblib) and print its row of the hyper-parameter table."
        ),
    )
    tune.add_argument("data_dir", metavar="DATA_DIR")
    tune.add_argument(
        "--pipeline",
        dest="pipeline_task",
        required=True,
        choices=sorted(TASKS),
        help="which pipeline to tune",
    )
    tune.add_argument(
        "--grid", metavar="JSON", help="parameter -> list of values (default grid)"
    )
    tune.add_argument(
        "--folds", type=_positive_int, default=3, help="cross-validation folds (3)"
    )
    tune.add_argument(
        "--excerpt",
        type=_positive_float,
        metavar="SECONDS",
        help="cross-validate over excerpts this long (automatic when there are "
        "fewer files than folds)",
    )
    tune.add_argument(
        "--baseline", metavar="RTTM", help="baseline diarization (resegment only)"
    )
    tune.add_argument(
        "--out", metavar="JOBLIB", help="where to write it (default: PIPELINE.joblib)"
    )
    tune.add_argument("--dataset", help="row name (default: the folder's name)")
    tune.add_argument(
        "-j",
        "--jobs",
        type=_positive_int,
        metavar="N",
        help="candidates evaluated in parallel",
    )
    _model_options(tune, thresholds=False)
    _common(tune)
    tune.set_defaults(run=_tune, parser=tune)

    evaluate = commands.add_parser(
        "evaluate",
        help="score a hypothesis RTTM against a reference RTTM",
        description="Score a hypothesis RTTM against a reference RTTM, per file "
        "and in total (pyannote.metrics, as skseg.metrics tunes).",
    )
    evaluate.add_argument("--reference", required=True, metavar="RTTM")
    evaluate.add_argument("--hypothesis", required=True, metavar="RTTM")
    evaluate.add_argument(
        "--uem", metavar="UEM", help="evaluated regions (default: whole extent)"
    )
    evaluate.add_argument(
        "--metric",
        choices=list(METRICS),
        default="detection",
        help="detection: speech detection error rate (vad); overlap: overlap "
        "detection error rate (osd); diarization: DER; greedy-diarization: DER "
        "with greedy mapping (segment, resegment); *-fmeasure (default: detection)",
    )
    evaluate.add_argument(
        "--collar", type=float, default=0.0, help="seconds ignored around boundaries"
    )
    evaluate.add_argument(
        "--skip-overlap", action="store_true", help="do not evaluate overlaps"
    )
    evaluate.set_defaults(run=_evaluate, parser=evaluate)

    plot = commands.add_parser(
        "plot",
        help="draw waveform, scores, thresholds, predictions and reference",
        description="Draw one file: waveform, frame scores with the thresholds, "
        "predicted regions and the reference (needs skseg[plot]).",
    )
    plot.add_argument("audio", metavar="AUDIO")
    plot.add_argument("--out", required=True, metavar="FIG", help="e.g. fig.png")
    plot.add_argument("--task", choices=sorted(TASKS), help="pipeline (default: vad)")
    plot.add_argument("--reference", metavar="RTTM", help="reference speaker turns")
    plot.add_argument(
        "--baseline", metavar="RTTM", help="baseline diarization (resegment only)"
    )
    plot.add_argument("--dpi", type=_positive_int, default=100)
    plot.add_argument("--width", type=_positive_float, default=12.0, help="inches")
    _model_options(plot)
    _common(plot)
    plot.set_defaults(run=_plot, parser=plot, default_cache=True)

    weights = commands.add_parser(
        "download-weights",
        help="fetch, verify and print the pretrained weights' path and sha256",
    )
    weights.add_argument(
        "--checkpoint", default="pyannote/segmentation", metavar="ID_OR_PATH"
    )
    weights.add_argument("-q", "--quiet", action="store_true")
    weights.set_defaults(run=_download_weights, parser=weights)

    demo = commands.add_parser(
        "demo", help="VAD + OSD on pyannote's sample, scored against its reference"
    )
    demo.add_argument("--segmentation", default="pyannote/segmentation")
    demo.set_defaults(run=_demo, parser=demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``skseg`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments; defaults to ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 on success, 1 when some files failed; usage errors exit with 2.

    Examples
    --------
    >>> from skseg.datasets import fetch_sample
    >>> main(["vad", fetch_sample()["audio"], "--onset", "0.5", "--offset", "0.5",
    ...       "--min-duration-on", "0", "--min-duration-off", "0", "--quiet"])
    SPEAKER sample 1 6.713 0.439 <NA> <NA> SPEECH <NA> <NA>
    SPEAKER sample 1 7.574 13.956 <NA> <NA> SPEECH <NA> <NA>
    SPEAKER sample 1 21.749 8.218 <NA> <NA> SPEECH <NA> <NA>
    0
    """
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except UsageError as e:
        args.parser.error(str(e))  # prints usage and exits with status 2
    except BrokenPipeError:  # `skseg vad ... | head`
        sys.stderr.close()
        return 1


if __name__ == "__main__":
    sys.exit(main())
