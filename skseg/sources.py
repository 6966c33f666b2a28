"""Live audio for :mod:`skseg.streaming`: byte streams, files and a microphone.

Each source yields blocks of mono float32 samples at the model's rate (16 kHz),
ready for :meth:`skseg.streaming.DetectionStream.feed`:

* :func:`byte_blocks`: raw PCM (``s16le``, ``f32le``) or a WAV stream from a
  binary file object such as standard input (``arecord -f S16_LE -r 16000 -c 1``,
  ``ffmpeg ... -f s16le -``). Reading pulls one block at a time and waits until it
  is processed before reading the next: a writer faster than the reader blocks on
  the full pipe (back-pressure), nothing piles up in memory.
* :func:`file_blocks`: any file soundfile reads, block by block.
* :func:`microphone`: a sound card through the optional ``sounddevice`` package
  (``pip install skseg[mic]``). A device cannot wait, so its blocks go through a
  bounded queue: a reader that falls more than ``max_lag`` seconds behind real
  time gets a :class:`~skseg.streaming.StreamError` rather than a growing buffer.

Other rates are resampled as they arrive by :class:`Resampler`, the filter of
:func:`scipy.signal.resample_poly` run block by block with its state.

Bad input is a :class:`~skseg.streaming.StreamError` naming the input and the
problem: a WAV header in a raw stream or a raw stream given as WAV, a WAV
encoding other than 16-bit integer or 32-bit float PCM, a ``rate`` contradicting
the WAV header, non-finite float samples or samples beyond
:data:`skseg.audio.MAX_AMPLITUDE`, and a stream that ends inside a sample (an odd
number of bytes for ``s16le``). Samples are not clipped or rescaled: ``s16le`` is
divided by 32768 (soundfile's scale), ``f32le`` taken as it is, as offline
decoding does.

What an input declares cannot make skseg work harder than the audio it sends:
rates are those offline decoding accepts (:data:`skseg.audio.SAMPLE_RATE_RANGE`,
with a resampling filter bounded by :data:`skseg.audio.MAX_RESAMPLING_FACTOR`),
at most :data:`MAX_CHANNELS` channels are interleaved, and one read asks for at
most :data:`MAX_READ_BYTES` whatever the block duration.
"""

from __future__ import annotations

import os
import queue
import struct
from collections.abc import Iterator
from math import gcd
from typing import IO, Any

import numpy as np

from .audio import (
    MAX_AMPLITUDE,
    MAX_RESAMPLING_FACTOR,
    SAMPLE_RATE_RANGE,
    PolyphaseResampler,
)
from .streaming import StreamError

__all__ = [
    "MAX_CHANNELS",
    "MAX_READ_BYTES",
    "PCM_FORMATS",
    "PCMDecoder",
    "Resampler",
    "byte_blocks",
    "file_blocks",
    "microphone",
]

#: raw sample formats: name -> (numpy dtype, scale to [-1, 1])
PCM_FORMATS: dict[str, tuple[str, float]] = {
    "s16le": ("<i2", 32768.0),
    "f32le": ("<f4", 1.0),
}

#: Most interleaved channels of a raw or WAV stream (a header's 65,535 would make
#: one block of 0.1 s at 384 kHz a 10 GB read).
MAX_CHANNELS = 256

#: Most bytes asked of the input at once, whatever the block duration.
MAX_READ_BYTES = 1 << 20

# WAV format tags: PCM, IEEE float, WAVE_FORMAT_EXTENSIBLE
_WAV_PCM, _WAV_FLOAT, _WAV_EXTENSIBLE = 1, 3, 0xFFFE
_RIFF_MAGIC = (b"RIFF", b"RIFX", b"RF64")


class PCMDecoder:
    """Interleaved PCM bytes to mono float32 samples, across block boundaries.

    A block may end inside a sample (or a multi-channel frame): the bytes left over
    are kept for the next block.

    Parameters
    ----------
    format : {"s16le", "f32le"}
    channels : int, default=1
        Interleaved channels, averaged.
    name : str, default="input"
        Named in errors.

    Examples
    --------
    >>> decode = PCMDecoder("s16le")
    >>> decode(bytes([0x00, 0x40, 0x00]))  # 1.5 samples: the half waits
    array([0.5], dtype=float32)
    >>> decode(bytes([0xC0]))
    array([-0.5], dtype=float32)
    >>> decode.finish()  # nothing left over: fine
    """

    def __init__(self, format: str, channels: int = 1, name: str = "input"):
        if format not in PCM_FORMATS:
            raise StreamError(
                f"{name}: unknown sample format {format!r}; use one of "
                f"{', '.join(PCM_FORMATS)}"
            )
        if not isinstance(channels, int) or channels < 1:
            raise StreamError(f"{name}: channels must be a positive integer")
        if channels > MAX_CHANNELS:
            raise StreamError(
                f"{name}: {channels} interleaved channels is implausible (at most "
                f"{MAX_CHANNELS})"
            )
        self.format, self.channels, self.name = format, channels, name
        dtype, self.scale = PCM_FORMATS[format]
        self.dtype = np.dtype(dtype)
        self.frame_bytes = self.dtype.itemsize * channels
        self._rest = b""
        self._error: str | None = None
        self.num_bytes = 0

    def __call__(self, data: bytes) -> np.ndarray:
        """Return the samples of the complete frames received so far.

        A non-finite sample ends the stream: the samples before it are returned,
        and the next call (or :meth:`finish`) raises :class:`StreamError`.
        """
        if self._error is not None:
            raise StreamError(self._error)
        self.num_bytes += len(data)
        if self._rest:
            data = self._rest + data
        whole = len(data) - len(data) % self.frame_bytes
        self._rest = bytes(data[whole:])
        x = np.frombuffer(data, dtype=self.dtype, count=whole // self.dtype.itemsize)
        x = x.astype(np.float32)
        if self.scale != 1.0:
            x /= np.float32(self.scale)
        if self.channels > 1:
            x = x.reshape(-1, self.channels).mean(axis=1, dtype=np.float32)
        at = (self.num_bytes - len(data) + whole) // self.frame_bytes - len(x)
        if not np.isfinite(x).all():
            first = int(np.flatnonzero(~np.isfinite(x))[0])
            self._error = f"{self.name}: sample {at + first} is not a finite number"
            return x[:first]
        if len(x) and max(-float(x.min()), float(x.max())) > MAX_AMPLITUDE:
            # as offline decoding: the network's statistics would overflow and
            # every score become NaN, read as silence
            first = int(np.flatnonzero(np.abs(x) > MAX_AMPLITUDE)[0])
            self._error = (
                f"{self.name}: sample {at + first} has an implausible amplitude "
                f"({float(x[first]):.3g}, beyond {MAX_AMPLITUDE:.3g}); scale the "
                "audio to [-1, 1]"
            )
            return x[:first]
        return x

    def finish(self) -> None:
        """Check that the stream ended on a whole sample.

        Raises
        ------
        StreamError
            If bytes of an incomplete sample are left over (they are dropped), or
            a sample was not finite.
        """
        if self._error is not None:
            raise StreamError(self._error)
        if self._rest:
            n, self._rest = len(self._rest), b""
            raise StreamError(
                f"{self.name}: the stream ended inside a sample: {n} trailing "
                f"byte(s) ignored ({self.format} samples are "
                f"{self.dtype.itemsize} bytes x {self.channels} channel(s); "
                f"{self.num_bytes} bytes in all)"
            )


class Resampler:
    """:func:`scipy.signal.resample_poly` of a signal that arrives in blocks.

    :class:`skseg.audio.PolyphaseResampler` (the resampler offline decoding uses)
    run on each block with the inputs that the filter still needs from before
    it; :meth:`flush` ends the signal as ``resample_poly`` does (zero padding).
    The output is whole-signal ``resample_poly``'s, as offline decoding gives it.

    Parameters
    ----------
    rate_in, rate_out : int
        In Hz.

    Raises
    ------
    StreamError
        If a rate is not positive, or the rates share so few factors that the
        filter would be huge (more than :data:`skseg.audio.MAX_RESAMPLING_FACTOR`).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.signal import resample_poly
    >>> x = np.random.default_rng(0).standard_normal(44100).astype("float32")
    >>> resample = Resampler(44100, 16000)
    >>> y = np.concatenate([resample(x[i : i + 1000]) for i in range(0, 44100, 1000)]
    ...                    + [resample.flush()])
    >>> len(y), bool(np.allclose(y, resample_poly(x, 160, 441), atol=1e-5))
    (16000, True)
    """

    def __init__(self, rate_in: int, rate_out: int):
        if rate_in <= 0 or rate_out <= 0:
            raise StreamError(f"sample rates must be positive: {rate_in}, {rate_out}")
        rate_in, rate_out = int(rate_in), int(rate_out)
        factor = max(rate_in, rate_out) // gcd(rate_in, rate_out)
        if factor > MAX_RESAMPLING_FACTOR:
            raise StreamError(
                f"resampling {rate_in} Hz to {rate_out} Hz needs a factor of "
                f"{factor} (more than {MAX_RESAMPLING_FACTOR}); send a common rate "
                "(16000, 44100, 48000...)"
            )
        self._filter = PolyphaseResampler(rate_in, rate_out)
        self.up, self.down = self._filter.up, self._filter.down
        self._x = np.zeros(0, dtype=np.float32)
        self._x0 = 0  # input index of _x[0]
        self.num_in = 0
        self.num_out = 0

    def _outputs(self, stop: int) -> np.ndarray:
        start = self.num_out
        if stop <= start:
            return np.zeros(0, dtype=np.float32)
        i0, _ = self._filter.inputs(start, stop)
        x = self._x[i0 - self._x0 :]
        out = self._filter(x, i0, start, stop).astype(np.float32, copy=False)
        self.num_out = stop
        keep, _ = self._filter.inputs(stop, stop + 1)
        self._x = self._x[keep - self._x0 :]
        self._x0 = keep
        return out

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Add input samples; return the outputs that no later input changes."""
        x = np.asarray(x, dtype=np.float32)
        self._x = np.concatenate([self._x, x])
        self.num_in += len(x)
        # output n needs inputs up to (n + pre) * down // up
        pre = self._filter.pre_remove
        stop = (self.num_in * self.up - 1) // self.down - pre + 1
        if (stop - 1 + pre) * self.down // self.up >= self.num_in:
            stop -= 1
        return self._outputs(max(stop, self.num_out))

    def flush(self) -> np.ndarray:
        """End the signal; return the last outputs (``ceil(n * up / down)`` in all)."""
        total = -(-self.num_in * self.up // self.down)
        return self._outputs(total)


def _check_rate(rate: Any, name: str) -> int:
    if isinstance(rate, bool) or not isinstance(rate, int | np.integer) or rate <= 0:
        raise StreamError(f"{name}: the sample rate must be a positive integer (Hz)")
    low, high = SAMPLE_RATE_RANGE  # what skseg.audio accepts of a file
    if not low <= rate <= high:
        raise StreamError(
            f"{name}: a sample rate of {rate} Hz is not plausible for audio "
            f"({low} to {high} Hz)"
        )
    return int(rate)


def _read_exactly(binary: IO[bytes], n: int, name: str, what: str) -> bytes:
    out = b""
    while len(out) < n:
        data = binary.read(n - len(out))
        if not data:
            raise StreamError(
                f"{name}: the stream ended inside the WAV header ({what})"
            )
        out += data
    return out


def _wav_header(
    binary: IO[bytes], magic: bytes, name: str
) -> tuple[str, int, int, int | None]:
    """Parse a WAV header up to its data; return (format, channels, rate, size)."""
    if magic != b"RIFF":
        raise StreamError(
            f"{name}: {magic.decode()} WAV streams are not supported (little-endian "
            "RIFF only); convert with ffmpeg -f s16le"
        )
    rest = _read_exactly(binary, 8, name, "RIFF size and form")
    if rest[4:8] != b"WAVE":
        raise StreamError(f"{name}: a RIFF stream, but not WAVE ({rest[4:8]!r})")
    fmt: tuple[str, int, int] | None = None
    while True:
        chunk = _read_exactly(binary, 8, name, "chunk header")
        ident, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if ident == b"data":
            if fmt is None:
                raise StreamError(f"{name}: WAV data before its 'fmt ' chunk")
            # streaming writers cannot know the size: 0 or 0xFFFFFFFF, read to EOF
            return (*fmt, None if size in (0, 0xFFFFFFFF) else size)
        if size > 1 << 20:
            raise StreamError(f"{name}: a WAV {ident!r} chunk of {size} bytes")
        body = _read_exactly(binary, size + size % 2, name, f"{ident!r} chunk")
        if ident == b"fmt ":
            if size < 16:
                raise StreamError(f"{name}: a WAV 'fmt ' chunk of {size} bytes")
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == _WAV_EXTENSIBLE and size >= 26:
                tag = struct.unpack("<H", body[24:26])[0]
            if tag == _WAV_PCM and bits == 16:
                sample_format = "s16le"
            elif tag == _WAV_FLOAT and bits == 32:
                sample_format = "f32le"
            else:
                raise StreamError(
                    f"{name}: WAV encoding {tag} with {bits}-bit samples is not "
                    "supported in a stream (16-bit integer or 32-bit float PCM); "
                    "convert with ffmpeg -c:a pcm_s16le"
                )
            if channels < 1:
                raise StreamError(f"{name}: a WAV header with {channels} channels")
            fmt = (sample_format, channels, rate)


def byte_blocks(
    binary: IO[bytes],
    format: str = "s16le",
    rate: int | None = None,
    channels: int = 1,
    sample_rate: int = 16000,
    block: float = 0.1,
    name: str = "standard input",
) -> Iterator[np.ndarray]:
    """Yield mono float32 blocks at ``sample_rate`` from a byte stream.

    Parameters
    ----------
    binary : binary file object
        Read with ``read1`` where it has one (what has arrived, up to a block),
        else ``read``; one block at a time, the next only when the previous one
        has been consumed.
    format : {"s16le", "f32le", "wav"}, default="s16le"
        Raw little-endian PCM, or a WAV stream (its header gives the encoding,
        channels and rate).
    rate : int, optional
        Rate of raw PCM (default: ``sample_rate``); for WAV, if given, it must be
        the header's.
    channels : int, default=1
        Interleaved channels of raw PCM, averaged.
    sample_rate : int, default=16000
        Rate of the blocks yielded (the model's).
    block : float, default=0.1
        Seconds of input per read.
    name : str, default="standard input"
        Named in errors.

    Yields
    ------
    samples : ndarray of float32

    Raises
    ------
    StreamError
        On a WAV header in a raw stream or its absence in a WAV one, an
        unsupported WAV encoding, a rate contradicting the header, non-finite
        samples, or a stream ending inside a sample (after yielding every
        complete sample).

    Examples
    --------
    >>> import io
    >>> import numpy as np
    >>> pcm = (np.ones(32000) * 0.25 * 32768).astype("<i2").tobytes()
    >>> blocks = list(byte_blocks(io.BytesIO(pcm), "s16le", rate=32000))
    >>> sum(len(b) for b in blocks), round(float(blocks[1][100]), 4)
    (16000, 0.25)
    >>> next(byte_blocks(io.BytesIO(b"RIFF" + bytes(4) + b"WAVE"), "s16le"))
    Traceback (most recent call last):
    ...
    skseg.streaming.StreamError: standard input starts with a WAV header: use \
--format wav (or send raw PCM)
    """
    if format not in (*PCM_FORMATS, "wav"):
        raise StreamError(f"{name}: unknown format {format!r}; use s16le, f32le or wav")
    sample_rate = _check_rate(sample_rate, name)
    if rate is not None:
        rate = _check_rate(rate, name)
    read = getattr(binary, "read1", None) or binary.read
    magic = _read_prefix(binary, 4)
    if format == "wav":
        if magic not in _RIFF_MAGIC:
            raise StreamError(
                f"{name} is not a WAV stream (no RIFF header): for raw PCM use "
                "--format s16le or f32le with --rate"
            )
        sample_format, channels, wav_rate, size = _wav_header(binary, magic, name)
        if rate is not None and rate != wav_rate:
            raise StreamError(
                f"{name}: the WAV header says {wav_rate} Hz, but the rate given is "
                f"{rate} Hz; drop --rate, or fix the writer"
            )
        rate = _check_rate(wav_rate, name)
        magic = b""
    else:
        if magic in _RIFF_MAGIC:
            raise StreamError(
                f"{name} starts with a WAV header: use --format wav (or send raw PCM)"
            )
        sample_format, size = format, None
        rate = sample_rate if rate is None else rate
    decode = PCMDecoder(sample_format, channels, name)
    resample = _resampler(rate, sample_rate, name)
    want = _block_frames(block, rate, decode.frame_bytes) * decode.frame_bytes
    left = size

    def convert(data: bytes) -> np.ndarray:
        x = decode(data)
        return resample(x) if resample is not None else x

    if magic:
        yield convert(magic)
    while left is None or left > 0:
        n = want if left is None else min(want, left)
        data = read(n)
        if not data:
            break
        if left is not None:
            left -= len(data)
        x = convert(data)
        if len(x):
            yield x
    if resample is not None:
        tail = resample.flush()
        if len(tail):
            yield tail
    decode.finish()


def _resampler(rate: int, sample_rate: int, name: str) -> Resampler | None:
    if rate == sample_rate:
        return None
    try:
        return Resampler(rate, sample_rate)
    except StreamError as e:
        raise StreamError(f"{name}: {e}") from None


def _block_frames(block: float, rate: int, frame_bytes: int) -> int:
    """Frames per read: ``block`` seconds, at least one, at most MAX_READ_BYTES."""
    most = max(1, MAX_READ_BYTES // frame_bytes)
    frames = block * rate  # a float: huge or NaN blocks are clamped, not rounded
    return most if not frames < most else max(1, round(frames))


def _read_prefix(binary: IO[bytes], n: int) -> bytes:
    out = b""
    while len(out) < n:
        data = binary.read(n - len(out))
        if not data:
            break
        out += data
    return out


def file_blocks(
    path: str | os.PathLike,
    sample_rate: int = 16000,
    block: float = 0.1,
) -> Iterator[np.ndarray]:
    """Yield mono float32 blocks at ``sample_rate`` from an audio file.

    Parameters
    ----------
    path : str or PathLike
        Anything soundfile reads (WAV, FLAC, OGG, MP3...).
    sample_rate : int, default=16000
    block : float, default=0.1
        Seconds per block.

    Yields
    ------
    samples : ndarray of float32

    Raises
    ------
    skseg.AudioError
        If the file cannot be opened.

    Examples
    --------
    >>> from skseg import fetch_sample
    >>> sum(len(b) for b in file_blocks(fetch_sample()["audio"])) / 16000
    30.0
    """
    import soundfile as sf

    from .exceptions import AudioError

    try:
        handle = sf.SoundFile(os.fspath(path))
    except (OSError, RuntimeError, sf.LibsndfileError) as e:
        raise AudioError(path, f"cannot be read as audio ({e})") from None
    with handle:
        rate = handle.samplerate
        name = os.fspath(path)
        try:
            rate = _check_rate(rate, name)
            resample = _resampler(rate, sample_rate, name)
        except StreamError as e:
            raise AudioError(path, str(e).removeprefix(f"{name}: ")) from None
        frames = _block_frames(block, rate, 4 * max(1, handle.channels))
        for x in handle.blocks(blocksize=frames, dtype="float32", always_2d=True):
            x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
            yield resample(x) if resample is not None else np.array(x)
        if resample is not None:
            yield resample.flush()


def microphone(
    sample_rate: int = 16000,
    block: float = 0.1,
    device: int | str | None = None,
    max_lag: float = 10.0,
    channels: int = 1,
) -> Iterator[np.ndarray]:
    """Yield mono float32 blocks from a sound card (needs ``sounddevice``).

    The device records at ``sample_rate`` (PortAudio converts rates where the
    card cannot). Its callback puts each block in a queue of at most ``max_lag``
    seconds: if the consumer falls further behind real time, the next block
    raises :class:`~skseg.streaming.StreamError` instead of dropping audio
    silently or buffering without bound. Stop by closing the generator (or
    Ctrl-C).

    Parameters
    ----------
    sample_rate : int, default=16000
    block : float, default=0.1
        Seconds per block.
    device : int or str, optional
        A ``sounddevice`` device; None: the default input.
    max_lag : float, default=10.0
        Seconds of audio the queue may hold.
    channels : int, default=1
        Channels recorded, averaged.

    Returns
    -------
    blocks : iterator of ndarray of float32
        Recording starts when it is first iterated.

    Raises
    ------
    ImportError
        Without ``sounddevice`` (``pip install skseg[mic]``).
    StreamError
        On a device error or overflow, or when the consumer lags behind.

    Examples
    --------
    Without a sound card, a fake ``sounddevice`` shows the protocol:

    >>> import sys, types
    >>> import numpy as np
    >>> class FakeInputStream:
    ...     def __init__(self, samplerate, blocksize, channels, dtype, device,
    ...                  callback):
    ...         self.callback, self.blocksize = callback, blocksize
    ...     def __enter__(self):
    ...         for _ in range(3):  # the device delivers three blocks
    ...             data = np.full((self.blocksize, 1), 0.5, dtype="float32")
    ...             self.callback(data, self.blocksize, None, 0)
    ...         return self
    ...     def __exit__(self, *exc):
    ...         return False
    >>> fake = types.SimpleNamespace(InputStream=FakeInputStream)
    >>> saved, sys.modules["sounddevice"] = sys.modules.get("sounddevice"), fake
    >>> mic = microphone(block=0.1)
    >>> [len(next(mic)) for _ in range(3)]
    [1600, 1600, 1600]
    >>> mic.close()
    >>> if saved is None:
    ...     del sys.modules["sounddevice"]
    ... else:
    ...     sys.modules["sounddevice"] = saved
    """
    try:
        import sounddevice
    except (ImportError, OSError) as e:  # OSError: PortAudio itself is missing
        raise ImportError(
            f"the microphone needs sounddevice and PortAudio ({e}): "
            "pip install 'skseg[mic]'"
        ) from e
    sample_rate = _check_rate(sample_rate, "microphone")
    # checked now, recorded when iterated
    return _record(sounddevice, sample_rate, block, device, max_lag, channels)


def _record(
    sounddevice: Any,
    sample_rate: int,
    block: float,
    device: int | str | None,
    max_lag: float,
    channels: int,
) -> Iterator[np.ndarray]:
    frames = _block_frames(block, sample_rate, 4 * channels)
    block = frames / sample_rate
    blocks: queue.Queue = queue.Queue(maxsize=max(1, round(max_lag / block)))
    problems: list[str] = []

    def callback(data: np.ndarray, num_frames: int, time: Any, status: Any) -> None:
        if status:
            problems.append(f"the device reported {status}")
        try:
            blocks.put_nowait(np.array(data, dtype=np.float32))
        except queue.Full:
            problems.append(f"the reader fell more than {max_lag:g} s behind real time")

    with sounddevice.InputStream(
        samplerate=sample_rate,
        blocksize=frames,
        channels=channels,
        dtype="float32",
        device=device,
        callback=callback,
    ):
        while True:
            if problems:
                raise StreamError(f"microphone: {problems[0]}")
            try:
                data = blocks.get(timeout=max(1.0, 10 * block))
            except queue.Empty:
                raise StreamError(
                    "microphone: no audio from the device for "
                    f"{max(1.0, 10 * block):g} s"
                ) from None
            yield (
                data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
            )
