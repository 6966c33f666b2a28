"""The pipelines' parameters, written once.

Every pipeline estimator has the four *hyper-parameters* of the model card's tables
(:data:`HYPER_PARAMETERS`: what tuning searches) and the *runtime parameters*
(:data:`RUNTIME_PARAMETERS`: which network, and how it runs; they never change a
decision except ``segmentation``, ``step`` and ``mode``). This registry is what
the estimators validate with (:func:`constraints`), what :mod:`skseg.tuning`
searches and tabulates, what the command line turns into flags (every runtime
parameter has one) and what :mod:`skseg.plot` passes on to the estimators it
draws beside the one it is given; the estimators' docstrings carry
:func:`parameter_docs`' text (a test keeps them identical).
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass, field
from numbers import Integral, Real

import torch
from sklearn.utils._param_validation import Interval, StrOptions

from ..clustering import LINKAGE_METHODS
from ..inference import MODES
from ..model import SegmentationModel

__all__ = [
    "HYPER_PARAMETERS",
    "PARAMETERS",
    "RUNTIME_PARAMETERS",
    "Parameter",
    "constraints",
    "document_parameters",
    "parameter_docs",
]


@dataclass(frozen=True)
class Parameter:
    """One parameter of the pipeline estimators.

    Parameters
    ----------
    name : str
    kind : {"hyper", "runtime", "pipeline"}
        ``"hyper"``: tuned (the model card's four); ``"runtime"``: which network
        and how it runs; ``"pipeline"``: specific to one pipeline.
    constraints : list
        scikit-learn parameter constraints.
    type : str
        The numpydoc type line, default included.
    doc : str
        The numpydoc description (shared text for runtime parameters).
    metavar : str, default=""
        Command-line placeholder; with ``choices``, the flag's values.
    choices : tuple, default=()
        Command-line choices, when the values are a fixed set.
    help : str, default=""
        Command-line help.

    Examples
    --------
    >>> PARAMETERS["mode"].flag, PARAMETERS["mode"].choices
    ('--mode', ('exact', 'balanced', 'fast'))
    """

    name: str
    kind: str
    constraints: list = field(compare=False)
    type: str = ""
    doc: str = ""
    metavar: str = ""
    choices: tuple = ()
    help: str = ""

    @property
    def flag(self) -> str:
        """The command-line flag: ``--min-duration-on`` for ``min_duration_on``."""
        return "--" + self.name.replace("_", "-")


_PROBABILITY = [Interval(Real, 0, 1, closed="both")]
_SECONDS = [Interval(Real, 0, None, closed="left")]

#: every parameter, by name
PARAMETERS: dict[str, Parameter] = {
    p.name: p
    for p in (
        # "auto": the model's rule (see BaseSegmentationEstimator.resolve_thresholds)
        Parameter(
            "onset",
            "hyper",
            [*_PROBABILITY, StrOptions({"auto"})],
            metavar="X",
            help="activation threshold (default: auto, the model's rule)",
        ),
        Parameter(
            "offset",
            "hyper",
            [*_PROBABILITY, None, StrOptions({"auto"})],
            metavar="X",
            help="deactivation threshold (default: auto, the model's rule)",
        ),
        Parameter(
            "min_duration_on",
            "hyper",
            _SECONDS,
            metavar="SECONDS",
            help="shorter regions are removed",
        ),
        Parameter(
            "min_duration_off",
            "hyper",
            _SECONDS,
            metavar="SECONDS",
            help="shorter gaps are filled",
        ),
        Parameter(
            "segmentation",
            "runtime",
            [str, os.PathLike, SegmentationModel],
            type='SegmentationModel, str or PathLike, default="pyannote/segmentation"',
            doc="Checkpoint path or identifier, or a loaded model (one fine-tuned "
            "in memory, say): clones share it, and the score cache is keyed by "
            "its weights.",
            metavar="CKPT",
            help='checkpoint path or identifier (default: "pyannote/segmentation")',
        ),
        Parameter(
            "step",
            "runtime",
            [Interval(Real, 0, None, closed="neither"), None],
            type="float or None, default=None",
            doc="Seconds between chunk starts; None: 10 % of the chunk duration "
            "(25 % in fast mode).",
            metavar="SECONDS",
            help="seconds between chunks (default: 10 %% of the chunk duration, "
            "25 %% in fast mode)",
        ),
        Parameter(
            "mode",
            "runtime",
            [StrOptions(set(MODES))],
            type='{"exact", "balanced", "fast"}, default="exact"',
            doc='``"exact"``: pyannote.audio\'s scores (1.4x faster than '
            'pyannote.audio). ``"balanced"``: 1.5x, speech frame scores within '
            '1e-4 of pyannote\'s, overlap ones within 3e-4. ``"fast"``: ~4x, for '
            "a slightly different score (see :data:`skseg.inference.MODES` and "
            "the performance docs).",
            choices=tuple(MODES),
            help="inference mode (default: exact; fast: ~4x, slightly different "
            "scores)",
        ),
        Parameter(
            "batch_size",
            "runtime",
            [Interval(Integral, 1, None, closed="left")],
            type="int, default=32",
            doc="Chunks per forward pass (does not change the results).",
            metavar="N",
            help="chunks per forward pass (default: 32)",
        ),
        Parameter(
            "device",
            "runtime",
            [str, torch.device, None],
            type="str, torch.device or None, default=None",
            doc="Where the network runs; None: CPU.",
            metavar="DEVICE",
            help="cpu, cuda, cuda:1... (default: cpu)",
        ),
        Parameter(
            "cache",
            "runtime",
            ["boolean", str, os.PathLike, None],
            type="bool or str, default=True",
            doc="True: keep chunk scores in the process-wide memory cache; a "
            "path: also in that directory; False: no cache.",
            metavar="DIR",
            help="keep chunk scores in DIR for later runs",
        ),
        Parameter(
            "stitch_threshold",
            "pipeline",
            _SECONDS,
        ),
        Parameter(
            "warm_up",
            "pipeline",
            [Interval(Real, 0, 0.5, closed="left")],
        ),
        Parameter("baseline", "pipeline", [str]),
        # the diarization pipeline's (skseg.pipelines.diarization)
        Parameter("embedding", "pipeline", [str, os.PathLike, torch.nn.Module]),
        Parameter("embedding_exclude_overlap", "pipeline", ["boolean"]),
        Parameter(
            "clustering_threshold", "pipeline", [Interval(Real, 0, 2, closed="both")]
        ),
        Parameter(
            "min_cluster_size", "pipeline", [Interval(Integral, 1, None, closed="left")]
        ),
        Parameter("linkage", "pipeline", [StrOptions(set(LINKAGE_METHODS))]),
        Parameter("constrained_assignment", "pipeline", ["boolean"]),
        Parameter(
            "num_speakers",
            "pipeline",
            [Interval(Integral, 1, None, closed="left"), None],
        ),
        Parameter(
            "min_speakers",
            "pipeline",
            [Interval(Integral, 1, None, closed="left"), None],
        ),
        Parameter(
            "max_speakers",
            "pipeline",
            [Interval(Integral, 1, None, closed="left"), None],
        ),
    )
}

#: the model card's four, searched by :func:`skseg.tuning.tune`
HYPER_PARAMETERS: tuple[str, ...] = tuple(
    name for name, p in PARAMETERS.items() if p.kind == "hyper"
)
#: which network and how it runs
RUNTIME_PARAMETERS: tuple[str, ...] = tuple(
    name for name, p in PARAMETERS.items() if p.kind == "runtime"
)


def constraints(*extra: str) -> dict[str, list]:
    """Return scikit-learn's ``_parameter_constraints`` for an estimator.

    Parameters
    ----------
    *extra : str
        The pipeline's own parameters, beyond the hyper- and runtime ones.

    Returns
    -------
    constraints : dict

    Examples
    --------
    >>> sorted(constraints("warm_up"))[:4]
    ['batch_size', 'cache', 'device', 'min_duration_off']
    """
    names = (*HYPER_PARAMETERS, *RUNTIME_PARAMETERS, *extra)
    return {name: list(PARAMETERS[name].constraints) for name in names}


def parameter_docs(names: tuple[str, ...] = RUNTIME_PARAMETERS) -> str:
    """Return the numpydoc entries of parameters, as the estimators write them.

    Parameters
    ----------
    names : tuple of str, default=RUNTIME_PARAMETERS

    Returns
    -------
    text : str
        Indented for a class docstring's Parameters section.

    Examples
    --------
    >>> print(parameter_docs(("batch_size",)))
        batch_size : int, default=32
            Chunks per forward pass (does not change the results).
    """
    lines = []
    for name in names:
        p = PARAMETERS[name]
        lines.append(f"    {name} : {p.type}")
        lines += textwrap.wrap(
            p.doc, width=84, initial_indent=" " * 8, subsequent_indent=" " * 8
        )
    return "\n".join(lines)


#: the runtime parameters' entries, after the pipeline's own, in each docstring
_RUNTIME_TAIL = tuple(name for name in RUNTIME_PARAMETERS if name != "segmentation")


def document_parameters(cls: type) -> type:
    r"""Write the registry's entries into an estimator's docstring (class decorator).

    ``%(segmentation)s`` becomes the ``segmentation`` entry and ``%(runtime)s`` the
    other runtime parameters' entries, so the text the four estimators share is
    written once, here. ``%(detection)s`` becomes a detection pipeline's four
    hyper-parameters, with its ``region_label`` and its ``__init__``'s defaults.

    Parameters
    ----------
    cls : type

    Returns
    -------
    cls : type
        The same class, its ``__doc__`` filled in.

    Examples
    --------
    >>> Demo = type("Demo", (), {"__doc__": "Parameters\n    %(runtime)s\n"})
    >>> Demo = document_parameters(Demo)
    >>> "batch_size : int, default=32" in Demo.__doc__
    True
    """
    doc = cls.__doc__ or ""
    if "    %(detection)s" in doc:
        doc = doc.replace("    %(detection)s", _detection_docs(cls))
    doc = doc.replace("    %(segmentation)s", parameter_docs(("segmentation",)))
    cls.__doc__ = doc.replace("    %(runtime)s", parameter_docs(_RUNTIME_TAIL))
    return cls


def _detection_docs(cls: type) -> str:
    import inspect

    defaults = {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
    }
    what = cls.region_label.capitalize()
    # what "auto" means on the multi-label model (BaseSegmentationEstimator)
    on, off = cls.default_thresholds
    entries = [
        (
            "onset",
            'float or "auto"',
            f"{what} starts when the score goes strictly above ``onset``. "
            f'``"auto"``: the model\'s rule (see :meth:`resolve_thresholds`): '
            f"{on:g} on pyannote/segmentation (pyannote's default); on "
            "pyannote/segmentation-3.0, pyannote.audio's hard decision (the most "
            "probable set of speakers), while a number switches to thresholds on "
            "its probabilities.",
        ),
        (
            "offset",
            'float, None or "auto"',
            f"{what} ends when the score goes strictly below ``offset``; None: "
            f'onset. ``"auto"``: {off:g} on pyannote/segmentation; ``onset`` on '
            "pyannote/segmentation-3.0.",
        ),
        (
            "min_duration_on",
            "float",
            f"{what} regions shorter than this are removed (seconds).",
        ),
        (
            "min_duration_off",
            "float",
            "Gaps shorter than this are filled (seconds), before short regions go.",
        ),
    ]
    lines = []
    for name, kind, text in entries:
        lines.append(f"    {name} : {kind}, default={defaults[name]!r}")
        lines += textwrap.wrap(
            text, width=84, initial_indent=" " * 8, subsequent_indent=" " * 8
        )
    return "\n".join(lines)
