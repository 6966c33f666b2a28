"""Real audio with a reference, fetched once and verified.

pyannote.audio's wheel ships a 30 s two-speaker recording with its reference
(``sample.wav`` + ``sample.rttm``). :func:`fetch_sample` extracts both from the
pinned wheel on the package index, checks their SHA-256, caches them under
``$SKSEG_HOME/data/`` and returns a pyannote.database-style file.

pyannote.audio's source distribution ships, as test data, fourteen 30 s excerpts
of real meetings of the AMI corpus (headset mix, 1 to 4 speakers, RTTM and UEM):
:func:`fetch_ami_excerpts` extracts them the same way, split as pyannote's
``Debug`` protocol splits them (10 train, 2 development, 2 test files).
"""

from __future__ import annotations

import os
from pathlib import Path

from pyannote.core import Segment, Timeline
from sklearn.utils._param_validation import validate_parameter_constraints

from .exceptions import FileError
from .hub import (
    SourceMember,
    WheelMember,
    cache_dir,
    fetch_source_members,
    fetch_wheel_members,
    verified_cached,
)
from .io import load_folder, read_rttm

__all__ = ["fetch_sample", "SAMPLE", "fetch_ami_excerpts", "AMI_EXCERPTS"]

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


_SDIST = "pyannote.audio==3.1.1"
_SDIST_SHA256 = "b6562d46b5d5d616c1887cafd5aab3f7d19ecf6b3312fc6c4f72f37332fcd408"
_AMI_LICENCE = "CC BY 4.0 (AMI Meeting Corpus), shipped in pyannote.audio's MIT sources"
_AMI_SPLITS = {
    "train": ("debug.train", [f"trn{i:02d}" for i in range(10)]),
    "development": ("debug.development", ["dev00", "dev01"]),
    "test": ("debug.test", ["tst00", "tst01"]),
}
_AMI_DIGESTS = {
    "trn00.wav": "2b0ac2846b90199cf0fdaef0c38c26e965651f2fee29e7af13a30a5b84218142",
    "trn01.wav": "b5e8d91105604d25cb05cc3840d015d88bd6689a2acba35506dd0d7dcb00668a",
    "trn02.wav": "2e4ce968332e68cac5ed74cd00f96b63ed6c034667583be34a32a7c2aa260803",
    "trn03.wav": "d12d132a6d4788f85efaa8e18563e575746e6a6fcc928e919c7c0e6a3e0238b2",
    "trn04.wav": "afa4bd13ee05be34953beb594d0d755ba83284c5a742ae27e388952d41c4d0f1",
    "trn05.wav": "ec694aa5c9eea7453263eaf90d38ed921c1b6f8cc4f52897d9a4457a504d668d",
    "trn06.wav": "e70cbed4f13c7971fdf9d424b079d87a25ed1ce3928da0bccd18f143eb4ac359",
    "trn07.wav": "77628cd91dcc27c61f9b709e670f003cb860d597fda56e7ccb0ccbbc42d5a26f",
    "trn08.wav": "a7d3397e82cb1025307f08b0fe8459a9d43fe61f3d9ce674f17819c7450bfac5",
    "trn09.wav": "8e18bc410e6d54a166bbba2ff0b46a222626706788fa222add4f97bca842f822",
    "dev00.wav": "187386cda67317574da5b30068a8b853e52cc6df0d13abfec381912dfa9e7461",
    "dev01.wav": "13834217e1bd46a581af1b8040018bfba1e65ce1e0b9ee46cdcefa9334b9ddea",
    "tst00.wav": "0af781fb566501f7950479fd8bd92329276782c7ac930a03497d553b21c33397",
    "tst01.wav": "a40925742870d05363eb781bd2cf1501fc37883cf003389175a39b24a5b2c7c9",
    "debug.train.rttm": (
        "ff4c7de546c04d3df1e8b8fe6c8ad9d107312d99d51aeabf58304ae100293198"
    ),
    "debug.train.uem": (
        "3c6ff0104fb8a6975b409e02e07d430db77a0301573f736a52180466a79efb1a"
    ),
    "debug.development.rttm": (
        "9667a672072f7d0ad5b647cfaed987d8c52209a4e1ddc252fed06d0b955e7aeb"
    ),
    "debug.development.uem": (
        "b7869a1d5057792eac62e6fddcb7a08ac3233bae456b7d8c44bbcbb5181fb228"
    ),
    "debug.test.rttm": (
        "eae147d74d3f08002a5028183538eb35e6a7c7a77fe7d87c51eec95852d33161"
    ),
    "debug.test.uem": (
        "97cfb6a474e1cb4a44b00e1acfc78e8d366527dd818bf367c09f23d68c74d559"
    ),
}


def _ami_files(split: str) -> list[str]:
    stem, uris = _AMI_SPLITS[split]
    return [f"{uri}.wav" for uri in uris] + [f"{stem}.rttm", f"{stem}.uem"]


AMI_EXCERPTS = {
    split: {
        name: SourceMember(
            _SDIST,
            _SDIST_SHA256,
            f"tests/data/{name}",
            _AMI_DIGESTS[name],
            _AMI_LICENCE,
        )
        for name in _ami_files(split)
    }
    for split in _AMI_SPLITS
}


def fetch_ami_excerpts(
    data_home: str | os.PathLike | None = None,
) -> dict[str, list[dict]]:
    """Return fourteen 30 s excerpts of real meetings, with their references.

    The excerpts come from the AMI Meeting Corpus (headset mix, 16 kHz mono;
    licence CC BY 4.0) as pyannote.audio ships them in its source distribution
    for its own tests (``tests/data``, protocol ``Debug.SpeakerDiarization.Debug``).
    They are real conversational speech: 1 to 4 speakers per excerpt, overlaps,
    backchannels, 5 min of training audio in all. Each split is cached in a
    folder of its own (audio, one RTTM, one UEM) that
    :func:`skseg.io.load_folder` and ``skseg tune``/``skseg finetune`` read.

    Parameters
    ----------
    data_home : str or PathLike, optional
        Cache folder; defaults to ``$SKSEG_HOME/data/ami-excerpts``.

    Returns
    -------
    splits : dict
        ``{"train": [10 files], "development": [2], "test": [2]}``, each file
        ``{"audio", "uri", "annotation", "annotated"}``; the folder of a split is
        the parent of its files' ``"audio"``.

    Raises
    ------
    WeightsUnavailableError
        If the archive cannot be fetched or a file does not match its digest.

    Examples
    --------
    >>> splits = fetch_ami_excerpts()  # fetched once, then read from the cache
    >>> {split: len(files) for split, files in splits.items()}
    {'train': 10, 'development': 2, 'test': 2}
    >>> sorted(splits["test"][0]["annotation"].labels())
    ['FEO070', 'FEO072', 'MEE071', 'MEE073']
    """
    validate_parameter_constraints(
        {"data_home": [str, os.PathLike, None]},
        {"data_home": data_home},
        caller_name="fetch_ami_excerpts",
    )
    home = Path(data_home) if data_home else cache_dir() / "data" / "ami-excerpts"
    if home.exists() and not home.is_dir():
        raise FileError(
            home, "is not a folder (data_home is where the excerpts are kept)"
        )
    missing = [
        (spec, home / split / name)
        for split, members in AMI_EXCERPTS.items()
        for name, spec in members.items()
        if verified_cached(home / split / name, spec.sha256) is None
    ]
    if missing:
        fetch_source_members(missing)
    splits = {}
    for split in AMI_EXCERPTS:
        X, _ = load_folder(home / split)
        splits[split] = X
    return splits
