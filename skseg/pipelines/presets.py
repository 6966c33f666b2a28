"""The hyper-parameters pyannote/segmentation's model card publishes, as presets.

The model card of ``pyannote/segmentation`` (Hugging Face Hub, section
"Reproducible research") lists, for its ``Interspeech2021`` revision, the
``onset``, ``offset``, ``min_duration_on`` and ``min_duration_off`` tuned on three
datasets for voice activity detection, overlapped speech detection and the
resegmentation of a VBx baseline. They are here as written there.

The ``Interspeech2021`` revision's weights may differ from the checkpoint skseg
ships (``pyannote/segmentation``'s current revision, pinned by SHA-256 in
:mod:`skseg.hub`): the values are a starting point tuned elsewhere, not a
guarantee for these weights; tune on your own data (:func:`skseg.tuning.tune`)
when you can.
"""

from __future__ import annotations

__all__ = ["DATASETS", "PRESETS", "preset"]

#: preset name -> dataset as the model card names it
DATASETS: dict[str, str] = {
    "ami": "AMI Mix-Headset",
    "dihard3": "DIHARD3",
    "voxconverse": "VoxConverse",
}

_COLUMNS = ("onset", "offset", "min_duration_on", "min_duration_off")

#: (pipeline, preset name) -> hyper-parameters, from the model card's table
PRESETS: dict[tuple[str, str], dict[str, float]] = {
    key: dict(zip(_COLUMNS, values, strict=True))
    for key, values in {
        ("vad", "ami"): (0.684, 0.577, 0.181, 0.037),
        ("vad", "dihard3"): (0.767, 0.377, 0.136, 0.067),
        ("vad", "voxconverse"): (0.767, 0.713, 0.182, 0.501),
        ("osd", "ami"): (0.448, 0.362, 0.116, 0.187),
        ("osd", "dihard3"): (0.430, 0.320, 0.091, 0.144),
        ("osd", "voxconverse"): (0.587, 0.426, 0.337, 0.112),
        ("resegment", "ami"): (0.542, 0.527, 0.044, 0.705),
        ("resegment", "dihard3"): (0.592, 0.489, 0.163, 0.182),
        ("resegment", "voxconverse"): (0.537, 0.724, 0.410, 0.563),
    }.items()
}


def preset(pipeline: str, dataset: str) -> dict[str, float]:
    """Return the model card's hyper-parameters of a pipeline on a dataset.

    Parameters
    ----------
    pipeline : {"vad", "osd", "resegment"}
        A key of :data:`skseg.pipelines.PIPELINES` (the model card has no row
        for speaker segmentation).
    dataset : {"ami", "dihard3", "voxconverse"}

    Returns
    -------
    params : dict
        ``onset``, ``offset``, ``min_duration_on``, ``min_duration_off``.

    Raises
    ------
    ValueError
        If the model card has no such row.

    Examples
    --------
    >>> from skseg import VADEstimator
    >>> VADEstimator(**preset("vad", "ami"))
    VADEstimator(min_duration_off=0.037, min_duration_on=0.181, offset=0.577,
                 onset=0.684)
    """
    try:
        return dict(PRESETS[pipeline, dataset])
    except KeyError:
        pipelines = sorted({p for p, _ in PRESETS})
        raise ValueError(
            f"no model card preset for pipeline {pipeline!r} on {dataset!r}: "
            f"presets exist for {', '.join(pipelines)} on "
            f"{', '.join(sorted(DATASETS))}"
        ) from None
