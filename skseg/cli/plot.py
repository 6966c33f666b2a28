"""``skseg plot``: draw one file's waveform, scores, decisions and reference."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .common import (
    UsageError,
    add_model_flags,
    add_progress_flags,
    attach_baseline,
    build_estimator,
    check_ready,
    positive_float,
    positive_int,
    read_annotations,
    refuse_overwriting,
)

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add ``skseg plot``.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="skseg")
    >>> register(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["plot", "a.wav", "--out", "a.png", "--mode", "fast"]).mode
    'fast'
    """
    from ..pipelines import PIPELINES

    plot = commands.add_parser(
        "plot",
        help="draw waveform, scores, thresholds, predictions and reference",
        description="Draw one file: waveform, frame scores with the thresholds, "
        "predicted regions and the reference (needs skseg[plot]).",
    )
    plot.add_argument("audio", metavar="AUDIO")
    plot.add_argument("--out", required=True, metavar="FIG", help="e.g. fig.png")
    plot.add_argument(
        "--task", choices=sorted(PIPELINES), help="pipeline (default: vad)"
    )
    plot.add_argument("--reference", metavar="RTTM", help="reference speaker turns")
    plot.add_argument(
        "--baseline", metavar="RTTM", help="baseline diarization (resegment only)"
    )
    plot.add_argument("--dpi", type=positive_int, default=100)
    plot.add_argument("--width", type=positive_float, default=12.0, help="inches")
    add_model_flags(plot)
    add_progress_flags(plot)
    plot.set_defaults(run=_run, parser=plot)


def _reference_of(path: str, uri: str) -> Any:
    annotations = read_annotations(path, "--reference")
    if uri not in annotations:
        known = ", ".join(sorted(annotations)) or "none"
        raise UsageError(
            f"--reference {path}: no turns for uri {uri!r} (uris: {known})"
        )
    return annotations[uri]


def _run(args: argparse.Namespace) -> int:
    """Run ``skseg plot``; return its exit status."""
    from ..audio import validate_file
    from ..pipelines import pipeline_name

    try:
        from ..plot import plot_file
    except ImportError as e:  # pragma: no cover - only without the extra
        raise UsageError(str(e)) from None
    file = validate_file(args.audio)
    if not Path(file["audio"]).is_file():
        raise UsageError(f"{args.audio}: no such file")
    # the memory cache: the figure's other curves reuse the estimator's network run
    estimator = build_estimator(args, args.task, default_cache=True)
    task = args.task or pipeline_name(estimator)
    if task == "resegment":
        if args.baseline is None:
            raise UsageError("plotting resegment needs --baseline RTTM")
        if attach_baseline([file], args.baseline, estimator.baseline):
            raise UsageError(
                f"--baseline {args.baseline}: no turns for uri {file['uri']!r}"
            )
    reference = _reference_of(args.reference, file["uri"]) if args.reference else None
    inputs = [file["audio"], args.reference, args.baseline, args.segmentation]
    refuse_overwriting([args.out], [p for p in inputs if p])
    check_ready(estimator)
    try:
        figure = plot_file(file, estimator, reference=reference, width=args.width)
    except ImportError as e:
        raise UsageError(str(e)) from None
    try:
        figure.savefig(args.out, dpi=args.dpi)
    except (OSError, ValueError) as e:
        raise UsageError(f"--out {args.out}: {e}") from None
    print(args.out)
    return 0
