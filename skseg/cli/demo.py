"""``skseg demo``: the VAD and OSD estimators on pyannote's sample, scored."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add ``skseg demo``.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="skseg")
    >>> register(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["demo"]).segmentation
    'pyannote/segmentation'
    """
    demo = commands.add_parser(
        "demo", help="VAD + OSD on pyannote's sample, scored against its reference"
    )
    demo.add_argument("--segmentation", default="pyannote/segmentation")
    demo.set_defaults(run=_run, parser=demo)


def _run(args: argparse.Namespace) -> int:
    """Run ``skseg demo``: each estimator with its defaults, as a user would."""
    from ..datasets import fetch_sample
    from ..metrics import DetectionErrorRateScorer
    from ..pipelines import OSDEstimator, VADEstimator
    from ..pipelines.parameters import HYPER_PARAMETERS

    sample = fetch_sample()
    vad = VADEstimator(segmentation=args.segmentation)
    chunks = vad.score_source().file(sample).chunks()
    print(f"{sample['audio']}: {chunks.duration:.1f} s, {chunks.data.shape[0]} chunks")
    demos = [
        ("VAD", vad, "speech"),
        ("OSD", OSDEstimator(segmentation=args.segmentation), "overlap"),
    ]
    for name, estimator, target in demos:
        hypothesis = estimator.predict([sample])[0]
        scorer = DetectionErrorRateScorer(target=target)
        metric = scorer.make_metric()
        rate = metric(
            scorer.reference(sample["annotation"]),
            hypothesis,
            uem=sample["annotated"],
            detailed=True,
        )
        params = estimator.get_params()
        # "auto" thresholds shown as the values the model's rule gives them
        params["onset"], params["offset"], rule = estimator.resolve_thresholds()
        shown = ", ".join(f"{p}={params[p]}" for p in HYPER_PARAMETERS)
        if rule != "multi-label":
            shown += f", {rule}"
        print(f"\n{name} ({shown})")
        for segment in hypothesis.get_timeline():
            print(f"  {segment.start:8.3f} {segment.end:8.3f}")
        print(
            f"  detection error rate {100 * rate['detection error rate']:.2f} % "
            f"(false alarm {rate['false alarm']:.3f} s, miss {rate['miss']:.3f} s, "
            f"reference {rate['total']:.2f} s)"
        )
    return 0
