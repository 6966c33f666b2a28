"""Fine-tuning in the annotation loops: FineTuner, Prodigy's model in the loop,
Label Studio's backend and ``skseg labelstudio serve --finetune``.

Without a live Prodigy or Label Studio: the recipe's components and the backend
are driven directly, as in test_recipes.py and test_labelstudio_backend.py. Each
fine-tuning is one step of two chunks on the sample.
"""

import shutil

import pytest
from pyannote.core import Segment

from skseg import VADEstimator, load_model
from skseg.annotation import annotation_to_spans, make_tasks
from skseg.annotation.backend import LabelStudioBackend
from skseg.annotation.recipes import RECIPES, correct_recipe
from skseg.cli import main
from skseg.model import SegmentationModel
from skseg.references import speech_reference
from skseg.training import FineTuner, SegmentationTrainer

# the fast tier (make test-fast) leaves this module out: it fine-tunes the network in the annotation loops
pytestmark = pytest.mark.slow

PARAMS = {"onset": 0.5, "offset": 0.5, "min_duration_on": 0.0, "min_duration_off": 0.0}
GRID = {
    "onset": [0.4, 0.6],
    "offset": [0.4],
    "min_duration_on": [0.0],
    "min_duration_off": [0.0],
}


def _tiny_fine_tuner(**kwargs):
    return FineTuner(
        SegmentationTrainer(
            max_epochs=1, steps_per_epoch=1, batch_size=2, lr=1e-2, random_state=0
        ),
        **kwargs,
    )


def _corrections(sample, tasks):
    speech = speech_reference(sample["annotation"])
    return [
        dict(
            t,
            answer="accept",
            audio_spans=annotation_to_spans(
                speech, Segment(t["meta"]["start"], t["meta"]["end"])
            ),
        )
        for t in tasks
    ]


def test_fine_tuner_starts_every_call_from_the_same_network(sample):
    fine_tune = _tiny_fine_tuner()
    first = fine_tune(VADEstimator(), [sample], [sample["annotation"]])
    network = first.segmentation
    assert isinstance(network, SegmentationModel)
    assert network.weights_digest != load_model().weights_digest
    # the second call starts again from the pretrained network, not from `network`
    second = fine_tune(first, [sample], [sample["annotation"]])
    assert fine_tune.base_ == "pyannote/segmentation"
    assert second.segmentation.weights_digest == network.weights_digest
    assert [h["n_files"] for h in fine_tune.history_] == [1, 1]
    assert fine_tune.history_[0]["stopped"] == "max_epochs"


def test_model_in_the_loop_pre_annotates_with_the_fine_tuned_network(sample):
    estimator = VADEstimator(**PARAMS)
    components = correct_recipe(
        "ds",
        [sample],
        estimator=estimator,
        chunk=5.0,
        audio="none",
        retune_every=2,
        param_grid=GRID,
    )
    stream, loop = components["stream"], components["loop"]
    loop.fine_tune = fine_tune = _tiny_fine_tuner()
    components["update"](_corrections(sample, [next(stream), next(stream)]))
    assert loop.failures == []
    (entry,) = loop.history
    network = fine_tune.trainer_.model_
    assert estimator.segmentation is network
    assert entry["weights_digest"] == network.weights_digest
    assert network.weights_digest != load_model().weights_digest
    assert fine_tune.trainer_.train_files_ == [sample["audio"]]
    # the next tasks are pre-annotated by the adapted network and new thresholds
    later = [t["audio_spans"] for t in stream]
    expected = make_tasks(
        VADEstimator(segmentation=network, **entry["best_params"]),
        [sample],
        chunk=5.0,
        audio="none",
    )
    assert later == [t["audio_spans"] for t in list(expected)[2:]]


def test_a_failed_fine_tuning_keeps_the_network_and_thresholds(sample):
    estimator = VADEstimator(**PARAMS)
    components = correct_recipe(
        "ds", [sample], estimator=estimator, chunk=2.0, audio="none", retune_every=1
    )
    components["loop"].fine_tune = _tiny_fine_tuner()
    # a 2 s correction: no region as long as the model's 5 s chunks
    with pytest.warns(UserWarning, match="no annotated region is as long"):
        components["update"](_corrections(sample, [next(components["stream"])]))
    (message,) = components["loop"].failures
    assert message.startswith("fine-tuning on 1 corrections failed: ")
    assert "as long as a 5 s chunk" in message
    assert estimator.get_params(deep=False) == VADEstimator(**PARAMS).get_params(
        deep=False
    )


def test_the_segment_recipe_offers_fine_tuning():
    arguments = [p.name for p in RECIPES["skseg.segment.correct"].parameters()]
    assert "fine_tune_epochs" in arguments
    assert "fine_tune_epochs" not in [
        p.name for p in RECIPES["skseg.vad.correct"].parameters()
    ]
    loop = correct_recipe("ds", [], task="segment", retune_every=5, fine_tune_epochs=2)[
        "loop"
    ]
    assert isinstance(loop.fine_tune, FineTuner)
    assert loop.fine_tune.trainer.max_epochs == 2
    assert correct_recipe("ds", [], retune_every=5)["loop"].fine_tune is None


@pytest.fixture
def root(tmp_path, sample):
    (tmp_path / "calls").mkdir()
    shutil.copy(sample["audio"], tmp_path / "calls" / "sample.wav")
    return tmp_path


def test_the_label_studio_backend_serves_the_fine_tuned_network(root):
    task = {
        "id": 1,
        "data": {
            "audio": "/data/local-files/?d=calls/sample.wav",
            "uri": "sample",
            "start": 0.0,
            "end": 30.0,
        },
    }
    result = [
        {
            "from_name": "label",
            "to_name": "audio",
            "type": "labels",
            "value": {"start": s, "end": e, "channel": 0, "labels": ["SPEECH"]},
        }
        for s, e in [(6.7, 7.2), (7.5, 21.5)]
    ]
    event = {
        "action": "ANNOTATION_CREATED",
        "task": task,
        "annotation": {"result": result, "was_cancelled": False},
    }
    fine_tune = _tiny_fine_tuner()
    backend = LabelStudioBackend(
        VADEstimator(**PARAMS), document_root=root, param_grid=GRID, fine_tune=fine_tune
    )
    before = backend.model_version
    entry = backend.annotation_event(event)
    assert backend.failures == []
    assert backend.estimator_.segmentation is fine_tune.trainer_.model_
    assert entry["model_version"] == backend.model_version != before
    (prediction,) = backend.predict([task])
    assert prediction["model_version"] == backend.model_version


def test_serve_finetune_wires_a_fine_tuner(monkeypatch, capsys):
    import skseg.annotation.labelstudio_server as server

    served = []
    monkeypatch.setattr(server, "serve", lambda backend, **kw: served.append(backend))
    args = ["labelstudio", "serve", "segment", "--finetune", "--finetune-epochs", "2"]
    assert main([*args, "--segmentation", "pyannote/segmentation"]) == 0
    (backend,) = served
    assert isinstance(backend.fine_tune, FineTuner)
    assert backend.fine_tune.trainer.max_epochs == 2
    assert backend.fine_tune.base == "pyannote/segmentation"
    assert "fine-tuning on annotations" in capsys.readouterr().err
    for bad, message in [
        (["vad", "--finetune"], "--finetune learns speaker turns"),
        (["segment", "--finetune", "--no-retune"], "drop --no-retune"),
    ]:
        with pytest.raises(SystemExit) as exit:
            main(["labelstudio", "serve", *bad])
        assert exit.value.code == 2
        assert message in capsys.readouterr().err


def test_fine_tuner_keeps_the_start_when_training_does_not_help(sample):
    from pyannote.core import Timeline

    halves = [
        dict(sample, uri="first", annotated=Timeline([Segment(0, 15)])),
        dict(sample, uri="second", annotated=Timeline([Segment(15, 30)])),
    ]
    # lr 1 wrecks the network: the held-out half says so
    fine_tune = FineTuner(
        SegmentationTrainer(
            max_epochs=1,
            steps_per_epoch=1,
            batch_size=2,
            lr=1.0,
            validation_fraction=0.5,
            random_state=0,
        )
    )
    vad = fine_tune(VADEstimator(), halves, [sample["annotation"]] * 2)
    assert vad.segmentation == fine_tune.base_ == "pyannote/segmentation"
    entry = fine_tune.history_[0]
    assert entry["kept"] == "start" and entry["improved"] is False
    assert entry["decision"].startswith("kept the starting network")
    assert entry["better_fraction"] == fine_tune.trainer_.better_fraction_ < 0.5
