"""Annotation files and datasets on disk: RTTM, UEM, audio folders and list files.

Parsing is pyannote.database's (``load_rttm``, ``load_uem``), so a file means here
what it means to pyannote; this module adds what a library needs around it: each
line is checked first so that a malformed file is reported with its path, line
number and problem, and writers accept whatever the estimators return.

Uris and labels are fields of whitespace-separated lines, so one holding
whitespace or a control character would write a line that reads back as another
file's turn: :func:`check_field` refuses them (no escaping: what is written is
what any RTTM reader reads). Times are decimal numbers, finite, non-negative and
at most :data:`MAX_SECONDS`. Files are written atomically (:func:`atomic_write`):
a failed write leaves the previous file, or none, never a partial one.

A dataset on disk is a folder of audio files with RTTM (and optionally UEM) files
beside them, matched by uri (the audio file's stem). :func:`load_folder` turns it
into the ``X, y`` that the estimators, :func:`skseg.tuning.tune` and the CLI take.
"""

from __future__ import annotations

import errno
import io
import locale
import math
import os
import re
import stat
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from pyannote.core import Annotation, Timeline
from pyannote.database.util import load_rttm, load_uem
from sklearn.utils._param_validation import (
    HasMethods,
    validate_parameter_constraints,
)

from .exceptions import FileError

__all__ = [
    "AUDIO_EXTENSIONS",
    "LIST_EXTENSIONS",
    "read_rttm",
    "write_rttm",
    "read_uem",
    "write_uem",
    "expand_inputs",
    "load_folder",
    "annotation_files",
    "atomic_write",
    "check_field",
    "check_not_inputs",
    "check_regular_file",
    "MAX_SECONDS",
    "MAX_ANNOTATION_BYTES",
]

#: Largest time (seconds) read or written: 115 days. A larger one is a typo or an
#: attack, and would make every rate computed over it meaningless.
MAX_SECONDS = 1e7

#: Largest RTTM, UEM or list file read: 32 MiB, about 600,000 turns (a corpus's
#: RTTM holds tens of thousands). Reading is linear, but pyannote's
#: ``Annotation`` takes about 1 KiB per turn: millions of lines would take GiBs.
MAX_ANNOTATION_BYTES = 32 * 2**20

# what an RTTM/UEM time may look like: no "1_000", "nan", "inf" or hex
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")

#: audio files recognised in folders (what libsndfile decodes)
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au")
#: list files: one audio path per line
LIST_EXTENSIONS = (".txt", ".lst", ".list")

PathOrFile = str | os.PathLike | IO[str]

# what the readers and writers take for a file (an int would open a descriptor)
_PATH = [str, os.PathLike]
_PATH_OR_FILE = [str, os.PathLike, HasMethods(["write"])]


def _read_lines(path: str | os.PathLike) -> list[str]:
    too_large = (
        f"more than MAX_ANNOTATION_BYTES ({MAX_ANNOTATION_BYTES:,}): too large "
        "for an RTTM, UEM or list file"
    )
    try:
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            if stat.S_ISREG(info.st_mode) and info.st_size > MAX_ANNOTATION_BYTES:
                raise FileError(path, f"{info.st_size:,} bytes, {too_large}")
            # a pipe or a device has no size: read one byte past the limit
            data = handle.read(MAX_ANNOTATION_BYTES + 1)
        if len(data) > MAX_ANNOTATION_BYTES:
            raise FileError(path, too_large)
        return data.decode(locale.getencoding()).splitlines()
    except FileNotFoundError:
        raise FileError(path, "no such file") from None
    except IsADirectoryError:
        raise FileError(path, "is a directory, not a file") from None
    except UnicodeDecodeError as e:
        raise FileError(path, f"not a text file ({e.reason})") from None
    except OSError as e:
        raise FileError(path, e.strerror or str(e)) from None


def _number(path, lineno: int, name: str, text: str) -> float:
    if text.lower().lstrip("+-") in ("nan", "inf", "infinity"):
        raise FileError(path, f"line {lineno}: {name} {text!r} is not finite")
    if not _DECIMAL.fullmatch(text):
        raise FileError(path, f"line {lineno}: {name} {text!r} is not a number")
    value = float(text)
    if not math.isfinite(value) or abs(value) > MAX_SECONDS:
        raise FileError(
            path,
            f"line {lineno}: {name} {text!r} is beyond {MAX_SECONDS:g} s",
        )
    return value


#: What pandas (pyannote.database's RTTM/UEM parser) reads as a missing value,
#: whatever the column: a uri or label spelled so would read back as NaN.
_MISSING = frozenset(
    "#N/A|#N/A N/A|#NA|-1.#IND|-1.#QNAN|-NaN|-nan|1.#IND|1.#QNAN|<NA>|N/A|NA|NULL|"
    "NaN|None|n/a|nan|null".split("|")
)


def _bad_char(text: str) -> str | None:
    for char in text:
        if char.isspace() or not char.isprintable():
            return char
    return None


def check_field(value: Any, what: str = "uri") -> str:
    r"""Return ``value`` as a string that one RTTM/UEM field can hold.

    A field is separated from the next by whitespace and a line ends at a line
    break, so a uri or label with whitespace or a control character would be
    written as other fields or lines (a tab and a newline in a file name can
    forge another file's turn). Such values are refused, not escaped: what skseg
    writes reads the same in any RTTM reader. So are values its parser
    (pandas, through pyannote.database) would not read back: a ``"`` (a quote),
    or a name such as ``NA``, ``null`` or ``nan`` (a missing value). A uri may
    not start with ``;`` (a comment in a UEM file) either.

    Parameters
    ----------
    value : object
        The uri or label (converted with ``str``).
    what : str, default="uri"
        What it is, for the message.

    Returns
    -------
    field : str

    Raises
    ------
    ValueError
        If the value is empty, holds whitespace, a non-printable character or
        a ``"``, reads as a missing value, or is a uri starting with ``;``.

    Examples
    --------
    >>> check_field("call-7")
    'call-7'
    >>> try:
    ...     check_field("call-7\tSPEAKER", "uri")
    ... except ValueError as e:
    ...     print(str(e).split(":")[0])
    uri 'call-7\tSPEAKER' cannot be written to RTTM/UEM
    """
    text = str(value)
    if not text:
        raise ValueError(f"an empty {what} cannot be written to RTTM/UEM")
    bad = _bad_char(text)
    if bad is not None:
        raise ValueError(
            f"{what} {text!r} cannot be written to RTTM/UEM: it holds {bad!r} "
            "(whitespace and control characters separate fields and lines); "
            "rename it"
        )
    if '"' in text:
        raise ValueError(
            f"{what} {text!r} cannot be written to RTTM/UEM: the parser reads '\"' "
            "as a quote; rename it"
        )
    if text in _MISSING:
        raise ValueError(
            f"{what} {text!r} cannot be written to RTTM/UEM: the parser reads it as "
            "a missing value; rename it"
        )
    if what == "uri" and text.startswith(";"):
        raise ValueError(
            f"uri {text!r} cannot be written to RTTM/UEM: a line starting with "
            "';' is a comment; rename it"
        )
    return text


def _check_time(start: float, end: float, where: str) -> None:
    if not (
        math.isfinite(start) and math.isfinite(end) and 0 <= start < end <= MAX_SECONDS
    ):
        raise ValueError(
            f"{where}: segment [{start}, {end}] is not finite, non-negative and "
            f"non-empty within {MAX_SECONDS:g} s"
        )


def _check_fields(
    path, lineno: int, line: str, fields: list[str], names: tuple = ()
) -> None:
    # str.split() also splits at characters str.splitlines() does not see as line
    # ends; any other control character is refused as the writers refuse it
    bad = _bad_char("".join(fields))
    if bad is not None:
        raise FileError(path, f"line {lineno}: holds the control character {bad!r}")
    if '"' in line:
        raise FileError(path, f"line {lineno}: holds a '\"' (read as a quote)")
    for index, name in names:
        if fields[index] in _MISSING:
            raise FileError(
                path,
                f"line {lineno}: {name} {fields[index]!r} would be read as a "
                "missing value",
            )


def _check_rttm(path, lines: list[str]) -> bool:
    """Validate every line; return whether there is any turn at all."""
    any_turn = False
    for lineno, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or fields[0].startswith(";"):
            continue
        if not 9 <= len(fields) <= 10:
            raise FileError(
                path,
                f"line {lineno}: an RTTM line has 9 or 10 space-separated fields "
                f"(type uri channel start duration <NA> <NA> speaker ...), "
                f"got {len(fields)}: {line.strip()[:200]!r}",
            )
        if fields[0] != "SPEAKER":
            continue
        _check_fields(path, lineno, line, fields, ((1, "uri"), (7, "speaker")))
        start = _number(path, lineno, "start", fields[3])
        duration = _number(path, lineno, "duration", fields[4])
        if start < 0:
            raise FileError(path, f"line {lineno}: negative start {fields[3]}")
        if duration < 0:
            raise FileError(path, f"line {lineno}: negative duration {fields[4]}")
        if start + duration > MAX_SECONDS:
            raise FileError(
                path, f"line {lineno}: the turn ends beyond {MAX_SECONDS:g} s"
            )
        any_turn = True
    return any_turn


def read_rttm(path: str | os.PathLike) -> dict[str, Annotation]:
    r"""Read the speaker turns of an RTTM file, per uri.

    Parameters
    ----------
    path : str or PathLike
        RTTM file (``SPEAKER`` lines are kept, others ignored).

    Returns
    -------
    annotations : dict
        ``{uri: Annotation}``, labelled by speaker; empty for an empty file.

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        ``path`` is not a path (an integer would read a file descriptor).
    FileError
        If the file cannot be read, or a line is malformed (its number is given).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.rttm"
    >>> _ = path.write_text("SPEAKER call-1 1 0.50 2.25 <NA> <NA> alice <NA> <NA>\n")
    >>> read_rttm(path)["call-1"].get_timeline()
    <Timeline(uri=call-1, segments=[<Segment(0.5, 2.75)>])>
    """
    validate_parameter_constraints({"path": _PATH}, {"path": path}, "read_rttm")
    lines = _read_lines(path)
    if not _check_rttm(path, lines):
        return {}
    # comments are skipped above; pyannote's parser does not know them
    text = "\n".join(
        line for line in lines if line.split() and not line.startswith(";")
    )
    try:
        annotations = load_rttm(io.StringIO(text))
    except Exception as e:  # pandas' errors are many; the lines were checked
        raise FileError(path, f"not a valid RTTM file ({e})") from e
    return {str(uri): annotation for uri, annotation in annotations.items()}


def read_uem(path: str | os.PathLike) -> dict[str, Timeline]:
    r"""Read the evaluated regions of a UEM file, per uri.

    Parameters
    ----------
    path : str or PathLike
        UEM file: ``uri channel start end`` per line.

    Returns
    -------
    timelines : dict
        ``{uri: Timeline}``.

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        ``path`` is not a path (an integer would read a file descriptor).
    FileError
        If the file cannot be read, or a line is malformed (its number is given).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.uem"
    >>> _ = path.write_text("call-1 1 0.000 12.500\n")
    >>> read_uem(path)["call-1"].extent()
    <Segment(0, 12.5)>
    """
    validate_parameter_constraints({"path": _PATH}, {"path": path}, "read_uem")
    lines = _read_lines(path)
    kept = []
    for lineno, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or fields[0].startswith(";"):
            continue
        if len(fields) != 4:
            raise FileError(
                path,
                f"line {lineno}: a UEM line has 4 fields (uri channel start end), "
                f"got {len(fields)}: {line.strip()!r}",
            )
        _check_fields(path, lineno, line, fields, ((0, "uri"),))
        start = _number(path, lineno, "start", fields[2])
        end = _number(path, lineno, "end", fields[3])
        if start < 0 or end <= start:
            raise FileError(
                path,
                f"line {lineno}: region [{fields[2]}, {fields[3]}] is empty "
                "or negative",
            )
        kept.append(line)
    if not kept:
        return {}
    try:
        timelines = load_uem(io.StringIO("\n".join(kept)))
    except Exception as e:
        raise FileError(path, f"not a valid UEM file ({e})") from e
    return {str(uri): timeline for uri, timeline in timelines.items()}


def _umask_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask  # what open() would give; mkstemp gives 0600


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    r"""Write a file atomically: all of it, or nothing (the old file stays).

    The data goes to a temporary file beside ``path``, which is flushed,
    ``fsync``-ed and renamed over ``path`` only when the block ends without an
    error; on any error the temporary file is removed. A ``path`` that exists and
    is neither a regular file nor a folder (``/dev/stdout``, ``/dev/full``, a
    FIFO) is written in place: renaming over it would replace the device or pipe
    itself, and a reader of it sees the data as it comes anyway.

    Parameters
    ----------
    path : str or PathLike
        The destination.
    mode : {"w", "wb"}, default="w"
        Text or bytes.

    Yields
    ------
    handle : file object
        Where to write.

    Raises
    ------
    FileError
        Naming ``path``, if it cannot be written (missing folder, permission,
        disk full, a directory in the way...).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_write(path) as handle:
    ...     _ = handle.write("complete\n")
    >>> try:
    ...     with atomic_write(path) as handle:
    ...         _ = handle.write("partial")
    ...         raise KeyboardInterrupt
    ... except KeyboardInterrupt:
    ...     pass
    >>> path.read_text()
    'complete\n'
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    if path.is_dir():
        raise FileError(path, "is a directory, not a file to write")
    if path.exists() and not path.is_file():
        try:
            with open(path, mode) as handle:
                yield handle
        except OSError as e:
            if isinstance(e, FileError):
                raise
            raise FileError(path, e.strerror or str(e)) from None
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as e:
        raise FileError(path, e.strerror or str(e)) from None
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, FileError):
            raise FileError(path, e.strerror or str(e)) from None
        raise


@contextmanager
def _text_output(file: PathOrFile):
    if hasattr(file, "write"):
        yield file
        return
    with atomic_write(file) as handle:
        yield handle


def _destination(file: PathOrFile) -> str:
    if hasattr(file, "write"):
        return str(getattr(file, "name", "<stream>"))
    return os.fspath(file)


def _annotations(annotations: Any) -> list[Annotation]:
    if isinstance(annotations, Annotation):
        return [annotations]
    if isinstance(annotations, Mapping):
        items = list(annotations.items())
    elif isinstance(annotations, Iterable) and not isinstance(annotations, str):
        items = [(None, annotation) for annotation in annotations]
    else:
        raise TypeError(
            f"annotations must be an Annotation, a list or a mapping of them, not "
            f"{type(annotations).__name__}"
        )
    out = []
    for uri, annotation in items:
        if not isinstance(annotation, Annotation):
            raise TypeError(
                f"annotations must be Annotations, got a {type(annotation).__name__}"
            )
        if uri is not None and annotation.uri != uri:
            annotation = annotation.copy()
            annotation.uri = uri
        out.append(annotation)
    return out


def write_rttm(
    annotations: Annotation | Iterable[Annotation] | Mapping[str, Annotation],
    file: PathOrFile,
) -> None:
    """Write annotations as RTTM, one line per turn (pyannote.core's format).

    Parameters
    ----------
    annotations : Annotation, iterable of Annotation or mapping
        What to write; a mapping's keys are used as uris.
    file : str, PathLike or text file object
        Destination; a path is replaced atomically (:func:`atomic_write`).

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        ``file`` is neither a path nor a text file object.
    TypeError
        ``annotations`` holds something other than Annotations.
    FileError
        Naming the destination, if a uri or label cannot be a field
        (:func:`check_field`), a turn is not finite, non-negative and non-empty,
        or the file cannot be written; nothing is written then.
    ValueError
        If an annotation has no uri.

    Examples
    --------
    >>> import io
    >>> from pyannote.core import Annotation, Segment
    >>> annotation = Annotation(uri="call-1")
    >>> annotation[Segment(1.0, 2.5)] = "SPEECH"
    >>> out = io.StringIO()
    >>> write_rttm(annotation, out)
    >>> print(out.getvalue(), end="")
    SPEAKER call-1 1 1.000 1.500 <NA> <NA> SPEECH <NA> <NA>
    """
    validate_parameter_constraints(
        {"file": _PATH_OR_FILE}, {"file": file}, "write_rttm"
    )
    items = _annotations(annotations)
    for annotation in items:
        if not annotation.uri:
            raise ValueError("every annotation needs a uri to be written as RTTM")
    # every value is checked, and the text made, before the destination is touched
    text = io.StringIO()
    try:
        for annotation in items:
            uri = check_field(annotation.uri, "uri")
            for segment, _, label in annotation.itertracks(yield_label=True):
                check_field(label, "label")
                _check_time(segment.start, segment.end, f"uri {uri!r}")
            annotation.write_rttm(text)
    except ValueError as e:
        raise FileError(_destination(file), str(e)) from None
    with _text_output(file) as handle:
        handle.write(text.getvalue())


def write_uem(timelines: Mapping[str, Timeline] | Timeline, file: PathOrFile) -> None:
    """Write evaluated regions as UEM, one line per region.

    Parameters
    ----------
    timelines : mapping or Timeline
        ``{uri: Timeline}``, or one Timeline with its uri set.
    file : str, PathLike or text file object
        Destination; a path is replaced atomically (:func:`atomic_write`).

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        ``timelines`` is neither a mapping nor a Timeline, or ``file`` neither a
        path nor a text file object.
    FileError
        Naming the destination, if a uri cannot be a field
        (:func:`check_field`), a region is not finite, non-negative and
        non-empty, or the file cannot be written; nothing is written then.

    Examples
    --------
    >>> import io
    >>> from pyannote.core import Segment, Timeline
    >>> out = io.StringIO()
    >>> write_uem({"call-1": Timeline([Segment(0, 12.5)])}, out)
    >>> print(out.getvalue(), end="")
    call-1 1 0.000 12.500
    """
    validate_parameter_constraints(
        {"timelines": [Mapping, Timeline], "file": _PATH_OR_FILE},
        {"timelines": timelines, "file": file},
        "write_uem",
    )
    if isinstance(timelines, Timeline):
        if not timelines.uri:
            raise ValueError("the timeline needs a uri to be written as UEM")
        timelines = {timelines.uri: timelines}
    text = io.StringIO()
    try:
        for uri, timeline in timelines.items():
            check_field(uri, "uri")
            for segment in timeline.support():
                _check_time(segment.start, segment.end, f"uri {uri!r}")
                text.write(f"{uri} 1 {segment.start:.3f} {segment.end:.3f}\n")
    except ValueError as e:
        raise FileError(_destination(file), str(e)) from None
    with _text_output(file) as handle:
        handle.write(text.getvalue())


def check_not_inputs(
    outputs: Iterable[str | os.PathLike], inputs: Iterable[str | os.PathLike]
) -> None:
    """Refuse to write an output that is one of the inputs, before anything is written.

    An output is an input when both name the same existing file (same device and
    inode: hard links and symbolic links included) or the same resolved path.

    Parameters
    ----------
    outputs : iterable of str or PathLike
        Files about to be written.
    inputs : iterable of str or PathLike
        Files being read.

    Raises
    ------
    FileError
        Naming the output and the input it would overwrite.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "keep.wav").write_bytes(b"RIFF")
    >>> check_not_inputs([folder / "out.rttm"], [folder / "keep.wav"])
    >>> try:
    ...     check_not_inputs([folder / "keep.wav"], [folder / "keep.wav"])
    ... except FileError as e:
    ...     print(e.problem)
    is also an input; refusing to overwrite it
    """
    known: dict[Any, str] = {}
    for item in inputs:
        path = Path(item).expanduser()
        known[_file_key(path)] = os.fspath(item)
    for item in outputs:
        key = _file_key(Path(item).expanduser())
        if key in known:
            problem = "is also an input; refusing to overwrite it"
            if os.fspath(item) != known[key]:
                problem = f"is also the input {known[key]}; refusing to overwrite it"
            raise FileError(item, problem)


def _file_key(path: Path) -> Any:
    try:
        st = path.stat()
    except OSError:
        return ("path", os.path.abspath(path.resolve()))
    return ("inode", st.st_dev, st.st_ino)


def _list_file(path: Path) -> list[str]:
    out = []
    for line in _read_lines(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        entry = Path(line).expanduser()
        out.append(os.fspath(entry if entry.is_absolute() else path.parent / entry))
    return out


def _audio_in(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
    )


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[str]:
    r"""Expand command-line style inputs into a list of audio paths.

    Each input is an audio file, a folder (its audio files, sorted, not
    recursive) or a list file (``.txt``/``.lst``: one path per line, relative to
    the list file's folder, ``#`` comments). Paths that do not exist are kept, so
    that a batch reports them as failed files instead of failing as a whole.

    Parameters
    ----------
    inputs : iterable of str or PathLike

    Returns
    -------
    paths : list of str

    Raises
    ------
    FileError
        If a list file cannot be read.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("b.wav", "a.flac", "notes.md"):
    ...     _ = (folder / name).write_bytes(b"")
    >>> _ = (folder / "files.txt").write_text("a.flac\n# skipped\nmissing.wav\n")
    >>> [pathlib.Path(p).name for p in expand_inputs([folder])]
    ['a.flac', 'b.wav']
    >>> [pathlib.Path(p).name for p in expand_inputs([folder / "files.txt"])]
    ['a.flac', 'missing.wav']
    """
    out: list[str] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            out.extend(os.fspath(p) for p in _audio_in(path))
        elif path.suffix.lower() in LIST_EXTENSIONS and path.is_file():
            out.extend(_list_file(path))
        else:
            out.append(os.fspath(path))
    return out


def check_regular_file(path: str | os.PathLike) -> None:
    """Refuse anything but a regular file (or a link to one), naming what it is.

    Parameters
    ----------
    path : str or PathLike

    Raises
    ------
    FileError
        For a symbolic link loop, a dangling link, a folder, a FIFO, a device or
        a socket.

    Examples
    --------
    >>> import os, pathlib, tempfile
    >>> loop = pathlib.Path(tempfile.mkdtemp()) / "a.rttm"
    >>> loop.symlink_to(loop.name)
    >>> try:
    ...     check_regular_file(loop)
    ... except FileError as e:
    ...     print(e.problem)
    is a symbolic link loop, not a file
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise FileError(path, "is a symbolic link loop, not a file") from None
        if path.is_symlink():
            raise FileError(path, "is a dangling symbolic link") from None
        raise FileError(path, e.strerror or str(e)) from None
    if stat.S_ISREG(mode):
        return
    kinds = {
        stat.S_ISDIR: "a folder",
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISCHR: "a device",
        stat.S_ISBLK: "a device",
        stat.S_ISSOCK: "a socket",
    }
    kind = next((name for test, name in kinds.items() if test(mode)), "special")
    raise FileError(path, f"is {kind}, not a regular file")


def annotation_files(folder: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """Return the RTTM and the UEM files of a folder, sorted (:func:`load_folder`'s).

    Parameters
    ----------
    folder : str or PathLike

    Returns
    -------
    rttm, uem : list of Path

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("b.rttm", "a.rttm", "a.uem", "a.wav"):
    ...     _ = (folder / name).write_text("")
    >>> [[p.name for p in paths] for paths in annotation_files(folder)]
    [['a.rttm', 'b.rttm'], ['a.uem']]
    """
    folder = Path(folder).expanduser()
    return sorted(folder.glob("*.rttm")), sorted(folder.glob("*.uem"))


def load_folder(
    folder: str | os.PathLike, *, require_annotation: bool = True
) -> tuple[list[dict], list[Annotation]]:
    """Load a folder of audio files with their RTTM and UEM files as ``X, y``.

    Every ``*.rttm`` and ``*.uem`` file in the folder is read and merged by uri;
    an audio file's uri is its stem. UEM regions become the file's
    ``"annotated"`` (what the scorers evaluate).

    Parameters
    ----------
    folder : str or PathLike
    require_annotation : bool, default=True
        Fail when an audio file has no turns in any RTTM file; otherwise it gets
        an empty annotation.

    Returns
    -------
    X : list of dict
        ``{"audio", "uri", "annotation"[, "annotated"]}`` per audio file, sorted.
    y : list of Annotation
        ``X[i]["annotation"]``.

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        ``folder`` is not a path, or ``require_annotation`` not a bool.
    FileError
        If the folder has no audio, an RTTM/UEM file is malformed, or an audio
        file has no annotation.

    Examples
    --------
    >>> import shutil, tempfile, pathlib
    >>> from skseg.datasets import fetch_sample
    >>> sample = fetch_sample()
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = shutil.copy(sample["audio"], folder / "sample.wav")
    >>> write_rttm(sample["annotation"], folder / "sample.rttm")
    >>> X, y = load_folder(folder)
    >>> X[0]["uri"], len(y[0])
    ('sample', 10)
    """
    validate_parameter_constraints(
        {"folder": _PATH, "require_annotation": ["boolean"]},
        {"folder": folder, "require_annotation": require_annotation},
        "load_folder",
    )
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileError(folder, "not a folder" if folder.exists() else "no such folder")
    rttms, uem_files = annotation_files(folder)
    # a link loop, a dangling link or a FIFO named like data: the folder is not
    # what its owner thinks (and a FIFO would block the reader forever)
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in AUDIO_EXTENSIONS or path in rttms + uem_files:
            check_regular_file(path)
    audio = _audio_in(folder)
    if not audio:
        raise FileError(
            folder, f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in the folder"
        )
    annotations: dict[str, Annotation] = {}
    for path in rttms:
        for uri, annotation in read_rttm(path).items():
            if uri in annotations:
                annotation = annotations[uri].update(annotation)
            annotations[uri] = annotation
    uems: dict[str, Timeline] = {}
    for path in uem_files:
        for uri, timeline in read_uem(path).items():
            uems[uri] = uems[uri].union(timeline) if uri in uems else timeline
    X, y = [], []
    for path in audio:
        uri = path.stem
        if uri not in annotations:
            if require_annotation:
                raise FileError(
                    path, f"no turns for uri {uri!r} in any RTTM file of {folder}"
                )
            annotations[uri] = Annotation(uri=uri)
        file = {"audio": os.fspath(path), "uri": uri, "annotation": annotations[uri]}
        if uri in uems:
            file["annotated"] = uems[uri].support()
        X.append(file)
        y.append(file["annotation"])
    return X, y
