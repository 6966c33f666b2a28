"""The same tasks and answers in Label Studio's JSON, for a licence-free loop.

Label Studio (open source) labels audio regions with a ``<Labels>`` control over an
``<Audio>`` object (:func:`labeling_config`). Its import format is a list of tasks,
each ``{"data": {...}, "predictions": [{"model_version", "result": [...]}]}``; a
region in ``result`` is::

    {"id": "r0", "from_name": "label", "to_name": "audio", "type": "labels",
     "value": {"start": 1.2, "end": 3.4, "channel": 0, "labels": ["SPEECH"]}}

with times in seconds from the start of the task's audio (task time, as for
Prodigy). Its JSON export repeats the tasks with ``"annotations"``, each with a
``result`` list of the same shape and ``was_cancelled`` when the annotator skipped
the task. :func:`to_labelstudio` writes skseg tasks in the import format, keeping
the file, uri and region in ``data``; :func:`from_labelstudio` reads an export back
into examples that :mod:`skseg.annotation.answers` turns into file-time annotations,
RTTM and UEM.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from ..exceptions import FileError
from .examples import example_label

__all__ = ["labeling_config", "to_labelstudio", "from_labelstudio"]

#: task keys copied into Label Studio's ``data`` (besides ``audio``)
DATA_KEYS = ("uri", "file", "path", "start", "end")


def labeling_config(
    labels: Iterable[str], *, from_name: str = "label", to_name: str = "audio"
) -> str:
    """Return a Label Studio labeling config for labelled audio regions.

    Parameters
    ----------
    labels : iterable of str
        The labels offered (e.g. ``["SPEECH"]``).
    from_name : str, default="label"
        Name of the ``<Labels>`` control (``from_name`` in results).
    to_name : str, default="audio"
        Name of the ``<Audio>`` object (``to_name`` in results); its audio is the
        task's ``data.audio``.

    Returns
    -------
    xml : str

    Examples
    --------
    >>> print(labeling_config(["SPEECH"]))
    <View>
      <Labels name="label" toName="audio">
        <Label value="SPEECH"/>
      </Labels>
      <Audio name="audio" value="$audio"/>
    </View>
    """
    lines = [
        "<View>",
        f"  <Labels name={quoteattr(from_name)} toName={quoteattr(to_name)}>",
    ]
    lines += [f"    <Label value={quoteattr(str(label))}/>" for label in labels]
    lines += [
        "  </Labels>",
        f'  <Audio name={quoteattr(to_name)} value="$audio"/>',
        "</View>",
    ]
    return "\n".join(lines)


def _audio_location(task: Mapping, audio_url: str | Callable | None) -> str:
    meta = task.get("meta", {})
    if callable(audio_url):
        return str(audio_url(task))
    if isinstance(audio_url, str):
        fields = {key: meta.get(key, "") for key in DATA_KEYS}
        return audio_url.format(**fields)
    location = task.get("audio")
    if not location:
        raise ValueError(
            f"{example_label(task)}: the task has no audio; make tasks with "
            "audio='base64' or 'path', or pass audio_url"
        )
    return str(location)


def to_labelstudio(
    tasks: Iterable[Mapping],
    *,
    audio_url: str | Callable[[Mapping], str] | None = None,
    from_name: str = "label",
    to_name: str = "audio",
    model_version: str = "skseg",
) -> list[dict]:
    """Convert skseg tasks to Label Studio's import JSON, with predictions.

    Parameters
    ----------
    tasks : iterable of mapping
        From :func:`~skseg.annotation.tasks.make_tasks` (task time).
    audio_url : str or callable, optional
        Where Label Studio fetches each task's audio: a format string over the
        task's ``uri``, ``file``, ``path``, ``start`` and ``end`` (for instance
        ``"/data/local-files/?d=calls/{file}"`` for Label Studio's local file
        serving), or a function of the task. Default: the task's ``audio``.
    from_name, to_name : str
        Names used in :func:`labeling_config`.
    model_version : str, default="skseg"

    Returns
    -------
    tasks : list of dict
        ``{"data": {"audio", "uri", "file", "path", "start", "end"},
        "predictions": [...]}``, ready for ``json.dump``.

    Examples
    --------
    >>> task = {"meta": {"uri": "a", "file": "a.wav", "path": "/d/a.wav",
    ...                  "start": 0.0, "end": 10.0},
    ...         "audio_spans": [{"start": 1.0, "end": 2.5, "label": "SPEECH"}]}
    >>> ls = to_labelstudio([task], audio_url="/data/local-files/?d={file}")
    >>> ls[0]["data"]["audio"], ls[0]["predictions"][0]["result"][0]["value"]
    ('/data/local-files/?d=a.wav', {'start': 1.0, 'end': 2.5, 'channel': 0, \
'labels': ['SPEECH']})
    """
    out = []
    for task in tasks:
        meta = task.get("meta", {})
        data = {"audio": _audio_location(task, audio_url)}
        data.update({key: meta[key] for key in DATA_KEYS if key in meta})
        result = [
            {
                "id": f"r{i}",
                "from_name": from_name,
                "to_name": to_name,
                "type": "labels",
                "value": {
                    "start": float(span["start"]),
                    "end": float(span["end"]),
                    "channel": 0,
                    "labels": [str(span["label"])],
                },
            }
            for i, span in enumerate(task.get("audio_spans") or [])
        ]
        out.append(
            {
                "data": data,
                "predictions": [{"model_version": model_version, "result": result}],
            }
        )
    return out


def _load(export: str | os.PathLike | Iterable[Mapping]) -> list:
    if isinstance(export, str | os.PathLike):
        path = Path(export)
        try:
            export = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileError(os.fspath(path), "no such file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise FileError(
                os.fspath(path), f"not a Label Studio JSON export ({e})"
            ) from None
        if not isinstance(export, list):
            raise FileError(
                os.fspath(path), "not a Label Studio JSON export (not a list of tasks)"
            )
    return list(export)


def _spans(result: Any, from_name: str | None, where: str) -> list[dict]:
    spans = []
    for item in result or []:
        if not isinstance(item, Mapping) or item.get("type") != "labels":
            continue
        if from_name is not None and item.get("from_name") != from_name:
            continue
        value = item.get("value")
        if not isinstance(value, Mapping) or "start" not in value or "end" not in value:
            raise ValueError(f"{where}: region {item.get('id')!r} has no start/end")
        for label in value.get("labels") or []:
            spans.append({"start": value["start"], "end": value["end"], "label": label})
    return spans


def from_labelstudio(
    export: str | os.PathLike | Iterable[Mapping], *, from_name: str | None = None
) -> list[dict]:
    """Read Label Studio's JSON export back into skseg examples (task time).

    For each task, the most recent annotation that was not cancelled is the
    answer (``"accept"``); a task whose annotations were all cancelled is
    ``"ignore"``; a task nobody annotated is left out. A region with several
    labels gives one span per label.

    Parameters
    ----------
    export : str, PathLike or list of dict
        The export file (``JSON`` format) or its parsed content.
    from_name : str, optional
        Keep only regions of this ``<Labels>`` control.

    Returns
    -------
    examples : list of dict
        ``{"answer", "audio_spans", "meta", "spans_time": "task"}``; pass them to
        :func:`~skseg.annotation.answers.export` or
        :func:`~skseg.annotation.answers.collect_annotations`. A task whose regions
        are malformed becomes an example flagged with ``"skseg_error"``, which
        those name and leave out.

    Raises
    ------
    FileError
        If the export file cannot be read or is not a list of tasks.

    Examples
    --------
    >>> region = {"from_name": "label", "to_name": "audio", "type": "labels",
    ...           "value": {"start": 1.0, "end": 2.0, "labels": ["SPEECH"]}}
    >>> exported = [{"id": 7,
    ...              "data": {"audio": "a.wav", "uri": "a", "start": 10, "end": 20},
    ...              "annotations": [{"was_cancelled": False, "result": [region]}]}]
    >>> [(e["answer"], e["audio_spans"]) for e in from_labelstudio(exported)]
    [('accept', [{'start': 1.0, 'end': 2.0, 'label': 'SPEECH'}])]
    """
    examples = []
    for position, task in enumerate(_load(export)):
        task_id = task.get("id", position) if isinstance(task, Mapping) else position
        where = f"Label Studio task {task_id}"
        if not isinstance(task, Mapping):
            examples.append({"skseg_error": f"{where}: not a JSON object"})
            continue
        data = task.get("data") or {}
        meta = {key: data[key] for key in DATA_KEYS if key in data}
        meta["labelstudio_id"] = task.get("id", position)
        annotations = [
            a for a in task.get("annotations") or [] if isinstance(a, Mapping)
        ]
        if not annotations:
            continue
        done = [a for a in annotations if not a.get("was_cancelled")]
        example: dict[str, Any] = {"meta": meta, "spans_time": "task"}
        if not done:
            example.update(answer="ignore", audio_spans=[])
            examples.append(example)
            continue
        latest = max(
            enumerate(done),
            key=lambda ia: (
                str(ia[1].get("updated_at") or ia[1].get("created_at") or ""),
                ia[0],
            ),
        )[1]
        example["answer"] = "accept"
        try:
            example["audio_spans"] = _spans(latest.get("result"), from_name, where)
        except ValueError as e:
            example["skseg_error"] = str(e)
        if "uri" not in meta or "start" not in meta or "end" not in meta:
            example["skseg_error"] = (
                f"{where}: data has no uri/start/end (not a task made by skseg's "
                "to_labelstudio)"
            )
        examples.append(example)
    return examples
