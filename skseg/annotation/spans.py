"""Labelled time spans, as annotation tools exchange them, and Annotations.

Prodigy's ``audio_manual`` interface and Label Studio both describe regions of a
recording as ``{"start", "end", "label"}`` in seconds from the start of what the
annotator hears. A task covers one region of a file (a chunk), so its spans are
in *task time*; pyannote's Annotations, RTTM and UEM files are in *file time*.
The two conversions here are the only places where the offset is applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pyannote.core import Annotation, Segment

__all__ = ["annotation_to_spans", "spans_to_annotation", "check_spans"]

#: spans are rounded to the millisecond, the precision of RTTM files
DECIMALS = 3


def annotation_to_spans(
    annotation: Annotation, region: Segment | None = None
) -> list[dict]:
    """Return an annotation's turns inside ``region`` as spans in task time.

    Parameters
    ----------
    annotation : Annotation
        Turns in file time.
    region : Segment, optional
        The task's region of the file; turns are cropped to it and shifted so
        that ``region.start`` is 0. None: the whole annotation, unshifted.

    Returns
    -------
    spans : list of dict
        ``{"start", "end", "label"}``, in seconds (millisecond precision),
        sorted by start time.

    Examples
    --------
    >>> from pyannote.core import Annotation, Segment
    >>> speech = Annotation(uri="call")
    >>> speech[Segment(8.0, 12.5)] = "SPEECH"
    >>> annotation_to_spans(speech, Segment(10.0, 20.0))
    [{'start': 0.0, 'end': 2.5, 'label': 'SPEECH'}]
    """
    offset = 0.0
    if region is not None:
        annotation = annotation.crop(region, mode="intersection")
        offset = region.start
    spans = []
    for segment, _, label in annotation.itertracks(yield_label=True):
        start = round(segment.start - offset, DECIMALS)
        end = round(segment.end - offset, DECIMALS)
        if end > start:
            spans.append({"start": start, "end": end, "label": str(label)})
    return sorted(spans, key=lambda s: (s["start"], s["end"], s["label"]))


def check_spans(spans: Any, duration: float | None = None) -> list[dict]:
    """Validate spans; return them as a list of dicts.

    Parameters
    ----------
    spans : list of mapping
        ``{"start", "end", "label"}`` each.
    duration : float, optional
        The task's duration: spans must lie in ``[0, duration]`` (1 ms tolerance,
        the precision of the spans).

    Returns
    -------
    spans : list of dict

    Raises
    ------
    ValueError
        Naming the first bad span and what is wrong with it.

    Examples
    --------
    >>> check_spans([{"start": 1, "end": 12, "label": "SPEECH"}], duration=10)
    Traceback (most recent call last):
    ...
    ValueError: span 0 [1, 12] (SPEECH) ends after the task's end (10 s)
    """
    if spans is None:
        return []
    if not isinstance(spans, Iterable) or isinstance(spans, str | Mapping):
        raise ValueError(f"spans must be a list, got {type(spans).__name__}")
    out = []
    tolerance = 10.0**-DECIMALS
    for i, span in enumerate(spans):
        if not isinstance(span, Mapping):
            raise ValueError(f"span {i} is a {type(span).__name__}, not a mapping")
        missing = [key for key in ("start", "end", "label") if key not in span]
        if missing:
            raise ValueError(f"span {i} has no {', '.join(missing)}")
        try:
            start, end = float(span["start"]), float(span["end"])
        except (TypeError, ValueError):
            raise ValueError(
                f"span {i}: start {span['start']!r} / end {span['end']!r} "
                "are not numbers"
            ) from None
        where = f"span {i} [{span['start']:g}, {span['end']:g}] ({span['label']})"
        if not (start == start and end == end):  # NaN
            raise ValueError(f"{where} is not a number")
        if end < start:
            raise ValueError(f"{where} ends before it starts")
        if start < -tolerance:
            raise ValueError(f"{where} starts before the task's start (0 s)")
        if duration is not None and end > duration + tolerance:
            raise ValueError(f"{where} ends after the task's end ({duration:g} s)")
        out.append(dict(span))
    return out


def spans_to_annotation(
    spans: Iterable[Mapping], *, uri: str | None = None, offset: float = 0.0
) -> Annotation:
    """Return spans as an Annotation, shifted by ``offset`` seconds.

    Parameters
    ----------
    spans : iterable of mapping
        ``{"start", "end", "label"}`` each (other keys are ignored).
    uri : str, optional
        The annotation's uri.
    offset : float, default=0.0
        Added to every time: the task's start in its file, to get file time.

    Returns
    -------
    annotation : Annotation
        One track per span; empty spans are dropped.

    Examples
    --------
    >>> spans = [{"start": 0.0, "end": 2.5, "label": "SPEECH"}]
    >>> spans_to_annotation(spans, uri="call", offset=10.0).get_timeline()
    <Timeline(uri=call, segments=[<Segment(10, 12.5)>])>
    """
    annotation = Annotation(uri=uri)
    for track, span in enumerate(spans):
        start = round(offset + float(span["start"]), DECIMALS)
        end = round(offset + float(span["end"]), DECIMALS)
        if end > start:
            annotation[Segment(start, end), track] = str(span["label"])
    return annotation
