"""What a "file" is, and how its samples are read.

A file is a path (``str`` or ``os.PathLike``) or a mapping in pyannote.database's
style: ``{"audio": path}`` or ``{"waveform": (channel, time) array,
"sample_rate": int}``, with optional ``"uri"``, ``"channel"``, ``"annotated"`` and
``"annotation"``. :func:`validate_file` turns any of those into a plain ``dict``;
:class:`AudioReader` serves mono float32 samples at the model's rate by sample range,
so long files at the model's rate are read in blocks rather than all at once.

Every failure is an :class:`~skseg.exceptions.AudioError` that names the file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from .exceptions import AudioError

__all__ = ["AudioFile", "AudioReader", "validate_file", "file_label", "file_identity"]

AudioFile = str | os.PathLike | Mapping[str, Any]


def file_label(file: AudioFile) -> str:
    """Return how a file is named in messages: its path, else its ``uri``.

    Parameters
    ----------
    file : str, PathLike or mapping
        The file.

    Returns
    -------
    label : str

    Examples
    --------
    >>> file_label("/data/a.wav")
    '/data/a.wav'
    >>> file_label({"waveform": None, "sample_rate": 16000, "uri": "call-7"})
    'call-7'
    """
    if isinstance(file, str | os.PathLike):
        return os.fspath(file)
    if isinstance(file, Mapping):
        audio = file.get("audio")
        if isinstance(audio, str | os.PathLike):
            return os.fspath(audio)
        if "uri" in file:
            return str(file["uri"])
        if "waveform" in file:
            return "<waveform>"
    return repr(file)


def validate_file(file: AudioFile) -> dict:
    """Normalise a file description into a new ``dict`` (the input is not modified).

    Parameters
    ----------
    file : str, PathLike or mapping
        A path, or a mapping with ``"audio"`` (a path) or ``"waveform"`` and
        ``"sample_rate"``.

    Returns
    -------
    file : dict
        A copy with ``"uri"`` set (the path's stem, or ``"waveform"``) and
        ``"audio"`` as ``str`` when the file is a path.

    Raises
    ------
    AudioError
        If the description is neither a path nor a valid mapping, or the path
        does not exist.

    Examples
    --------
    >>> import numpy as np
    >>> validate_file({"waveform": np.zeros((1, 16000)), "sample_rate": 16000})["uri"]
    'waveform'
    """
    if isinstance(file, str | os.PathLike):
        file = {"audio": os.fspath(file)}
    if not isinstance(file, Mapping):
        raise AudioError(
            file_label(file),
            f"a file is a path or a mapping with 'audio' or 'waveform', "
            f"not {type(file).__name__}",
        )
    out = dict(file)
    label = file_label(out)
    if "waveform" in out:
        if "sample_rate" not in out:
            raise AudioError(label, "'waveform' given without 'sample_rate'")
        out.setdefault("uri", "waveform")
        return out
    if "audio" not in out:
        raise AudioError(label, "the mapping has neither 'audio' nor 'waveform'")
    audio = out["audio"]
    if not isinstance(audio, str | os.PathLike):
        raise AudioError(label, f"'audio' must be a path, not {type(audio).__name__}")
    out["audio"] = os.fspath(audio)
    out.setdefault("uri", Path(out["audio"]).stem)
    return out


def file_identity(file: AudioFile) -> str:
    """Return a stable key for a file's content, for caching scores.

    A path is identified by its resolved location, size and modification time (so
    an edited file is not served stale scores); an in-memory waveform by a hash of
    its samples and rate.

    Parameters
    ----------
    file : str, PathLike or mapping
        The file.

    Returns
    -------
    key : str
        A hexadecimal digest.

    Examples
    --------
    >>> import numpy as np
    >>> a = {"waveform": np.zeros((1, 16000), dtype="float32"), "sample_rate": 16000}
    >>> file_identity(a) == file_identity(dict(a, uri="other name"))
    True
    """
    file = validate_file(file)
    h = hashlib.sha256()
    if "waveform" in file:
        wav = _as_numpy(file["waveform"])
        h.update(b"waveform")
        h.update(str((wav.shape, wav.dtype.str, int(file["sample_rate"]))).encode())
        h.update(np.ascontiguousarray(wav).tobytes())
    else:
        path = Path(file["audio"])
        try:
            st = path.stat()
        except OSError as e:
            raise AudioError(file["audio"], _os_problem(e)) from None
        h.update(b"path")
        h.update(str((str(path.resolve()), st.st_size, st.st_mtime_ns)).encode())
    if file.get("channel") is not None:
        h.update(f"channel={file['channel']}".encode())
    return h.hexdigest()


def _as_numpy(waveform: Any) -> np.ndarray:
    if hasattr(waveform, "detach"):  # a torch tensor, without importing torch here
        waveform = waveform.detach().cpu().numpy()
    return np.asarray(waveform)


def _os_problem(e: OSError) -> str:
    if isinstance(e, FileNotFoundError):
        return "file not found"
    if isinstance(e, IsADirectoryError):
        return "is a directory, not an audio file"
    if isinstance(e, PermissionError):
        return "permission denied"
    return f"cannot be read ({e.strerror or e})"


def _truncation(handle: sf.SoundFile) -> str | None:
    """Describe how a WAV is cut off, if it is.

    libsndfile reads a cut-off WAV without complaint but notes, in its log, that
    the data chunk "should be" shorter than announced.
    """
    for line in handle.extra_info.splitlines():
        fields = line.split(":", 1)
        if fields[0].strip() == "data" and "should be" in line:
            announced = fields[1].split("(")[0].strip()
            actual = line.split("should be")[1].strip(" )")
            return (
                f"the header announces {announced} bytes of audio but only "
                f"{actual} are present"
            )
    return None


class AudioReader:
    """Mono float32 samples of one file at a given sample rate, by sample range.

    Channels are averaged (or one is selected by the file's 1-based ``"channel"``)
    and other sample rates are resampled with :func:`scipy.signal.resample_poly`.
    A file already at the target rate is read from disk in blocks as
    :meth:`read` asks for them, so its size does not bound memory; a file that
    needs resampling is decoded and resampled once, in memory.

    Parameters
    ----------
    file : str, PathLike or mapping
        The file (see :func:`validate_file`).
    sample_rate : int, default=16000
        The rate samples are returned at.

    Attributes
    ----------
    file : dict
        The validated file description.
    num_samples : int
        Length at ``sample_rate``.
    sample_rate : int
        Output sample rate.

    Raises
    ------
    AudioError
        Missing, unreadable, corrupt, empty or zero-length audio, or non-finite
        samples (the latter when the samples are read).

    Examples
    --------
    >>> import numpy as np
    >>> wav = np.ones((2, 8000), dtype="float32")  # stereo, 8 kHz, 1 s
    >>> with AudioReader({"waveform": wav, "sample_rate": 8000}) as reader:
    ...     print(reader.num_samples, reader.read(0, 4).shape)
    16000 (4,)
    """

    def __init__(self, file: AudioFile, sample_rate: int = 16000):
        self.file = validate_file(file)
        self.sample_rate = int(sample_rate)
        self.label = file_label(self.file)
        self._sf: sf.SoundFile | None = None
        self._samples: np.ndarray | None = None
        if "waveform" in self.file:
            self._open_waveform()
        else:
            self._open_path()

    # -- opening ------------------------------------------------------------------
    def _fail(self, problem: str) -> AudioError:
        return AudioError(self.label, problem)

    def _open_waveform(self) -> None:
        wav = _as_numpy(self.file["waveform"])
        if wav.ndim == 1:
            wav = wav[None, :]
        if wav.ndim != 2:
            raise self._fail(
                f"'waveform' must be (channel, time), got shape {wav.shape}"
            )
        if wav.size == 0:
            raise self._fail("zero-length audio (0 samples)")
        if wav.shape[0] > wav.shape[1]:
            raise self._fail(
                f"'waveform' must be (channel, time), got {wav.shape[0]} channels "
                f"for {wav.shape[1]} samples: transpose it"
            )
        if not np.issubdtype(wav.dtype, np.number):
            raise self._fail(f"'waveform' must be numeric, not {wav.dtype}")
        sr = self._check_rate(self.file["sample_rate"])
        mono = self._mix(wav.astype(np.float32, copy=False))
        self._check_finite(mono, 0, sr)
        self._samples = self._resample(mono, sr)
        self.num_samples = len(self._samples)

    def _open_path(self) -> None:
        path = Path(self.file["audio"])
        try:
            st = path.stat()
        except OSError as e:
            raise self._fail(_os_problem(e)) from None
        if path.is_dir():
            raise self._fail("is a directory, not an audio file")
        if st.st_size == 0:
            raise self._fail("empty file (0 bytes)")
        try:
            handle = sf.SoundFile(path)
        except (sf.LibsndfileError, RuntimeError, TypeError) as e:
            raise self._fail(
                f"cannot decode audio ({e}); the file is corrupt or not in a format "
                f"libsndfile reads (WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF, ...)"
            ) from None
        except OSError as e:
            raise self._fail(_os_problem(e)) from None
        if handle.frames <= 0:
            handle.close()
            raise self._fail("zero-length audio (0 samples)")
        if truncated := _truncation(handle):
            handle.close()
            raise self._fail(f"truncated: {truncated}")
        self._native_rate = self._check_rate(handle.samplerate)
        self._channels = handle.channels
        self._channel_index(self._channels)
        if self._native_rate == self.sample_rate:
            self._sf = handle
            self.num_samples = int(handle.frames)
            return
        with handle:
            data = self._read_native(handle, 0, handle.frames)
        self._check_finite(data, 0, self._native_rate)
        self._samples = self._resample(data, self._native_rate)
        self.num_samples = len(self._samples)

    def _check_rate(self, sr: Any) -> int:
        try:
            rate = int(sr)
        except (TypeError, ValueError):
            raise self._fail(f"invalid sample rate {sr!r}") from None
        if rate <= 0 or rate != sr:
            raise self._fail(f"invalid sample rate {sr!r}")
        return rate

    def _channel_index(self, num_channels: int) -> int | None:
        channel = self.file.get("channel")
        if channel is None:
            return None
        if not (isinstance(channel, int) and 1 <= channel <= num_channels):
            raise self._fail(
                f"'channel' is 1-based and must lie in [1, {num_channels}], "
                f"got {channel!r}"
            )
        return channel - 1

    def _mix(self, wav: np.ndarray) -> np.ndarray:
        """(channel, time) -> (time,) as pyannote's ``mono="downmix"`` does."""
        index = self._channel_index(wav.shape[0])
        if index is not None:
            return np.ascontiguousarray(wav[index])
        if wav.shape[0] == 1:
            return wav[0]
        return wav.mean(axis=0, dtype=np.float32)

    def _read_native(self, handle: sf.SoundFile, start: int, stop: int) -> np.ndarray:
        try:
            handle.seek(start)
            data = handle.read(stop - start, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise self._fail(
                f"cannot decode audio ({e}); the file is corrupt"
            ) from None
        if len(data) < stop - start:
            raise self._fail(
                f"truncated: the header announces {handle.frames} samples but "
                f"reading stopped at {start + len(data)}"
            )
        return self._mix(data.T)

    def _check_finite(self, x: np.ndarray, offset: int, rate: int) -> None:
        if not np.isfinite(x).all():
            first = int(np.flatnonzero(~np.isfinite(x))[0]) + offset
            raise self._fail(
                f"non-finite sample (NaN or inf) at {first / rate:.3f} s "
                f"(sample {first})"
            )

    def _resample(self, x: np.ndarray, rate: int) -> np.ndarray:
        if rate == self.sample_rate:
            return np.ascontiguousarray(x, dtype=np.float32)
        from scipy.signal import resample_poly

        g = gcd(self.sample_rate, rate)
        y = resample_poly(x, self.sample_rate // g, rate // g)
        return np.ascontiguousarray(y, dtype=np.float32)

    # -- reading ------------------------------------------------------------------
    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.num_samples / self.sample_rate

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Return samples ``[start, stop)`` as a float32 array of shape ``(n,)``.

        Parameters
        ----------
        start, stop : int
            Sample indices at :attr:`sample_rate`, clipped to ``[0, num_samples]``.

        Returns
        -------
        samples : ndarray of float32
        """
        stop = self.num_samples if stop is None else min(stop, self.num_samples)
        start = max(0, start)
        if stop <= start:
            return np.zeros(0, dtype=np.float32)
        if self._samples is not None:
            return self._samples[start:stop]
        block = self._read_native(self._sf, start, stop)
        self._check_finite(block, start, self.sample_rate)
        return block

    def close(self) -> None:
        """Release the file handle, if any."""
        if self._sf is not None:
            self._sf.close()
            self._sf = None

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
