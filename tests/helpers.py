"""Small builders shared by the tests."""

import io

import numpy as np
import soundfile as sf
from pyannote.core import Annotation, Segment, Timeline


def excerpt(sample, start, end, uri=None):
    """An in-memory file cut out of the sample, with its reference shifted to 0."""
    wav, sr = sf.read(sample["audio"], dtype="float32")
    a, b = int(start * sr), int(end * sr)
    reference = Annotation(uri=uri)
    for segment, track, label in (
        sample["annotation"].crop(Segment(start, end)).itertracks(yield_label=True)
    ):
        reference[Segment(segment.start - start, segment.end - start), track] = label
    uri = uri or f"sample_{start:g}_{end:g}"
    return {
        "waveform": wav[None, a:b],
        "sample_rate": sr,
        "uri": uri,
        "annotation": reference,
        "annotated": Timeline([Segment(0, (b - a) / sr)], uri=uri),
    }


def rttm_segments(path):
    rows = [line.split() for line in open(path) if line.strip()]
    return sorted((float(r[3]), float(r[3]) + float(r[4]), r[7]) for r in rows)


def segments(annotation):
    return sorted(
        (s.start, s.end, label)
        for s, _, label in annotation.itertracks(yield_label=True)
    )


def max_boundary_diff(a, b):
    assert len(a) == len(b), (a, b)
    return (
        float(np.abs(np.array([x[:2] for x in a]) - np.array([x[:2] for x in b])).max())
        if a
        else 0.0
    )


class Recorder(io.RawIOBase):
    """A byte stream that records how much each read asks for."""

    def __init__(self, data):
        self.data, self.position, self.reads = data, 0, []

    def readable(self):
        return True

    def read(self, n=-1):
        n = len(self.data) - self.position if n < 0 else n
        self.reads.append(n)
        out = self.data[self.position : self.position + n]
        self.position += len(out)
        return out
