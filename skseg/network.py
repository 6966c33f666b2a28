"""PyanNet, the network behind pyannote/segmentation, as plain torch modules.

SincNet (a parametric sinc filterbank, then two convolutions, each followed by
max-pooling, instance normalisation and leaky ReLU) -> LSTM -> linear layers ->
classifier -> sigmoid (multi-label, pyannote/segmentation) or log-softmax
(powerset, pyannote/segmentation-3.0). Parameter and buffer names follow
pyannote.audio's ``PyanNet`` (and asteroid-filterbanks' ``ParamSincFB``) so that a
pyannote checkpoint's ``state_dict`` loads with ``strict=True``.

Nothing here knows about checkpoints, files or chunks: the sizes come in as
arguments (see :mod:`skseg.model` for where they are read from).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ACTIVATIONS", "ParamSincFB", "SincNet", "PyanNet", "FrameGeometry"]


class ParamSincFB(nn.Module):
    """Parametric sinc band-pass filterbank (cosine and sine filters).

    The same arithmetic as asteroid-filterbanks' ``ParamSincFB`` (Ravanelli and
    Bengio, 2018; Pariente et al., 2020), so trained cut-off frequencies give the
    same filters.

    Parameters
    ----------
    n_filters : int, default=80
        Number of filters; half are cosine (even) filters, half sine (odd) filters.
    kernel_size : int, default=251
        Filter length in samples (odd).
    sample_rate : int, default=16000
        Sample rate the cut-off frequencies are expressed for.
    min_low_hz, min_band_hz : float, default=50
        Lower bounds of the low cut-off and of the band width.

    Examples
    --------
    >>> filterbank = ParamSincFB(n_filters=80, kernel_size=251)
    >>> tuple(filterbank.filters().shape)  # (filters, channels, kernel size)
    (80, 1, 251)
    """

    def __init__(
        self,
        n_filters: int = 80,
        kernel_size: int = 251,
        sample_rate: int = 16000,
        min_low_hz: float = 50,
        min_band_hz: float = 50,
    ):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.n_filters = n_filters
        self.kernel_size = kernel_size
        self.sample_rate = sample_rate
        self.min_low_hz = min_low_hz
        self.min_band_hz = min_band_hz
        half = kernel_size // 2
        cutoff = n_filters // 2
        # Mel-spaced initialisation; overwritten by any loaded checkpoint.
        mel = np.linspace(
            _to_mel(30),
            _to_mel(sample_rate / 2 - (min_low_hz + min_band_hz)),
            cutoff + 1,
            dtype="float32",
        )
        hz = _to_hz(mel)
        self.low_hz_ = nn.Parameter(torch.from_numpy(hz[:-1]).view(-1, 1))
        self.band_hz_ = nn.Parameter(torch.from_numpy(np.diff(hz)).view(-1, 1))
        window = np.hamming(kernel_size)[:half]
        n = 2 * np.pi * (torch.arange(-half, 0.0).view(1, -1) / sample_rate)
        self.register_buffer("window_", torch.from_numpy(window).float())
        self.register_buffer("n_", n)

    def filters(self) -> torch.Tensor:
        """Return the ``(n_filters, 1, kernel_size)`` convolution weights."""
        low = self.min_low_hz + torch.abs(self.low_hz_)
        high = torch.clamp(
            low + self.min_band_hz + torch.abs(self.band_hz_),
            self.min_low_hz,
            self.sample_rate / 2,
        )
        band = (high - low)[:, 0]
        ft_low = torch.matmul(low, self.n_)
        ft_high = torch.matmul(high, self.n_)
        half_n = self.n_ / 2
        cos_left = ((torch.sin(ft_high) - torch.sin(ft_low)) / half_n) * self.window_
        cos = torch.cat(
            [cos_left, 2 * band.view(-1, 1), torch.flip(cos_left, dims=[1])], dim=1
        )
        sin_left = ((torch.cos(ft_low) - torch.cos(ft_high)) / half_n) * self.window_
        sin = torch.cat(
            [
                sin_left,
                torch.zeros_like(band.view(-1, 1)),
                -torch.flip(sin_left, dims=[1]),
            ],
            dim=1,
        )
        shape = (self.n_filters // 2, 1, self.kernel_size)
        cos = (cos / (2 * band[:, None])).view(shape)
        sin = (sin / (2 * band[:, None])).view(shape)
        return torch.cat([cos, sin], dim=0)


def _to_mel(hz):
    return 2595 * np.log10(1 + hz / 700)


def _to_hz(mel):
    return 700 * (10 ** (mel / 2595) - 1)


class _SincConv(nn.Module):
    """A sinc filterbank applied as a strided convolution (asteroid's ``Encoder``)."""

    def __init__(self, filterbank: ParamSincFB, stride: int):
        super().__init__()
        self.filterbank = filterbank
        self.stride = stride
        self.kernel_size = filterbank.kernel_size

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return F.conv1d(waveforms, self.filterbank.filters(), stride=self.stride)


class SincNet(nn.Module):
    """SincNet feature extractor: ``(batch, 1, samples) -> (batch, 60, frames)``.

    Parameters
    ----------
    sample_rate : int, default=16000
        Only 16 kHz is supported, as in pyannote.audio.
    stride : int, default=1
        Stride of the sinc convolution (pyannote/segmentation uses 10).

    Examples
    --------
    >>> import torch
    >>> sincnet = SincNet(stride=10)
    >>> tuple(sincnet(torch.zeros(1, 1, 80000)).shape)  # 5 s -> 293 frames
    (1, 60, 293)
    """

    def __init__(self, sample_rate: int = 16000, stride: int = 1):
        super().__init__()
        if sample_rate != 16000:
            raise ValueError(f"SincNet supports 16 kHz audio only, got {sample_rate}")
        self.sample_rate = sample_rate
        self.stride = stride
        self.wav_norm1d = nn.InstanceNorm1d(1, affine=True)
        self.conv1d = nn.ModuleList(
            [
                _SincConv(ParamSincFB(80, 251, sample_rate=sample_rate), stride),
                nn.Conv1d(80, 60, 5, stride=1),
                nn.Conv1d(60, 60, 5, stride=1),
            ]
        )
        self.pool1d = nn.ModuleList([nn.MaxPool1d(3, stride=3) for _ in range(3)])
        self.norm1d = nn.ModuleList(
            [nn.InstanceNorm1d(n, affine=True) for n in (80, 60, 60)]
        )

    def layers(self) -> list[tuple[int, int]]:
        """Return ``(kernel_size, stride)`` of each time-reducing layer, in order."""
        out = []
        for conv, pool in zip(self.conv1d, self.pool1d, strict=True):
            k = conv.kernel_size if isinstance(conv, _SincConv) else conv.kernel_size[0]
            s = conv.stride if isinstance(conv, _SincConv) else conv.stride[0]
            out += [(k, s), (pool.kernel_size, pool.stride)]
        return out

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Return ``(batch, 60, frames)`` features for ``(batch, 1, samples)``."""
        wav = self.wav_norm1d
        if (
            torch.is_grad_enabled()
            and not waveforms.requires_grad
            and (wav.weight.requires_grad or wav.bias.requires_grad)
        ):
            outputs = self._trainable_sinc(waveforms)
        else:  # inference: pyannote's order of operations, bit for bit
            outputs = self.conv1d[0](wav(waveforms))
        for c, (conv, pool, norm) in enumerate(
            zip(self.conv1d, self.pool1d, self.norm1d, strict=True)
        ):
            if c > 0:
                outputs = conv(outputs)
            if c == 0:
                # the magnitude of the sinc responses (SincNet issue #4)
                outputs = torch.abs(outputs)
            outputs = F.leaky_relu(norm(pool(outputs)))
        return outputs

    def _trainable_sinc(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Normalise the waveforms, then apply the sinc convolution, for training.

        The convolution is linear: ``conv(w * x + b) = w * conv(x) + b * sum(taps)``
        (no padding, so every output sees a whole kernel). Written so, the
        normalisation's two affine parameters get their gradients without the
        gradient w.r.t. the convolution's input, a transposed convolution over the
        whole waveform as costly as the forward one (a fifth of a training step of
        pyannote/segmentation on a CPU). Equal to the plain order of operations up to
        float rounding.
        """
        norm, sinc = self.wav_norm1d, self.conv1d[0]
        filters = sinc.filterbank.filters()
        unit = F.instance_norm(waveforms, eps=norm.eps)
        responses = F.conv1d(unit, filters, stride=sinc.stride)
        return norm.weight * responses + norm.bias * filters.sum(dim=-1)

    def forward_overlapping(
        self, block: torch.Tensor, window: int, step: int
    ) -> torch.Tensor:
        """Features of every chunk ``block[c * step : c * step + window]``.

        Equals ``forward(block.unfold(0, window, step)[:, None])`` within float32
        rounding (about 1e-6), with the sinc convolution run once over the block
        instead of once per chunk. The waveform normalisation is affine per
        chunk, so ``conv(a * x + b) = a * conv(x) + b * sum(filter)``; and max
        pooling commutes with that (monotone) map, so the pooling also runs once
        per block and each chunk only rescales its pooled extremes.

        Parameters
        ----------
        block : Tensor, shape (samples,)
            Audio covering the chunks.
        window, step : int
            Chunk length and hop in samples.

        Returns
        -------
        features : Tensor, shape (chunks, 60, frames)

        Examples
        --------
        >>> import torch
        >>> sincnet = SincNet(stride=10).eval()
        >>> block = torch.randn(16000 * 6)
        >>> with torch.inference_mode():
        ...     shared = sincnet.forward_overlapping(block, 80000, 8000)
        ...     direct = sincnet(block.unfold(0, 80000, 8000)[:, None])
        >>> tuple(shared.shape), bool((shared - direct).abs().max() < 1e-4)
        ((3, 60, 293), True)
        """
        conv, pool = self.conv1d[0], self.pool1d[0]
        shift = step // conv.stride
        if step % conv.stride or pool.kernel_size < pool.stride:
            return self(block.unfold(0, window, step)[:, None])
        chunks = block.unfold(0, window, step)
        var, mean = torch.var_mean(chunks, dim=1, correction=0)
        wav_norm = self.wav_norm1d
        scale = wav_norm.weight[0] / torch.sqrt(var + wav_norm.eps)
        # centring the block first keeps a DC offset from eating float32 precision
        center = block.mean()
        filters = conv.filterbank.filters()
        offset = (wav_norm.bias[0] - scale * (mean - center))[:, None] * filters.sum(
            dim=(1, 2)
        )
        z = F.conv1d((block - center)[None, None], filters, stride=conv.stride)[0]
        num_conv = (window - conv.kernel_size) // conv.stride + 1
        num_pool = (num_conv - pool.kernel_size) // pool.stride + 1
        # one max / min pooling per phase of the chunk starts on the pooling grid
        extremes = {}
        high, low = [], []
        for c in range(chunks.shape[0]):
            start = c * shift
            phase = start % pool.stride
            if phase not in extremes:
                zp = z[:, phase:]
                extremes[phase] = (
                    F.max_pool1d(zp, pool.kernel_size, pool.stride),
                    -F.max_pool1d(-zp, pool.kernel_size, pool.stride),
                )
            first = (start - phase) // pool.stride
            high.append(extremes[phase][0][:, first : first + num_pool])
            low.append(extremes[phase][1][:, first : first + num_pool])
        scale = scale[:, None, None]
        offset = offset[:, :, None]
        # |a z + b| is largest where z is (monotone map): max |.| over the window
        # is attained at the window's max or min of z
        outputs = torch.maximum(
            (torch.stack(high) * scale + offset).abs_(),
            (torch.stack(low) * scale + offset).abs_(),
        )
        outputs = F.leaky_relu(self.norm1d[0](outputs))
        for conv, pool, norm in zip(
            self.conv1d[1:], self.pool1d[1:], self.norm1d[1:], strict=True
        ):
            outputs = F.leaky_relu(norm(pool(conv(outputs))))
        return outputs


@dataclass(frozen=True)
class FrameGeometry:
    """How output frames map to input samples for a stack of unpadded layers.

    Parameters
    ----------
    layers : tuple of (kernel_size, stride)
        The time-reducing layers, first to last.

    Examples
    --------
    >>> g = FrameGeometry(((251, 10), (3, 3), (5, 1), (3, 3), (5, 1), (3, 3)))
    >>> g.num_frames(80000), g.receptive_field_size(), g.receptive_field_step()
    (293, 991, 270)
    """

    layers: tuple[tuple[int, int], ...]

    def num_frames(self, num_samples: int) -> int:
        """Return the number of output frames for ``num_samples`` input samples."""
        n = num_samples
        for k, s in self.layers:
            n = 1 + (n - k) // s if n >= k else 0
        return n

    def receptive_field_size(self, num_frames: int = 1) -> int:
        """Return the number of input samples that ``num_frames`` frames see."""
        n = num_frames
        for k, s in reversed(self.layers):
            n = (n - 1) * s + k
        return n

    def receptive_field_step(self) -> int:
        """Return the hop between consecutive frames, in samples."""
        return self.receptive_field_size(2) - self.receptive_field_size(1)

    def receptive_field_center(self, frame: int = 0) -> int:
        """Return the index of the sample at the centre of a frame's field."""
        c = frame
        for k, s in reversed(self.layers):
            c = c * s + (k - 1) // 2
        return c


#: the output activations PyanNet knows: pyannote's defaults per problem
ACTIVATIONS: tuple[str, ...] = ("sigmoid", "log_softmax")


class PyanNet(nn.Module):
    """SincNet > LSTM > feed-forward > classifier > sigmoid or log-softmax.

    Parameters
    ----------
    sincnet : dict, optional
        SincNet keyword arguments (``stride``, ``sample_rate``).
    lstm : dict, optional
        ``hidden_size``, ``num_layers``, ``bidirectional``, ``monolithic``,
        ``dropout`` (dropout is inactive at inference).
    linear : dict, optional
        ``hidden_size`` and ``num_layers`` of the feed-forward layers.
    num_classes : int, default=3
        Number of outputs per frame.
    sample_rate : int, default=16000
        Input sample rate.
    activation : {"sigmoid", "log_softmax"}, default="sigmoid"
        Output activation: independent probabilities (multi-label) or
        log-probabilities over mutually exclusive classes (a powerset model,
        as pyannote's ``LogSoftmax(dim=-1)``).

    Examples
    --------
    >>> net = PyanNet(lstm={"hidden_size": 8, "num_layers": 1},
    ...               linear={"hidden_size": 8, "num_layers": 1}).eval()
    >>> tuple(net(torch.zeros(2, 1, 80000)).shape)
    (2, 293, 3)
    >>> powerset = PyanNet(lstm={"hidden_size": 8, "num_layers": 1},
    ...                    linear={"hidden_size": 8, "num_layers": 1},
    ...                    num_classes=7, activation="log_softmax").eval()
    >>> with torch.inference_mode():
    ...     log_probs = powerset(torch.zeros(1, 1, 160000))
    >>> tuple(log_probs.shape), round(float(log_probs.exp().sum(-1)[0, 0]), 4)
    ((1, 589, 7), 1.0)
    """

    SINCNET_DEFAULTS = {"stride": 10}
    LSTM_DEFAULTS = {
        "hidden_size": 128,
        "num_layers": 2,
        "bidirectional": True,
        "monolithic": True,
        "dropout": 0.0,
    }
    LINEAR_DEFAULTS = {"hidden_size": 128, "num_layers": 2}

    def __init__(
        self,
        sincnet: dict | None = None,
        lstm: dict | None = None,
        linear: dict | None = None,
        num_classes: int = 3,
        sample_rate: int = 16000,
        activation: str = "sigmoid",
    ):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {ACTIVATIONS}, got {activation!r}"
            )
        self.activation = activation
        sincnet = {
            **self.SINCNET_DEFAULTS,
            **(sincnet or {}),
            "sample_rate": sample_rate,
        }
        lstm = {**self.LSTM_DEFAULTS, **(lstm or {})}
        linear = {**self.LINEAR_DEFAULTS, **(linear or {})}
        lstm.pop("batch_first", None)
        self.hparams = {"sincnet": sincnet, "lstm": lstm, "linear": linear}
        self.sample_rate = sample_rate
        self.num_classes = num_classes
        self.sincnet = SincNet(**sincnet)

        lstm_kwargs = {k: v for k, v in lstm.items() if k != "monolithic"}
        directions = 2 if lstm["bidirectional"] else 1
        if lstm["monolithic"]:
            self.lstm = nn.LSTM(60, batch_first=True, **lstm_kwargs)
        else:
            one = dict(lstm_kwargs, num_layers=1, dropout=0.0)
            width = lstm["hidden_size"] * directions
            self.lstm = nn.ModuleList(
                [
                    nn.LSTM(60 if i == 0 else width, batch_first=True, **one)
                    for i in range(lstm["num_layers"])
                ]
            )
        lstm_out = lstm["hidden_size"] * directions
        sizes = [lstm_out] + [linear["hidden_size"]] * linear["num_layers"]
        if linear["num_layers"] > 0:
            self.linear = nn.ModuleList([nn.Linear(i, o) for i, o in pairwise(sizes)])
        self.classifier = nn.Linear(sizes[-1], num_classes)
        self.geometry = FrameGeometry(tuple(self.sincnet.layers()))

    def forward(
        self, waveforms: torch.Tensor, sincnet_batch: int | None = None
    ) -> torch.Tensor:
        """Return per-frame probabilities (log-probabilities for a powerset head).

        Parameters
        ----------
        waveforms : Tensor, shape (batch, 1, samples)
        sincnet_batch : int, optional
            Run SincNet on this many chunks at a time (the LSTM still sees the
            whole batch). Chunks are independent, so the numbers are the same
            bit for bit; SincNet's large intermediate tensors then stay small
            enough to be reused from the allocator and the cache instead of
            being mapped and faulted in anew for every batch.

        Returns
        -------
        scores : Tensor, shape (batch, frames, num_classes)
        """
        if sincnet_batch is None or sincnet_batch >= len(waveforms):
            return self._head(self.sincnet(waveforms))
        features = [self.sincnet(w) for w in waveforms.split(sincnet_batch)]
        return self._head(torch.cat(features))

    def forward_overlapping(
        self, block: torch.Tensor, window: int, step: int
    ) -> torch.Tensor:
        """Scores of each chunk ``block[c * step : c * step + window]``.

        The same as ``forward(block.unfold(0, window, step)[:, None])`` in exact
        arithmetic, with SincNet's first convolution and pooling run once over
        the block (see :meth:`SincNet.forward_overlapping`). In float32 the
        network amplifies the different rounding: raw scores move by up to ~4e-3
        on the sample, aggregated speech scores by less than 1e-4.

        Parameters
        ----------
        block : Tensor, shape (samples,)
            Audio covering the chunks.
        window, step : int
            Chunk length and hop in samples.

        Returns
        -------
        scores : Tensor, shape (chunks, frames, num_classes)

        Examples
        --------
        >>> net = PyanNet(lstm={"hidden_size": 8, "num_layers": 1},
        ...               linear={"hidden_size": 8, "num_layers": 1}).eval()
        >>> with torch.inference_mode():
        ...     scores = net.forward_overlapping(torch.randn(88000), 80000, 4000)
        >>> tuple(scores.shape)
        (3, 293, 3)
        """
        return self._head(self.sincnet.forward_overlapping(block, window, step))

    def _head(self, features: torch.Tensor) -> torch.Tensor:
        outputs = features.transpose(1, 2)
        # (not isinstance(nn.LSTM): a dynamically quantised LSTM is another class)
        if isinstance(self.lstm, nn.ModuleList):
            for lstm in self.lstm:
                outputs, _ = lstm(outputs)
        else:
            outputs, _ = self.lstm(outputs)
        if self.hparams["linear"]["num_layers"] > 0:
            for linear in self.linear:
                outputs = F.leaky_relu(linear(outputs))
        if self.activation == "log_softmax":
            return F.log_softmax(self.classifier(outputs), dim=-1)
        return torch.sigmoid(self.classifier(outputs))
