"""The recipes' logic: what each returns to Prodigy, without importing Prodigy.

A Prodigy recipe is a function returning a dict of *components*: ``dataset`` (where
answers are saved), ``stream`` (an iterable of tasks), ``view_id`` (the interface),
``config`` (interface settings) and optional callbacks: ``update(answers)`` for
each batch of answers, ``before_db(examples)`` just before saving, ``on_exit``
when the server stops, ``validate_answer(example)`` before an answer is accepted.
The builders here return exactly that, so they are tested without Prodigy;
:mod:`skseg.annotation.prodigy` registers them under their recipe names. The
non-serving recipes (tune, export) are plain functions over the examples of a
dataset.
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..audio import AudioFile
from ..io import expand_inputs, read_rttm
from .answers import ExportResult, export
from .errors import ERRORS, review_tasks
from .estimators import estimator_labels, load_estimator
from .examples import before_db, validate_answer
from .loop import ModelInTheLoop
from .tasks import make_tasks
from .tuning import tune_on_examples

__all__ = [
    "ARGUMENTS",
    "RECIPES",
    "RecipeSpec",
    "comma_list",
    "correct_recipe",
    "export_recipe",
    "review_recipe",
    "seconds_or_none",
    "tune_recipe",
]

logger = logging.getLogger(__name__)

#: interface settings of the correction and review tasks (prodigy.json keys)
AUDIO_CONFIG = {
    "audio_autoplay": False,
    "audio_loop": False,
    "show_audio_minimap": True,
    "audio_bar_width": 0,
    "audio_bar_height": 1,
    # a region already answered is not offered again, even if the model's
    # regions for it changed since (model in the loop)
    "exclude_by": "input",
}


def _files(source: str | os.PathLike | Iterable[AudioFile]) -> list:
    if isinstance(source, str | os.PathLike):
        return expand_inputs([source])
    return list(source)


def correct_recipe(
    dataset: str,
    source: str | os.PathLike | Iterable[AudioFile],
    *,
    task: str = "vad",
    model: str | os.PathLike | None = None,
    estimator: Any = None,
    chunk: float | None = 10.0,
    context: float | None = 2.5,
    audio: str = "base64",
    labels: Iterable[str] = (),
    retune_every: int = 0,
    param_grid: Mapping[str, list] | None = None,
    batch_size: int = 5,
    fine_tune_epochs: int = 0,
) -> dict:
    """Components of a correction recipe: pre-annotated chunks to fix.

    Parameters
    ----------
    dataset : str
        Where the answers are saved.
    source : str, PathLike or iterable of files
        An audio file, a folder, a list file (see :func:`skseg.io.expand_inputs`),
        or files as the estimators take them (pyannote.database ``ProtocolFile``
        included).
    task : {"vad", "osd", "segment"}, default="vad"
        What is corrected: speech, overlapped speech or speaker turns.
    model : str or PathLike, optional
        Checkpoint, or a tuned estimator saved with joblib (see
        :func:`~skseg.annotation.estimators.load_estimator`).
    estimator : estimator, optional
        Use this estimator instead of loading ``model``.
    chunk, context, audio, labels
        See :func:`~skseg.annotation.tasks.make_tasks`.
    retune_every : int, default=0
        Model in the loop: re-tune the thresholds on the corrections every this
        many accepted answers (0: never), see
        :class:`~skseg.annotation.loop.ModelInTheLoop`.
    param_grid : dict, optional
        The re-tuning grid; default :func:`skseg.tuning.default_grid`.
    batch_size : int, default=5
        Tasks Prodigy sends at a time; small so that re-tuned thresholds reach
        the annotator soon.
    fine_tune_epochs : int, default=0
        With ``retune_every``, also fine-tune the network for at most this many
        epochs on the corrections before each re-tuning
        (:class:`skseg.training.FineTuner`, starting each time from the
        recipe's network), so the next tasks are pre-annotated by the adapted
        network; 0: thresholds only. Fine-tuning learns speaker turns: use it
        with ``task="segment"`` (speech or overlap regions are not turns).

    Returns
    -------
    components : dict
        ``dataset``, ``stream`` (lazy), ``view_id="audio_manual"``, ``config``,
        ``before_db``, ``validate_answer``, ``on_exit``, and ``update`` when
        ``retune_every`` > 0. ``components["loop"]`` is the
        :class:`~skseg.annotation.loop.ModelInTheLoop` (not a Prodigy component:
        the Prodigy wrapper drops it).

    Examples
    --------
    >>> from skseg import fetch_sample
    >>> components = correct_recipe("vad_sample", [fetch_sample()], audio="none")
    >>> components["view_id"], components["config"]["labels"]
    ('audio_manual', ['SPEECH'])
    >>> next(iter(components["stream"]))["text"]
    'sample.wav [0.0 - 10.0]'
    """
    if estimator is None:
        estimator = load_estimator(model, task)
    files = _files(source)
    failures: list = []
    fine_tune = None
    if fine_tune_epochs:
        from ..training import FineTuner, SegmentationTrainer

        fine_tune = FineTuner(
            SegmentationTrainer(max_epochs=fine_tune_epochs, random_state=0)
        )
    loop = ModelInTheLoop(
        estimator, every=retune_every, param_grid=param_grid, fine_tune=fine_tune
    )
    all_labels = sorted(set(labels) | set(estimator_labels(estimator)))
    stream = make_tasks(
        estimator,
        files,
        chunk=chunk,
        context=context,
        audio=audio,
        labels=all_labels,
        on_error=failures.append,
    )

    def on_exit(controller: Any = None) -> None:
        for failure in failures:
            logger.warning("skipped %s", failure)
        for entry in loop.history:
            logger.info(
                "re-tuned on %d corrections: %s",
                entry["n_examples"],
                entry["best_params"],
            )

    components = {
        "dataset": dataset,
        "stream": stream,
        "view_id": "audio_manual",
        "before_db": before_db,
        "validate_answer": validate_answer,
        "on_exit": on_exit,
        "config": dict(AUDIO_CONFIG, labels=all_labels, batch_size=batch_size),
        "loop": loop,
        "failures": failures,
    }
    if retune_every:
        components["update"] = loop.update
    return components


def review_recipe(
    dataset: str,
    source: str | os.PathLike | Iterable[AudioFile],
    reference: str | os.PathLike | Mapping,
    hypotheses: Sequence[str | os.PathLike] | Mapping[str, Mapping] = (),
    *,
    task: str = "vad",
    model: str | os.PathLike | None = None,
    chunk: float | None = 30.0,
    audio: str = "base64",
    mode: str = "auto",
    min_duration: float = 0.0,
    kinds: Iterable[str] | None = None,
) -> dict:
    """Components of a review recipe: where hypotheses disagree with a reference.

    Parameters
    ----------
    dataset : str
    source : str, PathLike or iterable of files
    reference : str, PathLike or mapping
        RTTM file, or ``{uri: Annotation}``.
    hypotheses : list of RTTM paths, or mapping, default=()
        Several annotators or systems (named after their files' stems), or
        ``{name: {uri: Annotation}}``. Empty: the ``task``'s estimator
        (``model``) is the hypothesis.
    task, model
        The estimator used when ``hypotheses`` is empty.
    chunk, audio, mode, min_duration, kinds
        See :func:`~skseg.annotation.errors.review_tasks`.

    Returns
    -------
    components : dict
        ``dataset``, ``stream`` (the chunks with most errors first),
        ``view_id="audio_manual"``, ``config``, ``before_db``, ``on_exit``.

    Examples
    --------
    >>> from skseg import fetch_sample
    >>> sample = fetch_sample()
    >>> components = review_recipe("review", [sample],
    ...                            {"sample": sample["annotation"]}, audio="none")
    >>> [task["text"] for task in components["stream"]]
    ['sample.wav [0.0 - 30.0]']
    """
    files = _files(source)
    if not isinstance(reference, Mapping):
        reference = read_rttm(reference)
    if isinstance(hypotheses, Mapping):
        named = dict(hypotheses)
    else:
        named = {Path(path).stem: read_rttm(path) for path in hypotheses}
    if not named:
        from ..batch import predict_many

        estimator = load_estimator(model, task)
        result = predict_many(estimator, files, errors="collect")
        named = {"model": {a.uri: a for _, a in result.succeeded()}}
    failures: list = []
    stream = review_tasks(
        files,
        reference,
        named,
        chunk=chunk,
        audio=audio,
        mode=mode,
        min_duration=min_duration,
        kinds=kinds,
        on_error=failures.append,
    )
    labels = sorted({label for t in stream for label in t["config"]["labels"]})

    def on_exit(controller: Any = None) -> None:
        for failure in failures:
            logger.warning("skipped %s", failure)

    return {
        "dataset": dataset,
        "stream": stream,
        "view_id": "audio_manual",
        "before_db": before_db,
        "on_exit": on_exit,
        "config": dict(AUDIO_CONFIG, labels=labels or list(ERRORS)),
        "failures": failures,
    }


def tune_recipe(
    examples: Iterable[Mapping],
    output: str | os.PathLike,
    *,
    task: str = "vad",
    model: str | os.PathLike | None = None,
    name: str = "annotations",
    param_grid: Mapping[str, list] | None = None,
    cv: Any = None,
    n_jobs: int | None = None,
    echo: Callable[[str], None] = print,
) -> Any:
    """Tune on a dataset's corrections, save the estimator, print the table.

    Parameters
    ----------
    examples : iterable of mapping
        The dataset's examples.
    output : str or PathLike
        Where the tuned estimator is written with :func:`joblib.dump`.
    task, model
        The estimator to tune (see
        :func:`~skseg.annotation.estimators.load_estimator`).
    name : str, default="annotations"
        The dataset's name, for messages and the table.
    param_grid, cv, n_jobs
        See :func:`~skseg.annotation.tuning.tune_on_examples`.
    echo : callable, default=print
        Where the table goes.

    Returns
    -------
    result : skseg.tuning.TuningResult

    Raises
    ------
    FileError
        If the dataset has no usable accepted example.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from pyannote.core import Segment
    >>> from skseg import fetch_sample
    >>> from skseg.references import speech_reference
    >>> from skseg.annotation import annotation_to_spans
    >>> sample = fetch_sample()
    >>> speech = speech_reference(sample["annotation"])  # as if corrected
    >>> examples = [
    ...     {"meta": {"uri": "sample", "path": sample["audio"], "start": s,
    ...               "end": s + 10.0},
    ...      "audio_spans": annotation_to_spans(speech, Segment(s, s + 10.0))}
    ...     for s in (0.0, 10.0, 20.0)]
    >>> grid = {"onset": [0.5, 0.7], "offset": [0.4], "min_duration_on": [0.0],
    ...         "min_duration_off": [0.0]}
    >>> output = pathlib.Path(tempfile.mkdtemp()) / "vad.joblib"
    >>> lines = []
    >>> result = tune_recipe(examples, output, name="sample", param_grid=grid,
    ...                      echo=lines.append)
    >>> print(lines[0].splitlines()[2])
    | sample | 0.500 | 0.400 | 0.000 | 0.000 | detection error rate | 1.97 % |
    >>> output.exists()
    True
    """
    import joblib

    from ..tuning import hyperparameter_table

    estimator = load_estimator(model, task)
    result = tune_on_examples(
        estimator,
        examples,
        param_grid=param_grid,
        cv=cv,
        n_jobs=n_jobs,
        source=f"dataset {name!r}",
    )
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(result.estimator, output)
    echo(hyperparameter_table([result.table_row(name)]))
    echo(
        f"{type(result.estimator).__name__} tuned on {result.n_files} files or "
        f"excerpts ({result.n_candidates} candidates, {result.n_splits} folds) "
        f"saved to {output}"
    )
    return result


def export_recipe(
    examples: Iterable[Mapping],
    rttm: str | os.PathLike,
    uem: str | os.PathLike | None = None,
    *,
    name: str = "annotations",
    echo: Callable[[str], None] = print,
) -> ExportResult:
    """Write a dataset's accepted annotations as RTTM and its annotated regions as UEM.

    Parameters
    ----------
    examples : iterable of mapping
    rttm : str or PathLike
    uem : str or PathLike, optional
        Default: ``rttm`` with the ``.uem`` suffix.
    name : str, default="annotations"
        The dataset's name, for messages.
    echo : callable, default=print

    Returns
    -------
    result : ExportResult
        What was written; the examples left out are named (and echoed).

    Raises
    ------
    FileError
        If no example could be used (nothing is written then).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> result = export_recipe(
    ...     [{"meta": {"uri": "a", "start": 0.0, "end": 10.0},
    ...       "audio_spans": [{"start": 1.0, "end": 2.0, "label": "SPEECH"}]}],
    ...     folder / "a.rttm", name="demo")
    1 examples from dataset 'demo': 1 files, 1 turns, 10.000 s annotated
    >>> print((folder / "a.uem").read_text(), end="")
    a 1 0.000 10.000
    """
    rttm = Path(rttm)
    uem = rttm.with_suffix(".uem") if uem is None else Path(uem)
    result = export(examples, rttm, uem, source=f"dataset {name!r}")
    turns = sum(len(a) for a in result.annotations.values())
    seconds = sum(t.duration() for t in result.annotated.values())
    echo(
        f"{result.n_examples} examples from dataset {name!r}: "
        f"{len(result.annotations)} files, {turns} turns, {seconds:.3f} s annotated"
    )
    for failure in result.failures:
        echo(f"left out: {failure}")
    return result


# -- the recipes' command lines, derived from the builders above ----------------------
def comma_list(text: str | None) -> list[str]:
    """Parse a comma-separated command-line value.

    Examples
    --------
    >>> comma_list("a.rttm, b.rttm"), comma_list(None)
    (['a.rttm', 'b.rttm'], [])
    """
    if not text:
        return []
    return [item.strip() for item in str(text).split(",") if item.strip()]


def seconds_or_none(text: Any) -> float | None:
    """Parse a duration in seconds, or ``none``/``whole``/``file`` (None).

    Examples
    --------
    >>> seconds_or_none("2.5"), seconds_or_none("none")
    (2.5, None)
    """
    if text is None or str(text).lower() in ("", "none", "whole", "file"):
        return None
    return float(text)


#: command-line argument -> (help, shortcut, conversion), shared by the recipes
ARGUMENTS: dict[str, tuple[str, str | None, Callable]] = {
    "dataset": ("Dataset to save the answers to", None, str),
    "source": ("Audio file, folder, or list file (.txt/.lst)", None, str),
    "reference": ("Reference RTTM file", None, str),
    "output": ("Where to save the tuned estimator (.joblib)", None, str),
    "rttm": ("RTTM file to write", None, str),
    "model": (
        "Checkpoint, or tuned estimator saved by skseg.tune (.joblib)",
        "m",
        str,
    ),
    "task": ("vad, osd or segment", "t", str),
    "chunk": ("Task duration in seconds ('none': whole files)", "c", seconds_or_none),
    "context": (
        "Seconds of audio the model sees around a task ('none': the whole file)",
        "x",
        seconds_or_none,
    ),
    "audio": ("Audio payload: base64 (chunks) or path (whole files)", "a", str),
    "labels": ("Extra labels, comma-separated", "l", comma_list),
    "retune_every": (
        "Model in the loop: re-tune every N accepted answers (0: off)",
        "r",
        int,
    ),
    "batch_size": ("Tasks sent at a time", "b", int),
    "fine_tune_epochs": (
        "Model in the loop: also fine-tune the network up to N epochs on the "
        "corrections at each re-tuning (0: off)",
        "F",
        int,
    ),
    "hypotheses": (
        "Hypothesis RTTM files, comma-separated (default: the model)",
        "H",
        comma_list,
    ),
    "mode": ("auto, detection, identification or diarization", "M", str),
    "min_duration": ("Drop errors this short (s)", "d", float),
    "uem": ("UEM file to write (default: beside the RTTM)", "u", str),
}


@dataclass(frozen=True)
class RecipeSpec:
    """One recipe: its builder, and which of its parameters its command line has.

    The command line's arguments, their order, and their defaults are the
    builder's own (:func:`inspect.signature`); their help, shortcut and
    conversion are :data:`ARGUMENTS`'. Nothing is written twice.

    Parameters
    ----------
    name : str
        The recipe's name (``skseg.vad.correct``).
    builder : callable
        The function above that does the work.
    arguments : tuple of str
        The builder's parameters on the command line, in order; for a recipe
        that reads a dataset, ``"dataset"`` stands for its first parameter (the
        examples, read from the dataset of that name).
    fixed : dict
        Values the recipe always passes (``task="vad"``).
    reads_dataset : bool, default=False
        The builder takes examples; the command line takes a dataset's name.
    help : dict
        Help texts that differ from :data:`ARGUMENTS`' for this recipe.

    Examples
    --------
    >>> [p.name for p in RECIPES["skseg.export"].parameters()]
    ['dataset', 'rttm', 'uem']
    >>> RECIPES["skseg.review"].parameters()[6].default  # review_recipe's chunk
    30.0
    """

    name: str
    builder: Callable
    arguments: tuple[str, ...]
    fixed: dict = field(default_factory=dict)
    reads_dataset: bool = False
    help: dict = field(default_factory=dict)

    @property
    def doc(self) -> str:
        """The recipe's one-line description (the builder's first line)."""
        return (self.builder.__doc__ or self.name).strip().splitlines()[0]

    def parameters(self) -> list[inspect.Parameter]:
        """Return the command line's parameters, with the builder's defaults."""
        builder = inspect.signature(self.builder).parameters
        out = []
        for name in self.arguments:
            if self.reads_dataset and name == "dataset":
                out.append(
                    inspect.Parameter(
                        "dataset", inspect.Parameter.POSITIONAL_OR_KEYWORD
                    )
                )
                continue
            out.append(
                builder[name].replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD)
            )
        return out

    def annotations(self) -> dict[str, tuple]:
        """Return Prodigy's (plac's) ``{argument: (help, kind, shortcut, convert)}``."""
        out = {}
        for p in self.parameters():
            help, shortcut, convert = ARGUMENTS[p.name]
            positional = p.default is inspect.Parameter.empty
            out[p.name] = (
                self.help.get(p.name, help),
                "positional" if positional else "option",
                None if positional else shortcut,
                convert,
            )
        return out


def _correct_spec(task: str) -> RecipeSpec:
    return RecipeSpec(
        f"skseg.{task}.correct",
        correct_recipe,
        (
            "dataset",
            "source",
            "model",
            "chunk",
            "context",
            "audio",
            "labels",
            "retune_every",
            "batch_size",
            # fine-tuning learns speaker turns: segmentation corrections only
            *(("fine_tune_epochs",) if task == "segment" else ()),
        ),
        fixed={"task": task},
    )


#: recipe name -> its spec
RECIPES: dict[str, RecipeSpec] = {
    spec.name: spec
    for spec in (
        _correct_spec("vad"),
        _correct_spec("osd"),
        _correct_spec("segment"),
        RecipeSpec(
            "skseg.review",
            review_recipe,
            (
                "dataset",
                "source",
                "reference",
                "hypotheses",
                "task",
                "model",
                "chunk",
                "audio",
                "mode",
                "min_duration",
            ),
            help={
                "source": "Audio file, folder, or list file",
                "task": "Model's task when no hypothesis: vad, osd or segment",
                "model": "Checkpoint or tuned estimator (.joblib)",
                "audio": "Audio payload: base64 or path",
            },
        ),
        RecipeSpec(
            "skseg.tune",
            tune_recipe,
            ("dataset", "output", "task", "model"),
            reads_dataset=True,
            help={
                "dataset": "Dataset of corrections",
                "model": "Checkpoint or estimator (.joblib) to start from",
            },
        ),
        RecipeSpec(
            "skseg.export",
            export_recipe,
            ("dataset", "rttm", "uem"),
            reads_dataset=True,
            help={"dataset": "Dataset to export"},
        ),
    )
}
