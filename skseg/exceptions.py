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
]


class SksegError(Exception):
    """Base class of every error raised by skseg."""


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
    """A checkpoint cannot be loaded (corrupt, truncated, wrong architecture)."""


class UnsafeCheckpointError(CheckpointError):
    """A checkpoint asks to import or call something outside the allow-list.

    Raised before anything from the checkpoint is executed.
    """


class WeightsUnavailableError(SksegError, FileNotFoundError):
    """Pretrained weights are neither given, cached, nor obtainable here."""
