"""Reviewing annotations: where a hypothesis (or another annotator) disagrees.

:func:`error_regions` compares a hypothesis with a reference and labels where they
differ ``"missed detection"``, ``"false alarm"`` or ``"confusion"``
(pyannote.metrics' ``IdentificationErrorAnalysis``, as pyannote.audio's
``pyannote.diff`` recipe did). :func:`review_tasks` turns those regions into tasks
that play the audio with the errors as labelled spans, the chunks with the most
error first; the reference and each hypothesis travel with the task, as span lists
that ``before_db`` maps to file time like the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping

from pyannote.core import Annotation, Segment, Timeline

from ..audio import AudioFile, AudioReader, file_label, validate_file
from ..batch import FileFailure
from ..exceptions import FileError, SksegError
from .spans import annotation_to_spans
from .tasks import (
    SAMPLE_RATE,
    add_audio,
    check_audio,
    chunk_regions,
    file_meta,
    set_hashes,
)

__all__ = ["ERRORS", "MODES", "error_regions", "review_tasks"]

logger = logging.getLogger(__name__)

#: the kinds of error, as span labels
ERRORS = ("missed detection", "false alarm", "confusion")

#: how labels are compared, see :func:`error_regions`
MODES = ("auto", "detection", "identification", "diarization")


def _resolve_mode(mode: str, reference: Annotation, hypothesis: Annotation) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode != "auto":
        return mode
    if set(reference.labels()) & set(hypothesis.labels()):
        return "identification"
    if len(hypothesis.labels()) <= 1 or len(reference.labels()) <= 1:
        return "detection"
    return "diarization"


def _as_one_label(annotation: Annotation) -> Annotation:
    out = Annotation(uri=annotation.uri)
    for i, segment in enumerate(annotation.get_timeline().support()):
        out[segment, i] = "speech"
    return out


def error_regions(
    reference: Annotation,
    hypothesis: Annotation,
    *,
    uem: Timeline | None = None,
    mode: str = "auto",
    min_duration: float = 0.0,
    kinds: Iterable[str] | None = None,
) -> Annotation:
    """Return where ``hypothesis`` disagrees with ``reference``, labelled by error.

    Parameters
    ----------
    reference, hypothesis : Annotation
    uem : Timeline, optional
        Where to compare; default: the extent of both.
    mode : {"auto", "detection", "identification", "diarization"}, default="auto"
        ``"detection"``: only where anybody speaks matters (a VAD or OSD
        hypothesis against speaker turns). ``"identification"``: labels are
        compared as they are. ``"diarization"``: hypothesis labels are first
        mapped to reference labels (optimal mapping). ``"auto"``:
        identification when the two share a label, detection when either has at
        most one label, diarization otherwise.
    min_duration : float, default=0.0
        Error regions this short or shorter are dropped (seconds).
    kinds : iterable of str, optional
        Keep only these kinds of :data:`ERRORS`.

    Returns
    -------
    errors : Annotation
        Regions labelled ``"missed detection"``, ``"false alarm"`` or
        ``"confusion"``.

    Examples
    --------
    >>> from pyannote.core import Annotation, Segment
    >>> reference, hypothesis = Annotation(uri="a"), Annotation(uri="a")
    >>> reference[Segment(0, 10)] = "alice"
    >>> hypothesis[Segment(2, 12)] = "SPEECH"
    >>> for segment, _, kind in error_regions(reference, hypothesis).itertracks(
    ...         yield_label=True):
    ...     print(segment.start, segment.end, kind)
    0 2 missed detection
    10 12 false alarm
    """
    from pyannote.metrics.errors.identification import IdentificationErrorAnalysis

    kinds = set(ERRORS if kinds is None else kinds)
    unknown = kinds - set(ERRORS)
    if unknown:
        raise ValueError(f"unknown error kinds {sorted(unknown)}; known: {ERRORS}")
    mode = _resolve_mode(mode, reference, hypothesis)
    if mode == "detection":
        reference, hypothesis = _as_one_label(reference), _as_one_label(hypothesis)
    elif mode == "diarization":
        from pyannote.metrics.diarization import DiarizationErrorRate

        mapping = DiarizationErrorRate().optimal_mapping(reference, hypothesis, uem)
        hypothesis = hypothesis.rename_labels(mapping)
    if uem is None:
        both = reference.get_timeline().union(hypothesis.get_timeline())
        uem = Timeline([both.extent()]) if both else Timeline()
    difference = IdentificationErrorAnalysis().difference(
        reference, hypothesis, uem=uem
    )
    errors = Annotation(uri=reference.uri or hypothesis.uri)
    track = 0
    for kind in ERRORS:
        if kind not in kinds:
            continue
        timeline = Timeline(
            [
                s
                for s, _, label in difference.itertracks(yield_label=True)
                if label[0] == kind
            ]
        ).support()
        for segment in timeline:
            if segment.duration > min_duration:
                errors[segment, track] = kind
                track += 1
    return errors


def review_tasks(
    files: Iterable[AudioFile],
    reference: Mapping[str, Annotation],
    hypotheses: Mapping[str, Mapping[str, Annotation]],
    *,
    chunk: float | None = 30.0,
    audio: str = "base64",
    mode: str = "auto",
    min_duration: float = 0.0,
    kinds: Iterable[str] | None = None,
    on_error: Callable[[FileFailure], None] | None = None,
) -> list[dict]:
    """Return review tasks: chunks with errors, the most erroneous first.

    Parameters
    ----------
    files : iterable of files
        The recordings (their uri selects their annotations).
    reference : mapping
        ``{uri: Annotation}``, e.g. from :func:`skseg.io.read_rttm`.
    hypotheses : mapping
        ``{name: {uri: Annotation}}``: one or several hypotheses (a system, other
        annotators). With several, error labels say whose they are:
        ``"false alarm (bob)"``.
    chunk : float or None, default=30.0
        Task duration; None: one task per file.
    audio : {"base64", "path", "none"}, default="base64"
    mode, min_duration, kinds
        See :func:`error_regions`.
    on_error : callable, optional
        ``on_error(failure)`` for each file skipped (unreadable, or with no
        reference or hypothesis for its uri).

    Returns
    -------
    tasks : list of dict
        ``audio_manual`` tasks: ``"audio_spans"`` are the errors, with
        ``"audio_spans_reference"`` and ``"audio_spans_<name>"`` for each
        hypothesis, all in task time; ``meta`` as for correction tasks, plus the
        error duration per kind.

    Examples
    --------
    >>> from skseg import VADEstimator, fetch_sample
    >>> sample = fetch_sample()
    >>> tasks = review_tasks([sample], {"sample": sample["annotation"]},
    ...                      {"vad": {"sample": VADEstimator()(sample)}},
    ...                      chunk=10.0, audio="none")
    >>> for task in tasks:  # the chunks with most error first
    ...     print(task["text"], task["meta"]["errors"])
    sample.wav [0.0 - 10.0] {'missed detection': 0.098, 'false alarm': 0.049}
    sample.wav [10.0 - 20.0] {'false alarm': 0.13}
    sample.wav [20.0 - 30.0] {'false alarm': 0.057, 'missed detection': 0.036}
    >>> tasks[0]["config"]["labels"]
    ['false alarm', 'missed detection']
    """
    check_audio(audio, chunk)
    if not hypotheses:
        raise ValueError("no hypothesis to review")
    several = len(hypotheses) > 1
    candidates = []  # (error duration, task, file index, file)
    for index, file in enumerate(files):
        label = file_label(file)
        try:
            file = validate_file(file)
            uri = file["uri"]
            if uri not in reference:
                raise FileError(label, f"no reference for uri {uri!r}")
            missing = [name for name, h in hypotheses.items() if uri not in h]
            if missing:
                raise FileError(
                    label, f"no hypothesis for uri {uri!r} in {', '.join(missing)}"
                )
            with AudioReader(file, sample_rate=SAMPLE_RATE) as reader:
                duration = reader.duration
        except SksegError as error:
            failure = FileFailure(index, label, error)
            logger.warning("skipped %s", failure)
            if on_error is not None:
                on_error(failure)
            continue
        uem = file.get("annotated") or Timeline([Segment(0.0, duration)], uri=uri)
        errors = Annotation(uri=uri)
        for name, hypothesis in hypotheses.items():
            found = error_regions(
                reference[uri],
                hypothesis[uri],
                uem=uem,
                mode=mode,
                min_duration=min_duration,
                kinds=kinds,
            )
            if several:
                found = found.rename_labels(
                    {k: f"{k} ({name})" for k in found.labels()}
                )
            for segment, _, kind in found.itertracks(yield_label=True):
                errors[segment, errors.new_track(segment)] = kind
        meta = file_meta(file)
        for region in chunk_regions(duration, chunk):
            spans = annotation_to_spans(errors, region)
            if not spans:
                continue
            start, end = round(region.start, 3), round(region.end, 3)
            per_kind: dict[str, float] = {}
            for span in spans:
                per_kind[span["label"]] = round(
                    per_kind.get(span["label"], 0.0) + span["end"] - span["start"], 3
                )
            task = {
                "text": f"{meta['file']} [{start:.1f} - {end:.1f}]",
                "audio_spans": spans,
                "audio_spans_reference": annotation_to_spans(reference[uri], region),
                "meta": dict(meta, start=start, end=end, errors=per_kind),
                "chunk": {"start": start, "end": end},
                "config": {"labels": sorted(per_kind)},
                "spans_time": "task",
            }
            for name, hypothesis in hypotheses.items():
                task[f"audio_spans_{name}"] = annotation_to_spans(
                    hypothesis[uri], region
                )
            if "path" in meta:
                task["path"] = meta["path"]
            candidates.append((sum(per_kind.values()), len(candidates), task, file))
    candidates.sort(key=lambda c: (-c[0], c[1]))
    tasks = []
    for _, _, task, file in candidates:
        if audio != "none":
            with AudioReader(file, sample_rate=SAMPLE_RATE) as reader:
                add_audio(task, reader, audio)
        tasks.append(set_hashes(task))
    return tasks
