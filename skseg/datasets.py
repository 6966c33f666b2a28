"""Real audio with a reference, fetched once and verified.

pyannote.audio's wheel ships a 30 s two-speaker recording with its reference
(``sample.wav`` + ``sample.rttm``). :func:`fetch_sample` extracts both from the
pinned wheel on the package index, checks their SHA-256, caches them under
``$SKSEG_HOME/data/`` and returns a pyannote.database-style file.
"""

from __future__ import annotations

import os
from pathlib import Path

from pyannote.core import Segment, Timeline
from sklearn.utils._param_validation import validate_parameter_constraints

from .exceptions import FileError
from .hub import WheelMember, cache_dir, fetch_wheel_members, verified_cached
from .io import read_rttm

__all__ = ["fetch_sample", "SAMPLE"]

_WHEEL = "pyannote.audio==4.0.7"
SAMPLE = {
    "sample.wav": WheelMember(
        _WHEEL,
        "pyannote/audio/sample/sample.wav",
        "c319b4abca767b124e41432d364fd7df006cb26bb79d09326c487d606a134e6e",
        "MIT (pyannote.audio)",
    ),
    "sample.rttm": WheelMember(
        _WHEEL,
        "pyannote/audio/sample/sample.rttm",
        "d78fe62c69d8e6dcbb42c26adfce83faccb374c5a1e6d987fe37f85f1c173c87",
        "MIT (pyannote.audio)",
    ),
}


def fetch_sample(data_home: str | os.PathLike | None = None) -> dict:
    """Return pyannote.audio's sample recording with its reference.

    Parameters
    ----------
    data_home : str or PathLike, optional
        Cache folder; defaults to ``$SKSEG_HOME/data/pyannote-sample``.

    Returns
    -------
    file : dict
        ``{"audio": path, "uri": "sample", "annotation": Annotation,
        "annotated": Timeline}`` (30 s, 16 kHz mono, 2 speakers).

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        ``data_home`` is not a path.
    FileError
        ``data_home`` exists and is not a folder.
    WeightsUnavailableError
        The files are not cached and cannot be fetched.

    Examples
    --------
    >>> sample = fetch_sample()  # downloaded once, then read from the cache
    >>> sorted(sample["annotation"].labels())
    ['speaker90', 'speaker91']
    >>> sample["uri"], sample["annotated"].duration()
    ('sample', 30.0)
    """
    validate_parameter_constraints(
        {"data_home": [str, os.PathLike, None]},
        {"data_home": data_home},
        caller_name="fetch_sample",
    )
    home = Path(data_home) if data_home else cache_dir() / "data" / "pyannote-sample"
    if home.exists() and not home.is_dir():
        raise FileError(home, "is not a folder (data_home is where the sample is kept)")
    missing = [
        (spec, home / name)
        for name, spec in SAMPLE.items()
        if verified_cached(home / name, spec.sha256) is None
    ]
    if missing:
        fetch_wheel_members(missing)
    wav, rttm = home / "sample.wav", home / "sample.rttm"
    import soundfile as sf

    duration = sf.info(str(wav)).duration
    return {
        "audio": str(wav),
        "uri": "sample",
        "annotation": read_rttm(rttm)["sample"],
        "annotated": Timeline([Segment(0.0, duration)], uri="sample"),
    }
