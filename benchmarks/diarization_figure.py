"""The figure of ``docs/diarization.md``: one diarized file, reference vs hypotheses.

Usage, from the repository root, after ``benchmarks/diarization.py`` wrote ``OUT``::

    .venv/bin/python benchmarks/diarization_figure.py OUT --uri tst00 \\
        --out docs/images/diarization_tst00.png

Panels, one shared time axis: the waveform envelope, the reference speaker turns,
then each system's turns (``skseg`` and ``pyannote 3.4`` by default), each
hypothesis' labels renamed to the reference speakers they are mapped to by the
DER's optimal mapping (unmatched ones keep their own), with its DER (collar 0)
in the panel's title. A reference speaker has one colour in every panel (a
hypothesis speaker matched to no reference speaker is grey), so the eye can follow
who was confused with whom; the PNG is kept small (100 dpi).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
from pyannote.metrics.diarization import DiarizationErrorRate  # noqa: E402

from skseg import read_rttm  # noqa: E402
from skseg.datasets import fetch_ami_excerpts  # noqa: E402

SYSTEMS = {
    "skseg": "skseg.rttm",
    "pyannote 3.4": "peer34/threshold-0.704565.rttm",
    "senko": "senko/senko.rttm",
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, help="OUT of benchmarks/diarization.py")
    parser.add_argument("--uri", default="tst00")
    parser.add_argument("--set", default="ami")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    files = {f["uri"]: f for split in fetch_ami_excerpts().values() for f in split}
    file = files[args.uri]
    reference = file["annotation"]
    panels = [("reference", reference)]
    for system, name in SYSTEMS.items():
        hypothesis = read_rttm(args.results / args.set / name)[args.uri]
        metric = DiarizationErrorRate(collar=0.0, skip_overlap=False)
        der = metric(reference, hypothesis, uem=file["annotated"])
        mapping = metric.optimal_mapping(reference, hypothesis)
        panels.append(
            (f"{system}\nDER {100 * der:.1f} %", hypothesis.rename_labels(mapping))
        )

    samples, rate = sf.read(file["audio"], dtype="float32")
    figure, axes = plt.subplots(
        len(panels) + 1,
        1,
        sharex=True,
        figsize=(9, 1.0 + 0.9 * len(panels)),
        gridspec_kw={"height_ratios": [0.8] + [1.0] * len(panels)},
    )
    bins = 1500
    edges = np.linspace(0, len(samples), bins + 1).astype(int)
    pairs = list(zip(edges[:-1], edges[1:], strict=True))
    low = np.array([samples[a:b].min() for a, b in pairs])
    high = np.array([samples[a:b].max() for a, b in pairs])
    times = edges[:-1] / rate
    peak = max(np.abs(low).max(), np.abs(high).max()) or 1.0
    axes[0].fill_between(times, low / peak, high / peak, color="0.4", linewidth=0)
    axes[0].set_yticks([])
    axes[0].set_ylabel("waveform", fontsize=9)
    palette = plt.get_cmap("tab10").colors
    colors = {
        label: palette[i % 10] for i, label in enumerate(sorted(reference.labels()))
    }
    for ax, (title, annotation) in zip(axes[1:], panels, strict=True):
        labels = sorted(annotation.labels(), key=str)
        for row, label in enumerate(labels):
            spans = [(s.start, s.duration) for s in annotation.label_timeline(label)]
            color = colors.get(label, "0.6")
            ax.broken_barh(spans, (row + 0.1, 0.8), facecolors=color)
        ax.set_yticks([row + 0.5 for row in range(len(labels))])
        ax.set_yticklabels([str(label) for label in labels], fontsize=8)
        ax.set_ylim(0, max(len(labels), 1))
        ax.invert_yaxis()
        ax.set_ylabel(title, fontsize=9)
    axes[-1].set_xlim(0, len(samples) / rate)
    axes[-1].set_xlabel("time (s)")
    axes[0].set_title(f"AMI excerpt {args.uri}: who spoke when", fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    args.out.write_bytes(buffer.getvalue())
    print(f"{args.out}: {len(buffer.getvalue()) / 1024:.0f} kB")


if __name__ == "__main__":
    main()
