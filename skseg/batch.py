"""Many files through one estimator, where one bad file fails alone.

:func:`predict_many` runs an estimator's ``predict`` (or ``decision_function``,
``transform``) file by file. With ``errors="collect"`` a file that cannot be
processed becomes a :class:`FileFailure` naming it and the problem, and every other
file's result is kept; callbacks see each result as soon as its file finishes, so a
caller that writes them out (the CLI, the recipes) loses nothing when a later file
fails or the run is interrupted. ``n_jobs`` spreads files over joblib workers, on
any joblib backend (``loky``, threads, or a Dask cluster through
``joblib.parallel_config(backend="dask")``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

from joblib import Parallel, delayed
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
    validate_parameter_constraints,
)

from .audio import check_files, file_label
from .exceptions import FileError

__all__ = ["BatchResult", "FileFailure", "predict_many", "deliver"]

METHODS = ("predict", "decision_function", "transform")

#: joblib's ``n_jobs``: None, a count, or -1 for every CPU (-2 all but one, ...)
N_JOBS = [
    Interval(Integral, 1, None, closed="left"),
    Interval(Integral, None, -1, closed="right"),
    None,
]


@dataclass(frozen=True)
class FileFailure:
    """One file that could not be processed.

    Parameters
    ----------
    index : int
        Position of the file in the batch.
    file : str
        The file's path, else its uri.
    error : BaseException
        What went wrong; a :class:`~skseg.exceptions.FileError` for the expected
        problems (unreadable, corrupt, empty audio...), else the unexpected error.

    Examples
    --------
    >>> from skseg.exceptions import AudioError
    >>> failure = FileFailure(3, "a.wav", AudioError("a.wav", "no such file"))
    >>> str(failure)
    'a.wav: no such file'
    """

    index: int
    file: str
    error: BaseException

    @property
    def problem(self) -> str:
        """The problem, without the file's name."""
        if isinstance(self.error, FileError):
            return self.error.problem
        return f"{type(self.error).__name__}: {self.error}"

    def __str__(self) -> str:
        return f"{self.file}: {self.problem}"


@dataclass
class BatchResult:
    """Outputs of a batch, aligned with its files, and the files that failed.

    Parameters
    ----------
    outputs : list
        One output per file; ``None`` where the file failed.
    failures : list of FileFailure
        The failed files, in batch order.

    Examples
    --------
    >>> result = BatchResult(outputs=["x", None], failures=[
    ...     FileFailure(1, "b.wav", FileError("b.wav", "empty audio"))])
    >>> result.ok, len(result), [str(f) for f in result.failures]
    (False, 2, ['b.wav: empty audio'])
    >>> list(result.succeeded())
    [(0, 'x')]
    """

    outputs: list = field(default_factory=list)
    failures: list[FileFailure] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every file succeeded."""
        return not self.failures

    def __len__(self) -> int:
        return len(self.outputs)

    def succeeded(self) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, output)`` for each file that succeeded."""
        failed = {failure.index for failure in self.failures}
        for index, output in enumerate(self.outputs):
            if index not in failed:
                yield index, output


def _run_one(estimator: Any, method: str, index: int, file: Any) -> tuple:
    # Runs in a worker: never raise, so that one file cannot abort the pool.
    try:
        output = getattr(estimator, method)([file])[0]
    except Exception as error:  # noqa: BLE001 -- reported per file, see module doc
        return index, None, FileFailure(index, file_label(file), error)
    return index, output, None


def _prepare(estimator: Any) -> None:
    # Bad parameters or unavailable weights concern every file: fail once, before
    # the batch starts, rather than once per file.
    prepare = getattr(estimator, "score_source", None)
    if callable(prepare):
        prepare()


def predict_many(
    estimator: Any,
    X: Iterable[Any],
    *,
    method: str = "predict",
    errors: str = "raise",
    n_jobs: int | None = None,
    on_result: Callable[[int, Any, Any], None] | None = None,
    on_error: Callable[[int, Any, FileFailure], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BatchResult:
    """Run an estimator on many files, one at a time, isolating failures.

    Parameters
    ----------
    estimator : estimator
        A skseg estimator (or a Pipeline ending in one): anything with ``method``
        taking a list of files and returning one output per file.
    X : iterable of files
        Paths or dicts (see :func:`skseg.audio.validate_file`).
    method : {"predict", "decision_function", "transform"}, default="predict"
    errors : {"raise", "collect"}, default="raise"
        ``"raise"``: the first failing file raises its error (which names the
        file); results of files already done have been passed to ``on_result``.
        ``"collect"``: failing files are reported in ``failures`` and the batch
        goes on.
    n_jobs : int, optional
        Files processed in parallel by joblib (None: one at a time, in this
        process). Callbacks always run in the calling process.
    on_result : callable, optional
        ``on_result(index, file, output)``, called as soon as a file succeeds
        (in completion order when ``n_jobs`` > 1). If it raises, that file fails
        (see :func:`deliver`) and the batch goes on.
    on_error : callable, optional
        ``on_error(index, file, failure)``, called as soon as a file fails.
    progress : callable, optional
        ``progress(done, total)``, called after each file.

    Returns
    -------
    result : BatchResult

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        A bad argument, named in the message, before any file is read.
    TypeError
        ``X`` is a single file, or not iterable.
    FileError
        With ``errors="raise"``, the first failing file's error.

    Examples
    --------
    >>> from skseg import VADEstimator
    >>> from skseg.datasets import fetch_sample
    >>> files = [fetch_sample(), "missing.wav"]
    >>> result = predict_many(VADEstimator(), files, errors="collect")
    >>> [str(f) for f in result.failures]
    ['missing.wav: file not found']
    >>> result.outputs[0].uri
    'sample'
    """
    validate_parameter_constraints(
        {
            "method": [StrOptions(set(METHODS))],
            "errors": [StrOptions({"raise", "collect"})],
            "n_jobs": N_JOBS,
            "on_result": [callable, None],
            "on_error": [callable, None],
            "progress": [callable, None],
        },
        {
            "method": method,
            "errors": errors,
            "n_jobs": n_jobs,
            "on_result": on_result,
            "on_error": on_error,
            "progress": progress,
        },
        caller_name="predict_many",
    )
    if not callable(getattr(estimator, method, None)):
        raise InvalidParameterError(
            f"The 'estimator' parameter of predict_many must have a {method!r} "
            f"method. Got {type(estimator).__name__} instead."
        )
    files = check_files(X)
    _prepare(estimator)
    result = BatchResult(outputs=[None] * len(files))
    done = 0
    for index, output, failure in _outcomes(estimator, method, files, n_jobs):
        done += 1
        if failure is None and on_result is not None:
            failure = deliver(on_result, index, files[index], output)
        if failure is None:
            result.outputs[index] = output
        else:
            if errors == "raise":
                raise failure.error
            result.failures.append(failure)
            if on_error is not None:
                on_error(index, files[index], failure)
        if progress is not None:
            progress(done, len(files))
    result.failures.sort(key=lambda failure: failure.index)
    return result


def deliver(
    callback: Callable[[int, Any, Any], None], index: int, file: Any, output: Any
) -> FileFailure | None:
    """Call ``callback(index, file, output)``; a failure of it fails that file alone.

    What a batch does with a result (write it, typically) can fail for one file
    (disk full, an unwritable path, a uri RTTM cannot hold) without concerning the
    others: the error becomes the file's :class:`FileFailure`, named after the
    file, and the caller goes on with the next one.

    Parameters
    ----------
    callback : callable
        ``callback(index, file, output)``.
    index : int
        Position of the file in the batch.
    file : str, PathLike or mapping
        The file.
    output : object
        Its result.

    Returns
    -------
    failure : FileFailure or None
        None when the callback succeeded.

    Examples
    --------
    >>> def write(index, file, output):
    ...     raise OSError(28, "No space left on device")
    >>> print(deliver(write, 0, "a.wav", "turns"))
    a.wav: writing its result failed: No space left on device
    """
    try:
        callback(index, file, output)
    except Exception as error:  # noqa: BLE001 -- reported per file, see module doc
        label = file_label(file)
        detail = str(error)
        if isinstance(error, OSError) and not isinstance(error, FileError):
            detail = error.strerror or detail
        problem = f"writing its result failed: {detail}"
        wrapped = FileError(label, problem)
        wrapped.__cause__ = error
        return FileFailure(index, label, wrapped)
    return None


def _outcomes(
    estimator: Any, method: str, files: list, n_jobs: int | None
) -> Iterator[tuple]:
    if n_jobs is None or n_jobs == 1 or len(files) < 2:
        for index, file in enumerate(files):
            yield _run_one(estimator, method, index, file)
        return

    def tasks():
        return (
            delayed(_run_one)(estimator, method, index, file)
            for index, file in enumerate(files)
        )

    try:
        outcomes = Parallel(n_jobs=n_jobs, return_as="generator_unordered")(tasks())
    except ValueError as e:
        if "return_as" not in str(e):
            raise
        # backends that cannot stream results (multiprocessing) return them at once
        outcomes = Parallel(n_jobs=n_jobs)(tasks())
    yield from outcomes
