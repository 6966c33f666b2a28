"""Registering skseg's recipes with Prodigy, which is imported only here, lazily.

Prodigy is a commercial product, not on the package index, so nothing in skseg
imports it until a recipe is registered: by Prodigy itself, through the
``prodigy_recipes`` entry points (``skseg.annotation.prodigy:vad_correct``...),
or by the thin files in the repository's ``recipes/`` folder
(``prodigy skseg.vad.correct ... -F recipes/correct.py``). Without Prodigy,
registering raises an :class:`ImportError` that names it; the same tasks and
answers go through Label Studio instead (:mod:`skseg.annotation.labelstudio`).

Recipes (arguments are Prodigy's command-line arguments, plac-style)::

    skseg.vad.correct      dataset source [-m model] [-c chunk] [-x context]
    skseg.osd.correct                     [-a audio] [-l labels] [-r retune_every]
    skseg.segment.correct                 [-b batch_size]
    skseg.review           dataset source reference [-H hyp1,hyp2] [-t task]
                           [-m model] [-c chunk] [-a audio] [-M mode] [-d min_duration]
    skseg.tune             dataset output [-t task] [-m model]
    skseg.export           dataset rttm [-u uem]
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from ..exceptions import FileError

__all__ = ["RECIPES", "require_prodigy", "register", "dataset_examples"]

#: entry-point attribute -> recipe name
RECIPES = {
    "vad_correct": "skseg.vad.correct",
    "osd_correct": "skseg.osd.correct",
    "segment_correct": "skseg.segment.correct",
    "review": "skseg.review",
    "tune": "skseg.tune",
    "export": "skseg.export",
}

# name -> (the prodigy module it was registered with, what prodigy.recipe returned).
# The module is compared by identity, not by id(): a freed stand-in's id can be
# reused by the next one, which would then never see its registration.
_registered: dict[str, tuple[weakref.ref, Callable]] = {}


def require_prodigy() -> Any:
    """Import Prodigy, or say clearly that it is needed and how to do without.

    Returns
    -------
    prodigy : module

    Raises
    ------
    ImportError
        If Prodigy is not installed.

    Examples
    --------
    >>> import sys
    >>> saved = sys.modules.get("prodigy")
    >>> sys.modules["prodigy"] = None  # as on a machine without Prodigy
    >>> try:
    ...     require_prodigy()
    ... except ImportError as e:
    ...     print(str(e)[:52])
    skseg's annotation recipes need Prodigy (https://pro
    >>> if saved is None:
    ...     del sys.modules["prodigy"]
    ... else:
    ...     sys.modules["prodigy"] = saved
    """
    try:
        import prodigy
    except ImportError as e:
        raise ImportError(
            "skseg's annotation recipes need Prodigy (https://prodi.gy), a "
            "commercial annotation tool that is not on PyPI: install it with your "
            "licence (pip install prodigy -f https://<key>@download.prodi.gy). "
            "Without it, the same tasks convert to Label Studio "
            "(skseg.annotation.labelstudio, see docs/recipes.md)."
        ) from e
    return prodigy


def _split(text: str | None) -> list[str]:
    if not text:
        return []
    return [item.strip() for item in str(text).split(",") if item.strip()]


def _optional_float(text: Any) -> float | None:
    if text is None or str(text).lower() in ("", "none", "whole", "file"):
        return None
    return float(text)


def _components(components: dict) -> dict:
    # keep only what Prodigy knows: "loop" and "failures" are for Python callers
    return {k: v for k, v in components.items() if k not in ("loop", "failures")}


def dataset_examples(dataset: str) -> list[dict]:
    """Return a Prodigy dataset's examples.

    Parameters
    ----------
    dataset : str

    Returns
    -------
    examples : list of dict

    Raises
    ------
    FileError
        Naming the dataset, if it does not exist or has no examples.
    ImportError
        If Prodigy is not installed.

    Examples
    --------
    >>> import sys, types
    >>> class DB(dict):  # Prodigy's database, as connect() returns it
    ...     get_dataset_examples = dict.__getitem__
    >>> db = types.ModuleType("prodigy.components.db")
    >>> db.connect = lambda: DB(calls=[{"answer": "accept"}], empty=[])
    >>> stand_in = types.ModuleType("prodigy")
    >>> saved = {k: sys.modules.get(k) for k in ("prodigy", "prodigy.components.db")}
    >>> sys.modules.update({"prodigy": stand_in, "prodigy.components.db": db})
    >>> dataset_examples("calls")
    [{'answer': 'accept'}]
    >>> dataset_examples("empty")
    Traceback (most recent call last):
    ...
    skseg.exceptions.FileError: dataset 'empty': the dataset has no annotations
    >>> for name, module in saved.items():
    ...     _ = sys.modules.pop(name) if module is None else None
    ...     if module is not None:
    ...         sys.modules[name] = module
    """
    require_prodigy()
    from prodigy.components.db import connect

    db = connect()
    if dataset not in db:
        raise FileError(f"dataset {dataset!r}", "no such Prodigy dataset")
    get = getattr(db, "get_dataset_examples", None) or db.get_dataset
    examples = list(get(dataset) or [])
    if not examples:
        raise FileError(f"dataset {dataset!r}", "the dataset has no annotations")
    return examples


_CORRECT_ARGS = {
    "dataset": ("Dataset to save the answers to", "positional", None, str),
    "source": ("Audio file, folder, or list file (.txt/.lst)", "positional", None, str),
    "model": (
        "Checkpoint, or tuned estimator saved by skseg.tune (.joblib)",
        "option",
        "m",
        str,
    ),
    "chunk": (
        "Task duration in seconds ('none': whole files)",
        "option",
        "c",
        _optional_float,
    ),
    "context": (
        "Seconds of audio the model sees around a task ('none': the whole file)",
        "option",
        "x",
        _optional_float,
    ),
    "audio": (
        "Audio payload: base64 (chunks) or path (whole files)",
        "option",
        "a",
        str,
    ),
    "labels": ("Extra labels, comma-separated", "option", "l", _split),
    "retune_every": (
        "Model in the loop: re-tune every N accepted answers (0: off)",
        "option",
        "r",
        int,
    ),
    "batch_size": ("Tasks sent at a time", "option", "b", int),
}


def _correct(task: str) -> Callable:
    def recipe(
        dataset: str,
        source: str,
        model: str | None = None,
        chunk: float | None = 10.0,
        context: float | None = 2.5,
        audio: str = "base64",
        labels: list[str] | None = None,
        retune_every: int = 0,
        batch_size: int = 5,
    ) -> dict:
        from .recipes import correct_recipe

        return _components(
            correct_recipe(
                dataset,
                source,
                task=task,
                model=model,
                chunk=chunk,
                context=context,
                audio=audio,
                labels=labels or (),
                retune_every=retune_every,
                batch_size=batch_size,
            )
        )

    recipe.__name__ = f"{task}_correct"
    recipe.__doc__ = f"Correct {task} regions pre-annotated by skseg."
    return recipe


_REVIEW_ARGS = {
    "dataset": ("Dataset to save the answers to", "positional", None, str),
    "source": ("Audio file, folder, or list file", "positional", None, str),
    "reference": ("Reference RTTM file", "positional", None, str),
    "hypotheses": (
        "Hypothesis RTTM files, comma-separated (default: the model)",
        "option",
        "H",
        _split,
    ),
    "task": (
        "Model's task when no hypothesis: vad, osd or segment",
        "option",
        "t",
        str,
    ),
    "model": ("Checkpoint or tuned estimator (.joblib)", "option", "m", str),
    "chunk": (
        "Task duration in seconds ('none': whole files)",
        "option",
        "c",
        _optional_float,
    ),
    "audio": ("Audio payload: base64 or path", "option", "a", str),
    "mode": ("auto, detection, identification or diarization", "option", "M", str),
    "min_duration": ("Drop errors this short (s)", "option", "d", float),
}


def _review(
    dataset: str,
    source: str,
    reference: str,
    hypotheses: list[str] | None = None,
    task: str = "vad",
    model: str | None = None,
    chunk: float | None = 30.0,
    audio: str = "base64",
    mode: str = "auto",
    min_duration: float = 0.0,
) -> dict:
    """Review where hypotheses disagree with a reference."""
    from .recipes import review_recipe

    return _components(
        review_recipe(
            dataset,
            source,
            reference,
            hypotheses or (),
            task=task,
            model=model,
            chunk=chunk,
            audio=audio,
            mode=mode,
            min_duration=min_duration,
        )
    )


_TUNE_ARGS = {
    "dataset": ("Dataset of corrections", "positional", None, str),
    "output": ("Where to save the tuned estimator (.joblib)", "positional", None, str),
    "task": ("vad, osd or segment", "option", "t", str),
    "model": ("Checkpoint or estimator (.joblib) to start from", "option", "m", str),
}


def _tune(
    dataset: str, output: str, task: str = "vad", model: str | None = None
) -> None:
    """Tune thresholds on a dataset's corrections; save with joblib."""
    from .recipes import tune_recipe

    tune_recipe(dataset_examples(dataset), output, task=task, model=model, name=dataset)


_EXPORT_ARGS = {
    "dataset": ("Dataset to export", "positional", None, str),
    "rttm": ("RTTM file to write", "positional", None, str),
    "uem": ("UEM file to write (default: beside the RTTM)", "option", "u", str),
}


def _export(dataset: str, rttm: str, uem: str | None = None) -> None:
    """Export a dataset's accepted annotations to RTTM + UEM."""
    from .recipes import export_recipe

    export_recipe(dataset_examples(dataset), rttm, uem, name=dataset)


_FUNCTIONS: dict[str, tuple[Callable, dict]] = {
    "skseg.vad.correct": (_correct("vad"), _CORRECT_ARGS),
    "skseg.osd.correct": (_correct("osd"), _CORRECT_ARGS),
    "skseg.segment.correct": (_correct("segment"), _CORRECT_ARGS),
    "skseg.review": (_review, _REVIEW_ARGS),
    "skseg.tune": (_tune, _TUNE_ARGS),
    "skseg.export": (_export, _EXPORT_ARGS),
}


def register(name: str) -> Callable:
    """Register one of skseg's recipes with Prodigy and return it.

    Parameters
    ----------
    name : str
        A recipe name (the values of :data:`RECIPES`).

    Returns
    -------
    recipe : callable
        What ``prodigy.recipe(name, **arguments)`` returned.

    Raises
    ------
    ImportError
        If Prodigy is not installed (see :func:`require_prodigy`).
    ValueError
        If ``name`` is not one of skseg's recipes.

    Examples
    --------
    >>> import sys, types
    >>> stand_in = types.ModuleType("prodigy")  # records what Prodigy is given
    >>> stand_in.recipe = lambda name, **arguments: (
    ...     lambda function: (name, sorted(arguments), function.__name__))
    >>> saved = sys.modules.get("prodigy")
    >>> sys.modules["prodigy"] = stand_in
    >>> register("skseg.export")
    ('skseg.export', ['dataset', 'rttm', 'uem'], '_export')
    >>> _ = sys.modules.pop("prodigy") if saved is None else None
    >>> if saved is not None:
    ...     sys.modules["prodigy"] = saved
    """
    if name not in _FUNCTIONS:
        raise ValueError(f"unknown recipe {name!r}; skseg's: {sorted(_FUNCTIONS)}")
    prodigy = require_prodigy()
    # a stand-in or reloaded prodigy module gets its own registration
    known = _registered.get(name)
    if known is None or known[0]() is not prodigy:
        function, arguments = _FUNCTIONS[name]
        known = (weakref.ref(prodigy), prodigy.recipe(name, **arguments)(function))
        _registered[name] = known
    return known[1]


def __getattr__(attribute: str) -> Callable:
    # the prodigy_recipes entry points: registering happens on first access,
    # so importing this module never needs Prodigy
    if attribute in RECIPES:
        return register(RECIPES[attribute])
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
