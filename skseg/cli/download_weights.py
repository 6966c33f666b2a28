"""``skseg download-weights``: fetch, verify and print the pretrained weights."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add ``skseg download-weights``.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="skseg")
    >>> register(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["download-weights"]).checkpoint
    'pyannote/segmentation'
    """
    weights = commands.add_parser(
        "download-weights",
        help="fetch, verify and print the pretrained weights' path and sha256",
    )
    weights.add_argument(
        "--checkpoint", default="pyannote/segmentation", metavar="ID_OR_PATH"
    )
    weights.add_argument("-q", "--quiet", action="store_true")
    weights.set_defaults(run=_run, parser=weights)


def _run(args: argparse.Namespace) -> int:
    """Run ``skseg download-weights``; return its exit status."""
    from ..checkpoint import sha256sum
    from ..exceptions import CheckpointError, WeightsUnavailableError
    from ..hub import MIRRORS, resolve_checkpoint
    from ..model import load_model

    try:
        path = resolve_checkpoint(args.checkpoint)
        digest = sha256sum(path)
        model = load_model(path)
    except (WeightsUnavailableError, CheckpointError) as e:
        print(f"skseg download-weights: {e}", file=sys.stderr)
        return 1
    pinned = MIRRORS.get(os.fspath(args.checkpoint))
    if pinned is not None and digest != pinned.sha256:
        print(
            f"skseg download-weights: {path} has sha256 {digest}, not the pinned "
            f"{pinned.sha256}",
            file=sys.stderr,
        )
        return 1
    if not args.quiet:
        verified = (
            f"matches the pinned sha256 of {args.checkpoint}"
            if pinned
            else "no pinned digest for it"
        )
        print(
            f"skseg download-weights: {verified}; loads as {type(model).__name__} "
            f"({model.duration:g} s chunks, {model.sample_rate} Hz)",
            file=sys.stderr,
        )
    # sha256sum's format: `sha256sum -c` can check it later
    print(f"{digest}  {path}")
    return 0
