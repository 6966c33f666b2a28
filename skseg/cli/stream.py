"""``skseg stream vad|osd|segment``: regions of a live audio stream, as RTTM lines.

Reads standard input (``-``), a file, or a microphone (``--mic``), and prints each
region as one RTTM line as soon as it is final, flushed at once::

    arecord -f S16_LE -r 16000 -c 1 | skseg stream vad --latency 0.5 -
    ffmpeg -i talk.mp4 -f s16le -ac 1 -ar 16000 - | skseg stream osd -

At ``--latency`` = the chunk duration (the default) the lines are those of
``skseg vad FILE`` (``osd`` alike; ``segment`` stitches speakers online, so its
turns are its own); the end of the input ends the stream as offline inference ends
a file. When the input turns out bad part-way (an odd byte at the end, a NaN),
the regions of the audio before it are printed, then the problem, exit code 1.
Lines are written by :func:`skseg.io.write_rttm`, as the file commands write
them: a uri that RTTM cannot hold (a tab, newline or space in ``--uri`` or the
file name) is refused before anything is read, as they refuse it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import Any

from ..audio import SAMPLE_RATE_RANGE
from .common import (
    UsageError,
    add_model_flags,
    build_estimator,
    check_ready,
    positive_float,
)

__all__ = ["register"]

#: pipelines that stream -> help
HELP = {
    "vad": "speech regions of a live stream",
    "osd": "overlapped speech regions of a live stream",
    "segment": "speaker turns of a live stream (speakers stitched online)",
}


def _rate(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a whole number of Hz: {text!r}"
        ) from None
    low, high = SAMPLE_RATE_RANGE  # what skseg.audio accepts of a file
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(
            f"{value} Hz is not a plausible audio rate ({low} to {high})"
        )
    return value


def register(commands: Any) -> None:
    """Add ``skseg stream`` and its pipelines.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="skseg")
    >>> register(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["stream", "vad", "-", "--latency", "0.5"])
    >>> args.task, args.input, args.latency, args.format
    ('vad', '-', 0.5, None)
    """
    parser = commands.add_parser(
        "stream",
        help="regions of a live audio stream (stdin, a file or a microphone)",
        description=__doc__.split("\n\n")[0],
    )
    pipelines = parser.add_subparsers(dest="task", required=True, metavar="PIPELINE")
    for task, help in HELP.items():
        sub = pipelines.add_parser(
            task,
            help=help,
            description=f"{help[0].upper()}{help[1:]}: one RTTM line per region "
            "as soon as it is final.",
        )
        sub.add_argument(
            "input",
            nargs="?",
            metavar="-|FILE",
            help="'-' for standard input (raw PCM by default), or an audio file",
        )
        live = sub.add_argument_group("stream")
        live.add_argument(
            "--latency",
            type=positive_float,
            metavar="SECONDS",
            help="seconds of audio after a frame before it is decided: from one "
            "inference step (0.5 s for pyannote/segmentation) to the chunk "
            "duration (default: the chunk duration, the offline result)",
        )
        live.add_argument(
            "--format",
            choices=["s16le", "f32le", "wav"],
            help="encoding of the input: raw little-endian PCM or a WAV stream "
            "(default: s16le for '-', the file's own for a FILE)",
        )
        live.add_argument(
            "--rate",
            type=_rate,
            metavar="HZ",
            help="sample rate of raw PCM (default: 16000); resampled as it arrives",
        )
        live.add_argument(
            "--channels",
            type=int,
            default=1,
            metavar="N",
            help="interleaved channels of raw PCM, averaged (default: 1)",
        )
        live.add_argument(
            "--mic",
            action="store_true",
            help="record from the default microphone (needs skseg[mic])",
        )
        live.add_argument(
            "--mic-device", help="with --mic: the sounddevice input device"
        )
        live.add_argument(
            "--uri", help="the RTTM uri (default: the file name, or 'stream')"
        )
        live.add_argument(
            "--block",
            type=positive_float,
            default=0.1,
            metavar="SECONDS",
            help="seconds of input read at a time (default: 0.1)",
        )
        live.add_argument(
            "--delays",
            action="store_true",
            help="also write each region's decision delay to standard error",
        )
        add_model_flags(sub)
        sub.set_defaults(run=_run, parser=sub, command="stream")


def _uri(args: argparse.Namespace) -> str:
    """Return the RTTM uri: ``--uri``, else the file's name, else the input's kind."""
    import os

    if args.uri is not None:
        return args.uri
    if args.mic:
        return "microphone"
    if args.input in (None, "-"):
        return "stream"
    return os.path.splitext(os.path.basename(args.input))[0]


def _blocks(args: argparse.Namespace, sample_rate: int) -> Iterator:
    """Return the input's sample blocks."""
    import os

    from ..sources import MAX_CHANNELS, byte_blocks, file_blocks, microphone

    if args.mic:
        if args.input is not None:
            raise UsageError("--mic records from a microphone: drop the input")
        device = args.mic_device
        if device is not None and device.isdigit():
            device = int(device)
        try:
            blocks = microphone(sample_rate, args.block, device)
        except ImportError as e:
            raise UsageError(str(e)) from None
        return blocks
    if args.input is None:
        raise UsageError("give '-' (standard input), a FILE, or --mic")
    if not 1 <= args.channels <= MAX_CHANNELS:
        raise UsageError(
            f"--channels must lie between 1 and {MAX_CHANNELS}, got {args.channels}"
        )
    if args.input == "-":
        fmt = args.format or "s16le"
        binary = sys.stdin.buffer
        blocks = byte_blocks(
            binary, fmt, args.rate, args.channels, sample_rate, args.block
        )
        return blocks
    path = args.input
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file")
    if args.format in ("s16le", "f32le", "wav"):
        handle = open(path, "rb")  # noqa: SIM115 -- closed by the generator

        def raw() -> Iterator:
            with handle:
                yield from byte_blocks(
                    handle,
                    args.format,
                    args.rate,
                    args.channels,
                    sample_rate,
                    args.block,
                    name=path,
                )

        return raw()
    if args.rate is not None:
        raise UsageError(
            f"--rate is for raw PCM; {path} says its own rate (or give --format)"
        )
    return file_blocks(path, sample_rate, args.block)


def _run(args: argparse.Namespace) -> int:
    """Stream one input; return the exit status."""
    from pyannote.core import Annotation

    from ..exceptions import SksegError
    from ..io import check_field, write_rttm
    from ..streaming import StreamError, stream

    name = f"skseg stream {args.task}"
    uri = _uri(args)
    try:  # the file commands' rule, checked before the model loads
        check_field(uri, "uri")
    except ValueError as e:
        # the uri is quoted in the message; a file name holding a newline is not
        where = "--uri: " if args.uri is not None else ""
        print(f"{name}: {where}{e}", file=sys.stderr)
        return 1
    estimator = build_estimator(args, args.task)
    check_ready(estimator)
    try:
        live = stream(estimator, args.latency)
    except StreamError as e:
        raise UsageError(f"--latency: {e}") from None
    blocks = _blocks(args, live.sample_rate)
    out = sys.stdout
    broken: list[str] = []  # standard output failed: nothing more is written

    def write(regions: list) -> None:
        if broken:
            return
        try:
            for region in regions:
                annotation = Annotation(uri=uri)
                annotation[region.segment] = region.label
                write_rttm(annotation, out)
                if args.delays:
                    print(
                        f"{region.start:.3f} {region.end:.3f} {region.label} "
                        f"delay {region.delay:.3f}",
                        file=sys.stderr,
                    )
            if regions:
                out.flush()
        except OSError as e:  # a closed pipe, a full disk
            broken.append(f"standard output: {e.strerror or e}")
            _silence_stdout()

    status = 0
    try:
        for block in blocks:
            write(live.feed(block))
            if broken:
                break
    except SksegError as e:  # bad input part-way: what came before still counts
        print(f"{name}: {e}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        status = 130
    finally:
        close = getattr(blocks, "close", None)
        if close is not None:
            close()
    write(live.close())
    if broken:
        print(f"{name}: {broken[0]}", file=sys.stderr)
        return 1
    return status


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that exiting does not flush into it."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # not a real file: nothing to flush
        pass
