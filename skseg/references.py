"""Reference annotations derived from a speaker diarization reference."""

from __future__ import annotations

from pyannote.core import Annotation, Timeline

__all__ = ["speech_reference", "overlap_reference"]


def speech_reference(annotation: Annotation) -> Annotation:
    """Return where anybody speaks, labelled ``"SPEECH"``.

    Parameters
    ----------
    annotation : Annotation
        Speaker turns.

    Returns
    -------
    speech : Annotation

    Examples
    --------
    >>> from pyannote.core import Annotation, Segment
    >>> turns = Annotation(uri="call")
    >>> turns[Segment(0, 5)] = "alice"
    >>> turns[Segment(4, 8)] = "bob"
    >>> [(s.start, s.end) for s in speech_reference(turns).itersegments()]
    [(0, 8)]
    """
    return _label(annotation.get_timeline().support(), annotation.uri, "SPEECH")


def overlap_reference(annotation: Annotation) -> Annotation:
    """Return where two or more different speakers overlap, labelled ``"OVERLAP"``.

    Same definition as pyannote.audio 3.x's ``to_overlap``: the union of pairwise
    intersections of turns whose labels differ.

    Parameters
    ----------
    annotation : Annotation
        Speaker turns.

    Returns
    -------
    overlap : Annotation

    Examples
    --------
    >>> from pyannote.core import Annotation, Segment
    >>> turns = Annotation(uri="call")
    >>> turns[Segment(0, 5)] = "alice"
    >>> turns[Segment(4, 8)] = "bob"
    >>> turns[Segment(1, 2)] = "alice"  # alice over alice: not an overlap
    >>> [(s.start, s.end) for s in overlap_reference(turns).itersegments()]
    [(4, 5)]
    """
    overlap = Timeline(uri=annotation.uri)
    for (s1, t1), (s2, t2) in annotation.co_iter(annotation):
        if annotation[s1, t1] == annotation[s2, t2]:
            continue
        overlap.add(s1 & s2)
    return _label(overlap.support(), annotation.uri, "OVERLAP")


def _label(timeline: Timeline, uri: str | None, label: str) -> Annotation:
    out = Annotation(uri=uri)
    for i, segment in enumerate(timeline):
        out[segment, i] = label
    return out
