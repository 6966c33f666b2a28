"""What the ``skseg`` commands share: errors, flags, estimators, inputs, outputs.

Each piece is written once here: the usage error every command reports with exit
code 2, the progress display (tqdm), the model and hyper-parameter flags (from
:mod:`skseg.pipelines.parameters`, so every runtime parameter has one), the
estimator a command line describes (options, a preset, or a tuned joblib file
loaded and checked by :func:`skseg.pipelines.load_pipeline`), reading RTTM/UEM
arguments, attaching a baseline diarization to files, and writing RTTM output
with :mod:`skseg.io`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

__all__ = [
    "UsageError",
    "add_model_flags",
    "add_progress_flags",
    "attach_baseline",
    "build_estimator",
    "check_ready",
    "positive_float",
    "positive_int",
    "progress",
    "read_annotations",
    "refuse_overwriting",
    "RTTMOutput",
    "set_progress",
]


class UsageError(Exception):
    """An argument is unusable; reported like argparse's errors (exit code 2).

    Examples
    --------
    >>> str(UsageError("--grid g.json: not JSON"))
    '--grid g.json: not JSON'
    """


# -- argument types -------------------------------------------------------------------
def positive_int(text: str) -> int:
    """Parse an integer >= 1, or -1 (all cores).

    Examples
    --------
    >>> positive_int("4"), positive_int("-1")
    (4, -1)
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1 and value != -1:
        raise argparse.ArgumentTypeError(
            f"must be >= 1 (or -1: all cores), got {value}"
        )
    return value


def positive_float(text: str) -> float:
    """Parse a finite positive number.

    Examples
    --------
    >>> positive_float("0.5")
    0.5
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


# -- progress -------------------------------------------------------------------------
def add_progress_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--quiet`` and ``--progress``.

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_progress_flags(parser)
    >>> parser.parse_args(["-q"]).quiet
    True
    """
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress indicator"
    )
    parser.add_argument(
        "--progress",
        action="store_true",
        help="show progress even when stderr is not a terminal",
    )


def progress(
    args: argparse.Namespace,
    what: str,
    unit: str,
    total: int | None = None,
    stream: IO[str] | None = None,
) -> tqdm:
    r"""Return the progress display of a command: ``what: done/total unit [times]``.

    Shown on a terminal, or anywhere with ``--progress`` (then refreshed every
    5 s at most); never with ``--quiet``. ``bar.write(text)`` prints a line
    without garbling it.

    Parameters
    ----------
    args : argparse.Namespace
        With ``quiet`` and ``progress``.
    what, unit : str
        The line's prefix, and what is counted.
    total : int, optional
    stream : text file, optional
        Defaults to ``sys.stderr``.

    Returns
    -------
    bar : tqdm.tqdm

    Examples
    --------
    >>> import io
    >>> log = io.StringIO()
    >>> args = argparse.Namespace(quiet=False, progress=True)
    >>> with progress(args, "vad", "files", 2, stream=log) as bar:
    ...     bar.update(2)
    >>> log.getvalue().split("\r")[-1].split(" [")[0]
    'vad: 2/2 files'
    """
    stream = stream if stream is not None else sys.stderr
    tty = _isatty(stream)
    enabled = not args.quiet and (args.progress or tty)
    return tqdm(
        total=total,
        desc=what,
        unit=unit,
        file=stream,
        disable=not enabled,
        # total "?" until known (a file's chunks are counted once it is opened)
        bar_format="{desc}: {n_fmt}/{total_fmt} {unit} [{elapsed}<{remaining}]",
        mininterval=0.1 if tty else 5.0,
        dynamic_ncols=tty,
    )


def set_progress(bar: tqdm) -> Callable[[int, int], None]:
    """Return a ``hook(done, total)`` that moves ``bar`` to ``done`` of ``total``.

    Examples
    --------
    >>> bar = tqdm(disable=True)
    >>> set_progress(bar)(3, 5)
    """

    def hook(done: int, total: int | None = None) -> None:
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    return hook


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


# -- estimators -----------------------------------------------------------------------
def add_model_flags(
    parser: argparse.ArgumentParser, hyper_parameters: bool = True
) -> None:
    """Add a flag per runtime parameter, and the hyper-parameter flags.

    Every runtime parameter of :mod:`skseg.pipelines.parameters` gets a flag
    (``--mode`` included); with ``hyper_parameters``, so do the four
    hyper-parameters, ``--preset`` and ``--pipeline`` (a tuned joblib file).

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_model_flags(parser)
    >>> args = parser.parse_args(["--mode", "fast", "--onset", "0.6"])
    >>> args.mode, args.onset, args.device
    ('fast', 0.6, None)
    """
    from ..pipelines.parameters import HYPER_PARAMETERS, PARAMETERS, RUNTIME_PARAMETERS
    from ..pipelines.presets import DATASETS

    group = parser.add_argument_group("model")
    types = {"step": positive_float, "batch_size": positive_int}
    for name in RUNTIME_PARAMETERS:
        p = PARAMETERS[name]
        group.add_argument(
            p.flag,
            dest=name,
            type=types.get(name),
            choices=p.choices or None,
            metavar=p.metavar or None,
            help=p.help,
        )
    if not hyper_parameters:
        return
    group = parser.add_argument_group(
        "hyper-parameters",
        "a tuned estimator (--pipeline), a preset, or values (defaults: the "
        "pipeline's); values given override the preset's",
    )
    group.add_argument(
        "--pipeline",
        metavar="JOBLIB",
        help="tuned estimator from `skseg tune`; a joblib file is a pickle, loading "
        "it runs its code: name only files you trust",
    )
    group.add_argument(
        "--preset",
        choices=sorted(DATASETS),
        help="the values pyannote/segmentation's model card publishes for a "
        "dataset (vad, osd, resegment)",
    )
    for name in HYPER_PARAMETERS:
        p = PARAMETERS[name]
        group.add_argument(
            p.flag, type=float, dest=name, metavar=p.metavar, help=p.help
        )


def build_estimator(
    args: argparse.Namespace, task: str | None, default_cache: Any = False
) -> Any:
    """Return the estimator the arguments describe: a tuned joblib, or options.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed with :func:`add_model_flags`.
    task : str or None
        A key of :data:`skseg.pipelines.PIPELINES`; None: whatever ``--pipeline``
        holds (VAD without one).
    default_cache : bool or str, default=False
        The ``cache`` parameter when ``--cache`` is not given.

    Returns
    -------
    estimator : BaseSegmentationEstimator

    Raises
    ------
    UsageError
        On contradicting flags, or a joblib file that is missing, unreadable or
        of another pipeline.

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_model_flags(parser)
    >>> args = parser.parse_args(["--preset", "ami", "--mode", "fast"])
    >>> build_estimator(args, "vad")
    VADEstimator(cache=False, min_duration_off=0.037, min_duration_on=0.181,
                 mode='fast', offset=0.577, onset=0.684)
    """
    from ..exceptions import FileError
    from ..pipelines import PIPELINES, load_pipeline
    from ..pipelines.parameters import HYPER_PARAMETERS, RUNTIME_PARAMETERS
    from ..pipelines.presets import preset

    def given(names: Iterable[str]) -> dict:
        return {
            name: getattr(args, name)
            for name in names
            if getattr(args, name, None) is not None
        }

    values = given(HYPER_PARAMETERS)
    runtime = given(RUNTIME_PARAMETERS)
    if getattr(args, "pipeline", None) is not None:
        chosen = [p.replace("_", "-") for p in values]
        if getattr(args, "preset", None) is not None:
            chosen.append("preset")
        if chosen:
            flags = ", ".join("--" + name for name in chosen)
            raise UsageError(
                f"--pipeline carries tuned hyper-parameters: drop {flags}, or drop "
                "--pipeline to set them by hand"
            )
        try:
            estimator = load_pipeline(
                args.pipeline, PIPELINES[task] if task is not None else None
            )
        except FileError as e:
            hint = (
                f" (tune one with `skseg tune DATA --pipeline {task}`)"
                if task is not None
                else ""
            )
            raise UsageError(f"--pipeline {e}{hint}") from None
    else:
        task = task or "vad"
        if getattr(args, "preset", None) is not None:
            try:
                values = {**preset(task, args.preset), **values}
            except ValueError as e:
                raise UsageError(f"--preset {args.preset}: {e}") from None
        estimator = PIPELINES[task](**values)
    # runtime options never change what a tuned estimator decides, except
    # --segmentation, --step and --mode, which the user asked for explicitly
    runtime.setdefault("cache", default_cache)
    if runtime["cache"] is None:
        runtime["cache"] = default_cache
    estimator.set_params(**runtime)
    return estimator


def check_ready(estimator: Any) -> None:
    """Fail once, as a usage error, on bad parameters or unusable weights.

    What every prediction does first (:meth:`score_source`), done before any
    file is read, so a bad ``--device`` of a tuned joblib file is one usage error
    rather than one failure per file.

    Examples
    --------
    >>> from skseg import VADEstimator
    >>> check_ready(VADEstimator(batch_size=0))
    Traceback (most recent call last):
    ...
    skseg.cli.common.UsageError: The 'batch_size' parameter of VADEstimator must be ...
    """
    from sklearn.utils._param_validation import InvalidParameterError

    from ..exceptions import CheckpointError, WeightsUnavailableError

    try:
        estimator.score_source()
    except (InvalidParameterError, CheckpointError, WeightsUnavailableError) as e:
        raise UsageError(str(e)) from None


# -- inputs ---------------------------------------------------------------------------
def read_annotations(path: str, option: str) -> dict:
    """Read an RTTM (or, for ``--uem``, UEM) argument; a bad file is a usage error.

    Examples
    --------
    >>> read_annotations("/no/such.rttm", "--reference")
    Traceback (most recent call last):
    ...
    skseg.cli.common.UsageError: --reference /no/such.rttm: no such file
    """
    from ..exceptions import FileError
    from ..io import read_rttm, read_uem

    try:
        return read_uem(path) if option == "--uem" else read_rttm(path)
    except FileError as e:
        raise UsageError(f"{option} {e}") from None


def attach_baseline(
    files: list[dict], path: str, key: str, option: str = "--baseline"
) -> list[str]:
    """Put each file's baseline diarization under ``file[key]``, matched by uri.

    Parameters
    ----------
    files : list of dict
        Validated files (modified in place).
    path : str
        The RTTM file.
    key : str
        The estimator's ``baseline`` key.
    option : str, default="--baseline"
        How the argument is named in messages.

    Returns
    -------
    missing : list of str
        Uris without turns in the RTTM (their files get no baseline).

    Examples
    --------
    >>> attach_baseline([], "/no/such.rttm", "baseline")
    Traceback (most recent call last):
    ...
    skseg.cli.common.UsageError: --baseline /no/such.rttm: no such file
    """
    baselines = read_annotations(path, option)
    missing = []
    for file in files:
        if file["uri"] in baselines:
            file[key] = baselines[file["uri"]]
        else:
            missing.append(file["uri"])
    return missing


# -- outputs --------------------------------------------------------------------------
class RTTMOutput:
    """Writes each file's RTTM as soon as it is done: nothing is lost on a crash.

    A write that fails (a full disk, ``/dev/full``, an I/O error) fails the file
    whose turns it was writing, with a :class:`~skseg.exceptions.FileError` naming
    the output and the system's error: the batch goes on, and what was written
    before stays. The one ``--rttm`` file is written without a buffer of its
    own, so no failed text is written again later, and a failed write is cut
    back to the last whole line where the output allows it.

    Parameters
    ----------
    rttm : str, optional
        One file for every uri (``"-"`` or None: standard output).
    out : str, optional
        A folder: one ``<uri>.rttm`` per file, each replaced atomically.

    Attributes
    ----------
    close_error : str or None
        Set by leaving the ``with`` block when closing ``--rttm`` failed: the
        line to report (the caller's exit status is then 1).

    Examples
    --------
    >>> import tempfile
    >>> from pyannote.core import Annotation, Segment
    >>> speech = Annotation(uri="a")
    >>> speech[Segment(0, 1)] = "SPEECH"
    >>> folder = tempfile.mkdtemp()
    >>> with RTTMOutput(None, folder) as output:
    ...     output.write(speech)
    >>> os.listdir(folder)
    ['a.rttm']
    """

    def __init__(self, rttm: str | None, out: str | None):
        self.rttm, self.out = rttm, out
        self.handle: IO | None = None
        self.close_error: str | None = None

    def __enter__(self) -> RTTMOutput:
        if self.out is not None:
            try:
                Path(self.out).mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UsageError(f"--out {self.out}: {e.strerror or e}") from None
        elif self.rttm is not None and self.rttm != "-":
            try:
                # unbuffered: a failed write is not retried by a later flush or
                # by close, and nothing lies in a buffer when the process stops
                self.handle = open(self.rttm, "wb", buffering=0)  # noqa: SIM115 -- closed in __exit__
            except OSError as e:
                raise UsageError(f"--rttm {self.rttm}: {e.strerror or e}") from None
        else:
            self.handle = sys.stdout
        return self

    def __exit__(self, *exc) -> None:
        if self.handle is None or self.handle is sys.stdout:
            return
        try:
            self.handle.close()
        except OSError as e:  # a delayed write error (NFS, a full disk)
            self.close_error = f"--rttm {self.rttm}: closing failed: {e.strerror or e}"

    def where(self) -> str:
        """Where the output goes, for messages."""
        if self.out is not None:
            return f"{self.out}{os.sep}<uri>.rttm"
        return self.rttm if self.rttm not in (None, "-") else "standard output"

    def write(self, annotation: Any) -> None:
        """Write one file's annotation (:func:`skseg.io.write_rttm`).

        Raises
        ------
        FileError
            Naming the output, if the annotation cannot be written as RTTM or
            the write fails.
        """
        import io

        from ..exceptions import FileError
        from ..io import write_rttm

        if self.handle is None:
            # one file per uri, replaced atomically (and fsynced): never a partial RTTM
            write_rttm(annotation, Path(self.out) / f"{annotation.uri}.rttm")
            return
        text = io.StringIO()
        write_rttm(annotation, text)  # every value checked before the output is touched
        try:
            if self.handle is sys.stdout:
                self.handle.write(text.getvalue())
                self.handle.flush()
            else:
                self._write_all(text.getvalue().encode())
        except OSError as e:
            raise FileError(self.where(), e.strerror or str(e)) from None

    def _write_all(self, data: bytes) -> None:
        handle = self.handle
        assert handle is not None
        start = handle.tell() if handle.seekable() else None
        try:
            view = memoryview(data)
            while view:
                view = view[handle.write(view) :]
        except OSError:
            if start is not None:
                # a half-written line would read as another turn, or not at all
                with contextlib.suppress(OSError):
                    handle.truncate(start)
                    handle.seek(start)
            raise

    def check_not_inputs(self, files: list[dict], extra: Sequence[str] = ()) -> None:
        """Refuse, before anything is written, an output that is also an input.

        Parameters
        ----------
        files : list of dict
            The audio files about to be processed (``"audio"`` and ``"uri"``).
        extra : sequence of str
            Other inputs (a baseline RTTM, say).

        Raises
        ------
        UsageError
            When an output path names (or links to) one of the inputs.

        Examples
        --------
        >>> import tempfile
        >>> wav = os.path.join(tempfile.mkdtemp(), "keep.wav")
        >>> open(wav, "wb").close()
        >>> RTTMOutput(wav, None).check_not_inputs([{"audio": wav, "uri": "keep"}])
        Traceback (most recent call last):
          ...
        skseg.cli.common.UsageError: ...keep.wav...; write the results elsewhere
        """
        outputs = [self.rttm] if self.rttm not in (None, "-") else []
        if self.out is not None:
            outputs += [Path(self.out) / f"{file['uri']}.rttm" for file in files]
        refuse_overwriting(outputs, [file["audio"] for file in files] + list(extra))


def refuse_overwriting(
    outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike]
) -> None:
    """Refuse outputs that are inputs, as a usage error.

    :func:`skseg.io.check_not_inputs`, whose refusal becomes a usage error.
    Every command that writes calls it before any work, with every file it
    reads: the audio, the list files and folders named on the command line,
    RTTM and UEM files, a grid, a baseline.

    Raises
    ------
    UsageError
        Naming the output, when it is (or links to) one of the inputs.

    Examples
    --------
    >>> import tempfile
    >>> listing = os.path.join(tempfile.mkdtemp(), "files.txt")
    >>> open(listing, "w").close()
    >>> refuse_overwriting([listing], [listing])
    Traceback (most recent call last):
      ...
    skseg.cli.common.UsageError: ...files.txt: is also an input; ...elsewhere
    """
    from ..exceptions import FileError
    from ..io import check_not_inputs

    try:
        check_not_inputs(outputs, inputs)
    except FileError as e:
        raise UsageError(f"{e}; write the results elsewhere") from None
