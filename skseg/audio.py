"""What a "file" is, and how its samples are read.

A file is a path (``str`` or ``os.PathLike``) or a mapping in pyannote.database's
style: ``{"audio": path}`` or ``{"waveform": (channel, time) array,
"sample_rate": int}``, with optional ``"uri"``, ``"channel"``, ``"annotated"`` and
``"annotation"``. :func:`validate_file` turns any of those into a plain ``dict``;
:class:`AudioReader` serves mono float32 samples at the model's rate by sample range,
decoding, downmixing and resampling only the blocks asked for, so a long file is
never held in memory whole, whatever its rate and channels.

A waveform's samples are float (read as given, in [-1, 1]) or PCM integers, scaled
as libsndfile reads a PCM file of that width, so that an array gives the samples
of the file it came from: ``int8`` ``x / 128``, ``uint8`` ``(x - 128) / 128`` (8-bit
WAV is unsigned), ``int16`` ``x / 32768``, ``int32`` ``x / 2**31``. Other dtypes
(``bool``, complex, ``object``, ``int64``, unsigned 16 to 64 bits) have no standard
scale and are refused.

Every failure is an :class:`~skseg.exceptions.AudioError` that names the file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from .exceptions import AudioError

__all__ = [
    "AudioFile",
    "AudioReader",
    "validate_file",
    "check_files",
    "file_label",
    "file_identity",
    "SAMPLE_RATE_RANGE",
    "MAX_RESAMPLING_FACTOR",
    "PolyphaseResampler",
    "MAX_AMPLITUDE",
]

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


def check_files(X: Any, hint: str = "use [file]") -> list:
    """Return the files of ``X`` as a list; refuse one file, or no iterable.

    How every entry point that takes many files (the estimators, ``predict_many``,
    ``tune``, the trainer) reads its ``X``: a path or a dict given alone would
    otherwise be iterated as characters or keys. The files themselves are checked
    as they are used (:func:`validate_file`), each failure naming its file.

    Parameters
    ----------
    X : iterable of files
    hint : str, default="use [file]"
        What the message suggests instead of a single file.

    Returns
    -------
    files : list

    Raises
    ------
    TypeError
        ``X`` is a single file (a path or a dict), bytes, or not iterable.

    Examples
    --------
    >>> check_files(("a.wav", {"audio": "b.wav"}))
    ['a.wav', {'audio': 'b.wav'}]
    >>> try:
    ...     check_files("a.wav")
    ... except TypeError as e:
    ...     print(e)
    X must be a list of files, got a single str ('a.wav'): use [file]
    """
    if isinstance(X, str | os.PathLike | Mapping):
        raise TypeError(
            f"X must be a list of files, got a single {type(X).__name__} "
            f"({file_label(X)!r}): {hint}"
        )
    if isinstance(X, bytes | bytearray):
        raise TypeError(f"X must be a list of files, got {type(X).__name__}")
    try:
        files = iter(X)
    except TypeError:
        raise TypeError(f"X must be a list of files, got {type(X).__name__}") from None
    return list(files)


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

    A path is identified by its resolved location, size, modification time,
    inode and status-change time (``ctime``), so an edited file is not served
    stale scores, even when rewritten with the same size and its modification
    time restored (``ctime`` changes with any write and cannot be set back); an
    in-memory waveform by a hash of its samples, dtype (with the PCM scale an
    integer one is read with) and rate. A ``chmod``, a new hard link or a
    ``touch`` also change ``ctime``: the scores are then computed again, which is
    only slower.

    Parameters
    ----------
    file : str, PathLike or mapping
        The file.

    Returns
    -------
    key : str
        A hexadecimal digest.

    Raises
    ------
    AudioError
        A path that cannot be examined, or a waveform dtype that
        :class:`AudioReader` refuses.

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
        pcm = _pcm_scale(wav.dtype)
        if isinstance(pcm, str):
            # refused here as when read: an object array's buffer holds pointers,
            # whose hash would not follow the samples
            raise AudioError(file_label(file), pcm)
        h.update(b"waveform")
        h.update(str((wav.shape, wav.dtype.str, int(file["sample_rate"]))).encode())
        if pcm is not None:
            # integer waveforms were once read unscaled: naming the scale keeps a
            # cache directory filled then from serving those scores for these samples
            h.update(f"pcm=(x-{pcm[0]})/{pcm[1]}".encode())
        # a buffer, not tobytes(): hashing must not copy a long waveform
        h.update(memoryview(np.ascontiguousarray(wav)).cast("B"))
    else:
        path = Path(file["audio"])
        try:
            st = path.stat()
        except OSError as e:
            raise AudioError(file["audio"], _os_problem(e)) from None
        h.update(b"path")
        # the inode and ctime too: a file rewritten in place with the same size and
        # its mtime restored (os.utime) still changes ctime, which no call can set
        h.update(
            str(
                (
                    str(path.resolve()),
                    st.st_size,
                    st.st_mtime_ns,
                    st.st_ino,
                    st.st_ctime_ns,
                )
            ).encode()
        )
    if file.get("channel") is not None:
        h.update(f"channel={file['channel']}".encode())
    return h.hexdigest()


def _as_numpy(waveform: Any) -> np.ndarray:
    if hasattr(waveform, "detach"):  # a torch tensor, without importing torch here
        waveform = waveform.detach().cpu().numpy()
    return np.asarray(waveform)


#: PCM integer dtypes, by (kind, bytes per sample), with the (offset, divisor) that
#: libsndfile's PCM readers use to make float samples in [-1, 1]: an array then gives
#: the samples of the WAV it came from.
_PCM_SCALES = {
    ("i", 1): (0, 1 << 7),
    ("u", 1): (1 << 7, 1 << 7),
    ("i", 2): (0, 1 << 15),
    ("i", 4): (0, 1 << 31),
}


def _pcm_scale(dtype: np.dtype) -> tuple[int, int] | str | None:
    """Return how samples of ``dtype`` become float.

    ``None``: as they are (float); ``(offset, divisor)``: PCM, read as
    ``(x - offset) / divisor``; a ``str``: the problem that refuses them.
    """
    if dtype.kind == "f":
        return None
    if dtype.kind in "iu":
        scale = _PCM_SCALES.get((dtype.kind, dtype.itemsize))
        if scale is not None:
            return scale
        return (
            f"'waveform' of dtype {dtype} has no standard PCM scale (int8, uint8, "
            f"int16 and int32 have one): convert it to float in [-1, 1]"
        )
    return (
        f"'waveform' must be float or PCM integers (int8, uint8, int16, int32), "
        f"not {dtype}: convert it to float in [-1, 1]"
    )


def _to_float32(block: np.ndarray) -> np.ndarray:
    """Return a waveform block as float32 samples, scaled as :func:`_pcm_scale` says."""
    pcm = _pcm_scale(block.dtype)
    if pcm is None:
        return block.astype(np.float32, copy=False)
    offset, divisor = pcm
    # float32 first, then a power-of-two factor, as libsndfile does: every step is
    # exact except int32's rounding to float32, which libsndfile's reading shares
    out = block.astype(np.float32)
    if offset:
        out -= offset
    out *= np.float32(1.0 / divisor)
    return out


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


#: Largest block (in samples) kept for reuse by the next read; Inference's blocks
#: (one batch of chunks, 328,000 samples at batch_size=32) fit many times over.
_CACHE_MAX_SAMPLES = 1 << 22

_EMPTY = np.zeros(0, dtype=np.float32)

#: Frames per block when scanning an in-memory waveform for non-finite samples.
_SCAN_BLOCK = 1 << 20

#: Native sample rates accepted, in Hz: outside it a header is implausible (1 Hz
#: turns 40 KB into hours of audio, 100 MHz into gigabytes of resampling state).
SAMPLE_RATE_RANGE = (1_000, 384_000)

#: Largest up/down factor of a resampling: the filter has 20 taps per unit, so
#: this bounds it to 1.3 M taps (10 MB) whatever rate a header declares
#: (383,999 Hz to 16 kHz would need 8 M taps, 356 MB and 4.5 s).
MAX_RESAMPLING_FACTOR = 1 << 16

#: Largest absolute sample value accepted. Float audio lies in [-1, 1], and PCM
#: values cast to float (within 2**31) are plausible; far beyond, the network's
#: float32 statistics overflow and every score becomes NaN, which would silently
#: read as "no speech".
MAX_AMPLITUDE = float(1 << 32)


class PolyphaseResampler:
    """:func:`scipy.signal.resample_poly` of one signal, one output range at a time.

    ``resample_poly(x, up, down)`` (default Kaiser window, zero padding) computes
    ``y[n] = sum_i x[i] * h[(n + pre) * down - i * up]`` with a zero-padded FIR
    filter ``h``: output ``n`` depends only on the inputs under the filter. This
    class builds the same ``h`` (same design, dtype and padding, which depend on
    the input length) and runs :func:`scipy.signal.upfirdn` on just the inputs a
    range needs, starting at a multiple of ``down`` so that the polyphase phase is
    the whole-signal one. Each output sample is then the same sum of the same
    products in the same order: the result equals whole-signal ``resample_poly``
    bit for bit, for any range. The length of the signal may be unknown (a
    stream, :class:`skseg.sources.Resampler`): outputs past the inputs' reach are
    then the zeros of ``resample_poly``'s padding.

    Parameters
    ----------
    rate_in, rate_out : int
        In Hz; the caller bounds the factor (:data:`MAX_RESAMPLING_FACTOR`).
    num_in : int, optional
        Length of the input signal, if known.

    Examples
    --------
    >>> from scipy.signal import resample_poly
    >>> x = np.random.default_rng(0).standard_normal(4410).astype("float32")
    >>> resample = PolyphaseResampler(44100, 16000, len(x))
    >>> i0, i1 = resample.inputs(100, 900)
    >>> part = resample(x[i0:i1], i0, 100, 900)
    >>> bool((part == resample_poly(x, 160, 441)[100:900]).all())
    True
    """

    def __init__(self, rate_in: int, rate_out: int, num_in: int | None = None):
        from scipy.signal import firwin

        g = gcd(rate_in, rate_out)
        self.up, self.down = rate_out // g, rate_in // g
        self.num_in = num_in
        up, down = self.up, self.down
        self.num_out = None if num_in is None else -(-num_in * up // down)
        # resample_poly's filter, float32 because its input is (cast, then scaled)
        half_len = 10 * max(up, down)
        h = firwin(2 * half_len + 1, 1.0 / max(up, down), window=("kaiser", 5.0))
        h = h.astype(np.float32)
        h *= up
        n_pre_pad = down - half_len % down
        self.pre_remove = (half_len + n_pre_pad) // down
        n_post_pad = 0
        while num_in is not None and (
            _upfirdn_output_len(len(h) + n_pre_pad + n_post_pad, num_in, up, down)
            < self.num_out + self.pre_remove
        ):
            n_post_pad += 1
        self.h = np.concatenate(
            [np.zeros(n_pre_pad, h.dtype), h, np.zeros(n_post_pad, h.dtype)]
        )

    def inputs(self, start: int, stop: int) -> tuple[int, int]:
        """Return the input range ``[i0, i1)`` that outputs ``[start, stop)`` need."""
        up, down, pre = self.up, self.down, self.pre_remove
        first = -(-((start + pre) * down - len(self.h) + 1) // up)
        i0 = max(0, first) // down * down  # keeps the whole signal's phase
        i1 = (stop - 1 + pre) * down // up + 1
        return i0, i1 if self.num_in is None else min(self.num_in, i1)

    def __call__(self, x: np.ndarray, i0: int, start: int, stop: int) -> np.ndarray:
        """Return outputs ``[start, stop)`` from ``x``, the inputs :meth:`inputs` named.

        ``i0`` is where ``x`` begins in the input.
        """
        from scipy.signal import upfirdn

        y = upfirdn(self.h, x, self.up, self.down)
        shift = self.pre_remove - i0 * self.up // self.down
        out = y[start + shift : stop + shift]
        if len(out) < stop - start:  # past the inputs' reach: the zero padding
            out = np.concatenate([out, np.zeros(stop - start - len(out), out.dtype)])
        return out


class _LastBlock:
    """The last block of samples made, reused by a range that begins inside it.

    A range that begins inside the block only has what lies beyond the block
    made; the result becomes the new block, unless it is larger than
    ``_CACHE_MAX_SAMPLES`` (a whole-file read is not kept twice).
    """

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.start, self.data = 0, _EMPTY

    def __call__(
        self, start: int, stop: int, make: Callable[[int, int], np.ndarray]
    ) -> np.ndarray:
        """Return samples ``[start, stop)``; ``make(a, b)`` makes samples ``[a, b)``."""
        end = self.start + len(self.data)
        if self.start <= start and stop <= end:
            return self.data[start - self.start : stop - self.start]
        if self.start <= start < end:
            out = np.concatenate([self.data[start - self.start :], make(end, stop)])
        else:
            out = make(start, stop)
        if len(out) <= _CACHE_MAX_SAMPLES:
            self.start, self.data = start, out
        else:
            self.clear()
        return out

    def holds(self, x: np.ndarray) -> bool:
        """Whether ``x`` may be a view of the block."""
        return len(self.data) > 0 and np.may_share_memory(x, self.data)


def _upfirdn_output_len(len_h: int, len_in: int, up: int, down: int) -> int:
    """Length of ``upfirdn(h, x, up, down)`` (scipy's ``_output_len``)."""
    return ((len_in - 1) * up + len_h - 1) // down + 1


class AudioReader:
    """Mono float32 samples of one file at a given sample rate, by sample range.

    Channels are averaged (or one is selected by the file's 1-based ``"channel"``)
    and other sample rates are resampled as :func:`scipy.signal.resample_poly`
    does on the whole file. Nothing is decoded up front: :meth:`read` decodes,
    downmixes and resamples only the samples a range needs (plus the resampling
    filter's context), so memory is bounded by the ranges asked for, not by the
    file. The last block read is kept, so reading overlapping ranges in
    increasing order (as :class:`~skseg.inference.Inference` does) decodes each
    sample about once; any other range is read correctly too, only with more
    decoding.

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
        Length at ``sample_rate`` (computed from the header, without decoding).
    sample_rate : int
        Output sample rate.
    native_sample_rate : int
        The file's own sample rate.

    Raises
    ------
    AudioError
        Missing, unreadable, corrupt, empty, zero-length or truncated audio, an
        invalid channel, a sample rate outside :data:`SAMPLE_RATE_RANGE` (or a
        ``bool``), a resampling factor beyond :data:`MAX_RESAMPLING_FACTOR`, or
        non-finite samples or samples beyond :data:`MAX_AMPLITUDE` (for a path,
        when the samples are read; for an in-memory waveform, at once), or a
        waveform dtype with no standard scale (see the module's docstring).

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
        self._wav: np.ndarray | None = None
        # the last decoded native block, and the last resampled one
        self._native_block = _LastBlock()
        self._output_block = _LastBlock()
        if "waveform" in self.file:
            self._open_waveform()
        else:
            self._open_path()
        if self.native_sample_rate != self.sample_rate:
            g = gcd(self.native_sample_rate, self.sample_rate)
            factor = max(self.native_sample_rate, self.sample_rate) // g
            if factor > MAX_RESAMPLING_FACTOR:
                self.close()
                raise self._fail(
                    f"resampling {self.native_sample_rate} Hz to {self.sample_rate} "
                    f"Hz needs a factor of {factor} (more than "
                    f"{MAX_RESAMPLING_FACTOR}); resample the file to a common rate "
                    "first"
                )
        self._resampler = (
            None
            if self.native_sample_rate == self.sample_rate
            else PolyphaseResampler(
                self.native_sample_rate, self.sample_rate, self._num_frames
            )
        )
        self.num_samples = (
            self._num_frames if self._resampler is None else self._resampler.num_out
        )

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
        if isinstance(problem := _pcm_scale(wav.dtype), str):
            raise self._fail(problem)
        self.native_sample_rate = self._check_rate(self.file["sample_rate"])
        self._channel_index(wav.shape[0])
        self._wav = wav
        self._num_frames = wav.shape[1]
        # the samples are already in memory: refuse bad ones now, block by block
        # so that no float32 or boolean copy of the whole waveform is made
        for start in range(0, self._num_frames, _SCAN_BLOCK):
            self._decode(start, min(start + _SCAN_BLOCK, self._num_frames))

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
        try:
            if handle.frames <= 0:
                raise self._fail("zero-length audio (0 samples)")
            if truncated := _truncation(handle):
                raise self._fail(f"truncated: {truncated}")
            self.native_sample_rate = self._check_rate(handle.samplerate)
            self._channel_index(handle.channels)
        except AudioError:
            handle.close()
            raise
        self._sf = handle
        self._num_frames = int(handle.frames)

    def _check_rate(self, sr: Any) -> int:
        if isinstance(sr, bool | np.bool_):
            raise self._fail(f"invalid sample rate {sr!r} (a bool, not a number)")
        try:
            rate = int(sr)
        except (TypeError, ValueError, OverflowError):
            raise self._fail(f"invalid sample rate {sr!r}") from None
        if rate <= 0 or rate != sr:
            raise self._fail(f"invalid sample rate {sr!r}")
        low, high = SAMPLE_RATE_RANGE
        if not low <= rate <= high:
            raise self._fail(
                f"implausible sample rate {rate} Hz (skseg reads {low} to {high} Hz)"
            )
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
            return np.ascontiguousarray(wav[0])
        return wav.mean(axis=0, dtype=np.float32)

    def _check_finite(self, x: np.ndarray, offset: int, rate: int) -> None:
        if not x.size:
            return
        peak = max(-float(x.min()), float(x.max()))
        if peak <= MAX_AMPLITUDE:  # False for NaN
            return
        if not np.isfinite(x).all():
            first = int(np.flatnonzero(~np.isfinite(x))[0]) + offset
            raise self._fail(
                f"non-finite sample (NaN or inf) at {first / rate:.3f} s "
                f"(sample {first})"
            )
        first = int(np.flatnonzero(np.abs(x) > MAX_AMPLITUDE)[0]) + offset
        raise self._fail(
            f"implausible amplitude {float(x[first - offset]):.3g} at "
            f"{first / rate:.3f} s (sample {first}); samples beyond "
            f"{MAX_AMPLITUDE:.3g} overflow the network (scale the audio to [-1, 1])"
        )

    # -- decoding -------------------------------------------------------------------
    def _decode(self, start: int, stop: int) -> np.ndarray:
        """Native-rate mono samples ``[start, stop)``, checked, from the source."""
        if self._wav is not None:
            block = _to_float32(self._wav[:, start:stop])
        else:
            block = self._read_handle(start, stop)
        mono = self._mix(block)
        self._check_finite(mono, start, self.native_sample_rate)
        if self._wav is not None and np.may_share_memory(mono, self._wav):
            mono = mono.copy()  # never hand out a view of the caller's waveform
        return mono

    def _read_handle(self, start: int, stop: int) -> np.ndarray:
        handle = self._sf
        if handle is None:
            raise self._fail("the reader is closed")
        try:
            # reading on from where the last read ended never seeks, which keeps
            # compressed formats decoding as one stream
            if handle.tell() != start:
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
        return data.T

    def _native(self, start: int, stop: int) -> np.ndarray:
        """Native-rate mono samples ``[start, stop)``, reusing the last block."""
        return self._native_block(start, stop, self._decode)

    def _resampled(self, start: int, stop: int) -> np.ndarray:
        resampler = self._resampler
        i0, i1 = resampler.inputs(start, stop)
        return resampler(self._native(i0, i1), i0, start, stop).astype(
            np.float32, copy=False
        )

    # -- reading ------------------------------------------------------------------
    @property
    def duration(self) -> float:
        """Duration in seconds."""
        return self.num_samples / self.sample_rate

    def read(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Return samples ``[start, stop)`` as a new float32 array of shape ``(n,)``.

        Parameters
        ----------
        start, stop : int
            Sample indices at :attr:`sample_rate`, clipped to ``[0, num_samples]``.

        Returns
        -------
        samples : ndarray of float32
            Owned by the caller (modifying it does not affect later reads).

        Raises
        ------
        AudioError
            If the samples cannot be decoded, or one of them (or of the
            resampling filter's context) is NaN, infinite or beyond
            :data:`MAX_AMPLITUDE`.
        """
        stop = self.num_samples if stop is None else min(stop, self.num_samples)
        start = max(0, start)
        if stop <= start:
            return np.zeros(0, dtype=np.float32)
        if self._resampler is None:
            out = self._native(start, stop)
        else:
            out = self._output_block(start, stop, self._resampled)
        if self._native_block.holds(out) or self._output_block.holds(out):
            return out.copy()
        return out  # too large to be kept: made for this call alone

    def close(self) -> None:
        """Release the file handle and the cached blocks."""
        if self._sf is not None:
            self._sf.close()
            self._sf = None
        self._native_block.clear()
        self._output_block.clear()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
