"""``skseg evaluate``: score a hypothesis RTTM against a reference RTTM."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .common import UsageError, read_annotations

__all__ = ["METRICS", "format_table", "register"]

#: --metric -> skseg.metrics scorer name
METRICS = {
    "detection": "neg_speech_detection_error_rate",
    "overlap": "neg_overlap_detection_error_rate",
    "diarization": "neg_diarization_error_rate",
    "greedy-diarization": "neg_greedy_diarization_error_rate",
    "speech-fmeasure": "speech_fmeasure",
    "overlap-fmeasure": "overlap_fmeasure",
}


def register(commands: Any) -> None:
    """Add ``skseg evaluate``.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="skseg")
    >>> register(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["evaluate", "--reference", "r", "--hypothesis", "h"]).metric
    'detection'
    """
    evaluate = commands.add_parser(
        "evaluate",
        help="score a hypothesis RTTM against a reference RTTM",
        description="Score a hypothesis RTTM against a reference RTTM, per file "
        "and in total (pyannote.metrics, as skseg.metrics tunes).",
    )
    evaluate.add_argument("--reference", required=True, metavar="RTTM")
    evaluate.add_argument("--hypothesis", required=True, metavar="RTTM")
    evaluate.add_argument(
        "--uem", metavar="UEM", help="evaluated regions (default: whole extent)"
    )
    evaluate.add_argument(
        "--metric",
        choices=list(METRICS),
        default="detection",
        help="detection: speech detection error rate (vad); overlap: overlap "
        "detection error rate (osd); diarization: DER; greedy-diarization: DER "
        "with greedy mapping (segment, resegment); *-fmeasure (default: detection)",
    )
    evaluate.add_argument(
        "--collar", type=float, default=0.0, help="seconds ignored around boundaries"
    )
    evaluate.add_argument(
        "--skip-overlap", action="store_true", help="do not evaluate overlaps"
    )
    evaluate.set_defaults(run=_run, parser=evaluate)


def _run(args: argparse.Namespace) -> int:
    """Run ``skseg evaluate``; return its exit status."""
    import copy
    import warnings

    from pyannote.core import Annotation

    from ..metrics import get_scorer

    references = read_annotations(args.reference, "--reference")
    hypotheses = read_annotations(args.hypothesis, "--hypothesis")
    uems = read_annotations(args.uem, "--uem") if args.uem else None
    scorer = get_scorer(METRICS[args.metric])
    for name in ("collar", "skip_overlap"):
        if hasattr(scorer, name):
            setattr(scorer, name, getattr(args, name))
    # the scorer's own metric and reference rule: the numbers skseg tunes with
    metric = scorer.make_metric()
    uris = sorted(set(references) | set(uems or {}))
    if not uris:
        raise UsageError(f"--reference {args.reference}: no turns at all")
    for uri in sorted(set(hypotheses) - set(uris)):
        print(
            f"skseg evaluate: uri {uri!r} of {args.hypothesis} has no reference: "
            "not evaluated",
            file=sys.stderr,
        )
    rows = []
    for uri in uris:
        reference = scorer.reference(references.get(uri, Annotation(uri=uri)))
        hypothesis = hypotheses.get(uri)
        if hypothesis is None:
            print(
                f"skseg evaluate: no hypothesis for uri {uri!r}: counted as empty",
                file=sys.stderr,
            )
            hypothesis = Annotation(uri=uri)
        uem = None
        if uems is not None:
            if uri not in uems:
                raise UsageError(f"--uem {args.uem}: no region for uri {uri!r}")
            uem = uems[uri]
        with warnings.catch_warnings():
            # without a UEM pyannote warns on every file; said once below instead
            warnings.simplefilter("ignore")
            components = metric(reference, hypothesis, uem=uem, detailed=True)
        rows.append((uri, components))
    if uems is None:
        print(
            "skseg evaluate: no --uem: each file is evaluated over the extent of its "
            "reference and hypothesis",
            file=sys.stderr,
        )
    total = copy.deepcopy(metric.accumulated_)
    total[metric.name] = abs(metric)
    rows.append(("TOTAL", total))
    print(format_table(metric, rows))
    return 0


def format_table(metric: Any, rows: list[tuple[str, dict]]) -> str:
    """Format per-uri metric components as an aligned text table.

    Parameters
    ----------
    metric : pyannote.metrics metric
        Gives the metric's name and components.
    rows : list of (str, dict)
        ``(uri, components)``; the last row is the total.

    Returns
    -------
    table : str

    Examples
    --------
    >>> from pyannote.metrics.detection import DetectionErrorRate
    >>> rows = [("a", {"detection error rate": 0.1, "false alarm": 1.0,
    ...                "miss": 0.0, "total": 10.0}),
    ...         ("TOTAL", {"detection error rate": 0.1, "false alarm": 1.0,
    ...                    "miss": 0.0, "total": 10.0})]
    >>> print(format_table(DetectionErrorRate(), rows))
    uri    detection error rate %  total (s)  false alarm (s)  miss (s)
    -----  ----------------------  ---------  ---------------  --------
    a                       10.00     10.000            1.000     0.000
    -----  ----------------------  ---------  ---------------  --------
    TOTAL                   10.00     10.000            1.000     0.000
    """
    name = metric.name
    components = [c for c in metric.metric_components() if c != name]
    header = ["uri", f"{name} %"] + [f"{c} (s)" for c in components]
    lines = [header]
    for uri, values in rows:
        cells = [uri, f"{100 * values[name]:.2f}"]
        cells += [f"{values.get(c, 0.0):.3f}" for c in components]
        lines.append(cells)
    widths = [max(len(row[k]) for row in lines) for k in range(len(header))]
    out = []
    for i, row in enumerate(lines):
        out.append(
            "  ".join(
                cell.ljust(w) if k == 0 else cell.rjust(w)
                for k, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if i == 0 or i == len(lines) - 2:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
