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


def _blocks(args: argparse.Namespace, sample_rate: int) -> tuple[Iterator, str]:
    """Return the input's sample blocks and its uri."""
    import os

    from ..sources import byte_blocks, file_blocks, microphone

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
        return blocks, args.uri or "microphone"
    if args.input is None:
        raise UsageError("give '-' (standard input), a FILE, or --mic")
    if args.channels < 1:
        raise UsageError(f"--channels must be at least 1, got {args.channels}")
    if args.input == "-":
        fmt = args.format or "s16le"
        binary = sys.stdin.buffer
        blocks = byte_blocks(
            binary, fmt, args.rate, args.channels, sample_rate, args.block
        )
        return blocks, args.uri or "stream"
    path = args.input
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file")
    uri = args.uri or os.path.splitext(os.path.basename(path))[0]
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

        return raw(), uri
    if args.rate is not None:
        raise UsageError(
            f"--rate is for raw PCM; {path} says its own rate (or give --format)"
        )
    return file_blocks(path, sample_rate, args.block), uri


def _run(args: argparse.Namespace) -> int:
    """Stream one input; return the exit status."""
    from pyannote.core import Annotation

    from ..exceptions import SksegError
    from ..streaming import StreamError, stream

    name = f"skseg stream {args.task}"
    estimator = build_estimator(args, args.task)
    check_ready(estimator)
    try:
        live = stream(estimator, args.latency)
    except StreamError as e:
        raise UsageError(f"--latency: {e}") from None
    blocks, uri = _blocks(args, live.sample_rate)
    out = sys.stdout

    def write(regions: list) -> None:
        for region in regions:
            annotation = Annotation(uri=uri)
            annotation[region.segment] = region.label
            annotation.write_rttm(out)
            if args.delays:
                print(
                    f"{region.start:.3f} {region.end:.3f} {region.label} "
                    f"delay {region.delay:.3f}",
                    file=sys.stderr,
                )
        if regions:
            out.flush()

    status = 0
    try:
        for block in blocks:
            write(live.feed(block))
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
    return status
