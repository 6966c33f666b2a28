"""Saved networks: safetensors + JSON config, validated on load, no pickle."""

import json
import shutil
import struct

import numpy as np
import pytest
import soundfile as sf
import torch

from skseg import VADEstimator, load_model
from skseg.checkpoint import sha256sum
from skseg.exceptions import CheckpointError, FileError
from skseg.model import SegmentationModel
from skseg.serialization import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    is_saved_network,
    load_network,
    load_state_dict,
    model_from_state_dict,
    read_config,
    save_model,
    save_state_dict,
    weights_digest,
)


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    return save_model(
        model, tmp_path_factory.mktemp("net") / "net", provenance={"base": "x"}
    )


def _rewrite_weights(folder, state):
    """Replace the weights and record their digest, as a consistent save would."""
    save_state_dict(state, folder / WEIGHTS_NAME, {"format": "pt"})
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["weights"]["sha256"] = sha256sum(folder / WEIGHTS_NAME)
    (folder / CONFIG_NAME).write_text(json.dumps(config))


def _copy(saved, tmp_path):
    return shutil.copytree(saved, tmp_path / "copy")


def test_round_trip_gives_identical_scores(model, saved, sample):
    loaded = load_network(saved)
    assert loaded.sha256 == read_config(saved)["weights"]["sha256"]
    assert loaded.specifications == model.specifications
    assert loaded.network.hparams == model.network.hparams
    for key, value in model.network.state_dict().items():
        assert torch.equal(value, loaded.network.state_dict()[key]), key
    # the estimators accept the folder and score exactly as with the checkpoint
    wav = sf.read(sample["audio"], dtype="float32")[0][None, : 16000 * 8]
    excerpt = {"waveform": wav, "sample_rate": 16000, "uri": "excerpt"}
    ours = VADEstimator(segmentation=saved).fit().decision_function([excerpt])[0]
    theirs = VADEstimator().fit().decision_function([excerpt])[0]
    np.testing.assert_array_equal(ours.data, theirs.data)


def test_every_entry_point_accepts_the_saved_network(saved):
    shared = load_model(saved)
    assert shared is load_model(saved / WEIGHTS_NAME)  # one network per process
    assert isinstance(SegmentationModel.from_pretrained(saved), SegmentationModel)
    assert is_saved_network(saved) and is_saved_network(saved / CONFIG_NAME)
    assert shared.sha256 == weights_digest(shared.network.state_dict())


def test_save_refuses_an_existing_path(model, saved, tmp_path):
    with pytest.raises(FileError, match="already exists"):
        save_model(model, saved)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(FileError, match="not a saved network"):
        save_model(model, other, overwrite=True)
    assert (other / "keep.txt").read_text() == "mine"
    copy = _copy(saved, tmp_path)
    save_model(model, copy, provenance={"again": 1}, overwrite=True)
    assert read_config(copy)["provenance"] == {"again": 1}


def test_bad_json_names_the_folder(saved, tmp_path):
    copy = _copy(saved, tmp_path)
    (copy / CONFIG_NAME).write_text("{oops")
    with pytest.raises(CheckpointError, match="config.json is not valid JSON") as e:
        load_network(copy)
    assert str(copy) in str(e.value)


def test_missing_tensor(saved, tmp_path):
    copy = _copy(saved, tmp_path)
    state = load_state_dict(copy / WEIGHTS_NAME)
    del state["lstm.weight_ih_l0"]
    _rewrite_weights(copy, state)
    with pytest.raises(CheckpointError, match="missing tensors lstm.weight_ih_l0"):
        load_network(copy)


def test_shape_mismatch(saved, tmp_path):
    copy = _copy(saved, tmp_path)
    state = load_state_dict(copy / WEIGHTS_NAME)
    state["classifier.weight"] = torch.zeros(4, 128)
    _rewrite_weights(copy, state)
    with pytest.raises(
        CheckpointError, match=r"'classifier.weight' has shape \(4, 128\)"
    ):
        load_network(copy)


def test_non_finite_weights(saved, tmp_path):
    copy = _copy(saved, tmp_path)
    state = load_state_dict(copy / WEIGHTS_NAME)
    state["classifier.bias"] = torch.tensor([0.0, float("nan"), 0.0])
    _rewrite_weights(copy, state)
    with pytest.raises(CheckpointError, match="'classifier.bias' has NaN or infinite"):
        load_network(copy)


def test_weights_changed_after_saving(saved, tmp_path):
    copy = _copy(saved, tmp_path)
    state = load_state_dict(copy / WEIGHTS_NAME)
    state["classifier.bias"] = state["classifier.bias"] + 1
    save_state_dict(state, copy / WEIGHTS_NAME)  # the config still has the old digest
    with pytest.raises(CheckpointError, match="differs from the one in config.json"):
        load_network(copy)


def test_truncated_weights(saved, tmp_path):
    copy = _copy(saved, tmp_path)
    raw = (copy / WEIGHTS_NAME).read_bytes()
    (copy / WEIGHTS_NAME).write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="beyond the end of the file") as e:
        load_state_dict(copy / WEIGHTS_NAME)
    assert WEIGHTS_NAME in str(e.value)


def test_a_bare_safetensors_file_is_not_a_network(saved, tmp_path):
    path = save_state_dict(load_state_dict(saved / WEIGHTS_NAME), tmp_path / "w.st")
    with pytest.raises(CheckpointError, match="model_from_state_dict"):
        load_network(path)


def test_reads_the_format_as_specified(tmp_path):
    """A file laid out by hand from the format's description, not by our writer."""
    values = np.arange(6, dtype="<f4")
    header = {
        "__metadata__": {"format": "pt"},
        "b": {"dtype": "I64", "shape": [1], "data_offsets": [24, 32]},
        "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
    }
    text = json.dumps(header).encode()
    raw = struct.pack("<Q", len(text)) + text + values.tobytes()
    raw += np.array([7], dtype="<i8").tobytes()
    path = tmp_path / "spec.safetensors"
    path.write_bytes(raw)
    state = load_state_dict(path)
    assert state["a"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert state["b"].dtype == torch.int64 and state["b"].item() == 7
    # and our writer lays out the same: header length, JSON, aligned data
    ours = save_state_dict(state, path.with_suffix(".ours")).read_bytes()
    n = struct.unpack("<Q", ours[:8])[0]
    assert (8 + n) % 8 == 0
    parsed = json.loads(ours[8 : 8 + n])
    assert parsed["a"] == {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}


def test_state_dict_from_pyannote_on_a_base(model, tmp_path):
    state = {f"model.{k}": v for k, v in model.network.state_dict().items()}
    state["validation_metric.threshold"] = torch.tensor(0.5)
    path = save_state_dict(state, tmp_path / "peer.safetensors")
    loaded = model_from_state_dict(path, base=model)
    for key, value in model.network.state_dict().items():
        assert torch.equal(value, loaded.network.state_dict()[key])
    # weights of another architecture do not fit the base
    small = SegmentationModel.from_pretrained()
    bad = {k: v for k, v in small.network.state_dict().items()}
    bad["linear.0.weight"] = torch.zeros(64, 256)
    with pytest.raises(CheckpointError, match="'linear.0.weight' has shape"):
        model_from_state_dict(bad, base=model)


def test_powerset_round_trip(sample, tmp_path):
    model = load_model("pyannote/segmentation-3.0")
    folder = save_model(model, tmp_path / "net30")
    spec = read_config(folder)["specifications"]
    assert (spec["problem"], spec["powerset"], spec["powerset_max_classes"]) == (
        "mono-label",
        True,
        2,
    )
    loaded = load_network(folder)
    assert loaded.head.powerset == model.head.powerset
    assert loaded.network.activation == "log_softmax"
    x = torch.randn(2, 1, 160000)
    with torch.inference_mode():
        assert torch.equal(loaded(x), model(x))
    wav = sf.read(sample["audio"], dtype="float32")[0][None, : 16000 * 12]
    excerpt = {"waveform": wav, "sample_rate": 16000, "uri": "excerpt"}
    for segmentation in (folder, loaded):
        vad = VADEstimator(segmentation=segmentation).fit()
        assert vad.rule_ == "powerset-hard"
        ours = vad.decision_function([excerpt])[0]
        theirs = VADEstimator(segmentation="pyannote/segmentation-3.0").fit()
        np.testing.assert_array_equal(
            ours.data, theirs.decision_function([excerpt])[0].data
        )
    # a config whose set size does not fit the outputs is refused
    config = json.loads((folder / CONFIG_NAME).read_text())
    config["specifications"]["powerset_max_classes"] = 3
    (folder / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="powerset_max_classes is 3"):
        load_network(folder)
