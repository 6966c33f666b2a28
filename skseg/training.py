"""Fine-tuning the segmentation network on annotated files, in plain PyTorch.

:class:`SegmentationTrainer` is a scikit-learn estimator whose ``fit(X, y)``
adapts a pretrained network to the annotated files ``X`` (references ``y``) and
learns ``model_``, a :class:`~skseg.model.SegmentationModel` that every estimator
accepts once saved (``trainer.save(path)``, then ``segmentation=path``).

The recipe is pyannote.audio's multi-label speaker segmentation task
(``SpeakerDiarization`` of 3.4 with ``max_speakers_per_frame=None``, the
``Segmentation`` task of 2.1), without Lightning:

* **chunks**: each training chunk is drawn by picking a file with probability
  proportional to its annotated duration, one of its annotated (UEM) regions with
  probability proportional to its duration, then a start uniformly inside it.
  Regions shorter than a chunk are not used (as pyannote does); a file left with
  none is skipped with a warning naming it. An epoch is pyannote's,
  ``ceil(annotated duration / chunk duration)`` chunks cut into full batches, but
  at least :data:`MIN_STEPS_PER_EPOCH` (16) steps: pyannote's epoch is one step
  for 5 minutes of annotation, and 8 epochs of one step leave the network as it
  was.
* **targets**: a speaker is active on frames ``round((t - half) / step)`` of the
  model's receptive field (pyannote 3.4's discretisation). A chunk keeps its
  ``num_classes`` most talkative speakers (most active frames); the others are
  dropped from its targets, so the network is taught to leave them out (the same
  as pyannote's ``collate_y``; ``history_`` counts such chunks). Chunks with fewer
  speakers get inactive (all-zero) ones.
* **overlap augmentation**: pyannote's ``MixSpeakerDiarization`` (torch-
  audiomentations' ``Mix``, ``per_example``): each chunk of a batch is selected
  with probability ``mix_probability`` (the transform's ``p``; default 0, off,
  as pyannote.audio 3.x's task without an ``augmentation``: on validation data,
  generated and real, mixing at 0.5 made the tuned lines worse, see
  ``docs/finetuning.md``); a
  selected chunk is summed with another selected one (drawn uniformly among
  those whose speakers, added to its own, stay within ``num_classes``; itself
  when there is none, which only rescales it), normalised to an RMS that is
  ``snr`` dB below its own, ``snr`` uniform in [0, 5] dB. Targets are the union
  of both chunks' speakers (kept distinct, as with 2.1's batch-wide labels).
* **loss**: permutation-invariant binary cross-entropy: each chunk's outputs are
  permuted to the targets by the assignment of least mean squared error
  (pyannote's ``permutate``; all ``num_classes!`` permutations are compared), then
  ``F.binary_cross_entropy`` with frame weights that are 0 on the model's
  warm-up frames and 1 elsewhere (averaged over all frames, as pyannote's
  weighted loss is). ``vad_loss="bce"`` or ``"mse"`` adds pyannote's speech
  activity loss on the maximum over speakers.
* **optimiser**: Adam, constant learning rate ``lr`` (1e-3, chosen on
  validation data); ``freeze`` keeps the blocks up to and including a named one
  fixed (pyannote's ``freeze_up_to``); ``l2_sp`` adds ``l2_sp * sum((w -
  w_start) ** 2)`` over the trained weights to the loss (L2-SP).
* **validation**: files held out (``validation_fraction`` of them, or a given
  set) are cut into consecutive chunks; after each epoch their
  permutation-invariant frame-level diarization error rate at the best
  threshold (pyannote's ``OptimalDiarizationErrorRate``) is computed, for the
  starting weights too. With early stopping (``early_stopping="auto"``: when the
  validation chunks hold at least :data:`EARLY_STOPPING_MIN_VALIDATION`, 10
  minutes), training stops after ``patience`` epochs without improvement and the
  best epoch's weights are the trained ones; below that, one epoch's error is
  too noisy to stop on, every epoch runs and the last weights are the trained
  ones.
* **keeping the start**: the trained weights are then compared with the
  starting ones on the same validation error; when they are not firmly better
  (lower, and lower on at least 95 % of resamples of the validation chunks: on
  a minute of validation audio, only a clear gain is evidence), the starting
  network is kept (``keep_start_if_worse=True``) or the trained one with a
  warning. ``kept_``, ``improved_``, ``better_fraction_``, ``decision_`` and
  ``provenance_`` say which, and why.

A powerset network (pyannote/segmentation-3.0, ``model.head`` a
:class:`~skseg.heads.PowersetHead`) is
trained as pyannote.audio 3.x's ``SpeakerDiarization`` with
``max_speakers_per_frame``: targets of ``num_speakers`` (3) speakers, permuted
to the network's hard speakers, turned into powerset classes
(:func:`~skseg.heads.powerset_targets`), negative log-likelihood with the
warm-up weights (:func:`segmentation_loss`); validation on the hard speakers'
DER at 0.5; ``vad_loss`` is refused, as pyannote does.

Failures: a file without reference is a :class:`~skseg.exceptions.FileError`;
a NaN or infinite loss stops training with a :class:`TrainingError`, and
``KeyboardInterrupt`` is re-raised; in both cases the trainer keeps the best
weights so far in ``model_`` (``stopped_`` says why) so they can still be saved.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np
import torch
from pyannote.core import Annotation
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state, metadata_routing
from sklearn.utils.validation import check_is_fitted

from .audio import AudioReader, check_files, file_label, validate_file
from .exceptions import FileError, SksegError
from .heads import OutputHead, permutate, segmentation_loss
from .metrics import annotated
from .model import SegmentationModel, build_model, load_model

__all__ = [
    "COMPARISON_RESAMPLES",
    "EARLY_STOPPING_MIN_VALIDATION",
    "FIRM_COMPARISON",
    "FREEZE_BLOCKS",
    "MIN_STEPS_PER_EPOCH",
    "FineTuner",
    "SegmentationTrainer",
    "TrainingError",
    "TrainingProgress",
    "better_fraction",
    "chunk_frame_errors",
    "chunk_targets",
    "segmentation_loss",
    "within_noise",
]

#: the blocks of PyanNet, input to output: ``freeze="lstm"`` freezes the first two
FREEZE_BLOCKS = ("sincnet", "lstm", "linear", "classifier")

#: the fewest optimizer steps of a default epoch: pyannote's epoch (the annotated
#: duration in chunks) is one step for 5 minutes of annotation
MIN_STEPS_PER_EPOCH = 16

#: validation audio (seconds) from which ``early_stopping="auto"`` stops early:
#: below it, one epoch's validation error is too noisy to decide on
EARLY_STOPPING_MIN_VALIDATION = 600.0

#: resamples of the validation chunks that say how firm the comparison of the
#: trained network with the starting one is (``better_fraction_``)
COMPARISON_RESAMPLES = 1000

#: ``better_fraction_`` at or beyond which (or at or below one minus which) the
#: comparison is called firm rather than within the noise of the validation set
FIRM_COMPARISON = 0.95

# MixSpeakerDiarization's defaults (pyannote.audio 2.1 to 3.4)
_MIX_SNR_DB = (0.0, 5.0)


def _is_real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


class TrainingError(SksegError, RuntimeError):
    """Training cannot go on (a NaN or infinite loss); the best weights are kept.

    Examples
    --------
    >>> str(TrainingError("epoch 2, step 17: the loss is nan"))
    'epoch 2, step 17: the loss is nan'
    """


@dataclass(frozen=True)
class TrainingProgress:
    """What a progress callback receives, after every step and every epoch.

    Attributes
    ----------
    event : {"step", "epoch"}
        ``"epoch"`` once the epoch's validation is done.
    epoch : int
        Current epoch, from 1.
    max_epochs : int
    step : int
        Optimizer steps done so far.
    total_steps : int
        Steps if no early stopping happens.
    loss : float
        The batch's loss (``"step"``) or the epoch's mean (``"epoch"``).
    validation : float or None
        Latest validation error rate (None before the first, or without
        validation).
    best : float or None
        Best validation error rate so far.
    elapsed : float
        Seconds since ``fit`` started.
    time_left : float
        Estimated seconds to ``total_steps`` at the pace so far (an upper bound:
        early stopping may end sooner).

    Examples
    --------
    >>> p = TrainingProgress("step", 1, 5, 10, 50, 0.4, None, None, 20.0, 80.0)
    >>> f"epoch {p.epoch}/{p.max_epochs} step {p.step}/{p.total_steps}"
    'epoch 1/5 step 10/50'
    """

    event: str
    epoch: int
    max_epochs: int
    step: int
    total_steps: int
    loss: float
    validation: float | None
    best: float | None
    elapsed: float
    time_left: float


@dataclass
class _Region:
    start: float  # seconds
    samples: np.ndarray  # float32, at the model's rate


@dataclass
class _File:
    label: str
    regions: list[_Region]
    starts: np.ndarray  # reference turns
    ends: np.ndarray
    speakers: np.ndarray  # index into the file's labels
    annotated: float  # duration of the usable regions


def _no_audio_to_train_on(error: FileError) -> bool:
    """Whether ``error`` says a file holds no audio where it is annotated."""
    return error.problem.startswith("zero-length audio") or (
        "lies outside the audio" in error.problem
    )


def _copy_model(model: SegmentationModel) -> SegmentationModel:
    # a private copy: the shared model of load_model must never be trained in place
    config = {
        "hyper_parameters": {
            **model.network.hparams,
            "num_classes": model.num_classes,
            "sample_rate": model.sample_rate,
        },
        "specifications": model.specifications,
        "head": model.head,
    }
    state = {k: v.detach().cpu().clone() for k, v in model.network.state_dict().items()}
    return build_model(config, state, sha256=model.sha256).train()


def chunk_frame_errors(
    speakers: torch.Tensor,
    targets: torch.Tensor,
    thresholds: torch.Tensor,
    warm_up: tuple[int, int] = (0, 0),
) -> tuple[np.ndarray, np.ndarray]:
    """Each chunk's frame errors at each threshold, and its reference speaker frames.

    The terms of :class:`SegmentationTrainer`'s validation error: the speaker
    activities are permuted to the targets (pyannote's ``permutate``), the
    ``warm_up`` frames at each end are left out, and each frame counts miss +
    false alarm + confusion, ``max(n_ref, n_hyp) - n_correct``. The error of a
    set of chunks ``i`` is ``errors[i].sum(0).min() / speech[i].sum()``.

    Parameters
    ----------
    speakers : Tensor of shape (chunks, frames, speakers)
        Speaker activities in [0, 1] (:meth:`OutputHead.speakers`).
    targets : Tensor of shape (chunks, frames, speakers)
        0/1 reference activities.
    thresholds : Tensor of shape (n_thresholds,)
    warm_up : (int, int), default=(0, 0)
        Frames left out at the start and at the end of each chunk.

    Returns
    -------
    errors : ndarray of shape (chunks, n_thresholds), float64
    speech : ndarray of shape (chunks,), float64

    Examples
    --------
    >>> import torch
    >>> targets = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])   # 1 chunk, 2 frames
    >>> speakers = torch.tensor([[[0.9, 0.2], [0.8, 0.4]]])
    >>> errors, speech = chunk_frame_errors(speakers, targets, torch.tensor([0.3, 0.5]))
    >>> errors.tolist(), speech.tolist()
    ([[0.0, 1.0]], [3.0])
    """
    frames = speakers.shape[1]
    keep = slice(warm_up[0], frames - warm_up[1])
    speakers = permutate(targets, speakers)[:, keep]
    targets = targets[:, keep]
    hyp = (speakers[None] > thresholds[:, None, None, None]).float()
    n_ref = targets.sum(-1)[None]
    correct = (hyp * targets[None]).sum(-1)
    error = torch.maximum(n_ref, hyp.sum(-1)) - correct  # miss + fa + confusion
    return (
        error.sum(dim=2).T.double().cpu().numpy(),
        n_ref[0].sum(dim=1).double().cpu().numpy(),
    )


def better_fraction(
    errors_start: np.ndarray,
    errors_trained: np.ndarray,
    speech: np.ndarray,
    *,
    n_resamples: int = COMPARISON_RESAMPLES,
    random_state: int | np.random.Generator | None = None,
) -> float:
    """How often the trained network beats the start on resampled validation chunks.

    The validation error of a set of chunks is ``min over thresholds of (sum of
    their errors) / (sum of their speech)``, each network at its own best
    threshold (as :class:`SegmentationTrainer` validates). Sets of as many chunks
    as there are are drawn with replacement, the same sets for both networks;
    the fraction on which the trained network's error is strictly lower says how
    much the comparison owes to which chunks happen to be held out: near 1 or 0
    the validation set decides, in between the difference is within its noise.
    Chunks of one file are alike, so with few files this is optimistic.

    Parameters
    ----------
    errors_start, errors_trained : ndarray of shape (n_chunks, n_thresholds)
        Each chunk's frame errors (miss + false alarm + confusion) at each
        threshold, for each network.
    speech : ndarray of shape (n_chunks,)
        Each chunk's reference speaker frames.
    n_resamples : int, default=COMPARISON_RESAMPLES
    random_state : int, Generator or None, default=None

    Returns
    -------
    fraction : float
        In [0, 1]; 0 when the two networks' errors are the same.

    Examples
    --------
    >>> import numpy as np
    >>> speech = np.full(40, 100.0)
    >>> start = np.full((40, 1), 20.0)
    >>> better_fraction(start, start - 5, speech, random_state=0)
    1.0
    >>> noisy = start + np.tile([-8.0, 9.0], 20)[:, None]    # worse by 0.5 on average
    >>> 0.05 < better_fraction(start, noisy, speech, random_state=0) < 0.95
    True
    """
    errors_start = np.asarray(errors_start, dtype=np.float64)
    errors_trained = np.asarray(errors_trained, dtype=np.float64)
    speech = np.asarray(speech, dtype=np.float64)
    n = len(speech)
    if errors_start.shape != errors_trained.shape or errors_start.shape[:1] != (n,):
        raise ValueError(
            f"errors_start {errors_start.shape}, errors_trained "
            f"{errors_trained.shape} and speech {speech.shape} do not match"
        )
    if n == 0:
        raise ValueError("no validation chunks to compare on")
    rng = np.random.default_rng(random_state)
    better = 0
    # a batch of resamples at a time: counts are (batch, n_chunks)
    batch = max(1, min(n_resamples, 2**22 // n))
    for done in range(0, n_resamples, batch):
        counts = rng.multinomial(
            n, np.full(n, 1.0 / n), size=min(batch, n_resamples - done)
        )
        counts = counts.astype(np.float64)
        total = np.maximum(counts @ speech, 1.0)
        start = (counts @ errors_start).min(axis=1) / total
        trained = (counts @ errors_trained).min(axis=1) / total
        better += int(np.sum(trained < start))
    return better / n_resamples


def within_noise(fraction: float) -> bool:
    """Whether a :func:`better_fraction` leaves the comparison to the noise.

    Between ``1 - FIRM_COMPARISON`` and ``FIRM_COMPARISON`` (5 % and 95 %), the
    draw of the validation chunks could reverse which network looks better.

    Parameters
    ----------
    fraction : float

    Returns
    -------
    bool

    Examples
    --------
    >>> within_noise(0.8), within_noise(0.97), within_noise(0.02)
    (True, False, False)
    """
    return 1 - FIRM_COMPARISON < fraction < FIRM_COMPARISON


def _firmness(fraction: float, n_chunks: int, seconds: float) -> str:
    """How firm a comparison is, for ``decision_``: its resampling figure."""
    said = (
        f"better on {100 * fraction:.0f} % of resamples of the {n_chunks} "
        f"validation chunks ({seconds / 60:.1f} min)"
    )
    if within_noise(fraction):
        said += (
            ": within the noise of that much validation audio, hold out more "
            "for a firmer comparison"
        )
    return said


def _state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


def _frame_targets(
    starts: np.ndarray,
    ends: np.ndarray,
    speakers: np.ndarray,
    t0: float,
    model: SegmentationModel,
    num_frames: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Every speaker's frame targets in a chunk (pyannote 3.4's ``prepare_chunk``)."""
    t1 = t0 + model.duration
    rf = model.receptive_field
    step, half = rf.step, 0.5 * rf.duration
    mask = (starts < t1) & (ends > t0)
    start_idx = np.maximum(
        0, np.round((np.maximum(starts[mask], t0) - t0 - half) / step)
    )
    end_idx = np.round((np.minimum(ends[mask], t1) - t0 - half) / step)
    chunk_speakers = speakers[mask]
    labels = np.unique(chunk_speakers)
    y = np.zeros((num_frames, len(labels)), dtype=np.float32)
    column = {int(s): k for k, s in enumerate(labels)}
    for s, e, spk in zip(
        start_idx.astype(int), end_idx.astype(int), chunk_speakers, strict=True
    ):
        y[s : e + 1, column[int(spk)]] = 1.0
    return y, labels


def _keep_most_talkative(y: np.ndarray, k: int) -> tuple[np.ndarray, bool]:
    """Keep the ``k`` most active columns, most active first; zero-pad to ``k``."""
    active = int((y.sum(axis=0) > 0).sum())
    if y.shape[1] > k:
        y = y[:, np.argsort(-y.sum(axis=0), kind="stable")[:k]]
    elif y.shape[1] < k:
        y = np.pad(y, ((0, 0), (0, k - y.shape[1])))
    return y, active > k


def chunk_targets(
    reference: Annotation, start: float, model: SegmentationModel
) -> tuple[np.ndarray, list]:
    """Return the frame targets the trainer uses for the chunk starting at ``start``.

    A speaker is active on frames ``round((t - half) / step)`` of the model's
    receptive field, from the turn's (clipped) start to its end, both included.
    The ``model.num_speakers`` most talkative speakers are kept (``num_classes``
    for a multi-label network, 3 for segmentation-3.0's 7 powerset classes), most
    active first; the others are dropped; missing ones are all-zero columns.

    Parameters
    ----------
    reference : Annotation
    start : float
        Chunk start, in seconds (the chunk lasts ``model.duration``).
    model : SegmentationModel

    Returns
    -------
    targets : ndarray, shape (num_frames, num_speakers)
        0/1 float32.
    labels : list
        The label of each column (None for a padding column).

    Examples
    --------
    >>> from pyannote.core import Annotation, Segment
    >>> from skseg import load_model
    >>> reference = Annotation()
    >>> turns = {"A": (0, 1), "B": (0, 4), "C": (1, 3), "D": (2, 5)}
    >>> for label, (s, e) in turns.items():
    ...     reference[Segment(s, e)] = label
    >>> targets, labels = chunk_targets(reference, 0.0, load_model())
    >>> targets.shape, labels  # A, the least talkative, is left out
    ((293, 3), ['B', 'D', 'C'])
    """
    names = sorted(reference.labels(), key=str)
    index = {name: k for k, name in enumerate(names)}
    turns = [
        (s.start, s.end, index[name])
        for s, _, name in reference.itertracks(yield_label=True)
    ]
    starts = np.array([t[0] for t in turns], dtype=float)
    ends = np.array([t[1] for t in turns], dtype=float)
    speakers = np.array([t[2] for t in turns], dtype=int)
    num_frames = model.num_frames(round(model.duration * model.sample_rate))
    y, present = _frame_targets(starts, ends, speakers, float(start), model, num_frames)
    k = model.num_speakers
    order = (
        np.argsort(-y.sum(axis=0), kind="stable")[:k]
        if y.shape[1] > k
        else np.arange(y.shape[1])
    )
    labels = [names[int(present[i])] for i in order]
    labels += [None] * (k - len(labels))
    return _keep_most_talkative(y, k)[0], labels


class SegmentationTrainer(BaseEstimator):
    """Fine-tune the segmentation network on annotated files.

    Parameters
    ----------
    segmentation : str, PathLike or SegmentationModel, default="pyannote/segmentation"
        The network to start from: anything :func:`skseg.load_model` accepts
        (including a previously saved fine-tuned network), or a model object.
        It is copied, never modified.
    max_epochs : int, default=8
    steps_per_epoch : int, optional
        Optimizer steps per epoch; by default pyannote's epoch
        (``ceil(annotated duration / chunk duration)`` chunks in full batches),
        but at least :data:`MIN_STEPS_PER_EPOCH` (16) steps, so that 5 minutes of
        annotation get 128 steps, not 8.
    batch_size : int, default=32
        Chunks per step (pyannote's default).
    lr : float, default=1e-3
        Adam's (constant) learning rate, chosen on validation data
        (``docs/finetuning.md``; pyannote's adaptation tutorial uses 1e-4, which
        moves the network little in 128 steps).
    freeze : {"sincnet", "lstm", "linear", "classifier"} or None, default=None
        Keep the blocks up to and including this one fixed.
    l2_sp : float, default=0.0
        Strength of the penalty ``l2_sp * sum((w - w_start) ** 2)`` that holds
        the trainable weights near the starting ones (L2-SP, Li et al. 2018), a
        regulariser for small training sets; 0 disables it.
    vad_loss : {"bce", "mse"} or None, default=None
        Add pyannote's speech activity loss (multi-label networks only: with a
        powerset network ``fit`` raises ``ValueError``, as pyannote does).
    mix_probability : float, default=0.0
        Probability that a chunk is mixed with another (artificial overlap);
        0 disables the augmentation (pyannote.audio 3.x's task without an
        ``augmentation``). Measured on validation data, generated and real, 0.5
        made the tuned lines worse (``docs/finetuning.md``); worth choosing on
        one's own validation data.
    validation_fraction : float, default=0.2
        Fraction of the files (at least one) held out for validation and early
        stopping when ``fit`` gets no ``validation`` set; 0 trains on every file
        for ``max_epochs`` and keeps the last weights.
    patience : int, default=3
        Epochs without a better validation error before stopping (with early
        stopping).
    early_stopping : "auto" or bool, default="auto"
        Stop after ``patience`` epochs without a better validation error and
        keep the best epoch's weights; otherwise run every epoch and keep the
        last weights. ``"auto"``: on when the validation chunks hold at least
        :data:`EARLY_STOPPING_MIN_VALIDATION` (10 minutes) of audio, since the
        validation error of fewer chunks moves from epoch to epoch by more than
        training improves it (``docs/finetuning.md``).
    keep_start_if_worse : bool, default=True
        After training, the trained weights are compared with the starting ones
        on the validation files (the same validation error); when they are not
        firmly better (``improved_``: better, and on at least 95 % of resamples of
        the validation chunks, so that a small validation set needs a clear
        gain), ``model_`` is the starting network (``kept_ == "start"``), and
        otherwise (False) the trained one with a ``UserWarning``. Either way
        ``improved_``, ``better_fraction_`` and ``provenance_`` say what
        happened.
    random_state : int, RandomState or None, default=None
        Seeds chunk sampling, augmentation, the validation split and dropout.
        With the same seed and the same number of threads, ``fit`` gives the
        same weights bit for bit (on CPU).
    device : str, default="cpu"
        ``"cuda"`` (or ``"cuda:N"``) trains on a GPU; ``model_`` is on CPU.

    Attributes
    ----------
    model_ : SegmentationModel
        The network kept (see ``kept_``), CPU, ``eval`` mode, ``sha256`` = digest
        of its weights.
    history_ : list of dict
        Per epoch: ``epoch``, ``steps``, ``train_loss``, ``validation`` (error
        rate), ``validation_loss``, ``seconds``, ``truncated_chunks`` (training
        chunks with more speakers than outputs).
    best_epoch_ : int
        Epoch whose weights ``model_`` holds (0: the starting weights).
    best_score_ : float or None
        Validation error rate of ``model_``.
    start_score_, trained_score_ : float or None
        Validation error rate of the starting network and of the trained
        weights (the best epoch with early stopping, else the last); None
        without validation (or, for ``trained_score_``, before any epoch ended).
    improved_ : bool or None
        Whether the trained weights are firmly better than the starting ones on
        validation: a lower validation error, and a lower one on at least
        :data:`FIRM_COMPARISON` (95 %) of the resamples of ``better_fraction_``;
        None when nothing could be compared.
    better_fraction_ : float or None
        How firm that comparison is: the fraction of
        :data:`COMPARISON_RESAMPLES` resamples of the validation chunks (drawn
        with replacement) on which the trained weights' validation error is the
        lower (:func:`better_fraction`). Near 1 or 0, the validation set
        decides; in between (:data:`FIRM_COMPARISON`), the difference is within
        its noise and ``decision_`` says so. None when nothing was compared.
    kept_ : {"trained", "start"}
        Which weights ``model_`` holds.
    early_stopping_ : bool
        Whether early stopping was on (``early_stopping`` resolved).
    validation_duration_ : float
        Seconds of audio in the validation chunks.
    decision_ : str
        One line saying which network was kept and why.
    n_steps_ : int
        Optimizer steps done.
    stopped_ : str
        ``"max_epochs"``, ``"early_stopping"``, ``"nan"`` or ``"interrupted"``.
    training_time_ : float
        Seconds ``fit`` took.
    chunks_per_second_ : float
        Training throughput (optimizer steps only, validation excluded).
    train_files_, validation_files_ : list of str
        Files used for each (skipped ones excluded).
    provenance_ : dict
        What ``save`` writes to ``config.json``: base digest, data digest,
        parameters, outcome.

    Examples
    --------
    Two steps on a 30 s recording (a real run uses hours and many epochs):

    >>> import os, tempfile
    >>> from skseg import VADEstimator
    >>> from skseg.datasets import fetch_sample
    >>> sample = fetch_sample()
    >>> trainer = SegmentationTrainer(max_epochs=1, steps_per_epoch=2, batch_size=2,
    ...                               validation_fraction=0, random_state=0)
    >>> trainer = trainer.fit([sample], [sample["annotation"]])
    >>> trainer.n_steps_, trainer.stopped_
    (2, 'max_epochs')
    >>> path = trainer.save(os.path.join(tempfile.mkdtemp(), "finetuned"))
    >>> speech = VADEstimator(segmentation=path).fit().predict([sample])[0]
    >>> speech.uri
    'sample'
    """

    # fit's keyword arguments are not sample metadata: no set_fit_request method
    __metadata_request__fit = {  # noqa: RUF012
        "validation": metadata_routing.UNUSED,
        "callback": metadata_routing.UNUSED,
    }

    def __init__(
        self,
        segmentation: Any = "pyannote/segmentation",
        *,
        max_epochs: int = 8,
        steps_per_epoch: int | None = None,
        batch_size: int = 32,
        lr: float = 1e-3,
        freeze: str | None = None,
        l2_sp: float = 0.0,
        vad_loss: str | None = None,
        mix_probability: float = 0.0,
        validation_fraction: float = 0.2,
        patience: int = 3,
        early_stopping: str | bool = "auto",
        keep_start_if_worse: bool = True,
        random_state: Any = None,
        device: str = "cpu",
    ):
        self.segmentation = segmentation
        self.max_epochs = max_epochs
        self.steps_per_epoch = steps_per_epoch
        self.batch_size = batch_size
        self.lr = lr
        self.freeze = freeze
        self.l2_sp = l2_sp
        self.vad_loss = vad_loss
        self.mix_probability = mix_probability
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.early_stopping = early_stopping
        self.keep_start_if_worse = keep_start_if_worse
        self.random_state = random_state
        self.device = device

    # -- validation of parameters --------------------------------------------------
    def _check_params(self) -> None:
        def positive_int(name: str, value: Any, allow_none: bool = False) -> None:
            if value is None and allow_none:
                return
            if not isinstance(value, int | np.integer) or isinstance(value, bool):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

        positive_int("max_epochs", self.max_epochs)
        positive_int("steps_per_epoch", self.steps_per_epoch, allow_none=True)
        positive_int("batch_size", self.batch_size)
        positive_int("patience", self.patience)
        if not (isinstance(self.lr, int | float) and math.isfinite(self.lr)) or (
            self.lr <= 0
        ):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.freeze is not None and self.freeze not in FREEZE_BLOCKS:
            raise ValueError(
                f"freeze must be None or one of {', '.join(FREEZE_BLOCKS)}, "
                f"got {self.freeze!r}"
            )
        if not (_is_real(self.l2_sp) and math.isfinite(self.l2_sp) and self.l2_sp >= 0):
            raise ValueError(f"l2_sp must be a number >= 0, got {self.l2_sp!r}")
        if not (self.early_stopping == "auto" or isinstance(self.early_stopping, bool)):
            raise ValueError(
                f"early_stopping must be 'auto', True or False, "
                f"got {self.early_stopping!r}"
            )
        if not isinstance(self.keep_start_if_worse, bool | np.bool_):
            raise ValueError(
                f"keep_start_if_worse must be True or False, "
                f"got {self.keep_start_if_worse!r}"
            )
        if self.vad_loss not in (None, "bce", "mse"):
            raise ValueError(
                f"vad_loss must be None, 'bce' or 'mse', got {self.vad_loss!r}"
            )
        if not (_is_real(self.mix_probability) and 0.0 <= self.mix_probability <= 1.0):
            raise ValueError(
                f"mix_probability must be in [0, 1], got {self.mix_probability!r}"
            )
        if not (
            _is_real(self.validation_fraction) and 0.0 <= self.validation_fraction < 1.0
        ):
            raise ValueError(
                f"validation_fraction must be in [0, 1), "
                f"got {self.validation_fraction!r}"
            )
        device = torch.device(self.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={self.device!r} but no CUDA device is available")

    def _base_model(self) -> SegmentationModel:
        if isinstance(self.segmentation, SegmentationModel):
            return self.segmentation
        if isinstance(self.segmentation, str | os.PathLike):
            return load_model(self.segmentation)
        raise TypeError(
            f"segmentation must be a path, an identifier or a SegmentationModel, "
            f"not {type(self.segmentation).__name__}"
        )

    # -- data ------------------------------------------------------------------------
    def _prepare(
        self, X: Sequence[Any], y: Sequence[Annotation] | None, model: SegmentationModel
    ) -> list[_File]:
        X = list(X)
        if y is not None:
            y = list(y)
            if len(y) != len(X):
                raise ValueError(f"X has {len(X)} files but y has {len(y)} references")
        files = []
        duration = model.duration
        for i, file in enumerate(X):
            f = validate_file(file)
            label = file_label(f)
            reference = y[i] if y is not None else f.get("annotation")
            if reference is None:
                raise FileError(label, "no reference: give y or an 'annotation' key")
            if not isinstance(reference, Annotation):
                raise FileError(
                    label,
                    f"the reference must be a pyannote.core.Annotation, "
                    f"not {type(reference).__name__}",
                )
            try:
                uem = annotated(f)
            except FileError as e:
                # an empty recording, or one that ends before its annotated
                # regions begin, has no chunk to give: skipped as a short one is
                if not _no_audio_to_train_on(e):
                    raise
                warnings.warn(
                    f"{label}: skipped, no {duration:g} s chunk to draw: {e.problem}",
                    UserWarning,
                    stacklevel=3,
                )
                continue
            regions = [s for s in uem.support() if s.duration >= duration]
            if not regions:
                longest = max((s.duration for s in uem), default=0.0)
                warnings.warn(
                    f"{label}: skipped, no annotated region is as long as a "
                    f"{duration:g} s chunk (longest {longest:.2f} s)",
                    UserWarning,
                    stacklevel=3,
                )
                continue
            sr = model.sample_rate
            data = []
            with AudioReader(f, sample_rate=sr) as reader:
                for s in regions:
                    start = round(s.start * sr)
                    stop = min(round(s.end * sr), reader.num_samples)
                    samples = reader.read(start, stop)
                    if len(samples) < round(duration * sr):
                        continue  # a region past the end of the audio (clipped)
                    data.append(_Region(start / sr, samples))
            if not data:
                warnings.warn(
                    f"{label}: skipped, its annotated regions hold less audio than "
                    f"a {duration:g} s chunk",
                    UserWarning,
                    stacklevel=3,
                )
                continue
            labels = sorted(reference.labels(), key=str)
            index = {name: k for k, name in enumerate(labels)}
            turns = [
                (s.start, s.end, index[name])
                for s, _, name in reference.itertracks(yield_label=True)
            ]
            files.append(
                _File(
                    label=label,
                    regions=data,
                    starts=np.array([t[0] for t in turns], dtype=float),
                    ends=np.array([t[1] for t in turns], dtype=float),
                    speakers=np.array([t[2] for t in turns], dtype=int),
                    annotated=sum(len(r.samples) for r in data) / sr,
                )
            )
        return files

    @staticmethod
    def _digest(files: list[_File]) -> str:
        h = hashlib.sha256()
        for f in files:
            for r in f.regions:
                h.update(np.float64(r.start).tobytes())
                h.update(memoryview(r.samples).cast("B"))
            h.update(f.starts.tobytes() + f.ends.tobytes() + f.speakers.tobytes())
        return h.hexdigest()

    # -- targets ---------------------------------------------------------------------
    def _sample_batch(
        self,
        rng: np.random.Generator,
        files: list[_File],
        model: SegmentationModel,
        num_samples: int,
        num_frames: int,
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        weights = np.array([f.annotated for f in files])
        cum_files = np.cumsum(weights / weights.sum())
        xs, ys, keys = [], [], []
        for _ in range(self.batch_size):
            fi = min(int(cum_files.searchsorted(rng.random())), len(files) - 1)
            f = files[fi]
            lengths = np.array([len(r.samples) for r in f.regions], dtype=float)
            cum = np.cumsum(lengths / lengths.sum())
            r = f.regions[min(int(cum.searchsorted(rng.random())), len(f.regions) - 1)]
            latest = len(r.samples) - num_samples
            offset = min(latest, max(0, round(rng.uniform(0, latest))))
            xs.append(r.samples[offset : offset + num_samples])
            t0 = r.start + offset / model.sample_rate
            y, labels = _frame_targets(
                f.starts, f.ends, f.speakers, t0, model, num_frames
            )
            ys.append(y)
            keys.append([(fi, int(s)) for s in labels])
        x = np.stack(xs)
        if self.mix_probability > 0:
            x, ys = self._mix(rng, x, ys, keys, model.num_speakers)
        truncated = 0
        targets = []
        for y in ys:
            y, cut = _keep_most_talkative(y, model.num_speakers)
            targets.append(y)
            truncated += cut
        return (
            torch.from_numpy(x[:, None]),
            torch.from_numpy(np.stack(targets)),
            truncated,
        )

    def _mix(self, rng, x, ys, keys, max_speakers):
        """Mix chunks as pyannote's MixSpeakerDiarization (``p=mix_probability``)."""
        selected = np.flatnonzero(rng.random(len(x)) < self.mix_probability)
        if len(selected) == 0:
            return x, ys
        sub = x[selected]
        counts = np.array([int((ys[i].sum(axis=0) > 0).sum()) for i in selected])
        partner = np.arange(len(selected))
        for n in range(max_speakers + 1):
            with_n = np.flatnonzero(counts == n)
            candidates = np.flatnonzero(counts + n <= max_speakers)
            if len(with_n) == 0 or len(candidates) == 0:
                continue
            partner[with_n] = candidates[rng.integers(0, len(candidates), len(with_n))]
        snr = rng.uniform(*_MIX_SNR_DB, size=len(selected))
        rms = np.sqrt(np.mean(sub.astype(np.float64) ** 2, axis=1))
        background = sub[partner] / (rms[partner] + 1e-8)[:, None]
        scale = rms / 10 ** (snr / 20)
        x = x.copy()
        # partners are mixed as they were before this batch's mixing
        original, ys = ys, list(ys)
        for a, i in enumerate(selected):
            x[i] = sub[a] + (scale[a] * background[a]).astype(np.float32)
            j = selected[partner[a]]
            if j == i:
                continue
            # the union of both chunks' speakers; one speaker of one file is one
            merged = dict(zip(map(tuple, keys[i]), original[i].T, strict=True))
            for key, column in zip(map(tuple, keys[j]), original[j].T, strict=True):
                merged[key] = (
                    np.maximum(merged[key], column) if key in merged else column
                )
            if merged:
                ys[i] = np.stack(list(merged.values()), axis=1)
        return x, ys

    def _validation_set(self, files, model, num_samples, num_frames):
        xs, ys = [], []
        for f in files:
            for r in f.regions:
                for c in range(len(r.samples) // num_samples):
                    offset = c * num_samples
                    xs.append(r.samples[offset : offset + num_samples])
                    y, _ = _frame_targets(
                        f.starts,
                        f.ends,
                        f.speakers,
                        r.start + offset / model.sample_rate,
                        model,
                        num_frames,
                    )
                    ys.append(_keep_most_talkative(y, model.num_speakers)[0])
        return torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys))

    # -- loss ------------------------------------------------------------------
    def _loss(
        self,
        prediction: torch.Tensor,
        target: torch.Tensor,
        warm_up: tuple[int, int],
        head: OutputHead,
    ) -> torch.Tensor:
        return segmentation_loss(
            prediction, target, warm_up=warm_up, head=head, vad_loss=self.vad_loss
        )

    def _validate(
        self, net, x, y, warm_up, device, head
    ) -> tuple[float, float, np.ndarray, np.ndarray]:
        """Return (frame DER, loss, chunk errors, chunk speech) on validation chunks.

        The DER of the head's speaker activities (:meth:`OutputHead.speakers`)
        at the best of its thresholds: every threshold for a multi-label network
        (``OptimalDiarizationErrorRate``), 0.5 on a powerset network's hard
        speakers (pyannote's ``DiarizationErrorRate(0.5)`` on ``to_multilabel``).
        Chunk errors (chunks x thresholds) and chunk speech (reference speaker
        frames) are the DER's terms, for :func:`better_fraction`.
        """
        net.eval()
        thresholds = head.validation_thresholds().to(device)
        losses, chunk_errors, chunk_speech = [], [], []
        with torch.inference_mode():
            for start in range(0, len(x), self.batch_size):
                xb = x[start : start + self.batch_size].to(device)
                yb = y[start : start + self.batch_size].to(device)
                pred = net(xb)
                if not bool(torch.isfinite(pred).all()):
                    raise TrainingError(
                        "the network's outputs on the validation chunks are NaN or "
                        "infinite (lower lr); the best weights so far are kept in "
                        "model_"
                    )
                losses.append(float(self._loss(pred, yb, warm_up, head)) * len(xb))
                errors, speech = chunk_frame_errors(
                    head.speakers(pred), yb, thresholds, warm_up
                )
                chunk_errors.append(errors)
                chunk_speech.append(speech)
        # frame counts are whole numbers, so the sums are exact in any order
        errors, speech = np.concatenate(chunk_errors), np.concatenate(chunk_speech)
        der = float(errors.sum(axis=0).min()) / max(float(speech.sum()), 1.0)
        return der, sum(losses) / len(x), errors, speech

    # -- fitting ---------------------------------------------------------------
    def fit(
        self,
        X: Sequence[Any],
        y: Sequence[Annotation] | None = None,
        *,
        validation: tuple[Sequence[Any], Sequence[Annotation] | None] | None = None,
        callback: Callable[[TrainingProgress], None] | None = None,
    ) -> SegmentationTrainer:
        """Fine-tune the network on ``X`` with references ``y``.

        Parameters
        ----------
        X : list of files
            Paths or mappings (see :func:`skseg.validate_file`); a mapping's
            ``"annotated"`` timeline (UEM) limits where chunks are drawn.
        y : list of Annotation, optional
            References; defaults to each file's ``"annotation"``. An empty
            Annotation is a valid reference (no speech at all).
        validation : (X_val, y_val), optional
            Held-out files for early stopping, instead of ``validation_fraction``
            of ``X``.
        callback : callable, optional
            Called with a :class:`TrainingProgress` after every step and epoch.

        Returns
        -------
        self : SegmentationTrainer

        Raises
        ------
        TypeError
            ``X`` is a single file, ``validation`` not a pair, ``callback`` not
            callable (before the network is loaded).
        FileError
            A file without reference (or unreadable audio).
        ValueError
            Bad parameters (``vad_loss`` with a powerset network), or no file with
            an annotated region as long as a chunk.
        CheckpointError
            The base network is not a frame-level multi-label or powerset PyanNet.
        TrainingError
            The loss became NaN or infinite (``model_`` holds the best weights).
        KeyboardInterrupt
            Re-raised after ``model_`` is set to the best weights so far.

        Warns
        -----
        UserWarning
            For each file skipped because no annotated region is as long as a chunk.
        """
        began = time.perf_counter()
        self._check_params()
        # the arguments, before the network is loaded
        X = check_files(X)
        if validation is not None:
            if not (isinstance(validation, tuple | list) and len(validation) == 2):
                raise TypeError(
                    f"validation must be a pair (X_val, y_val), got "
                    f"{type(validation).__name__}"
                )
            validation = (check_files(validation[0]), validation[1])
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        with torch.random.fork_rng(devices=[]):
            # building a network draws initial weights from torch's generator:
            # the caller's random stream is left as it was
            base = self._base_model()
            model = _copy_model(base)
        head = model.head
        head.check_training(self.vad_loss)
        device = torch.device(self.device)
        seed = int(
            check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        )
        rng = np.random.default_rng(seed)

        files = self._prepare(X, y, model)
        if validation is not None:
            X_val, y_val = validation
            val_files = self._prepare(X_val, y_val, model)
            train_files = files
        elif self.validation_fraction > 0:
            if len(files) < 2:
                raise ValueError(
                    f"validation_fraction={self.validation_fraction} needs at least 2 "
                    f"usable files, got {len(files)}: pass validation=(X_val, y_val) "
                    f"or validation_fraction=0"
                )
            n_val = min(
                len(files) - 1, max(1, round(self.validation_fraction * len(files)))
            )
            order = rng.permutation(len(files))
            val_files = [files[i] for i in sorted(order[:n_val])]
            train_files = [files[i] for i in sorted(order[n_val:])]
        else:
            train_files, val_files = files, []
        if not train_files:
            raise ValueError(
                f"no training file has an annotated region as long as a "
                f"{model.duration:g} s chunk"
            )
        if validation is not None and not val_files:
            raise ValueError(
                "no validation file has an annotated region as long as a chunk"
            )

        num_samples = round(model.duration * model.sample_rate)
        num_frames = model.num_frames(num_samples)
        warm_up = tuple(
            round(w / model.duration * num_frames) for w in model.specifications.warm_up
        )
        total_annotated = sum(f.annotated for f in train_files)
        steps_per_epoch = self.steps_per_epoch or max(
            MIN_STEPS_PER_EPOCH,
            math.ceil(total_annotated / model.duration) // self.batch_size,
        )
        total_steps = steps_per_epoch * self.max_epochs

        net = model.network
        self._freeze(net)
        net.to(device)
        trainable = [p for p in net.parameters() if p.requires_grad]
        if not trainable:
            raise ValueError(f"freeze={self.freeze!r} leaves nothing to train")

        self.history_: list[dict] = []
        self.n_steps_ = 0
        self.validation_duration_ = 0.0
        self.early_stopping_ = False
        self.train_files_ = [f.label for f in train_files]
        self.validation_files_ = [f.label for f in val_files]
        step_seconds = 0.0
        start_state = _state(net)
        # the trained candidate: the best epoch (early stopping) or the last one
        trained: dict[str, Any] = {
            "state": None,
            "epoch": 0,
            "score": None,
            "errors": None,  # its chunk errors, for the comparison with the start
        }
        start_chunks = None  # the starting network's chunk errors, the chunk speech
        start_score = best_score = None  # best_score: the best so far, start included
        cuda = [device.index or 0] if device.type == "cuda" else []
        val_x = val_y = None
        stopped = "max_epochs"
        early_stopping = False
        anchor = [p.detach().clone() for p in trainable] if self.l2_sp > 0 else None

        def report(event, epoch, loss, last):
            if callback is None:
                return
            elapsed = time.perf_counter() - began
            done = max(self.n_steps_, 1)
            left = elapsed / done * (total_steps - self.n_steps_)
            callback(
                TrainingProgress(
                    event,
                    epoch,
                    self.max_epochs,
                    self.n_steps_,
                    total_steps,
                    float(loss),
                    last,
                    best_score,
                    elapsed,
                    left,
                )
            )

        try:
            with torch.random.fork_rng(devices=cuda):
                # dropout draws from torch's generator: seeded here, restored after
                torch.manual_seed(seed)
                optimizer = torch.optim.Adam(trainable, lr=self.lr)
                if val_files:
                    val_x, val_y = self._validation_set(
                        val_files, model, num_samples, num_frames
                    )
                    start_score, _, *start_chunks = self._validate(
                        net, val_x, val_y, warm_up, device, head
                    )
                    best_score = start_score
                    self.validation_duration_ = len(val_x) * model.duration
                    early_stopping = (
                        self.validation_duration_ >= EARLY_STOPPING_MIN_VALIDATION
                        if self.early_stopping == "auto"
                        else bool(self.early_stopping)
                    )
                self.early_stopping_ = early_stopping
                patience_left = self.patience
                last = best_score
                for epoch in range(1, self.max_epochs + 1):
                    epoch_began = time.perf_counter()
                    net.train()
                    losses, truncated = [], 0
                    for _ in range(steps_per_epoch):
                        t = time.perf_counter()
                        xb, yb, cut = self._sample_batch(
                            rng, train_files, model, num_samples, num_frames
                        )
                        truncated += cut
                        xb, yb = xb.to(device), yb.to(device)
                        prediction = net(xb)
                        # F.binary_cross_entropy refuses NaN inputs with a bare
                        # RuntimeError: check the outputs first
                        if bool(torch.isfinite(prediction).all()):
                            loss = self._loss(prediction, yb, warm_up, head)
                            value = float(loss.detach())
                            if anchor is not None:
                                loss = loss + self.l2_sp * sum(
                                    ((p - p0) ** 2).sum()
                                    for p, p0 in zip(trainable, anchor, strict=True)
                                )
                        else:
                            value = float("nan")
                        if not math.isfinite(value):
                            raise TrainingError(
                                f"epoch {epoch}, step {self.n_steps_ + 1}: the loss is "
                                f"{value} (lower lr, or check the data); the best "
                                f"weights so far (epoch {trained['epoch']}, or the "
                                f"starting ones) are kept in model_"
                            )
                        optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        optimizer.step()
                        step_seconds += time.perf_counter() - t
                        self.n_steps_ += 1
                        losses.append(value)
                        report("step", epoch, value, last)
                    record = {
                        "epoch": epoch,
                        "steps": self.n_steps_,
                        "train_loss": float(np.mean(losses)),
                        "validation": None,
                        "validation_loss": None,
                        "truncated_chunks": truncated,
                    }
                    if val_files:
                        last, val_loss, errors, _ = self._validate(
                            net, val_x, val_y, warm_up, device, head
                        )
                        record.update(validation=last, validation_loss=val_loss)
                        if not early_stopping or (
                            trained["score"] is None or last < trained["score"]
                        ):
                            trained.update(
                                state=_state(net),
                                epoch=epoch,
                                score=last,
                                errors=errors,
                            )
                        # patience counts epochs not better than the best so far,
                        # the starting weights included
                        if last < best_score:
                            best_score = last
                            patience_left = self.patience
                        else:
                            patience_left -= 1
                    else:
                        trained.update(state=_state(net), epoch=epoch)
                    record["seconds"] = time.perf_counter() - epoch_began
                    self.history_.append(record)
                    report("epoch", epoch, record["train_loss"], last)
                    if (
                        early_stopping
                        and patience_left <= 0
                        and epoch < self.max_epochs
                    ):
                        stopped = "early_stopping"
                        break
        except TrainingError:
            stopped = "nan"
            raise
        except KeyboardInterrupt:
            stopped = "interrupted"
            raise
        finally:
            self._finish(
                model,
                start_state,
                start_score,
                start_chunks,
                trained,
                stopped,
                began,
                step_seconds,
                base,
                files,
                train_files,
                val_files,
                seed,
            )
        return self

    def _freeze(self, net: torch.nn.Module) -> None:
        if self.freeze is None:
            return
        for block in FREEZE_BLOCKS[: FREEZE_BLOCKS.index(self.freeze) + 1]:
            module = getattr(net, block, None)
            if module is not None:
                for p in module.parameters():
                    p.requires_grad_(False)

    def _finish(
        self,
        model,
        start_state,
        start_score,
        start_chunks,
        trained,
        stopped,
        began,
        step_seconds,
        base,
        files,
        train_files,
        val_files,
        seed,
    ) -> None:
        from . import __version__
        from .serialization import weights_digest

        self.start_score_ = start_score
        self.trained_score_ = trained["score"]
        self.improved_ = None
        self.better_fraction_ = None
        if trained["state"] is None:
            kept = "start"
            decision = (
                "kept the starting network: training stopped before an epoch ended"
            )
        elif start_score is None:
            kept = "trained"
            decision = (
                "kept the fine-tuned network: no validation files, so it was not "
                "compared with the starting one"
            )
        elif trained["score"] is None:
            # an epoch ended without validation: cannot happen with val files
            kept, decision = "start", "kept the starting network: nothing validated"
        else:
            errors, speech = start_chunks
            self.better_fraction_ = better_fraction(
                errors, trained["errors"], speech, random_state=seed
            )
            lower = trained["score"] < start_score
            # kept on firm evidence only: a lower error that the draw of the
            # validation chunks could reverse is no evidence on little audio
            self.improved_ = bool(lower and self.better_fraction_ >= FIRM_COMPARISON)
            better = "firmly better" if lower else "better"
            firmness = (
                "no difference on the validation chunks"
                if trained["score"] == start_score
                else _firmness(
                    self.better_fraction_, len(speech), self.validation_duration_
                )
            )
            versus = (
                f"validation error {100 * trained['score']:.2f} % after training "
                f"(epoch {trained['epoch']}) vs {100 * start_score:.2f} % before"
                f"; {firmness}"
            )
            if self.improved_:
                kept, decision = "trained", f"kept the fine-tuned network: {versus}"
            elif self.keep_start_if_worse:
                kept = "start"
                decision = (
                    f"kept the starting network, the fine-tuned one is not {better} "
                    f"on the validation files: {versus}"
                )
            else:
                kept = "trained"
                decision = (
                    f"kept the fine-tuned network although it is not {better} on the "
                    f"validation files (keep_start_if_worse=False): {versus}"
                )
                warnings.warn(decision, UserWarning, stacklevel=3)
        if kept == "start":
            best_state, best_epoch, best_score = start_state, 0, start_score
        else:
            best_state, best_epoch = trained["state"], trained["epoch"]
            best_score = trained["score"]
        self.kept_ = kept
        self.decision_ = decision
        net = model.network.cpu()
        net.load_state_dict(best_state)
        for p in net.parameters():
            p.requires_grad_(True)
        net.eval()
        model.sha256 = weights_digest(net.state_dict())
        self.model_ = model
        self.best_epoch_ = best_epoch
        self.best_score_ = best_score
        self.stopped_ = stopped
        self.training_time_ = time.perf_counter() - began
        self.chunks_per_second_ = (
            self.n_steps_ * self.batch_size / step_seconds if step_seconds else 0.0
        )
        params = {
            k: (v if isinstance(v, int | float | str | type(None)) else repr(v))
            for k, v in self.get_params().items()
        }
        self.provenance_ = {
            "base_sha256": base.sha256,
            "base": params.pop("segmentation"),
            "train_data_sha256": self._digest(train_files),
            "validation_data_sha256": self._digest(val_files) if val_files else None,
            "train_files": len(train_files),
            "validation_files": len(val_files),
            "training_parameters": params,
            "seed": seed,
            "steps": self.n_steps_,
            "best_epoch": best_epoch,
            "validation_der": best_score,
            "start_validation_der": start_score,
            "trained_validation_der": trained["score"],
            "improved": self.improved_,
            "better_fraction": self.better_fraction_,
            "kept": kept,
            "early_stopping": self.early_stopping_,
            "validation_seconds": self.validation_duration_,
            "decision": decision,
            "stopped": stopped,
            "torch_version": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "skseg_version": __version__,
        }

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> str:
        """Save ``model_`` as safetensors + JSON config (:mod:`skseg.serialization`).

        Parameters
        ----------
        path : str or PathLike
            Folder to create; then usable as any estimator's ``segmentation=``.
        overwrite : bool, default=False
            Replace an existing saved network at ``path``.

        Returns
        -------
        path : str

        Raises
        ------
        FileError
            If ``path`` exists and ``overwrite`` is False.

        Examples
        --------
        >>> import os, tempfile
        >>> from skseg.datasets import fetch_sample
        >>> sample = fetch_sample()
        >>> trainer = SegmentationTrainer(max_epochs=1, steps_per_epoch=1,
        ...     batch_size=1, validation_fraction=0, random_state=0).fit([sample])
        >>> folder = trainer.save(os.path.join(tempfile.mkdtemp(), "net"))
        >>> from skseg.serialization import read_config
        >>> read_config(folder)["provenance"]["steps"]
        1
        """
        from .serialization import save_model

        check_is_fitted(self, "model_")
        return os.fspath(
            save_model(
                self.model_, path, provenance=self.provenance_, overwrite=overwrite
            )
        )


class FineTuner:
    """Fine-tune an estimator's network on annotations: the annotation loops' hook.

    A ``fine_tune(estimator, X, y) -> estimator`` callable for
    :class:`~skseg.annotation.backend.LabelStudioBackend` (``fine_tune=``) and
    :class:`~skseg.annotation.loop.ModelInTheLoop` (``fine_tune=``): each call
    fits a clone of ``trainer`` on the annotated files ``X`` (references ``y``)
    and sets the fine-tuned network as the estimator's ``segmentation``, so that
    the estimator pre-annotates with it from then on.

    Every call starts from the same network (``base``), not from the previous
    call's result: each update fits all the annotations so far once, instead of
    fitting the first ones again at every update.

    The trainer's rule for keeping the start applies: when the fine-tuned
    network is not better than the starting one on the held-out annotations
    (``keep_start_if_worse=True``, the default), the estimator gets the starting
    network back (``segmentation=base_``) and ``history_`` says why.

    Parameters
    ----------
    trainer : SegmentationTrainer, optional
        The training parameters (its ``segmentation`` is replaced by the
        starting network); default ``SegmentationTrainer(max_epochs=3,
        random_state=0)``. With fewer than two annotated files, a call trains
        without validation (``validation_fraction=0``: the last weights), since
        none can be held out.
    base : str, PathLike or SegmentationModel, optional
        The network every call starts from; default: the ``segmentation`` of the
        estimator of the first call (remembered in ``base_``).

    Attributes
    ----------
    base_ : str, PathLike or SegmentationModel
        The starting network, once called.
    trainer_ : SegmentationTrainer
        The latest call's fitted trainer.
    history_ : list of dict
        Per call: ``n_files``, ``steps``, ``best_score`` (validation error rate
        or None), ``stopped``, ``kept`` (``"trained"`` or ``"start"``),
        ``improved`` (None without validation), ``better_fraction`` (how firm
        that comparison is, see ``SegmentationTrainer.better_fraction_``),
        ``decision`` (one line),
        ``sha256`` (the new network's weights digest).

    Examples
    --------
    >>> from skseg import VADEstimator
    >>> from skseg.datasets import fetch_sample
    >>> sample = fetch_sample()
    >>> fine_tune = FineTuner(SegmentationTrainer(max_epochs=1, steps_per_epoch=1,
    ...                                           batch_size=1))
    >>> vad = fine_tune(VADEstimator(), [sample], [sample["annotation"]])
    >>> vad.segmentation is fine_tune.trainer_.model_
    True
    >>> fine_tune.history_[0]["steps"], fine_tune.base_
    (1, 'pyannote/segmentation')
    """

    def __init__(self, trainer: SegmentationTrainer | None = None, base: Any = None):
        self.trainer = trainer
        self.base = base

    def __call__(
        self, estimator: Any, X: Sequence[Any], y: Sequence[Annotation] | None = None
    ) -> Any:
        """Fine-tune on ``X, y`` and set the result as ``estimator``'s network.

        Parameters
        ----------
        estimator : estimator
            Any skseg estimator; modified with ``set_params(segmentation=...)``.
        X : list of files
        y : list of Annotation, optional

        Returns
        -------
        estimator : estimator
            The same estimator.

        Raises
        ------
        FileError, ValueError, TrainingError
            As :meth:`SegmentationTrainer.fit`; the estimator is then unchanged.
        """
        from sklearn.base import clone

        if not hasattr(self, "base_"):
            self.base_ = self.base if self.base is not None else estimator.segmentation
        trainer = clone(
            self.trainer
            if self.trainer is not None
            else SegmentationTrainer(max_epochs=3, random_state=0)
        )
        trainer.set_params(segmentation=self.base_)
        if len(X) < 2:
            trainer.set_params(validation_fraction=0.0)
        trainer.fit(X, y)
        self.trainer_ = trainer
        self.history_ = [
            *getattr(self, "history_", []),
            {
                "n_files": len(X),
                "steps": trainer.n_steps_,
                "best_score": trainer.best_score_,
                "stopped": trainer.stopped_,
                "kept": trainer.kept_,
                "improved": trainer.improved_,
                "better_fraction": trainer.better_fraction_,
                "decision": trainer.decision_,
                "sha256": trainer.model_.sha256,
            },
        ]
        if trainer.kept_ == "start":
            return estimator.set_params(segmentation=self.base_)
        return estimator.set_params(segmentation=trainer.model_)
