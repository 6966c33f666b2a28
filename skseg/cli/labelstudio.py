"""``skseg labelstudio serve|setup|export``: the annotation loop with Label Studio.

* ``serve TASK``: skseg's ML backend for Label Studio (pre-annotations from the
  pipeline, re-tuned on each annotation), see
  :mod:`skseg.annotation.labelstudio_server`;
* ``setup TASK AUDIO_DIR``: a project with the pipeline's labeling config, the
  folder's audio served by Label Studio, the backend connected and one task per
  audio file imported, pre-annotated;
* ``export PROJECT``: the project's annotations as RTTM + UEM in a folder, with
  links to the audio, what ``skseg tune`` reads.

The Label Studio token is read from an environment variable
(``LABEL_STUDIO_API_KEY`` by default, ``--token-env``), never from the command
line, where other users of the machine would see it; the backend's basic-auth
credentials likewise (``SKSEG_BACKEND_AUTH="user:password"``, ``--auth-env``).
``serve`` always asks for credentials: without the variable it makes a password
and prints it once; ``--no-auth`` (127.0.0.1 only) turns that off.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path
from typing import Any

from .common import (
    UsageError,
    add_model_flags,
    build_estimator,
    check_ready,
    positive_int,
)

__all__ = ["register"]

TOKEN_ENV = "LABEL_STUDIO_API_KEY"
AUTH_ENV = "SKSEG_BACKEND_AUTH"
TASKS = ("vad", "osd", "segment")


def register(commands: Any) -> None:
    """Add ``skseg labelstudio`` and its subcommands.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="skseg")
    >>> register(parser.add_subparsers(dest="command"))
    >>> args = parser.parse_args(["labelstudio", "serve", "osd", "--port", "9091"])
    >>> args.task, args.port, args.run.__name__
    ('osd', 9091, '_serve')
    """
    ls = commands.add_parser(
        "labelstudio",
        help="Label Studio: ML backend, project setup, export",
        description=__doc__.split("\n\n")[0],
    )
    sub = ls.add_subparsers(dest="labelstudio_command", required=True, metavar="ACTION")

    serve = sub.add_parser(
        "serve",
        help="serve skseg's ML backend to Label Studio",
        description="Serve pre-annotations of TASK's pipeline to Label Studio, and "
        "re-tune its thresholds on each annotation (ANNOTATION_CREATED/UPDATED "
        "webhooks). Every request needs HTTP basic-auth credentials: those of "
        f"${AUTH_ENV}=user:password, else a password made now and printed once.",
    )
    serve.add_argument("task", choices=TASKS, help="what is annotated")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address (127.0.0.1); another needs authentication",
    )
    serve.add_argument("--port", type=positive_int, default=9090, help="port (9090)")
    serve.add_argument(
        "--audio-root",
        metavar="DIR",
        default=os.environ.get("LOCAL_FILES_DOCUMENT_ROOT"),
        help="Label Studio's LOCAL_FILES_DOCUMENT_ROOT (default: that variable): "
        "the only folder whose audio the backend reads",
    )
    serve.add_argument(
        "--no-retune", action="store_true", help="serve the pipeline as it is"
    )
    serve.add_argument(
        "--min-annotations",
        type=positive_int,
        default=1,
        metavar="N",
        help="annotated tasks before the first re-tuning (1)",
    )
    serve.add_argument("--grid", metavar="JSON", help="re-tuning grid (default grid)")
    serve.add_argument(
        "--finetune",
        action="store_true",
        help="segment only: also fine-tune the network on the annotations before "
        "each re-tuning (each time from the served network), and pre-annotate "
        "with the fine-tuned one",
    )
    serve.add_argument(
        "--finetune-epochs",
        type=positive_int,
        default=3,
        metavar="N",
        help="with --finetune: epochs at most per update (3)",
    )
    serve.add_argument(
        "--auth-env",
        default=AUTH_ENV,
        metavar="VAR",
        help=f"environment variable holding user:password ({AUTH_ENV})",
    )
    serve.add_argument(
        "--no-auth",
        action="store_true",
        help="accept requests without credentials: anyone who can reach the port "
        "reads predictions and re-tunes the pipeline (loopback --host only)",
    )
    add_model_flags(serve)
    serve.set_defaults(run=_serve, parser=serve)

    setup = sub.add_parser(
        "setup",
        help="create a project: config, audio, backend, tasks",
        description="Create a Label Studio project for TASK with one task per audio "
        "file of AUDIO_DIR, served by Label Studio from its local files, and the "
        "backend connected (predictions and annotation webhooks).",
    )
    setup.add_argument("task", choices=TASKS, help="what is annotated")
    setup.add_argument("audio_dir", metavar="AUDIO_DIR")
    _server_flags(setup)
    setup.add_argument(
        "--audio-root",
        metavar="DIR",
        help="Label Studio's LOCAL_FILES_DOCUMENT_ROOT (default: AUDIO_DIR's parent: "
        "Label Studio serves a subfolder of its root, never the root itself)",
    )
    setup.add_argument("--title", help="project title (default: TASK AUDIO_DIR)")
    setup.add_argument(
        "--backend",
        metavar="URL",
        help="the backend as Label Studio reaches it (e.g. http://127.0.0.1:9090); "
        "default: none connected",
    )
    setup.add_argument(
        "--auth-env",
        default=AUTH_ENV,
        metavar="VAR",
        help=f"environment variable holding the backend's user:password ({AUTH_ENV})",
    )
    setup.add_argument(
        "--no-auth",
        action="store_true",
        help="connect the backend without credentials (one served with --no-auth)",
    )
    setup.add_argument(
        "--labels",
        nargs="+",
        metavar="LABEL",
        help="labels offered (default: SPEECH, OVERLAP, or SPEAKER_00..02)",
    )
    setup.set_defaults(run=_setup, parser=setup)

    export = sub.add_parser(
        "export",
        help="a project's annotations to RTTM + UEM",
        description="Write a project's annotations (latest non-cancelled per task) "
        "as OUT/labelstudio.rttm and OUT/labelstudio.uem, with links to the "
        "annotated audio: `skseg tune OUT --pipeline TASK` reads the folder.",
    )
    export.add_argument("project", metavar="PROJECT", help="project id or title")
    _server_flags(export)
    export.add_argument("--out", required=True, metavar="DIR", help="folder to write")
    export.add_argument(
        "--no-links", action="store_true", help="do not link the audio into OUT"
    )
    export.set_defaults(run=_export, parser=export)


def _server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        default=os.environ.get("LABEL_STUDIO_URL", "http://127.0.0.1:8080"),
        help="Label Studio (default: $LABEL_STUDIO_URL, else http://127.0.0.1:8080)",
    )
    parser.add_argument(
        "--token-env",
        default=TOKEN_ENV,
        metavar="VAR",
        help=f"environment variable holding the personal access token ({TOKEN_ENV})",
    )


def _client(args: argparse.Namespace) -> Any:
    from ..annotation.labelstudio_client import LabelStudioClient

    token = os.environ.get(args.token_env)
    if not token:
        raise UsageError(
            f"${args.token_env} is not set: copy your personal access token from "
            "Label Studio (Account & Settings > Personal Access Token) into it"
        )
    return LabelStudioClient(args.url, token)


def _basic_auth(variable: str) -> tuple[str, str] | None:
    value = os.environ.get(variable)
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise UsageError(f"${variable} must be user:password")
    return user, password


def _serve_auth(args: argparse.Namespace) -> tuple[tuple[str, str] | None, str]:
    """Return the backend's credentials, and how the start line names them."""
    from ..annotation.labelstudio_server import is_loopback

    given = _basic_auth(args.auth_env)
    if args.no_auth:
        if given:
            raise UsageError(f"--no-auth: ${args.auth_env} is set; unset one of them")
        if not is_loopback(args.host):
            raise UsageError(
                f"--no-auth refused on --host {args.host}: anyone on the network "
                "could re-tune the pipeline; listen on 127.0.0.1 or keep "
                "authentication"
            )
        return None, "no authentication (--no-auth)"
    if given:
        return given, f"basic auth from ${args.auth_env}"
    made = ("skseg", secrets.token_urlsafe(18))
    return made, (
        f"basic auth, user {made[0]!r}, password {made[1]!r} made for this run: "
        "give them to Label Studio (the model's Authentication: Basic Auth), or "
        f"export {args.auth_env}='{made[0]}:{made[1]}' before `skseg labelstudio "
        "setup --backend`"
    )


def _default_labels(task: str) -> list[str]:
    from ..annotation.estimators import TASKS as ESTIMATORS
    from ..annotation.estimators import estimator_labels

    labels = estimator_labels(ESTIMATORS[task]())
    # speaker segmentation labels turns by the model's local speaker index
    return labels or [f"SPEAKER_{i:02d}" for i in range(3)]


def _serve(args: argparse.Namespace) -> int:
    from ..annotation.backend import LabelStudioBackend
    from ..annotation.labelstudio_server import serve
    from .tune import read_grid

    estimator = build_estimator(args, args.task, default_cache=True)
    check_ready(estimator)
    grid = read_grid(args.grid)
    basic_auth, auth_line = _serve_auth(args)
    fine_tune = None
    if args.finetune:
        if args.task != "segment":
            # a speech or overlap region is not a speaker turn: training on them
            # would teach the network one speaker for everything
            raise UsageError(
                f"--finetune learns speaker turns: serve `segment`, not {args.task}"
            )
        if args.no_retune:
            raise UsageError("--finetune runs at each update: drop --no-retune")
        from ..training import FineTuner, SegmentationTrainer

        fine_tune = FineTuner(
            SegmentationTrainer(max_epochs=args.finetune_epochs, random_state=0),
            base=estimator.segmentation,
        )
    backend = LabelStudioBackend(
        estimator,
        document_root=args.audio_root,
        retune=not args.no_retune,
        min_annotations=args.min_annotations,
        param_grid=grid,
        fine_tune=fine_tune,
    )
    print(
        f"skseg labelstudio serve: {type(estimator).__name__} on "
        f"http://{args.host}:{args.port} (model version {backend.model_version}, "
        f"{'fine-tuning on annotations, ' if fine_tune else ''}"
        f"audio read under {args.audio_root or 'no folder: give --audio-root'}); "
        f"{auth_line}",
        file=sys.stderr,
    )
    serve(backend, host=args.host, port=args.port, basic_auth=basic_auth)
    return 0


def _setup(args: argparse.Namespace) -> int:
    from ..annotation.labelstudio import labeling_config
    from ..annotation.labelstudio_client import LabelStudioError
    from ..audio import AudioReader
    from ..exceptions import SksegError
    from ..io import expand_inputs

    folder = Path(args.audio_dir).expanduser().resolve()
    if not folder.is_dir():
        raise UsageError(f"{args.audio_dir}: no such folder")
    try:
        paths = expand_inputs([folder])
    except SksegError as e:
        raise UsageError(str(e)) from None
    root = Path(args.audio_root or folder.parent).expanduser().resolve()
    if folder == root or not folder.is_relative_to(root):
        raise UsageError(
            f"--audio-root {root}: {folder} is not a subfolder of it, so Label "
            "Studio cannot serve its files"
        )
    client = _client(args)
    basic_auth = None if args.no_auth else _basic_auth(args.auth_env)
    if args.backend and basic_auth is None and not args.no_auth:
        raise UsageError(
            f"--backend: ${args.auth_env} is not set: set it to the user:password "
            "that `skseg labelstudio serve` printed (or --no-auth for a backend "
            "served with --no-auth)"
        )
    tasks, failed = [], 0
    for path in paths:
        try:
            with AudioReader(path) as reader:
                duration = round(reader.duration, 3)
        except SksegError as e:
            print(f"skseg labelstudio setup: skipped {e}", file=sys.stderr)
            failed += 1
            continue
        relative = Path(path).resolve().relative_to(root)
        tasks.append(
            {
                "data": {
                    "audio": f"/data/local-files/?d={relative.as_posix()}",
                    "uri": Path(path).stem,
                    "file": Path(path).name,
                    "path": str(Path(path).resolve()),
                    "start": 0.0,
                    "end": duration,
                }
            }
        )
    if not tasks:
        raise UsageError(f"{args.audio_dir}: no readable audio file")
    labels = args.labels or _default_labels(args.task)
    title = args.title or f"{args.task} {folder.name}"
    try:
        project = client.create_project(
            title, labeling_config(labels), show_collab_predictions=True
        )
        client.add_local_storage(project["id"], str(folder))
        if args.backend:
            client.connect_backend(project["id"], args.backend, basic_auth=basic_auth)
        answer = client.import_tasks(project["id"], tasks)
        if args.backend:
            client.retrieve_predictions(project["id"])
    except LabelStudioError as e:
        print(f"skseg labelstudio setup: {e}", file=sys.stderr)
        return 1
    print(project["id"])
    print(
        f"skseg labelstudio setup: project {project['id']} {title!r} on {args.url}: "
        f"{answer.get('task_count', len(tasks))} task(s)"
        + (f", backend {args.backend}" if args.backend else ", no backend")
        + (f"; {failed} file(s) skipped" if failed else ""),
        file=sys.stderr,
    )
    return 1 if failed else 0


def _export(args: argparse.Namespace) -> int:
    from ..annotation.answers import export
    from ..annotation.labelstudio import from_labelstudio
    from ..annotation.labelstudio_client import LabelStudioError
    from ..exceptions import FileError

    client = _client(args)
    try:
        project = client.project(args.project)
        tasks = client.export(project["id"])
    except LabelStudioError as e:
        print(f"skseg labelstudio export: {e}", file=sys.stderr)
        return 1
    examples = from_labelstudio(tasks)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {args.out}: {e.strerror or e}") from None
    source = f"Label Studio project {project['id']} ({project['title']})"
    try:
        result = export(
            examples, out / "labelstudio.rttm", out / "labelstudio.uem", source=source
        )
    except FileError as e:
        print(f"skseg labelstudio export: {e}", file=sys.stderr)
        return 1
    if not args.no_links:
        for uri, path in sorted(result.files.items()):
            link = out / f"{uri}{Path(path).suffix}"
            if not link.exists() and Path(path).exists():
                link.symlink_to(Path(path).resolve())
    for failure in result.failures:
        print(f"skseg labelstudio export: left out {failure}", file=sys.stderr)
    print(
        f"skseg labelstudio export: {result.n_examples} annotated task(s) of "
        f"{len(result.annotations)} file(s) from {source} to {out}",
        file=sys.stderr,
    )
    return 1 if result.failures else 0
