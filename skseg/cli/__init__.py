"""The ``skseg`` command: segment, tune, evaluate and plot from a shell.

``skseg vad|osd|segment|resegment`` write RTTM for many audio files, one file's
result as soon as it is done; ``skseg stream`` writes the regions of a live stream
(standard input, a file or a microphone) as soon as they are final; ``skseg tune``
grid-searches a pipeline on a folder of annotated audio and saves the tuned
estimator; ``skseg finetune`` adapts the segmentation network to a folder of
annotated audio and saves it for every command's ``--segmentation``; ``skseg
evaluate`` scores an RTTM against a reference; ``skseg plot``
draws one file; ``skseg labelstudio`` serves skseg's ML backend to Label Studio,
sets up projects and exports them; ``skseg download-weights`` fetches and verifies
the pretrained weights; ``skseg demo`` runs VAD and OSD on pyannote's sample.

Exit codes: 0 success; 1 some files failed (each is named on stderr with its
problem, and the others' results are written); 2 usage error (bad arguments, or an
argument naming something unusable: nothing was processed); 130 ``skseg
finetune`` interrupted with Ctrl-C (the best weights so far are saved).

One module per command, each with ``register(subparsers)``, which adds its
arguments and sets its run function (``args -> exit status``) as the parser's
``run`` default; adding a command is adding its module and its name to
:data:`COMMANDS`. What they share is in
:mod:`skseg.cli.common`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .common import UsageError

__all__ = ["COMMANDS", "build_parser", "main"]

#: the command modules of this package, in the order ``skseg --help`` lists them
COMMANDS = (
    "predict",
    "stream",
    "tune",
    "finetune",
    "evaluate",
    "plot",
    "labelstudio",
    "download_weights",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the ``skseg`` argument parser, one subcommand per command module.

    Returns
    -------
    parser : argparse.ArgumentParser

    Examples
    --------
    >>> parser = build_parser()
    >>> args = parser.parse_args(["vad", "a.wav", "--mode", "fast"])
    >>> args.command, args.mode, args.run.__module__
    ('vad', 'fast', 'skseg.cli.predict')
    """
    parser = argparse.ArgumentParser(
        prog="skseg",
        description=__doc__.split("\n\n")[0],
        epilog=(
            "exit codes: 0 success, 1 some files failed (named on stderr; the "
            "others' results are written), 2 usage error"
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``skseg`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments; defaults to ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 on success, 1 when some files failed; usage errors exit with 2.

    Examples
    --------
    >>> from skseg.datasets import fetch_sample
    >>> main(["vad", fetch_sample()["audio"], "--onset", "0.5", "--offset", "0.5",
    ...       "--min-duration-on", "0", "--min-duration-off", "0", "--quiet"])
    SPEAKER sample 1 6.713 0.439 <NA> <NA> SPEECH <NA> <NA>
    SPEAKER sample 1 7.574 13.956 <NA> <NA> SPEECH <NA> <NA>
    SPEAKER sample 1 21.749 8.218 <NA> <NA> SPEECH <NA> <NA>
    0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except UsageError as e:
        args.parser.error(str(e))  # prints usage and exits with status 2
    except BrokenPipeError:  # `skseg vad ... | head`
        sys.stderr.close()
        return 1


if __name__ == "__main__":
    sys.exit(main())
