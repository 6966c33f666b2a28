"""Output heads: a third encoding is one class plus one registry line.

The toy head below (mono-label over non-speech and each single speaker) is
defined and registered here only; it runs through build_model, the estimators,
saving and loading, one training step and streaming without any other change.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skseg import OSDEstimator, VADEstimator
from skseg.checkpoint import Specifications
from skseg.heads import (
    HEADS,
    OutputHead,
    Reduction,
    head_for,
    named_reduction,
    permutate,
    register_head,
)
from skseg.model import build_model
from skseg.network import PyanNet
from skseg.serialization import load_network, read_config, save_model
from skseg.streaming import stream
from skseg.training import SegmentationTrainer

CALLS = {"loss": 0, "speakers": 0}


def _speech(x):
    return np.float32(1.0) - np.exp(x[..., :1].astype(np.float32))


def _overlap(x):
    return np.zeros(x.shape[:-1] + (1,), dtype=np.float32)


def _speakers(x):
    return np.exp(x[..., 1:].astype(np.float32))


@register_head
class ExclusiveHead(OutputHead):
    name = "exclusive"
    activation = "log_softmax"
    problem = "mono-label"
    rules = ("exclusive",)

    def __init__(self, num_speakers):
        self.n = int(num_speakers)

    num_outputs = property(lambda self: self.n + 1)
    num_speakers = property(lambda self: self.n)

    @classmethod
    def from_specifications(cls, specifications, num_outputs, entries=None):
        cls.check_problem(specifications)
        if num_outputs != len(specifications.classes) + 1:
            raise ValueError("one output per speaker plus non-speech")
        return cls(num_outputs - 1)

    def config(self):
        return {"name": self.name, "num_speakers": self.n}

    def thresholds(self, onset, offset, default):
        onset = 0.5 if onset == "auto" else onset
        offset = onset if offset in (None, "auto") else offset
        return float(onset), float(offset), "exclusive"

    def reduction(self, kind, rule=None):
        function = {"speech": _speech, "overlap": _overlap, "speakers": _speakers}
        return Reduction(f"exclusive{self.n}-{kind}", function[kind])

    def loss(self, prediction, target, weight, vad_loss=None):
        CALLS["loss"] += 1
        aligned = permutate(prediction[..., 1:].exp().detach(), target)
        classes = torch.where(aligned.sum(-1) > 0, aligned.argmax(-1) + 1, 0)
        losses = F.nll_loss(
            prediction.reshape(-1, prediction.shape[-1]),
            classes.reshape(-1),
            reduction="none",
        ).view(classes.shape)
        w = weight[..., 0]
        return (losses * w).sum() / w.sum()

    def speakers(self, prediction):
        CALLS["speakers"] += 1
        return prediction[..., 1:].exp()


SPEC = Specifications(problem="mono-label")


@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(0)
    net = PyanNet(
        lstm={"hidden_size": 8, "num_layers": 1},
        linear={"hidden_size": 8, "num_layers": 1},
        num_classes=4,
    )
    config = {
        "hyper_parameters": {**net.hparams, "num_classes": 4},
        "specifications": SPEC,
        "head": {"name": "exclusive", "num_speakers": 3},
    }
    return build_model(config, net.state_dict())


@pytest.fixture(scope="module")
def excerpt(sample_waveform):
    return {"waveform": sample_waveform[None, : 16000 * 12], "sample_rate": 16000}


def test_built_by_build_model(toy):
    assert HEADS["exclusive"] is ExclusiveHead
    assert toy.head == ExclusiveHead(3) and toy.network.activation == "log_softmax"
    assert toy.num_speakers == 3
    with torch.inference_mode():
        out = toy(torch.zeros(1, 1, 80000))
    assert torch.allclose(out.exp().sum(-1), torch.ones(1, out.shape[1]))
    # no checkpoint's specifications call for it: only a saved name does
    with pytest.raises(ValueError, match="multilabel head needs"):
        head_for(SPEC, 4)
    with pytest.raises(ValueError, match="unknown output head 'nothing'"):
        head_for(SPEC, 4, {"name": "nothing"})


def test_estimators_follow_the_head(toy, excerpt):
    vad = VADEstimator(segmentation=toy, cache=False).fit()
    assert (vad.onset_, vad.offset_, vad.rule_) == (0.5, 0.5, "exclusive")
    speech = vad.decision_function([excerpt])[0].data
    assert speech.shape[1] == 1 and np.all((0 <= speech) & (speech <= 1))
    osd = OSDEstimator(segmentation=toy, cache=False).fit()
    assert len(osd.predict([excerpt])[0]) == 0  # exclusive classes never overlap
    # a string name still keys the same cached scores
    assert named_reduction("speech") == "speech"


@pytest.mark.slow
def test_saved_loaded_and_trained(toy, excerpt, sample, tmp_path):
    folder = save_model(toy, tmp_path / "toy")
    assert read_config(folder)["head"] == {"name": "exclusive", "num_speakers": 3}
    loaded = load_network(folder)
    assert loaded.head == toy.head and loaded.weights_digest == toy.weights_digest
    ours = VADEstimator(segmentation=folder, cache=False).decision_function([excerpt])
    theirs = VADEstimator(segmentation=toy, cache=False).decision_function([excerpt])
    np.testing.assert_array_equal(ours[0].data, theirs[0].data)
    CALLS.update(loss=0, speakers=0)
    trainer = SegmentationTrainer(
        toy,
        max_epochs=1,
        steps_per_epoch=1,
        batch_size=2,
        validation_fraction=0.5,
        random_state=0,
    ).fit([dict(sample, uri="a"), dict(sample, uri="b")])
    assert CALLS["loss"] >= 1 and CALLS["speakers"] >= 1
    assert trainer.model_.head == toy.head
    assert np.isfinite(trainer.history_[0]["train_loss"])


def test_streamed(toy, excerpt):
    vad = VADEstimator(segmentation=toy, cache=False)
    live = stream(vad)
    audio = excerpt["waveform"][0]
    regions = []
    for start in range(0, len(audio), 8000):
        regions += live.feed(audio[start : start + 8000])
    regions += live.close()
    offline = vad({**excerpt, "uri": "x"})
    assert [r.segment for r in regions] == list(offline.itersegments())
