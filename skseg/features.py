"""Kaldi's log mel filterbank features, in torch and batched.

Speaker embedding networks of the Kaldi lineage (CAM++, ResNets of WeSpeaker) are
trained on Kaldi's ``compute-fbank-feats``, as ``torchaudio.compliance.kaldi.fbank``
computes it. skseg does not depend on torchaudio: :func:`kaldi_fbank` computes the
same features, for Kaldi's default options (no dither, DC offset removed,
pre-emphasis 0.97, Povey window, frames snipped at the edges, power spectrum, FFT
size rounded up to a power of two, mel bins from 20 Hz to Nyquist, no energy
column), on a whole batch at once. ``tests/test_embedding.py`` checks it against
torchaudio's function when torchaudio can be imported.
"""

from __future__ import annotations

import functools
import math

import torch

__all__ = ["kaldi_fbank", "num_fbank_frames"]


def num_fbank_frames(
    num_samples: int,
    sample_rate: int = 16000,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
) -> int:
    """Return how many frames :func:`kaldi_fbank` makes of ``num_samples`` samples.

    Frames are snipped at the edges (Kaldi's ``--snip-edges=true``): only frames
    that fit entirely in the signal are made.

    Parameters
    ----------
    num_samples : int
    sample_rate : int
    frame_length_ms, frame_shift_ms : float

    Returns
    -------
    num_frames : int

    Examples
    --------
    >>> num_fbank_frames(16000), num_fbank_frames(399)
    (98, 0)
    """
    length = int(sample_rate * frame_length_ms / 1000)
    shift = int(sample_rate * frame_shift_ms / 1000)
    if num_samples < length:
        return 0
    return 1 + (num_samples - length) // shift


@functools.lru_cache(maxsize=8)
def _mel_banks(
    num_bins: int, padded_size: int, sample_rate: int, low_freq: float
) -> torch.Tensor:
    # Kaldi's triangular filters, equally spaced on the mel scale, with the same
    # float32 arithmetic as torchaudio.compliance.kaldi.get_mel_banks
    def mel(freq):
        return 1127.0 * math.log(1.0 + freq / 700.0)

    nyquist = 0.5 * sample_rate
    mel_low, mel_high = mel(low_freq), mel(nyquist)
    delta = (mel_high - mel_low) / (num_bins + 1)
    index = torch.arange(num_bins).unsqueeze(1)
    left = mel_low + index * delta
    center = mel_low + (index + 1.0) * delta
    right = mel_low + (index + 2.0) * delta
    fft_mel = 1127.0 * (
        1.0 + (sample_rate / padded_size) * torch.arange(padded_size // 2) / 700.0
    ).log().unsqueeze(0)
    up = (fft_mel - left) / (center - left)
    down = (right - fft_mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    # the Nyquist bin gets no weight
    return torch.nn.functional.pad(banks, (0, 1))


def kaldi_fbank(
    waveforms: torch.Tensor,
    sample_rate: int = 16000,
    num_mel_bins: int = 80,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
    low_freq: float = 20.0,
    preemphasis: float = 0.97,
) -> torch.Tensor:
    """Log mel filterbank energies of a batch of waveforms, as Kaldi computes them.

    Equal (to float32 rounding) to ``torchaudio.compliance.kaldi.fbank(waveform[None],
    num_mel_bins=num_mel_bins, sample_frequency=sample_rate, dither=0.0, ...)`` for
    each waveform of the batch.

    Parameters
    ----------
    waveforms : torch.Tensor
        ``(batch, samples)`` floating-point waveforms.
    sample_rate : int
        Their sample rate, in Hz.
    num_mel_bins : int
        Number of mel filters.
    frame_length_ms, frame_shift_ms : float
        Frame length and shift, in milliseconds.
    low_freq : float
        Lowest frequency of the filters, in Hz (the highest is Nyquist).
    preemphasis : float
        Pre-emphasis coefficient.

    Returns
    -------
    features : torch.Tensor
        ``(batch, frames, num_mel_bins)``, with ``frames`` as
        :func:`num_fbank_frames` says (0 for waveforms shorter than a frame).

    Examples
    --------
    >>> import torch
    >>> waveforms = torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    >>> kaldi_fbank(waveforms).shape
    torch.Size([2, 98, 80])
    """
    if waveforms.dim() != 2:
        raise ValueError(
            f"waveforms must be (batch, samples), got shape {tuple(waveforms.shape)}"
        )
    length = int(sample_rate * frame_length_ms / 1000)
    shift = int(sample_rate * frame_shift_ms / 1000)
    padded = 1 << (length - 1).bit_length()
    batch, num_samples = waveforms.shape
    if num_samples < length:
        return waveforms.new_zeros((batch, 0, num_mel_bins))
    frames = waveforms.unfold(-1, length, shift)  # (batch, frames, length)
    frames = frames - frames.mean(dim=-1, keepdim=True)
    previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
    frames = frames - preemphasis * previous
    window = torch.hann_window(
        length, periodic=False, dtype=frames.dtype, device=frames.device
    ).pow(0.85)
    frames = torch.nn.functional.pad(frames * window, (0, padded - length))
    power = torch.fft.rfft(frames).abs().pow(2.0)
    banks = _mel_banks(num_mel_bins, padded, sample_rate, float(low_freq))
    energies = power @ banks.to(device=power.device, dtype=power.dtype).T
    epsilon = torch.finfo(energies.dtype).eps
    return torch.clamp(energies, min=epsilon).log()
