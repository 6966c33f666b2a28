"""Figures of what a pipeline sees and decides on one file (``skseg[plot]`` extra).

:func:`plot_file` draws, on one time axis: the waveform, the frame scores
(speech and overlap, and the per-speaker activations of the speaker pipelines)
with the estimator's ``onset``/``offset`` thresholds, the predicted regions, and
the reference when there is one. :func:`plot_annotation` draws one
:class:`~pyannote.core.Annotation`, a row per label, on any matplotlib axes.

matplotlib is imported only when a figure is drawn, and figures are built with
the object-oriented API (no ``pyplot`` state, no GUI backend), so this works in
scripts, servers and notebooks alike. In notebooks, ``Annotation`` objects also
render inline on their own: pyannote.core's ``_repr_png_`` needs matplotlib,
which the ``plot`` extra provides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from pyannote.core import Annotation, SlidingWindowFeature

from .audio import AudioFile, AudioReader, validate_file
from .model import resolve_model

if TYPE_CHECKING:  # pragma: no cover - typing only
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_file", "plot_annotation"]

#: at most this many (min, max) waveform columns are drawn, however long the file
WAVEFORM_BINS = 4000
# legends beside the axes: the scores fill the whole width
_LEGEND = {"loc": "upper left", "bbox_to_anchor": (1.005, 1.0), "fontsize": 7}
# one block of this many seconds is decoded at a time for the waveform envelope
_BLOCK_SECONDS = 60.0


def _matplotlib():
    try:
        import matplotlib  # noqa: F401 -- probe the optional dependency
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(
            'skseg.plot needs matplotlib: pip install "skseg[plot]"'
        ) from e
    return Figure


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def plot_annotation(
    annotation: Annotation, ax: Axes | None = None, *, title: str | None = None
) -> Axes:
    """Draw an annotation as one row of regions per label.

    Parameters
    ----------
    annotation : Annotation
        Regions to draw (speaker turns, speech, overlap...).
    ax : matplotlib Axes, optional
        Where to draw; a new figure's axes by default.
    title : str, optional
        Label of the y axis; defaults to the annotation's uri.

    Returns
    -------
    ax : matplotlib Axes

    Raises
    ------
    ImportError
        If matplotlib is not installed (``pip install "skseg[plot]"``).

    Examples
    --------
    >>> from skseg.datasets import fetch_sample
    >>> ax = plot_annotation(fetch_sample()["annotation"])
    >>> [tick.get_text() for tick in ax.get_yticklabels()]
    ['speaker90', 'speaker91']
    """
    Figure = _matplotlib()
    if ax is None:
        ax = Figure(figsize=(12, 1.5)).subplots()
    labels = sorted(annotation.labels(), key=str)
    for row, (label, color) in enumerate(
        zip(labels, _colors(len(labels)), strict=True)
    ):
        spans = [(s.start, s.duration) for s in annotation.label_timeline(label)]
        ax.broken_barh(spans, (row + 0.1, 0.8), facecolors=color)
    ax.set_yticks([row + 0.5 for row in range(len(labels))])
    ax.set_yticklabels([str(label) for label in labels], fontsize=8)
    ax.set_ylim(0, max(len(labels), 1))
    ax.invert_yaxis()
    ax.set_ylabel(title if title is not None else (annotation.uri or ""), fontsize=9)
    if not labels:
        ax.text(0.5, 0.5, "(empty)", transform=ax.transAxes, ha="center", va="center")
    extent = annotation.get_timeline().extent()
    if ax.get_xlim() == (0.0, 1.0) and extent.duration > 0:
        ax.set_xlim(0.0, extent.end)
    return ax


def _envelope(file: AudioFile, bins: int = WAVEFORM_BINS):
    """Return (times, minima, maxima, duration) of a file's 16 kHz samples."""
    with AudioReader(file, sample_rate=16000) as reader:
        n, sr = reader.num_samples, reader.sample_rate
        per_bin = max(1, -(-n // bins))
        block = per_bin * max(1, int(_BLOCK_SECONDS * sr) // per_bin)
        lows, highs = [], []
        for start in range(0, n, block):
            x = reader.read(start, min(start + block, n))
            pad = -len(x) % per_bin
            if pad:  # the last bin is short: pad with its own last sample
                x = np.concatenate([x, np.full(pad, x[-1], dtype=x.dtype)])
            x = x.reshape(-1, per_bin)
            lows.append(x.min(axis=1))
            highs.append(x.max(axis=1))
    low, high = np.concatenate(lows), np.concatenate(highs)
    times = (np.arange(len(low)) + 0.5) * per_bin / sr
    return times, low, high, n / sr


def _final_step(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)  # a scikit-learn Pipeline
    return steps[-1][1] if steps else estimator


def _line(ax: Axes, scores: SlidingWindowFeature, **kwargs) -> None:
    window = scores.sliding_window
    t = np.array([window[i].middle for i in range(len(scores.data))])
    data = np.asarray(scores.data)
    if data.ndim == 1:
        data = data[:, None]
    ax.plot(t, data, **kwargs)


def plot_file(
    file: AudioFile,
    estimator: Any = None,
    *,
    reference: Annotation | None = None,
    title: str | None = None,
    width: float = 12.0,
) -> Figure:
    """Draw a file's waveform, scores, thresholds, predictions and reference.

    One figure, one shared time axis, top to bottom: the waveform (min/max
    envelope), the speech and overlap frame scores with the estimator's
    ``onset`` (solid) and ``offset`` (dashed) thresholds, the per-speaker
    activations behind a speaker pipeline's decision (Segmentation,
    Resegmentation), the predicted regions, and the reference speaker turns.

    Parameters
    ----------
    file : str, PathLike or mapping
        The file (see :func:`skseg.audio.validate_file`); a ``"baseline"`` key is
        needed for :class:`~skseg.ResegmentationEstimator`.
    estimator : estimator, optional
        A skseg pipeline estimator, or a scikit-learn Pipeline ending in one;
        default: :class:`~skseg.VADEstimator` with its defaults. Its scores come
        from the shared cache, so drawing after predicting costs no network run.
    reference : Annotation, optional
        Reference speaker turns; defaults to the file's ``"annotation"``, if any.
    title : str, optional
        Figure title; defaults to the uri and the estimator's thresholds.
    width : float, default=12.0
        Figure width in inches (height follows from the number of panels).

    Returns
    -------
    figure : matplotlib.figure.Figure
        Save it with ``figure.savefig("fig.png")``; in a notebook it displays.

    Raises
    ------
    ImportError
        If matplotlib is not installed (``pip install "skseg[plot]"``).
    AudioError
        If the audio cannot be read.

    Examples
    --------
    >>> from skseg import OSDEstimator, fetch_sample
    >>> figure = plot_file(fetch_sample(), OSDEstimator())
    >>> [ax.get_ylabel() for ax in figure.axes]
    ['waveform', 'scores', 'prediction', 'reference']
    """
    Figure = _matplotlib()
    from .pipelines import (
        OSDEstimator,
        ResegmentationEstimator,
        SegmentationEstimator,
        VADEstimator,
    )
    from .pipelines.parameters import HYPER_PARAMETERS, RUNTIME_PARAMETERS

    file = validate_file(file)
    if estimator is None:
        estimator = VADEstimator()
    if reference is None:
        reference = file.get("annotation")
    final = _final_step(estimator)
    params = final.get_params() if hasattr(final, "get_params") else {}
    # the same network run the same way (mode included): the curves drawn beside
    # the estimator's own are the scores it would see
    shared = {name: params[name] for name in RUNTIME_PARAMETERS if name in params}
    # the memory cache makes the detection scores below reuse one network run
    shared["cache"] = params.get("cache") or True

    # the companion curves follow the estimator's rule: where a numeric onset
    # selects other scores than "auto" (the soft probabilities of
    # pyannote/segmentation-3.0), they get one too (the curve, not a threshold)
    if hasattr(final, "resolve_thresholds"):
        model = resolve_model(final.segmentation)
        if final.resolve_thresholds(model)[2] != model.head.rules[0]:
            shared["onset"] = 0.5
    prediction = estimator.predict([file])[0]
    decision = estimator.decision_function([file])[0]
    speech = (
        decision
        if isinstance(final, VADEstimator)
        else VADEstimator(**shared).decision_function([file])[0]
    )
    overlap = (
        decision
        if isinstance(final, OSDEstimator)
        else OSDEstimator(**shared).decision_function([file])[0]
    )
    speakers = isinstance(final, SegmentationEstimator | ResegmentationEstimator)

    panels = ["waveform", "scores"] + (["speakers"] if speakers else [])
    panels += ["prediction"] + (["reference"] if reference is not None else [])
    heights = {"waveform": 1.2, "scores": 1.6, "speakers": 1.6}
    ratios = [
        heights.get(name, 0.5 + 0.3 * max(1, len(_labels(name, prediction, reference))))
        for name in panels
    ]
    figure = Figure(figsize=(width, 0.6 + sum(ratios)), layout="constrained")
    axes = figure.subplots(
        len(panels), 1, sharex=True, gridspec_kw={"height_ratios": ratios}
    )
    ax = dict(zip(panels, np.atleast_1d(axes), strict=True))

    times, low, high, duration = _envelope(file)
    ax["waveform"].fill_between(times, low, high, color="0.35", linewidth=0)
    ax["waveform"].set_ylabel("waveform", fontsize=9)

    ax_scores = ax["scores"]
    speech_color, overlap_color = _colors(2)
    _line(ax_scores, speech, color=speech_color, lw=1, label="speech")
    _line(ax_scores, overlap, color=overlap_color, lw=1, label="overlap")
    onset = offset = None
    if hasattr(final, "resolve_thresholds"):
        # "auto" resolved for this estimator's model (pyannote/segmentation-3.0's
        # hard rule: 0.5 on the aggregated 0/1 activities)
        onset, offset, _ = final.resolve_thresholds()
    if onset is not None:
        color = (
            overlap_color
            if isinstance(final, OSDEstimator)
            else speech_color
            if isinstance(final, VADEstimator)
            else "0.2"
        )
        what = "speaker " if speakers else ""
        ax_scores.axhline(onset, color=color, ls="-", lw=0.8, label=f"{what}onset")
        ax_scores.axhline(offset, color=color, ls="--", lw=0.8, label=f"{what}offset")
    ax_scores.set_ylim(-0.02, 1.02)
    ax_scores.set_ylabel("scores", fontsize=9)
    ax_scores.legend(**_LEGEND)

    if speakers:
        names = list(getattr(decision, "labels", None) or [])
        colors = _colors(max(decision.data.shape[1], 1))
        for k in range(decision.data.shape[1]):
            label = names[k] if k < len(names) else str(k)
            column = SlidingWindowFeature(decision.data[:, k], decision.sliding_window)
            _line(ax["speakers"], column, color=colors[k], lw=1, label=label)
        ax["speakers"].set_ylabel("speakers", fontsize=9)
        if decision.data.shape[1]:
            ax["speakers"].legend(**_LEGEND)

    plot_annotation(prediction, ax["prediction"], title="prediction")
    if reference is not None:
        plot_annotation(reference, ax["reference"], title="reference")
    last = ax[panels[-1]]
    last.set_xlim(0.0, duration)
    last.set_xlabel("time (s)")
    if title is None:
        shown = ", ".join(
            f"{name}={params[name]:g}"
            for name in HYPER_PARAMETERS
            if isinstance(params.get(name), int | float)
        )
        title = f"{file['uri']} — {type(final).__name__}({shown})"
    figure.suptitle(title, fontsize=10)
    return figure


def _labels(panel: str, prediction: Annotation, reference: Annotation | None) -> list:
    if panel == "prediction":
        return prediction.labels()
    if panel == "reference" and reference is not None:
        return reference.labels()
    return []
