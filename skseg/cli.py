"""The ``skseg`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from pyannote.metrics.detection import DetectionErrorRate

    from .binarize import Binarize
    from .datasets import fetch_sample
    from .inference import Inference, aggregate
    from .model import load_model
    from .references import overlap_reference, speech_reference

    sample = fetch_sample()
    model = load_model(args.segmentation)
    chunks = Inference(model)(sample)
    print(f"{sample['audio']}: {chunks.duration:.1f} s, {chunks.data.shape[0]} chunks")
    tasks = [
        ("VAD", "speech", (0.767, 0.377, 0.136, 0.067), speech_reference),
        ("OSD", "overlap", (0.430, 0.320, 0.091, 0.144), overlap_reference),
    ]
    for name, reduction, params, to_reference in tasks:
        onset, offset, on, off = params
        scores = aggregate(chunks, reduction=reduction)
        hypothesis = Binarize(onset, offset, on, off)(scores, uri=sample["uri"])
        reference = to_reference(sample["annotation"])
        metric = DetectionErrorRate(collar=0.0, skip_overlap=False)
        rate = metric(reference, hypothesis, uem=sample["annotated"], detailed=True)
        print(
            f"\n{name} (onset={onset}, offset={offset}, min_duration_on={on}, "
            f"min_duration_off={off})"
        )
        for segment in hypothesis.get_timeline():
            print(f"  {segment.start:8.3f} {segment.end:8.3f}")
        print(
            f"  detection error rate {100 * rate['detection error rate']:.2f} % "
            f"(false alarm {rate['false alarm']:.3f} s, miss {rate['miss']:.3f} s, "
            f"reference {rate['total']:.2f} s)"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``skseg`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments; defaults to ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 on success.
    """
    parser = argparse.ArgumentParser(prog="skseg", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="VAD + OSD on pyannote's sample, scored against its reference"
    )
    demo.add_argument("--segmentation", default="pyannote/segmentation")
    demo.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
