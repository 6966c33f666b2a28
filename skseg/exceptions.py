"""Errors raised by skseg.

Every error that concerns one input names it, so that a batch can report which of
its files failed and why without losing the others' results.
"""

from __future__ import annotations

import os

__all__ = [
    "SksegError",
    "FileError",
    "AudioError",
    "CheckpointError",
    "UnsafeCheckpointError",
    "WeightsUnavailableError",
    "LabelStudioError",
]


class SksegError(Exception):
    """Base class of every error raised by skseg.

    Examples
    --------
    >>> from skseg import VADEstimator
    >>> try:
    ...     VADEstimator()("missing.wav")
    ... except SksegError as e:
    ...     print(type(e).__name__, e)
    AudioError missing.wav: file not found
    """


class FileError(SksegError, ValueError):
    """One input file cannot be processed; the message names it.

    Parameters
    ----------
    file : str or PathLike
        What identifies the file to a user: its path, else its ``uri``. Kept as
        ``str``.
    problem : str
        What is wrong with it.

    Examples
    --------
    >>> str(FileError("meeting.wav", "no 'baseline' key"))
    "meeting.wav: no 'baseline' key"
    """

    def __init__(self, file: str | os.PathLike, problem: str):
        file = os.fspath(file) if isinstance(file, os.PathLike) else str(file)
        super().__init__(f"{file}: {problem}")
        self.file = file
        self.problem = problem

    def __reduce__(self):
        # keeps the two-argument signature through pickling (process pools, Dask)
        return type(self), (self.file, self.problem)


class AudioError(FileError):
    """An audio file cannot be used: missing, unreadable, empty or invalid.

    Examples
    --------
    >>> str(AudioError("meeting.wav", "file not found"))
    'meeting.wav: file not found'
    """


class CheckpointError(SksegError, ValueError):
    """A checkpoint cannot be loaded (corrupt, truncated, wrong architecture).

    Examples
    --------
    >>> import os, tempfile
    >>> from skseg import load_checkpoint
    >>> path = os.path.join(tempfile.mkdtemp(), "model.ckpt")
    >>> with open(path, "w") as f:
    ...     _ = f.write("not a checkpoint")
    >>> try:
    ...     load_checkpoint(path)
    ... except CheckpointError as e:
    ...     print(str(e).removeprefix(path + ": ")[:25])
    not a torch zip archive (
    """


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint asks to import or call something outside the allow-list.

    Raised before anything from the checkpoint is executed.

    Examples
    --------
    A checkpoint that pickles any class outside the allow-list is refused, however
    harmless the class:

    >>> import fractions, os, tempfile, torch
    >>> from skseg import load_checkpoint
    >>> path = os.path.join(tempfile.mkdtemp(), "model.ckpt")
    >>> torch.save({"state_dict": {}, "x": fractions.Fraction(1, 3)}, path)
    >>> try:
    ...     load_checkpoint(path)
    ... except UnsafeCheckpointError as e:
    ...     print("refused:", "fractions.Fraction" in str(e))
    refused: True
    """


class WeightsUnavailableError(SksegError, FileNotFoundError):
    """Pretrained weights are neither given, cached, nor obtainable here.

    Examples
    --------
    >>> from skseg import load_model
    >>> try:
    ...     load_model("nobody/nothing")
    ... except WeightsUnavailableError as e:
    ...     print(str(e)[:52])
    nobody/nothing: weights not found (no verified mirro
    """


class LabelStudioError(SksegError):
    """Label Studio could not be reached, refused the token, or refused a request.

    Raised by :class:`skseg.annotation.labelstudio_client.LabelStudioClient`;
    defined here so that ``import skseg`` exports it without importing the
    annotation tools.

    Examples
    --------
    >>> raise LabelStudioError("http://127.0.0.1:8080: not reachable")
    Traceback (most recent call last):
    ...
    skseg.exceptions.LabelStudioError: http://127.0.0.1:8080: not reachable
    """
