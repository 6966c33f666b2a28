"""Registering skseg's recipes with Prodigy, which is imported only here, lazily.

Prodigy is a commercial product, not on the package index, so nothing in skseg
imports it until a recipe is registered: by Prodigy itself, through the
``prodigy_recipes`` entry points (``skseg.annotation.prodigy:vad_correct``...),
or by the thin files in the repository's ``recipes/`` folder
(``prodigy skseg.vad.correct ... -F recipes/correct.py``). Without Prodigy,
registering raises an :class:`ImportError` that names it; the same tasks and
answers go through Label Studio instead (:mod:`skseg.annotation.labelstudio`).

Each recipe's arguments, their order and defaults are its builder's in
:mod:`skseg.annotation.recipes` (:data:`~skseg.annotation.recipes.RECIPES`), help
texts and shortcuts :data:`~skseg.annotation.recipes.ARGUMENTS`'; nothing about
them is written here. Recipes (Prodigy's command-line arguments, plac-style)::

    skseg.vad.correct      dataset source [-m model] [-c chunk] [-x context]
    skseg.osd.correct                     [-a audio] [-l labels] [-r retune_every]
    skseg.segment.correct                 [-b batch_size]
                           (segment only:)    [-F fine_tune_epochs]
    skseg.review           dataset source reference [-H hyp1,hyp2] [-t task]
                           [-m model] [-c chunk] [-a audio] [-M mode] [-d min_duration]
    skseg.tune             dataset output [-t task] [-m model]
    skseg.export           dataset rttm [-u uem]
"""

from __future__ import annotations

import inspect
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


def _prodigy_function(spec: Any) -> Callable:
    """Return the function Prodigy calls: the spec's parameters, the builder's work."""
    parameters = spec.parameters()
    signature = inspect.Signature(parameters)

    def recipe(*args: Any, **kwargs: Any) -> dict | None:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        if spec.reads_dataset:
            dataset = values.pop("dataset")
            spec.builder(
                dataset_examples(dataset), **values, **spec.fixed, name=dataset
            )
            return None
        return _components(spec.builder(**values, **spec.fixed))

    recipe.__name__ = spec.name.replace("skseg.", "").replace(".", "_")
    recipe.__qualname__ = recipe.__name__
    recipe.__doc__ = spec.doc
    recipe.__signature__ = signature  # what plac reads: the builder's defaults
    return recipe


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
    ('skseg.export', ['dataset', 'rttm', 'uem'], 'export')
    >>> _ = sys.modules.pop("prodigy") if saved is None else None
    >>> if saved is not None:
    ...     sys.modules["prodigy"] = saved
    """
    from .recipes import RECIPES as SPECS

    if name not in SPECS:
        raise ValueError(f"unknown recipe {name!r}; skseg's: {sorted(SPECS)}")
    prodigy = require_prodigy()
    # a stand-in or reloaded prodigy module gets its own registration
    known = _registered.get(name)
    if known is None or known[0]() is not prodigy:
        spec = SPECS[name]
        function = _prodigy_function(spec)
        known = (
            weakref.ref(prodigy),
            prodigy.recipe(name, **spec.annotations())(function),
        )
        _registered[name] = known
    return known[1]


def __getattr__(attribute: str) -> Callable:
    # the prodigy_recipes entry points: registering happens on first access,
    # so importing this module never needs Prodigy
    if attribute in RECIPES:
        return register(RECIPES[attribute])
    raise AttributeError(f"module {__name__!r} has no attribute {attribute!r}")
