"""Answered tasks ("examples") as they are stored: without audio, in file time.

Prodigy calls a recipe's ``before_db(examples)`` on every batch of answers just
before saving it. :func:`before_db` drops the audio payloads (a base64 chunk
weighs hundreds of kB and can be rebuilt from the file) and shifts every span
list (every key containing ``"audio_spans"``) from task time to file time, using
the task's ``meta`` (file path, uri, start). An example that cannot be mapped is
saved anyway, unshifted and flagged with ``"skseg_error"``, so that a bad task
neither drops the good ones of its batch nor loses what the annotator did;
:func:`skseg.annotation.answers.collect_annotations` names it later.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from ..exceptions import FileError
from .spans import DECIMALS, check_spans

__all__ = [
    "to_file_time",
    "before_db",
    "validate_answer",
    "example_label",
    "file_of",
]

logger = logging.getLogger(__name__)

#: keys holding audio payloads, dropped before saving
AUDIO_KEYS = ("audio", "video")


def example_label(example: Mapping) -> str:
    """Return how an example is named in messages: its file and region.

    Parameters
    ----------
    example : mapping

    Returns
    -------
    label : str

    Examples
    --------
    >>> example_label({"meta": {"path": "/d/a.wav", "start": 10.0, "end": 20.0}})
    '/d/a.wav [10.000, 20.000]'
    """
    meta = example.get("meta") if isinstance(example, Mapping) else None
    if not isinstance(meta, Mapping):
        task_hash = example.get("_task_hash") if isinstance(example, Mapping) else None
        return f"task {task_hash if task_hash is not None else '?'}"
    name = meta.get("path") or meta.get("file") or meta.get("uri") or "?"
    try:
        return f"{name} [{float(meta['start']):.3f}, {float(meta['end']):.3f}]"
    except (KeyError, TypeError, ValueError):
        return str(name)


def _region(example: Mapping) -> tuple[float, float]:
    meta = example.get("meta")
    if not isinstance(meta, Mapping) or "uri" not in meta:
        raise FileError(
            example_label(example),
            "no 'meta' with the task's uri, start and end: not a skseg task",
        )
    try:
        start, end = float(meta["start"]), float(meta["end"])
    except (KeyError, TypeError, ValueError):
        raise FileError(
            example_label(example), "'meta' has no numeric 'start' and 'end'"
        ) from None
    if not end > start >= 0:
        raise FileError(example_label(example), f"empty region [{start}, {end}]")
    return start, end


def _span_keys(example: Mapping) -> list[str]:
    return [key for key in example if "audio_spans" in key]


def to_file_time(example: Mapping) -> dict:
    """Return a copy of an answered task in file time, without its audio.

    Parameters
    ----------
    example : mapping
        A task made by :func:`~skseg.annotation.tasks.make_tasks`, as answered.
        An example already in file time is returned as a copy.

    Returns
    -------
    example : dict
        Audio payloads removed, every ``*audio_spans*`` list shifted by the
        task's start, ``"spans_time"`` set to ``"file"``.

    Raises
    ------
    FileError
        Naming the file and region, if the example has no region, or a span
        is malformed or lies outside the task.

    Examples
    --------
    >>> task = {"audio": "data:...", "spans_time": "task",
    ...         "meta": {"uri": "a", "path": "a.wav", "start": 10.0, "end": 20.0},
    ...         "audio_spans": [{"start": 1.5, "end": 2.0, "label": "SPEECH"}]}
    >>> saved = to_file_time(task)
    >>> "audio" in saved, saved["audio_spans"]
    (False, [{'start': 11.5, 'end': 12.0, 'label': 'SPEECH'}])
    """
    out = {k: copy.deepcopy(v) for k, v in example.items() if k not in AUDIO_KEYS}
    start, end = _region(example)
    if example.get("spans_time") == "file":
        return out
    for key in _span_keys(example):
        try:
            spans = check_spans(example[key], duration=end - start)
        except ValueError as e:
            raise FileError(example_label(example), f"{key}: {e}") from None
        for span in spans:
            span["start"] = round(start + float(span["start"]), DECIMALS)
            span["end"] = round(start + float(span["end"]), DECIMALS)
        out[key] = spans
    out["spans_time"] = "file"
    return out


def before_db(examples: Iterable[Mapping]) -> list[dict]:
    r"""Prodigy's ``before_db`` callback: map a batch of answers to file time.

    Parameters
    ----------
    examples : iterable of mapping
        Answered tasks.

    Returns
    -------
    examples : list of dict
        One per input, in order: mapped by :func:`to_file_time`, or, when that
        fails, the example without its audio, unshifted, with
        ``"skseg_error"`` saying why (and a logged warning).

    Examples
    --------
    >>> good = {"meta": {"uri": "a", "start": 10.0, "end": 20.0}, "audio": "...",
    ...         "audio_spans": [{"start": 1, "end": 2, "label": "SPEECH"}]}
    >>> bad = {"meta": {"uri": "a", "start": 20.0, "end": 30.0}, "audio": "...",
    ...        "audio_spans": [{"start": 9, "end": 12, "label": "SPEECH"}]}
    >>> saved = before_db([good, bad])
    >>> saved[0]["audio_spans"][0]["start"], "audio" in saved[1]
    (11.0, False)
    >>> print(saved[1]["skseg_error"].replace(": ", ":\n"))
    a [20.000, 30.000]:
    audio_spans:
    span 0 [9, 12] (SPEECH) ends after the task's end (10 s)
    """
    out = []
    for example in examples:
        try:
            out.append(to_file_time(example))
        except FileError as error:
            logger.warning("saved unmapped, flagged: %s", error)
            kept = {k: v for k, v in example.items() if k not in AUDIO_KEYS}
            kept["skseg_error"] = str(error)
            out.append(kept)
    return out


def validate_answer(example: Mapping) -> None:
    """Prodigy's ``validate_answer`` callback: refuse spans outside the task.

    Prodigy shows the message to the annotator, who can fix the answer before it
    is submitted.

    Parameters
    ----------
    example : mapping
        The answered task, in task time.

    Raises
    ------
    ValueError
        If a span is malformed or outside ``[0, task duration]``.

    Examples
    --------
    >>> validate_answer({"meta": {"uri": "a", "start": 0.0, "end": 10.0},
    ...                  "audio_spans": [{"start": 2, "end": 1, "label": "SPEECH"}]})
    Traceback (most recent call last):
    ...
    ValueError: span 0 [2, 1] (SPEECH) ends before it starts
    """
    if example.get("spans_time") == "file":
        return
    start, end = _region(example)
    check_spans(example.get("audio_spans"), duration=end - start)


def file_of(example: Mapping) -> dict[str, Any]:
    """Return the file an example belongs to, as the estimators take it.

    Parameters
    ----------
    example : mapping
        An example with a ``meta`` (see :func:`to_file_time`).

    Returns
    -------
    file : dict
        ``{"uri"[, "audio"]}``.

    Examples
    --------
    >>> file_of({"meta": {"uri": "a", "path": "/d/a.wav", "start": 0, "end": 1}})
    {'uri': 'a', 'audio': '/d/a.wav'}
    """
    meta = example["meta"]
    file = {"uri": str(meta["uri"])}
    if meta.get("path"):
        file["audio"] = str(meta["path"])
    return file
