import io
import os
import pickle
import subprocess
import sys
import zipfile

import pytest
import torch

from skseg.checkpoint import load_checkpoint
from skseg.exceptions import CheckpointError, UnsafeCheckpointError
from skseg.model import SegmentationModel


def test_real_checkpoint_reads_without_foreign_packages(checkpoint_path):
    ck = load_checkpoint(checkpoint_path)
    assert (
        ck.sha256 == "0b5b3216d60a2d32fc086b47ea8c67589aaeb26b7e07fcbe620d6d0b83e209ea"
    )
    assert ck.architecture.endswith("PyanNet")
    assert ck.hyper_parameters["sincnet"]["stride"] == 10
    assert ck.hyper_parameters["lstm"]["num_layers"] == 4
    assert ck.hyper_parameters["linear"] == {"hidden_size": 128, "num_layers": 2}
    spec = ck.specifications
    assert (spec.duration, spec.problem, spec.resolution) == (
        5.0,
        "multi-label",
        "frame",
    )
    assert spec.classes == ("speaker#1", "speaker#2", "speaker#3")
    assert spec.permutation_invariant
    for name in ("omegaconf", "lightning", "pytorch_lightning", "pyannote.audio"):
        assert name not in sys.modules


def test_model_strict_load_and_size(checkpoint_path):
    model = SegmentationModel.from_pretrained(checkpoint_path)
    n_params = sum(p.numel() for p in model.network.parameters())
    assert n_params == 1_472_749  # as reported by pyannote.audio for this checkpoint
    assert set(model.network.state_dict()) == set(
        load_checkpoint(checkpoint_path).state_dict
    )
    rf = model.receptive_field
    assert (rf.start, rf.duration, rf.step) == (0.0, 991 / 16000, 270 / 16000)
    assert model.num_frames(80000) == 293


@pytest.mark.slow
def test_loading_never_imports_foreign_packages(checkpoint_path, tmp_path):
    # a process where importing omegaconf / lightning / pyannote.audio fails outright
    code = f"""
import sys
for name in ("omegaconf", "lightning", "pytorch_lightning", "pyannote.audio"):
    sys.modules[name] = None
from skseg.model import SegmentationModel
m = SegmentationModel.from_pretrained({str(checkpoint_path)!r})
print(m.num_classes)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3"


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _zip_checkpoint(path, pickled: bytes):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickled)
        z.writestr("archive/version", "3\n")
    return path


@pytest.mark.parametrize("how", ["torch.save", "handmade"])
def test_malicious_checkpoint_is_refused_and_never_runs(tmp_path, how):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    if how == "torch.save":
        torch.save(
            {"hook": _Payload(marker), "state_dict": {"w": torch.zeros(2)}}, path
        )
    else:
        _zip_checkpoint(path, pickle.dumps({"hook": _Payload(marker)}, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match=r"system") as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_refuses_builtins_eval(tmp_path):
    # GLOBAL builtins.eval + REDUCE: the classic pickle exploit, hand-assembled
    evil = b"\x80\x02cbuiltins\neval\nX\x0c\x00\x00\x00__import__()\x85R."
    path = _zip_checkpoint(tmp_path / "evil.bin", evil)
    with pytest.raises(UnsafeCheckpointError, match="builtins.eval"):
        load_checkpoint(path)


def test_truncated_checkpoint(tmp_path, checkpoint_path):
    data = checkpoint_path.read_bytes()
    bad = tmp_path / "truncated.bin"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.bin"):
        load_checkpoint(bad)


def test_missing_and_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.bin")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(1000))
    with pytest.raises(CheckpointError, match="not a torch zip archive"):
        load_checkpoint(junk)


def test_wrong_architecture_is_a_clear_error(tmp_path):
    # a checkpoint whose weights do not fit its declared hyper-parameters
    from skseg.network import PyanNet

    net = PyanNet(lstm={"hidden_size": 8, "num_layers": 1}, linear={"num_layers": 1})
    path = tmp_path / "mismatch.ckpt"
    torch.save(
        {
            "state_dict": net.state_dict(),
            "hyper_parameters": {"lstm": {"hidden_size": 16, "num_layers": 1}},
        },
        path,
    )
    with pytest.raises(CheckpointError, match="do not fit"):
        SegmentationModel.from_pretrained(path)


def test_plain_torch_save_of_a_pyannet_round_trips(tmp_path):
    from skseg.network import PyanNet

    torch.manual_seed(0)
    hp = {
        "lstm": {"hidden_size": 8, "num_layers": 1},
        "linear": {"hidden_size": 8, "num_layers": 1},
    }
    net = PyanNet(**hp).eval()
    path = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": net.state_dict(), "hyper_parameters": hp}, path)
    model = SegmentationModel.from_pretrained(path)
    x = torch.randn(2, 1, 16000)
    with torch.inference_mode():
        assert torch.equal(model(x), net(x))
    # the model pickles as CPU weights and rebuilds identically
    clone = pickle.loads(pickle.dumps(model))
    with torch.inference_mode():
        assert torch.equal(clone(x), net(x))
    assert isinstance(io.BytesIO(pickle.dumps(model)).getvalue(), bytes)
