"""Fine-tuning: determinism, learning, early stopping and every bad input.

Runs are a few steps on the 30 s sample (or on a tiny network), seconds each.
"""

import numpy as np
import pytest
import torch
from pyannote.core import Annotation, Segment, Timeline
from sklearn.base import clone

from skseg import VADEstimator, load_model
from skseg.checkpoint import Specifications
from skseg.exceptions import CheckpointError, FileError
from skseg.heads import powerset_targets
from skseg.model import SegmentationModel
from skseg.network import PyanNet
from skseg.powerset import Powerset
from skseg.serialization import read_config
from skseg.training import (
    FIRM_COMPARISON,
    MIN_STEPS_PER_EPOCH,
    SegmentationTrainer,
    TrainingError,
    better_fraction,
    chunk_targets,
    segmentation_loss,
)


def _halves(sample):
    """The sample as two files: its first and its second 15 s."""
    return [
        dict(sample, uri="first", annotated=Timeline([Segment(0, 15)])),
        dict(sample, uri="second", annotated=Timeline([Segment(15, 30)])),
    ]


def _tiny(seed=0):
    torch.manual_seed(seed)
    net = PyanNet(
        lstm={"hidden_size": 16, "num_layers": 1},
        linear={"hidden_size": 16, "num_layers": 1},
    )
    return SegmentationModel(net, Specifications(), "")


def _weights(model):
    return {k: v.clone() for k, v in model.network.state_dict().items()}


def _equal(a, b, prefix=""):
    return all(torch.equal(a[k], b[k]) for k in a if k.startswith(prefix))


def test_same_seed_same_weights(sample):
    def run(seed):
        trainer = SegmentationTrainer(
            max_epochs=1,
            steps_per_epoch=2,
            batch_size=1,
            validation_fraction=0,
            random_state=seed,
        )
        return _weights(trainer.fit([sample]).model_)

    before = torch.random.get_rng_state()
    a, b, c = run(0), run(0), run(1)
    assert _equal(a, b)
    assert not _equal(a, c)
    # dropout was seeded in a forked generator: the caller's is untouched
    assert torch.equal(before, torch.random.get_rng_state())
    assert not _equal(a, _weights(load_model()))  # and it did train


def test_loss_decreases_when_overfitting(sample):
    losses = []
    file = dict(sample, annotated=Timeline([Segment(0, 10)]))
    SegmentationTrainer(
        _tiny(),
        max_epochs=1,
        steps_per_epoch=30,
        batch_size=2,
        lr=1e-2,
        freeze="sincnet",  # the fixed filterbank spares most of the backward pass
        mix_probability=0.0,
        validation_fraction=0,
        random_state=0,
    ).fit([file], callback=lambda p: losses.append(p.loss))
    assert len(losses) == 31  # 30 steps, then the epoch's mean
    assert np.mean(losses[-6:-1]) < 0.8 * np.mean(losses[:5])


def test_chunk_targets_keep_the_most_talkative(model):
    reference = Annotation()
    turns = {"A": (0.0, 0.5), "B": (0.0, 4.0), "C": (1.0, 3.0), "D": (2.0, 5.0)}
    for label, (start, end) in turns.items():
        reference[Segment(start, end)] = label
    targets, labels = chunk_targets(reference, 0.0, model)
    assert labels == ["B", "D", "C"]
    assert targets.shape == (293, 3)
    active = targets.sum(axis=0)
    assert active[0] > active[1] > active[2] > 0
    # a chunk of one speaker is padded with inactive ones
    targets, labels = chunk_targets(reference, 4.5, model)
    assert labels == ["D", None, None] and targets[:, 1:].sum() == 0


def test_chunks_with_more_speakers_than_outputs_are_counted(sample):
    reference = Annotation(uri="sample")
    for t in range(30):  # four speakers in every 5 s chunk
        reference[Segment(t, t + 1)] = "ABCD"[t % 4]
    trainer = SegmentationTrainer(
        _tiny(),
        max_epochs=1,
        steps_per_epoch=2,
        batch_size=2,
        mix_probability=0.0,
        validation_fraction=0,
        random_state=0,
    ).fit([sample], [reference])
    assert trainer.history_[0]["truncated_chunks"] == 4


def _wrecking(**params):
    """A trainer whose learning rate wrecks the network, validated on a half."""
    return SegmentationTrainer(
        **{
            "steps_per_epoch": 1,
            "batch_size": 2,
            "lr": 1.0,
            "validation_fraction": 0.5,
            "random_state": 0,
            **params,
        }
    )


def test_early_stopping_restores_the_best_weights(sample):
    # a learning rate that wrecks the network: validation only gets worse
    trainer = _wrecking(
        max_epochs=4,
        patience=1,
        early_stopping=True,  # 15 s of validation: "auto" would not stop early
    ).fit(_halves(sample))
    assert trainer.stopped_ == "early_stopping"
    assert trainer.best_epoch_ == 0 and len(trainer.history_) == 1
    assert trainer.history_[0]["validation"] > trainer.best_score_
    assert _equal(_weights(trainer.model_), _weights(load_model()))
    assert trainer.model_.sha256 != load_model().sha256  # keyed by its own weights
    assert len(trainer.train_files_) == len(trainer.validation_files_) == 1


def test_explicit_validation_set(sample):
    first, second = _halves(sample)
    progress = []
    trainer = SegmentationTrainer(
        _tiny(), max_epochs=2, steps_per_epoch=1, batch_size=2, random_state=0
    ).fit([first], validation=([second], None), callback=progress.append)
    epochs = [p for p in progress if p.event == "epoch"]
    assert [p.epoch for p in epochs] == [1, 2]
    assert all(p.validation is not None and p.best is not None for p in epochs)
    assert trainer.validation_files_ == [sample["audio"]]
    assert epochs[-1].time_left == 0.0


def test_keyboard_interrupt_keeps_the_best_weights(sample, tmp_path):
    def interrupt(progress):
        if progress.step == 1:
            raise KeyboardInterrupt

    trainer = SegmentationTrainer(
        max_epochs=2, steps_per_epoch=2, batch_size=1, validation_fraction=0.5
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(_halves(sample), callback=interrupt)
    assert trainer.stopped_ == "interrupted" and trainer.n_steps_ == 1
    assert _equal(_weights(trainer.model_), _weights(load_model()))
    # what a CLI does before exiting with 130
    path = trainer.save(tmp_path / "interrupted")
    assert read_config(path)["provenance"]["stopped"] == "interrupted"


def test_nan_loss_stops_with_a_clear_error(sample):
    model = _tiny()
    with torch.no_grad():  # inputs scaled past float32: NaN outputs at once
        model.network.sincnet.wav_norm1d.weight.fill_(3e38)
    trainer = SegmentationTrainer(
        model, max_epochs=1, steps_per_epoch=2, batch_size=2, validation_fraction=0
    )
    with pytest.raises(TrainingError, match="step 1: the loss is nan"):
        trainer.fit([sample])
    assert trainer.stopped_ == "nan" and trainer.n_steps_ == 0
    assert _equal(_weights(trainer.model_), _weights(model))


def test_file_without_reference_is_named(sample):
    with pytest.raises(FileError, match="no reference") as e:
        SegmentationTrainer(validation_fraction=0).fit([{"audio": sample["audio"]}])
    assert sample["audio"] in str(e.value)
    with pytest.raises(ValueError, match="X has 1 files but y has 2"):
        SegmentationTrainer().fit([sample], [sample["annotation"]] * 2)


def test_short_annotated_regions_are_skipped_with_a_warning(sample):
    short = dict(sample, uri="short", annotated=Timeline([Segment(0, 3)]))
    with pytest.warns(UserWarning, match="skipped, no annotated region is as long"):
        with pytest.raises(ValueError, match="no training file"):
            SegmentationTrainer(validation_fraction=0).fit([short])
    good = dict(sample, audio=sample["audio"], uri="good")
    with pytest.warns(UserWarning, match=sample["audio"]):
        trainer = SegmentationTrainer(
            _tiny(),
            max_epochs=1,
            steps_per_epoch=1,
            batch_size=1,
            validation_fraction=0,
            random_state=0,
        ).fit([short, good])
    assert trainer.train_files_ == [sample["audio"]]


def test_validation_split_needs_two_files(sample):
    with pytest.raises(ValueError, match="needs at least 2 usable files"):
        SegmentationTrainer(validation_fraction=0.2).fit([sample])


def test_base_checkpoint_of_another_architecture(tmp_path, sample):
    path = tmp_path / "other.ckpt"
    torch.save(
        {
            "state_dict": {"classifier.weight": torch.zeros(7, 128)},
            "pyannote.audio": {
                "architecture": {
                    "module": "pyannote.audio.models.segmentation",
                    "class": "SSeRiouSS",
                }
            },
        },
        path,
    )
    with pytest.raises(CheckpointError, match="SSeRiouSS is not supported"):
        SegmentationTrainer(path, validation_fraction=0).fit([sample])


@pytest.mark.parametrize(
    "params, message",
    [
        ({"freeze": "encoder"}, "freeze must be None or one of"),
        ({"vad_loss": "l1"}, "vad_loss must be"),
        ({"lr": 0}, "lr must be a positive number"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"mix_probability": 2}, "mix_probability must be in"),
        ({"validation_fraction": 1.0}, "validation_fraction must be in"),
        ({"freeze": "classifier"}, "leaves nothing to train"),
        ({"segmentation": 3}, "segmentation must be a path"),
        ({"l2_sp": -1.0}, "l2_sp must be a number >= 0"),
        ({"early_stopping": "yes"}, "early_stopping must be 'auto', True or False"),
        ({"keep_start_if_worse": "no"}, "keep_start_if_worse must be True or False"),
    ],
)
def test_bad_parameters(sample, params, message):
    trainer = SegmentationTrainer(**{"validation_fraction": 0, **params})
    with pytest.raises((ValueError, TypeError), match=message):
        trainer.fit([sample])


def test_freeze_keeps_the_early_blocks(sample):
    base = _weights(load_model())
    trainer = SegmentationTrainer(
        freeze="lstm",
        vad_loss="bce",
        max_epochs=1,
        steps_per_epoch=1,
        batch_size=2,
        lr=1e-2,
        validation_fraction=0,
        random_state=0,
    ).fit([sample])
    tuned = _weights(trainer.model_)
    assert _equal(tuned, base, "sincnet.") and _equal(tuned, base, "lstm.")
    assert not _equal(tuned, base, "classifier.")
    assert all(p.requires_grad for p in trainer.model_.parameters())


def test_the_fine_tuned_network_serves_the_estimators(sample, tmp_path):
    trainer = SegmentationTrainer(
        _tiny(), max_epochs=1, steps_per_epoch=1, batch_size=2, random_state=0
    )
    trainer.set_params(validation_fraction=0)
    assert clone(trainer).get_params()["max_epochs"] == 1
    trainer.fit([sample])
    path = trainer.save(tmp_path / "net")
    with pytest.raises(FileError, match="already exists"):
        trainer.save(path)
    assert load_model(path).sha256 == trainer.model_.sha256
    config = read_config(path)
    assert config["provenance"]["base_sha256"] == ""
    assert len(config["provenance"]["train_data_sha256"]) == 64
    assert config["provenance"]["training_parameters"]["batch_size"] == 2
    assert isinstance(
        VADEstimator(segmentation=path).fit().predict([sample])[0], Annotation
    )


def test_mixing_every_chunk_of_large_batches(sample):
    # every chunk mixed, partners that were themselves mixed earlier in the batch
    trainer = SegmentationTrainer(
        _tiny(),
        max_epochs=1,
        steps_per_epoch=3,
        batch_size=8,
        freeze="sincnet",
        mix_probability=1.0,
        validation_fraction=0,
        random_state=0,
    ).fit(_halves(sample))
    assert trainer.n_steps_ == 3 and np.isfinite(trainer.history_[0]["train_loss"])


# -- powerset networks (pyannote/segmentation-3.0) ---------------------------------


def _tiny_powerset(seed=0):
    torch.manual_seed(seed)
    net = PyanNet(
        lstm={"hidden_size": 16, "num_layers": 1},
        linear={"hidden_size": 16, "num_layers": 1},
        num_classes=7,
        activation="log_softmax",
    )
    return SegmentationModel(
        net, Specifications(problem="mono-label", powerset=True), ""
    )


def test_powerset_loss_matches_a_hand_computed_reference():
    torch.manual_seed(0)
    # the network's most probable class per frame: {1}, {1}, {1, 2}, {}, {}
    argmax = [2, 2, 6, 0, 0]
    logits = torch.randn(1, 5, 7)
    logits[0, range(5), argmax] += 5.0
    log_probs = torch.log_softmax(logits, dim=-1)
    # reference speakers a, b, c; frame 4 has all three (more than 2 per frame)
    target = torch.tensor(
        [[[1, 0, 0], [1, 0, 0], [1, 0, 1], [0, 1, 0], [1, 1, 1]]], dtype=torch.float32
    )
    # by hand: output 1 is a (cost 1/5), output 2 is c (1/5), output 0 is b
    # (2/5), the only assignment of cost 4/5; the permuted targets per frame are
    # {1}, {1}, {1, 2}, {0}, {0, 1, 2} -> classes 2, 2, 6, 1 and, for three
    # speakers, the first pair sharing two of them: {0, 1}, class 4
    ps = Powerset(3, 2)
    assert powerset_targets(log_probs, target, ps).tolist() == [[2, 2, 6, 1, 4]]
    # warm-up: the first frame has weight 0
    expected = (
        -(
            log_probs[0, 1, 2]
            + log_probs[0, 2, 6]
            + log_probs[0, 3, 1]
            + log_probs[0, 4, 4]
        )
        / 4
    )
    loss = segmentation_loss(log_probs, target, warm_up=(1, 0), powerset=ps)
    assert torch.allclose(loss, expected)
    with pytest.raises(ValueError, match="vad_loss cannot be used with a powerset"):
        segmentation_loss(log_probs, target, powerset=ps, vad_loss="bce")


def test_powerset_fine_tuning_reduces_the_loss(sample):
    losses = []
    file = dict(sample, annotated=Timeline([Segment(0, 10)]))  # one 10 s chunk
    base = load_model("pyannote/segmentation-3.0")
    trainer = SegmentationTrainer(
        base,
        max_epochs=1,
        steps_per_epoch=6,
        batch_size=1,
        lr=1e-2,
        freeze="lstm",
        mix_probability=0.0,
        validation_fraction=0,
        random_state=0,
    ).fit([file], callback=lambda p: losses.append(p.loss))
    assert np.mean(losses[3:6]) < 0.8 * np.mean(losses[:2])
    model = trainer.model_
    assert model.head.powerset == Powerset(3, 2)
    assert model.network.activation == "log_softmax"
    with torch.inference_mode():
        out = model(torch.zeros(1, 1, 160000))
    assert torch.allclose(out.exp().sum(-1), torch.ones(1, out.shape[1]))
    # the base was copied, not trained in place
    assert not _equal(_weights(base), _weights(model), "classifier")


def test_powerset_training_is_deterministic_and_validated(sample):
    def run(seed, validation_fraction=0.0):
        return SegmentationTrainer(
            _tiny_powerset(),
            max_epochs=1,
            steps_per_epoch=2,
            batch_size=4,
            freeze="sincnet",
            mix_probability=1.0,  # mixing keeps at most 3 speakers per chunk
            validation_fraction=validation_fraction,
            random_state=seed,
        ).fit(_halves(sample))

    a, b, c = (_weights(run(seed).model_) for seed in (0, 0, 1))
    assert _equal(a, b) and not _equal(a, c)
    # early stopping on the DER of the hard speakers (argmax class) at 0.5: an
    # untrained network's false alarms take it past 1, which the multi-label
    # optimal threshold (whose grid includes "no speech", DER 1) never does
    trainer = run(0, validation_fraction=0.5)
    record = trainer.history_[0]
    assert np.isfinite(record["validation"]) and record["validation"] > 1.0
    assert np.isfinite(record["validation_loss"]) and record["validation_loss"] > 0
    assert trainer.best_score_ <= record["validation"]


def test_powerset_refuses_vad_loss(sample):
    with pytest.raises(ValueError, match="vad_loss='bce' cannot be used with a power"):
        SegmentationTrainer(
            _tiny_powerset(), vad_loss="bce", validation_fraction=0
        ).fit([sample])


def test_a_fine_tuned_powerset_network_serves_the_estimators(sample, tmp_path):
    trainer = SegmentationTrainer(
        _tiny_powerset(),
        max_epochs=1,
        steps_per_epoch=1,
        batch_size=2,
        validation_fraction=0,
        random_state=0,
    ).fit([sample])
    path = trainer.save(tmp_path / "net")
    loaded = load_model(path)
    assert loaded.head.powerset == Powerset(3, 2)
    x = torch.randn(1, 1, 80000)
    with torch.inference_mode():
        assert torch.equal(loaded(x), trainer.model_(x))
    vad = VADEstimator(segmentation=path).fit()
    assert vad.rule_ == "powerset-hard"
    assert isinstance(vad.predict([sample])[0], Annotation)


def test_a_network_not_better_than_the_start_is_not_kept(sample, tmp_path):
    # a learning rate that wrecks the network: training cannot help
    trainer = _wrecking(max_epochs=2).fit(_halves(sample))
    assert trainer.kept_ == "start" and trainer.improved_ is False
    assert trainer.trained_score_ > trainer.start_score_ == trainer.best_score_
    assert trainer.best_epoch_ == 0 and len(trainer.history_) == 2
    assert _equal(_weights(trainer.model_), _weights(load_model()))
    assert trainer.decision_.startswith("kept the starting network, the fine-tuned")
    provenance = read_config(trainer.save(tmp_path / "net"))["provenance"]
    assert provenance["kept"] == "start" and provenance["improved"] is False
    assert provenance["start_validation_der"] == trainer.start_score_
    assert provenance["decision"] == trainer.decision_
    # how firm the comparison was is recorded and said
    assert provenance["better_fraction"] == trainer.better_fraction_
    assert 0.0 <= trainer.better_fraction_ < 0.5
    assert "resamples of the 3 validation chunks (0.2 min)" in trainer.decision_


def test_keeping_a_worse_network_is_explicit_and_warned(sample):
    trainer = _wrecking(max_epochs=1, keep_start_if_worse=False)
    with pytest.warns(UserWarning, match="although it is not better"):
        trainer.fit(_halves(sample))
    assert trainer.kept_ == "trained" and trainer.improved_ is False
    assert trainer.best_epoch_ == 1 and trainer.best_score_ == trainer.trained_score_
    assert not _equal(_weights(trainer.model_), _weights(load_model()))


def _learn_by_heart(sample):
    """A random tiny network trained on the file it is validated on."""
    return SegmentationTrainer(
        _tiny(),
        max_epochs=3,
        steps_per_epoch=30,
        batch_size=4,
        lr=3e-2,
        mix_probability=0.0,  # the file as it is, to be learnt by heart
        random_state=0,
    ).fit([sample], validation=([sample], None))


def test_a_better_network_is_kept(sample):
    # a random tiny network learns the file it is validated on
    trainer = _learn_by_heart(sample)
    assert trainer.improved_ is True and trainer.kept_ == "trained"
    assert trainer.best_score_ == trainer.trained_score_ < trainer.start_score_
    assert trainer.decision_.startswith("kept the fine-tuned network:")
    assert trainer.better_fraction_ >= FIRM_COMPARISON


def test_a_gain_within_the_noise_is_not_kept(sample, monkeypatch):
    # a lower validation error, but not on 95 % of the resamples of the
    # validation chunks (the figure is set: how close training gets to the
    # threshold depends on the platform's arithmetic)
    monkeypatch.setattr("skseg.training.better_fraction", lambda *a, **k: 0.8)
    trainer = _learn_by_heart(sample)
    assert trainer.trained_score_ < trainer.start_score_
    assert trainer.better_fraction_ == 0.8
    assert trainer.improved_ is False and trainer.kept_ == "start"
    assert trainer.decision_.startswith(
        "kept the starting network, the fine-tuned one is not firmly better"
    )
    assert "within the noise" in trainer.decision_


def test_small_validation_sets_do_not_stop_early(sample):
    trainer = _wrecking(max_epochs=3, patience=1).fit(_halves(sample))
    # 15 s of validation chunks: every epoch runs, the last one is the candidate
    assert trainer.early_stopping_ is False and trainer.validation_duration_ == 15.0
    assert len(trainer.history_) == 3 and trainer.stopped_ == "max_epochs"
    assert trainer.trained_score_ == trainer.history_[-1]["validation"]


def test_a_default_epoch_has_a_floor_of_steps(sample):
    # 30 s is 6 chunks, 3 batches of 2: pyannote's epoch would be 3 steps
    trainer = SegmentationTrainer(
        _tiny(), max_epochs=1, batch_size=2, validation_fraction=0, random_state=0
    ).fit([sample])
    assert trainer.n_steps_ == MIN_STEPS_PER_EPOCH == 16
    assert trainer.kept_ == "trained" and trainer.improved_ is None
    assert trainer.better_fraction_ is None


def test_l2_sp_holds_the_weights_near_the_start(sample):
    def distance(l2_sp):
        start = _weights(_tiny())
        trainer = SegmentationTrainer(
            _tiny(),
            max_epochs=1,
            steps_per_epoch=8,
            batch_size=2,
            lr=1e-2,
            l2_sp=l2_sp,
            validation_fraction=0,
            random_state=0,
        ).fit([sample])
        trained = _weights(trainer.model_)
        return sum(float(((trained[k] - start[k]) ** 2).sum()) for k in start)

    assert 0 < distance(10.0) < 0.5 * distance(0.0)


def test_comparison_firmness_grows_with_the_validation_set():
    # the trained network is better by 1 point of error on average, chunk by
    # chunk it is better or worse by 10: few chunks cannot tell, many can
    rng = np.random.default_rng(0)

    def fraction(n):
        speech = np.full(n, 100.0)
        start = rng.uniform(10, 30, (n, 1))
        trained = start - 1 + np.where(np.arange(n) % 2, 10.0, -10.0)[:, None]
        return better_fraction(start, trained, speech, random_state=0)

    few, many = fraction(12), fraction(4000)
    assert 1 - FIRM_COMPARISON < few < FIRM_COMPARISON
    assert many >= FIRM_COMPARISON


def test_comparison_resamples_each_network_at_its_own_threshold():
    # start: best at threshold 0 (error 10); trained: best at threshold 1 (9)
    speech = np.full(50, 100.0)
    start = np.tile([10.0, 50.0], (50, 1))
    trained = np.tile([50.0, 9.0], (50, 1))
    assert better_fraction(start, trained, speech, random_state=1) == 1.0
    assert better_fraction(trained, start, speech, random_state=1) == 0.0
    # no difference is not an improvement
    assert better_fraction(start, start, speech) == 0.0
    # the same seed, the same figure
    noisy = trained + np.random.default_rng(0).normal(0, 5, trained.shape)
    assert better_fraction(start, noisy, speech, random_state=3) == better_fraction(
        start, noisy, speech, random_state=3
    )


@pytest.mark.parametrize(
    "shapes, message",
    [
        (((3, 2), (3, 1), (3,)), "do not match"),
        (((3, 2), (3, 2), (4,)), "do not match"),
        (((0, 2), (0, 2), (0,)), "no validation chunks"),
    ],
)
def test_comparison_refuses_mismatched_arrays(shapes, message):
    a, b, c = (np.zeros(shape) for shape in shapes)
    with pytest.raises(ValueError, match=message):
        better_fraction(a, b, c)


def test_chunk_errors_add_up_to_the_validation_error():
    # the comparison's terms are the validation error's: summed over the
    # chunks, the error at the best threshold is the one reported
    model = load_model()
    frames = model.num_frames(80000)
    x = torch.randn(5, 1, 80000, generator=torch.Generator().manual_seed(0)) * 0.1
    y = torch.rand(5, frames, 3, generator=torch.Generator().manual_seed(1)) > 0.6
    trainer = SegmentationTrainer(batch_size=2)  # 3 batches: 2 + 2 + 1
    der, _, errors, speech = trainer._validate(
        model.network, x, y.float(), (0, 0), torch.device("cpu"), model.head
    )
    assert errors.shape == (5, 51) and speech.shape == (5,)
    assert speech.sum() == float(y.sum())
    assert der == (errors.sum(axis=0) / speech.sum()).min()
