"""Label Studio's ML backend: pre-annotations from an skseg estimator, re-tuned live.

Label Studio asks an *ML backend* (an HTTP service) for pre-annotations of its
tasks and notifies it of new annotations. :class:`LabelStudioBackend` is what the
service does, free of HTTP: :meth:`~LabelStudioBackend.predict` turns Label Studio
tasks into predictions (``labels`` regions, start/end in seconds), and
:meth:`~LabelStudioBackend.annotation_event` takes an ``ANNOTATION_CREATED`` /
``ANNOTATION_UPDATED`` webhook payload, keeps the task's latest annotation and
re-tunes the estimator's thresholds on every annotation so far
(:func:`~skseg.annotation.tuning.tune_on_examples`). The re-tuned pipeline
replaces the one serving only when re-tuning succeeded, so a failed re-tuning
(too few annotations, say) keeps the previous pipeline and names the problem in
:attr:`LabelStudioBackend.failures`. The model version
(:attr:`LabelStudioBackend.model_version`) is a digest of the pipeline's class and
parameters: it changes exactly when the pipeline does, and each prediction
carries it.

:mod:`skseg.annotation.labelstudio_server` serves it over Label Studio's ML
backend protocol (``skseg labelstudio serve``).

Where the audio is: a task made by ``skseg labelstudio setup``
(:func:`~skseg.annotation.labelstudio.to_labelstudio`) names its file in
``data.path``; otherwise the backend maps Label Studio's local-file URLs
(``/data/local-files/?d=...``) under ``document_root``. Task data is written by
whoever may import tasks into a project, so the backend reads audio only from
regular files that resolve (symlinks followed) under ``document_root``; it fetches
nothing over the network, so a task cannot make it connect anywhere.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from pyannote.core import Segment
from sklearn.base import clone

from ..audio import AudioReader
from ..exceptions import FileError, SksegError
from .examples import to_file_time
from .labelstudio import from_labelstudio
from .spans import annotation_to_spans
from .tuning import tune_on_examples

__all__ = ["LabelStudioBackend", "model_version", "task_audio_path"]

logger = logging.getLogger(__name__)

#: Label Studio's URL prefix for files under LOCAL_FILES_DOCUMENT_ROOT
LOCAL_FILES = "/data/local-files/"

#: the webhook actions that carry a new or changed annotation
ANNOTATION_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")


def _duration(path: str) -> float:
    with AudioReader(path) as reader:
        return reader.duration


def model_version(estimator: Any) -> str:
    """Return a version naming an estimator's class and parameters.

    Parameters
    ----------
    estimator : estimator

    Returns
    -------
    version : str
        ``"skseg-<Class>-<12 hex digits>"``; equal for equal parameters, and
        different as soon as one parameter (a threshold, the checkpoint) differs.

    Examples
    --------
    >>> from skseg import VADEstimator
    >>> model_version(VADEstimator()) == model_version(VADEstimator())
    True
    >>> model_version(VADEstimator()) == model_version(VADEstimator(onset=0.5))
    False
    >>> model_version(VADEstimator()).startswith("skseg-VADEstimator-")
    True
    """
    params = estimator.get_params(deep=False)
    text = repr(sorted((name, _identity(value)) for name, value in params.items()))
    digest = hashlib.sha1(f"{type(estimator).__name__}:{text}".encode()).hexdigest()
    return f"skseg-{type(estimator).__name__}-{digest[:12]}"


def _identity(value: Any) -> str:
    # an in-memory model is named by its weights, so a fine-tuned one is new
    digest = getattr(value, "weights_digest", None)
    if isinstance(digest, str):
        return f"{type(value).__name__}:{digest}"
    return repr(value)


def task_audio_path(task: Mapping, document_root: str | os.PathLike | None) -> str:
    """Return the local audio file of a Label Studio task, inside the document root.

    Parameters
    ----------
    task : mapping
        A Label Studio task (``{"id", "data": {...}}``).
    document_root : str or PathLike, optional
        Label Studio's ``LOCAL_FILES_DOCUMENT_ROOT``: ``/data/local-files/?d=REL``
        URLs, ``data.path`` and plain paths name files under it. None: no file
        can be read.

    Returns
    -------
    path : str
        The file, resolved (no symlink left in it).

    Raises
    ------
    FileError
        Naming the task, when its audio is not a regular file under
        ``document_root`` (a path outside it, a symlink out of it, a device or
        a pipe), or is a URL of another kind (``http://`` elsewhere, ``file://``):
        the backend never fetches audio over the network.

    Examples
    --------
    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()
    >>> open(os.path.join(root, "b.wav"), "wb").close()
    >>> task = {"id": 1, "data": {"audio": "/data/local-files/?d=b.wav"}}
    >>> path = task_audio_path(task, root)
    >>> path == os.path.join(os.path.realpath(root), "b.wav")
    True
    >>> task_audio_path({"id": 2, "data": {"path": "/etc/passwd"}}, root)
    Traceback (most recent call last):
    ...
    skseg.exceptions.FileError: Label Studio task 2: audio '/etc/passwd' lies outside \
the document root ...
    """
    data = task.get("data")
    where = f"Label Studio task {task.get('id')}"
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise FileError(where, "its 'data' is not an object")
    if data.get("path"):
        name = data["path"]
        if not isinstance(name, str):
            raise FileError(where, f"its 'path' {name!r} is not a string")
    else:
        audio = data.get("audio") or ""
        if not isinstance(audio, str):
            raise FileError(where, f"its 'audio' {audio!r} is not a string")
        parsed = urlparse(audio)
        relative = parse_qs(parsed.query).get("d", [None])[0]
        if (
            parsed.scheme in ("", "http", "https")
            and parsed.path.endswith(LOCAL_FILES)
            and relative
        ):
            name = relative
        elif audio and not (parsed.scheme or parsed.netloc or audio[:6] == "/data/"):
            name = audio
        else:
            raise FileError(
                where,
                f"audio {audio!r} is not a file the backend can read (it reads "
                "local files under its document root only: give tasks a 'path', "
                "or Label Studio's /data/local-files/ URLs)",
            )
    return _inside_root(where, name, document_root)


def _inside_root(where: str, name: str, document_root: str | os.PathLike | None) -> str:
    shown = name if len(name) <= 200 else name[:200] + "..."
    if document_root is None:
        raise FileError(
            where,
            f"audio {shown!r} not read: the backend has no document root (start it "
            "with --audio-root, Label Studio's LOCAL_FILES_DOCUMENT_ROOT)",
        )
    root = Path(document_root).resolve()
    try:
        # resolve follows every symlink: one pointing out of the root is seen
        path = (root / name).resolve()
        inside = path.is_relative_to(root)
        mode = os.stat(path).st_mode if inside else 0
    except FileNotFoundError:
        raise FileError(where, f"audio {shown!r}: no such file under {root}") from None
    except (OSError, ValueError) as e:  # a NUL byte, a name too long, a loop
        raise FileError(where, f"audio {shown!r} cannot be read ({e})") from None
    if not inside:
        raise FileError(where, f"audio {shown!r} lies outside the document root {root}")
    if not stat.S_ISREG(mode):
        # a pipe would block the reader forever, a device never end
        raise FileError(where, f"audio {shown!r} is not a regular file")
    return str(path)


def _stamp(annotation: Mapping) -> tuple:
    # Label Studio stamps an annotation when it is saved; its id breaks ties
    text = annotation.get("updated_at") or annotation.get("created_at")
    try:
        when = datetime.fromisoformat(str(text)).timestamp() if text else None
    except (TypeError, ValueError, OverflowError, OSError):
        when = None
    ident = annotation.get("id")
    return (
        when if when is not None else float("-inf"),
        ident if isinstance(ident, int) else -1,
    )


class LabelStudioBackend:
    """Pre-annotate Label Studio tasks with an estimator; re-tune it on annotations.

    Parameters
    ----------
    estimator : estimator
        The pipeline that pre-annotates (VAD, OSD or speaker segmentation); it
        is not modified: re-tuned clones replace it.
    from_name, to_name : str
        The ``<Labels>`` control and ``<Audio>`` object of the labeling config
        (:func:`~skseg.annotation.labelstudio.labeling_config`).
    document_root : str or PathLike, optional
        Label Studio's ``LOCAL_FILES_DOCUMENT_ROOT``: the only folder whose files
        the backend reads, see :func:`task_audio_path`. None: no audio is read.
    retune : bool, default=True
        Re-tune on each annotation event.
    min_annotations : int, default=1
        Annotated tasks needed before re-tuning.
    param_grid : dict, optional
        Grid for :func:`~skseg.annotation.tuning.tune_on_examples`.
    cv : int or splitter, optional
        Cross-validation for the same.
    fine_tune : callable, optional
        ``fine_tune(estimator, X, y) -> estimator``, run on the annotations
        before re-tuning (for instance a network fine-tuned and set as
        ``segmentation=``); None: thresholds only.

    Attributes
    ----------
    estimator_ : estimator
        The pipeline serving now.
    examples : dict
        Label Studio task id -> its latest annotation, in file time. Latest by
        Label Studio's ``updated_at`` (then annotation id): webhooks handled
        concurrently may arrive out of order, and an older one never replaces
        a newer one.
    history : list of dict
        One entry per successful update: ``{"model_version", "n_annotations",
        "best_params", "best_score", "metric"}``.
    failures : list of str
        Annotations that could not be used, and failed updates, named.

    Examples
    --------
    >>> import os
    >>> from skseg import VADEstimator, fetch_sample
    >>> audio = fetch_sample()["audio"]
    >>> backend = LabelStudioBackend(VADEstimator(onset=0.5, offset=0.5,
    ...     min_duration_on=0.0, min_duration_off=0.0),
    ...     document_root=os.path.dirname(audio))
    >>> task = {"id": 1, "data": {"audio": "/data/local-files/?d=sample.wav",
    ...         "path": audio, "uri": "sample", "start": 0.0, "end": 10.0}}
    >>> prediction = backend.predict([task])[0]
    >>> [r["value"]["start"] for r in prediction["result"]]
    [6.713, 7.574]
    >>> prediction["model_version"] == backend.model_version
    True
    """

    def __init__(
        self,
        estimator: Any,
        *,
        from_name: str = "label",
        to_name: str = "audio",
        document_root: str | os.PathLike | None = None,
        retune: bool = True,
        min_annotations: int = 1,
        param_grid: Mapping[str, list] | None = None,
        cv: Any = None,
        fine_tune: Callable[[Any, list, list], Any] | None = None,
    ):
        self.estimator = estimator
        self.from_name = from_name
        self.to_name = to_name
        self.document_root = document_root
        self.retune = retune
        self.min_annotations = min_annotations
        self.param_grid = param_grid
        self.cv = cv
        self.fine_tune = fine_tune
        self.estimator_ = estimator
        self.examples: dict[Any, dict] = {}
        self._stamps: dict[Any, tuple] = {}  # task id -> its latest annotation's
        self.history: list[dict] = []
        self.failures: list[str] = []
        self._lock = threading.Lock()  # guards estimator_ and examples
        self._update_lock = threading.Lock()  # one update at a time

    @property
    def model_version(self) -> str:
        """The serving pipeline's version, see :func:`model_version`."""
        return model_version(self.estimator_)

    def predict(self, tasks: list[Mapping]) -> list[dict]:
        """Return one prediction per task, with the pipeline serving now.

        Parameters
        ----------
        tasks : list of mapping
            Label Studio tasks (``{"id", "data"}``). A task's region is
            ``data.start``/``data.end`` when set (tasks made by skseg), else the
            whole file.

        Returns
        -------
        predictions : list of dict
            ``{"model_version", "result": [regions]}`` in the order of
            ``tasks``. A task whose audio cannot be read gets an empty result and
            its problem is logged and kept in :attr:`failures` (Label Studio
            matches predictions to tasks by position).
        """
        with self._lock:
            estimator, version = self.estimator_, self.model_version
        out = []
        for task in tasks:
            if not isinstance(task, Mapping):
                self._fail(f"prediction for a task {task!r:.80}: not an object")
                out.append({"model_version": version, "result": []})
                continue
            try:
                result = self._regions(estimator, task)
            except SksegError as error:
                where = f"Label Studio task {task.get('id')}"
                named = str(error).startswith(where)
                self._fail(f"prediction for {'' if named else where + ': '}{error}")
                result = []
            # no "score": the pipeline gives regions, not a confidence in them
            out.append({"model_version": version, "result": result})
        return out

    def _regions(self, estimator: Any, task: Mapping) -> list[dict]:
        path = task_audio_path(task, self.document_root)
        data = task.get("data") or {}
        try:
            start = float(data.get("start") or 0.0)
            end = float(data["end"]) if data.get("end") is not None else None
        except (TypeError, ValueError):
            raise FileError(
                path, f"task {task.get('id')}: 'start'/'end' are not numbers"
            ) from None
        if end is None:
            end = _duration(path)
        file = {"audio": path, "uri": str(data.get("uri") or Path(path).stem)}
        try:
            hypothesis = estimator(file)
        except SksegError:
            raise
        except Exception as e:  # the estimator failed on this file: name it
            raise FileError(path, f"prediction failed ({type(e).__name__}: {e})") from e
        spans = annotation_to_spans(hypothesis, Segment(start, float(end)))
        return [
            {
                "id": f"skseg{i}",
                "from_name": self.from_name,
                "to_name": self.to_name,
                "type": "labels",
                "origin": "prediction",
                "value": {
                    "start": span["start"],
                    "end": span["end"],
                    "channel": 0,
                    "labels": [span["label"]],
                },
            }
            for i, span in enumerate(spans)
        ]

    @property
    def ready(self) -> bool:
        """Whether an update would run: re-tuning on, enough annotations."""
        return bool(self.retune) and len(self.examples) >= self.min_annotations

    def add_annotation(self, payload: Mapping) -> bool:
        """Keep the annotation of a webhook payload (the task's latest one).

        Parameters
        ----------
        payload : mapping
            Label Studio's webhook body: ``{"action", "task", "annotation"}``.
            Actions other than ``ANNOTATION_CREATED``/``ANNOTATION_UPDATED``
            are ignored.

        Returns
        -------
        taken : bool
            False when the event was ignored or the annotation is unusable (its
            problem, naming the task, is in :attr:`failures`). A cancelled
            (skipped) annotation removes the task's earlier one.
        """
        if payload.get("action") not in ANNOTATION_ACTIONS:
            return False
        task, annotation = payload.get("task") or {}, payload.get("annotation") or {}
        if not isinstance(task, Mapping) or not isinstance(annotation, Mapping):
            self._fail("annotation not used: 'task' or 'annotation' not an object")
            return False
        task = dict(task)
        where = f"Label Studio task {task.get('id')}"
        stamp = _stamp(annotation)
        try:
            hash(task.get("id"))
        except TypeError:
            self._fail(f"annotation not used: {where}: the task id is not a value")
            return False
        try:
            path = task_audio_path(task, self.document_root)
            # a whole-file task not made by skseg: its region is the file
            data = {"uri": Path(path).stem, "start": 0.0} | dict(task.get("data") or {})
            if data.get("end") is None:
                data["end"] = _duration(path)
            data["path"] = path
            task["data"] = data
            task["annotations"] = [annotation]
            examples = from_labelstudio([task], from_name=self.from_name)
            if not examples:
                return False
            example = examples[0]
            if example.get("skseg_error"):
                raise ValueError(example["skseg_error"])
            if example["answer"] == "accept":
                example = to_file_time(example)
                self._check_inside_audio(example)
            else:
                example = None  # cancelled (skipped): forget the task
        except (SksegError, ValueError, TypeError, KeyError, AttributeError) as error:
            self._fail(f"annotation not used: {where}: {error}")
            return False
        with self._lock:
            # check and keep at once: concurrent webhooks may arrive out of order
            if stamp < self._stamps.get(task.get("id"), stamp):
                logger.info("%s: an older annotation arrived late, not kept", where)
                return False
            self._stamps[task.get("id")] = stamp
            if example is None:
                self.examples.pop(task.get("id"), None)
                return False
            self.examples[task.get("id")] = example
        return True

    def annotation_event(self, payload: Mapping) -> dict | None:
        """Take a webhook payload and, when it brought an annotation, update.

        Parameters
        ----------
        payload : mapping
            See :meth:`add_annotation`.

        Returns
        -------
        entry : dict or None
            The new :attr:`history` entry when the pipeline was updated, else
            None (event ignored, annotation unusable, too few annotations, or
            the update failed: the previous pipeline keeps serving).
        """
        if not self.add_annotation(payload) or not self.ready:
            return None
        return self.update()

    def status(self) -> dict:
        """Return the serving version, the annotations, history and failures.

        Returns
        -------
        status : dict
            ``{"model_version", "params", "n_annotations", "history",
            "failures"}`` (JSON-serialisable).
        """
        with self._lock:
            params = {
                name: value
                for name, value in self.estimator_.get_params(deep=False).items()
                if isinstance(value, int | float | str | bool | None)
            }
            return {
                "model_version": self.model_version,
                "params": params,
                "n_annotations": len(self.examples),
                "history": list(self.history),
                "failures": list(self.failures),
            }

    def _check_inside_audio(self, example: Mapping) -> None:
        meta = example["meta"]
        duration = _duration(meta["path"])
        end = max([s["end"] for s in example["audio_spans"]], default=0.0)
        if float(meta["end"]) > duration + 1e-3 or end > duration + 1e-3:
            raise ValueError(
                f"spans end at {max(end, float(meta['end'])):g} s, after the end of "
                f"{meta['path']} ({duration:g} s)"
            )

    def update(self) -> dict | None:
        """Re-tune (and fine-tune, if set) on every annotation so far.

        Returns
        -------
        entry : dict or None
            The new :attr:`history` entry, or None if the update failed (the
            previous pipeline keeps serving; the problem is in :attr:`failures`).
        """
        with self._update_lock:
            with self._lock:
                examples = list(self.examples.values())
                current = self.estimator_
            source = f"{len(examples)} Label Studio annotations"
            try:
                candidate = clone(current)
                if self.fine_tune is not None:
                    from .tuning import examples_to_dataset

                    X, y = examples_to_dataset(examples, source=source)
                    candidate = self.fine_tune(candidate, X, y)
                result = tune_on_examples(
                    candidate,
                    examples,
                    param_grid=self.param_grid,
                    cv=self.cv,
                    source=source,
                )
                candidate.set_params(**result.best_params)
            except Exception as error:  # noqa: BLE001 -- keep serving
                self._fail(
                    f"update on {source} failed: {error}; still serving "
                    f"{model_version(current)}"
                )
                return None
            entry = {
                "model_version": model_version(candidate),
                "n_annotations": len(examples),
                "best_params": dict(result.best_params),
                "best_score": float(result.best_score),
                "metric": result.metric,
            }
            with self._lock:
                self.estimator_ = candidate
                self.history.append(entry)
            logger.info(
                "pipeline updated on %d annotations: %s (%s %.4f) -> %s",
                entry["n_annotations"],
                entry["best_params"],
                entry["metric"],
                entry["best_score"],
                entry["model_version"],
            )
            return entry

    def _fail(self, message: str) -> None:
        logger.warning("%s", message)
        with self._lock:
            self.failures.append(message)
