"""Annotation tasks: long files cut into short regions, pre-annotated by a model.

A task is one region of one file (a *chunk*), in the shape of Prodigy's
``audio_manual`` interface (pyannote.audio 2.x's recipes used the same)::

    {"audio": "data:audio/wav;base64,...",      # the chunk (or a path, see below)
     "audio_spans": [{"start", "end", "label"}], # the model's regions, TASK time
     "audio_spans_original": [...],              # the same, kept for the review
     "text": "meeting.wav [10.0 - 20.0]",
     "path": "/data/meeting.wav",
     "meta": {"file": "meeting.wav", "uri": "meeting", "path": "/data/meeting.wav",
              "start": 10.0, "end": 20.0},     # where the task lies in its file
     "chunk": {"start": 10.0, "end": 20.0},
     "config": {"labels": ["SPEECH"]},
     "spans_time": "task",
     "_input_hash": int, "_task_hash": int}

Each chunk is pre-annotated from ``context`` seconds of audio on each side of it
(pyannote.audio's convention), so that a region cut by the chunk's edge is still
seen whole by the model; the regions are then cropped to the chunk.

:func:`make_tasks` is a generator: tasks are computed when the annotation tool
asks for them, so an estimator whose parameters change during the session (model
in the loop) pre-annotates the tasks that come after the change with them. A file
that cannot be read is skipped with a logged message naming it; the session goes
on with the other files.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from pyannote.core import Annotation, Segment

from ..audio import AudioFile, AudioReader, file_label, validate_file
from ..batch import FileFailure
from ..exceptions import FileError, SksegError
from .estimators import estimator_labels
from .spans import annotation_to_spans

__all__ = [
    "AUDIO_PAYLOADS",
    "add_audio",
    "check_audio",
    "chunk_regions",
    "encode_wav",
    "file_meta",
    "make_tasks",
    "set_hashes",
]

logger = logging.getLogger(__name__)

#: how a task carries its audio: a base64 WAV data URI of the chunk, the file's
#: path (whole-file tasks only: a path cannot select a chunk), or nothing
AUDIO_PAYLOADS = ("base64", "path", "none")

SAMPLE_RATE = 16000


def chunk_regions(duration: float, chunk: float | None) -> list[Segment]:
    """Cut ``[0, duration]`` into consecutive regions of ``chunk`` seconds.

    Regions do not overlap, so that every instant belongs to one task; the last
    one ends at the end of the file and may be shorter.

    Parameters
    ----------
    duration : float
        File duration, in seconds.
    chunk : float or None
        Region duration; None: one region, the whole file.

    Returns
    -------
    regions : list of Segment

    Examples
    --------
    >>> chunk_regions(25.0, 10.0)
    [<Segment(0, 10)>, <Segment(10, 20)>, <Segment(20, 25)>]
    """
    if duration <= 0:
        return []
    if chunk is None or chunk >= duration:
        return [Segment(0.0, duration)]
    if chunk <= 0:
        raise ValueError(f"chunk must be positive, got {chunk!r}")
    count = int(np.ceil(duration / chunk - 1e-9))
    return [Segment(i * chunk, min((i + 1) * chunk, duration)) for i in range(count)]


def encode_wav(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> str:
    """Return samples as a peak-normalised 16-bit WAV ``data:`` URI.

    Parameters
    ----------
    samples : ndarray, shape (n,)
    sample_rate : int, default=16000

    Returns
    -------
    uri : str
        ``data:audio/wav;base64,...``, what Prodigy's audio interfaces play.

    Examples
    --------
    >>> import numpy as np
    >>> encode_wav(np.zeros(160)).startswith("data:audio/wav;base64,UklGR")
    True
    """
    import soundfile as sf

    samples = np.asarray(samples, dtype=np.float32)
    # as pyannote.audio's recipes: quiet recordings are heard at full scale
    samples = samples / (np.max(np.abs(samples), initial=0.0) + 1e-8)
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buffer.getvalue()).decode()


def _hash(value: Any) -> int:
    text = json.dumps(value, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:4], "big", signed=True)


def set_hashes(task: dict) -> dict:
    """Set Prodigy's ``_input_hash`` (file and region) and ``_task_hash`` (+ spans).

    Prodigy recognises a task it has already seen by these hashes; the input hash
    depends only on the file and the region, so that a region annotated once is
    not offered again even when the model's regions for it have changed.

    Parameters
    ----------
    task : dict
        A task (modified in place).

    Returns
    -------
    task : dict

    Examples
    --------
    >>> a = set_hashes({"meta": {"path": "a.wav", "start": 0, "end": 10},
    ...                 "audio_spans": []})
    >>> b = set_hashes({"meta": {"path": "a.wav", "start": 0, "end": 10},
    ...                 "audio_spans": [{"start": 1, "end": 2, "label": "SPEECH"}]})
    >>> a["_input_hash"] == b["_input_hash"], a["_task_hash"] == b["_task_hash"]
    (True, False)
    """
    meta = task.get("meta", {})
    key = [meta.get("path") or meta.get("uri"), meta.get("start"), meta.get("end")]
    task["_input_hash"] = _hash(key)
    task["_task_hash"] = _hash([task["_input_hash"], task.get("audio_spans", [])])
    return task


class _Predictor:
    """Pre-annotations of one file's regions, with the estimator's current params."""

    def __init__(self, estimator: Any, file: dict, reader: AudioReader, context):
        self.estimator = estimator
        self.file = file
        self.reader = reader
        self.context = context
        self._whole: tuple[str, Annotation] | None = None

    def __call__(self, region: Segment) -> list[dict]:
        whole = region.start <= 0 and region.end >= self.reader.duration
        if self.context is None or whole:
            # the file itself: its scores are cached by path, never read whole
            return annotation_to_spans(self._whole_file(), region)
        sr = self.reader.sample_rate
        first = max(0, int(np.floor((region.start - self.context) * sr)))
        last = min(
            self.reader.num_samples, int(np.floor((region.end + self.context) * sr))
        )
        excerpt = {
            "waveform": self.reader.read(first, last)[None],
            "sample_rate": sr,
            "uri": self.file["uri"],
        }
        shift = first / sr
        # the model's regions in excerpt time, cropped to the chunk, in task time
        hypothesis = self.estimator(excerpt)
        spans = annotation_to_spans(
            hypothesis, Segment(region.start - shift, region.end - shift)
        )
        return spans

    def _whole_file(self) -> Annotation:
        # re-predicted only when the parameters change (the scores are cached)
        params = repr(sorted(self.estimator.get_params(deep=False).items()))
        if self._whole is None or self._whole[0] != params:
            self._whole = (params, self.estimator(self.file))
        return self._whole[1]


def file_meta(file: dict) -> dict:
    """Return what a task's ``"meta"`` says about its file.

    Parameters
    ----------
    file : dict
        A validated file.

    Returns
    -------
    meta : dict
        ``uri``, ``file`` (its name), and ``path`` (absolute) for a file on disk.

    Examples
    --------
    >>> file_meta({"uri": "a", "audio": "/data/a.wav"})
    {'uri': 'a', 'file': 'a.wav', 'path': '/data/a.wav'}
    """
    path = file.get("audio")
    meta = {"uri": file["uri"]}
    if isinstance(path, str):
        meta["file"] = Path(path).name
        meta["path"] = os.path.abspath(path)
    else:
        meta["file"] = file["uri"]
    return meta


def make_tasks(
    estimator: Any,
    files: Iterable[AudioFile],
    *,
    chunk: float | None = 10.0,
    context: float | None = 2.5,
    audio: str = "base64",
    labels: Iterable[str] = (),
    on_error: Callable[[FileFailure], None] | None = None,
) -> Iterator[dict]:
    """Return pre-annotated correction tasks, made chunk by chunk, file by file.

    Parameters
    ----------
    estimator : estimator
        Called on each chunk (with context) for its regions; its parameters are
        read when each task is made.
    files : iterable of files
        Paths, or dicts as the estimators take them (pyannote.database
        ``ProtocolFile`` objects included).
    chunk : float or None, default=10.0
        Task duration in seconds; None: one task per file.
    context : float or None, default=2.5
        Seconds of audio on each side of a chunk that the model sees (not the
        annotator); None: the model sees the whole file (computed once per file
        and parameter set).
    audio : {"base64", "path", "none"}, default="base64"
        How tasks carry their audio, see :data:`AUDIO_PAYLOADS`.
    labels : iterable of str, default=()
        Labels offered to the annotator besides the model's.
    on_error : callable, optional
        ``on_error(failure)`` for each file skipped because it cannot be read.

    Returns
    -------
    tasks : iterator of dict
        Made one by one as they are asked for; see the module's documentation.

    Raises
    ------
    ValueError
        If ``audio`` is unknown, or is ``"path"`` with chunked tasks.

    Examples
    --------
    >>> from skseg import VADEstimator, fetch_sample
    >>> vad = VADEstimator(onset=0.5, offset=0.5, min_duration_on=0.0,
    ...                    min_duration_off=0.0)
    >>> tasks = list(make_tasks(vad, [fetch_sample()], chunk=10.0, audio="none"))
    >>> [task["text"] for task in tasks]
    ['sample.wav [0.0 - 10.0]', 'sample.wav [10.0 - 20.0]', 'sample.wav [20.0 - 30.0]']
    >>> [(s["start"], s["end"], s["label"]) for s in tasks[0]["audio_spans"]]
    [(6.713, 7.152, 'SPEECH'), (7.574, 10.0, 'SPEECH')]
    """
    check_audio(audio, chunk)
    # validated now, made lazily: a generator would only check on first use
    return _tasks(estimator, files, chunk, context, audio, labels, on_error)


def _tasks(estimator, files, chunk, context, audio, labels, on_error):
    extra = set(labels) | set(estimator_labels(estimator))
    for index, file in enumerate(files):
        label = file_label(file)
        try:
            file = validate_file(file)
            reader = AudioReader(file, sample_rate=SAMPLE_RATE)
        except SksegError as error:
            _skip(index, label, error, on_error)
            continue
        try:
            yield from _file_tasks(
                estimator, file, reader, chunk, context, audio, extra
            )
        except SksegError as error:
            # tasks already yielded for this file stay; its remaining ones go
            _skip(index, label, error, on_error)
        finally:
            reader.close()


def check_audio(audio: str, chunk: float | None) -> None:
    """Check a task's audio payload kind against its chunking.

    Parameters
    ----------
    audio : str
        One of :data:`AUDIO_PAYLOADS`.
    chunk : float or None
        Task duration; None: whole files.

    Raises
    ------
    ValueError
        If ``audio`` is unknown, or ``"path"`` (the whole file) with chunks.

    Examples
    --------
    >>> check_audio("path", chunk=None)
    >>> check_audio("path", chunk=10.0)
    Traceback (most recent call last):
    ...
    ValueError: audio='path' plays the whole file, so it needs whole-file tasks \
(chunk=None); use audio='base64' for chunked tasks
    """
    if audio not in AUDIO_PAYLOADS:
        raise ValueError(f"audio must be one of {AUDIO_PAYLOADS}, got {audio!r}")
    if audio == "path" and chunk is not None:
        raise ValueError(
            "audio='path' plays the whole file, so it needs whole-file tasks "
            "(chunk=None); use audio='base64' for chunked tasks"
        )


def _skip(index: int, label: str, error: BaseException, on_error) -> None:
    failure = FileFailure(index, label, error)
    logger.warning("skipped %s", failure)
    if on_error is not None:
        on_error(failure)


def _file_tasks(estimator, file, reader, chunk, context, audio, labels):
    predict = _Predictor(estimator, file, reader, context)
    meta = file_meta(file)
    for region in chunk_regions(reader.duration, chunk):
        start, end = round(region.start, 3), round(region.end, 3)
        try:
            spans = predict(region)
        except SksegError:
            raise
        except Exception as e:  # the estimator failed on this file: name it
            raise FileError(
                file_label(file), f"pre-annotation failed ({type(e).__name__}: {e})"
            ) from e
        task = {
            "text": f"{meta['file']} [{start:.1f} - {end:.1f}]",
            "audio_spans": spans,
            "audio_spans_original": [dict(span) for span in spans],
            "meta": dict(meta, start=start, end=end),
            "chunk": {"start": start, "end": end},
            "config": {"labels": sorted(labels | {s["label"] for s in spans})},
            "spans_time": "task",
        }
        if "path" in meta:
            task["path"] = meta["path"]
        add_audio(task, reader, audio)
        yield set_hashes(task)


def add_audio(task: dict, reader: AudioReader, audio: str) -> None:
    """Set the task's ``"audio"`` payload for its region (``task["meta"]``).

    Parameters
    ----------
    task : dict
        With ``meta`` (``start``, ``end``, ``file``, and ``path`` on disk).
    reader : AudioReader
        The file's reader.
    audio : {"base64", "path", "none"}
        A WAV data URI of the region, the file's path, or nothing.

    Examples
    --------
    >>> from skseg import AudioReader, fetch_sample
    >>> task = {"meta": {"start": 0.0, "end": 1.0, "file": "sample.wav"}}
    >>> with AudioReader(fetch_sample(), sample_rate=16000) as reader:
    ...     add_audio(task, reader, "base64")
    >>> task["audio"][:22]
    'data:audio/wav;base64,'
    """
    meta = task["meta"]
    if audio == "base64":
        sr = reader.sample_rate
        first, last = (int(np.floor(meta[k] * sr)) for k in ("start", "end"))
        task["audio"] = encode_wav(reader.read(first, last), sr)
    elif audio == "path":
        if "path" not in meta:
            raise FileError(meta["file"], "audio='path' needs a file on disk")
        task["audio"] = meta["path"]
