"""A dataset of answered tasks to per-file annotations, RTTM and UEM.

What a person annotated is the union of the regions of the tasks they accepted:
that is the UEM, the part of each file where the annotation is the truth (a region
with no span in it is a region with nothing to label, not a region nobody looked
at). Within it, the spans are the annotation.

Examples that cannot be used (flagged by ``before_db``, malformed, spans outside
their task) are named in :attr:`ExportResult.failures` and left out; the others are
all kept. When the same region was accepted more than once, the last answer in the
dataset wins, and a region that overlaps an earlier one replaces it where they
overlap.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO

from pyannote.core import Annotation, Segment, Timeline

from ..exceptions import FileError
from ..io import write_rttm, write_uem
from .examples import example_label, to_file_time
from .spans import spans_to_annotation

__all__ = ["ExportResult", "collect_annotations", "export"]

logger = logging.getLogger(__name__)


@dataclass
class ExportResult:
    """Annotations gathered from a dataset, per uri, and the examples left out.

    Parameters
    ----------
    annotations : dict
        ``{uri: Annotation}`` in file time.
    annotated : dict
        ``{uri: Timeline}``: the regions of accepted tasks (the UEM).
    files : dict
        ``{uri: audio path}`` where known.
    failures : list of str
        ``"<file> [start, end]: <problem>"`` for each example left out.
    n_examples : int
        Examples used.

    Examples
    --------
    >>> ExportResult().ok
    True
    """

    annotations: dict[str, Annotation] = field(default_factory=dict)
    annotated: dict[str, Timeline] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    n_examples: int = 0

    @property
    def ok(self) -> bool:
        """Whether every example could be used."""
        return not self.failures

    def dataset(self) -> tuple[list[dict], list[Annotation]]:
        """Return ``X, y`` for the estimators and :func:`skseg.tuning.tune`.

        Returns
        -------
        X : list of dict
            ``{"audio", "uri", "annotation", "annotated"}`` per file, sorted by uri
            (files whose audio path is unknown are left out).
        y : list of Annotation
        """
        X, y = [], []
        for uri in sorted(self.annotations):
            if uri not in self.files:
                continue
            file = {
                "audio": self.files[uri],
                "uri": uri,
                "annotation": self.annotations[uri],
                "annotated": self.annotated[uri],
            }
            X.append(file)
            y.append(file["annotation"])
        return X, y


def collect_annotations(
    examples: Iterable[Mapping],
    *,
    answers: Iterable[str] = ("accept",),
    source: str = "the examples",
    spans_key: str = "audio_spans",
) -> ExportResult:
    """Gather the accepted examples' spans into per-file annotations and UEMs.

    Parameters
    ----------
    examples : iterable of mapping
        Answered tasks, in file time (saved through ``before_db``) or task time.
    answers : iterable of str, default=("accept",)
        Which answers count as annotated (Prodigy's ``"answer"``; an example
        without one counts as accepted).
    source : str, default="the examples"
        What the examples are, for messages (e.g. ``"dataset 'vad_calls'"``).
    spans_key : str, default="audio_spans"
        Which span list is the annotation.

    Returns
    -------
    result : ExportResult

    Raises
    ------
    FileError
        Naming ``source``, when no example could be used at all (the failures,
        if any, are listed in the message).

    Examples
    --------
    >>> examples = [
    ...     {"answer": "accept", "meta": {"uri": "a", "start": 0.0, "end": 10.0},
    ...      "audio_spans": [{"start": 1.0, "end": 2.5, "label": "SPEECH"}]},
    ...     {"answer": "accept", "meta": {"uri": "a", "start": 10.0, "end": 20.0},
    ...      "audio_spans": [{"start": 0.5, "end": 4.0, "label": "SPEECH"}]},
    ...     {"answer": "ignore", "meta": {"uri": "a", "start": 20.0, "end": 30.0},
    ...      "audio_spans": []},
    ... ]
    >>> result = collect_annotations(examples)
    >>> result.annotations["a"].get_timeline()
    <Timeline(uri=a, segments=[<Segment(1, 2.5)>, <Segment(10.5, 14)>])>
    >>> result.annotated["a"]
    <Timeline(uri=a, segments=[<Segment(0, 20)>])>
    """
    answers = set(answers)
    result = ExportResult()
    regions: list[tuple[str, Segment, Annotation]] = []
    seen = 0
    for example in examples:
        seen += 1
        if not isinstance(example, Mapping):
            result.failures.append(f"example {seen}: not a mapping")
            continue
        if example.get("answer", "accept") not in answers:
            continue
        label = example_label(example)
        if "skseg_error" in example:
            result.failures.append(str(example["skseg_error"]))
            continue
        try:
            mapped = to_file_time(example)
        except FileError as error:
            result.failures.append(str(error))
            continue
        meta = mapped["meta"]
        uri = str(meta["uri"])
        region = Segment(float(meta["start"]), float(meta["end"]))
        try:
            annotation = spans_to_annotation(mapped.get(spans_key) or [], uri=uri)
        except (KeyError, TypeError, ValueError) as e:
            result.failures.append(f"{label}: {spans_key}: {e}")
            continue
        regions.append((uri, region, annotation))
        if meta.get("path"):
            result.files[uri] = str(meta["path"])
    for uri, region, annotation in regions:
        if uri in result.annotations:
            # a later answer for (part of) the same region replaces the earlier
            kept = result.annotations[uri].extrude(region, mode="intersection")
            for segment, _, label in annotation.itertracks(yield_label=True):
                kept[segment, kept.new_track(segment)] = label
            result.annotations[uri] = kept
            result.annotated[uri] = result.annotated[uri].union(
                Timeline([region], uri=uri)
            )
        else:
            result.annotations[uri] = annotation
            result.annotated[uri] = Timeline([region], uri=uri)
        result.n_examples += 1
    for uri in result.annotated:
        result.annotated[uri] = result.annotated[uri].support()
    for failure in result.failures:
        logger.warning("left out: %s", failure)
    if not result.annotations:
        problems = "; ".join(result.failures[:5])
        raise FileError(
            source,
            "no annotated examples to use"
            + (f" ({len(result.failures)} left out: {problems})" if problems else ""),
        )
    return result


def export(
    examples: Iterable[Mapping],
    rttm: str | os.PathLike | IO[str],
    uem: str | os.PathLike | IO[str] | None = None,
    *,
    answers: Iterable[str] = ("accept",),
    source: str = "the examples",
) -> ExportResult:
    """Write accepted examples as RTTM (the spans) and UEM (the task regions).

    Parameters
    ----------
    examples : iterable of mapping
        Answered tasks (see :func:`collect_annotations`).
    rttm : str, PathLike or text file
        Where the turns go.
    uem : str, PathLike or text file, optional
        Where the annotated regions go.
    answers : iterable of str, default=("accept",)
    source : str, default="the examples"
        What the examples are, for messages.

    Returns
    -------
    result : ExportResult
        What was written, and the examples left out (named).

    Raises
    ------
    FileError
        When no example could be used (nothing is written then).

    Examples
    --------
    >>> import io
    >>> rttm, uem = io.StringIO(), io.StringIO()
    >>> _ = export([{"meta": {"uri": "a", "start": 10.0, "end": 20.0},
    ...              "audio_spans": [{"start": 1, "end": 3, "label": "SPEECH"}]}],
    ...            rttm, uem)
    >>> print(rttm.getvalue() + uem.getvalue(), end="")
    SPEAKER a 1 11.000 2.000 <NA> <NA> SPEECH <NA> <NA>
    a 1 10.000 20.000
    """
    result = collect_annotations(examples, answers=answers, source=source)
    write_rttm(
        {uri: result.annotations[uri] for uri in sorted(result.annotations)}, rttm
    )
    if uem is not None:
        write_uem({uri: result.annotated[uri] for uri in sorted(result.annotated)}, uem)
    return result
