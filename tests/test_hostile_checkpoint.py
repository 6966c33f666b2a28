"""Hostile checkpoints: refused with a named CheckpointError, at bounded cost.

Each case also checks that the genuine checkpoint, loaded afterwards in the same
process, is read exactly as before (no load can poison a later one).
"""

import math
import os
import subprocess
import sys
import zipfile

import pytest
import torch

from skseg.checkpoint import MAX_DEPTH, load_checkpoint
from skseg.exceptions import CheckpointError

from .hostile import (
    Storage,
    Tensor,
    dumps,
    float_checkpoint,
    glob,
    peak_memory,
    text,
    write_checkpoint,
)


@pytest.fixture(scope="module")
def genuine(checkpoint_path):
    return {
        k: v.clone() for k, v in load_checkpoint(checkpoint_path).state_dict.items()
    }


def assert_genuine_intact(checkpoint_path, genuine):
    ck = load_checkpoint(checkpoint_path)
    assert set(ck.state_dict) == set(genuine)
    for key, tensor in ck.state_dict.items():
        assert tensor.dtype == torch.float32
        assert torch.equal(tensor, genuine[key])
    spec = ck.specifications
    assert (spec.problem, spec.resolution, spec.duration) == (
        "multi-label",
        "frame",
        5.0,
    )
    assert ck.hyper_parameters["lstm"]["hidden_size"] == 128


def refused(path, match, kind=CheckpointError):
    with pytest.raises(kind, match=match) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    return info.value


# -- the allow-list's objects cannot be changed by a load -----------------------------

_POISONS = {
    # BUILD onto the FloatStorage marker: later loads would read float32 as float64
    "marker attribute": glob("torch", "FloatStorage")
    + b"N}"
    + text("qualname")
    + text("DoubleStorage")
    + b"s\x86b.",
    # __class__ swap of the marker into an inert omegaconf node
    "marker class": glob("torch", "FloatStorage")
    + b"N}"
    + text("__class__")
    + glob("omegaconf.nodes", "AnyNode")
    + b"s\x86b.",
    # BUILD onto the shared typing.Any marker's factory: later loads call it
    "marker factory": glob("torch", "FloatStorage")
    + b"N}"
    + text("qualname")
    + text("BoolStorage")
    + b"s\x86b.",
}


@pytest.mark.parametrize("name", sorted(_POISONS))
def test_a_load_cannot_poison_later_loads(tmp_path, checkpoint_path, genuine, name):
    path = write_checkpoint(tmp_path / "poison.ckpt", b"\x80\x02" + _POISONS[name])
    refused(path, "refused to set|expected a dict")
    assert_genuine_intact(checkpoint_path, genuine)


# -- tensors: geometry and budgets checked before anything is read ------------------------


@pytest.mark.parametrize(
    "offset, size, stride, match",
    [
        (3, (2,), (1,), "views element 4 of a storage of 4"),
        (0, (2, 3), (3,), "2 sizes but 1 strides"),
        (-1, (2,), (1,), "non-negative integers"),
        (0, ("2",), (1,), "non-negative integers"),
        (0, (2,), (-1,), "non-negative integers"),
        (0, [2], [1], "must be tuples"),
        (0, (8,), (0,), "overlapping strides"),
    ],
)
def test_bad_tensor_geometry(
    tmp_path, checkpoint_path, genuine, offset, size, stride, match
):
    storage = Storage("0", 4)
    pkl = dumps({"state_dict": {"w": Tensor(storage, offset, size, stride)}})
    path = write_checkpoint(tmp_path / "geometry.ckpt", pkl, {"0": bytes(16)})
    refused(path, match)
    assert_genuine_intact(checkpoint_path, genuine)


@pytest.mark.slow
def test_a_huge_view_of_a_tiny_storage_costs_nothing(tmp_path):
    # a 4-byte storage viewed as 1 GiB with stride 0 (what torch.save writes for an
    # expanded tensor): refused before the view is copied
    path = tmp_path / "view.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1).expand(1 << 28)}}, path)
    result = peak_memory(
        f"""
        try:
            skseg.checkpoint.load_checkpoint({str(path)!r})
        except skseg.CheckpointError as e:
            result["error"] = str(e)
        """
    )
    assert str(path) in result["error"] and "overlapping strides" in result["error"]
    assert result["grown_mib"] < 64


def _bomb(path, declared_numel, inflated_mib=512):
    # a deflated storage entry that inflates to `inflated_mib` (about 0.5 MB on disk)
    pkl = dumps(
        {"state_dict": {"w": Tensor(Storage("0", declared_numel), 0, (1,), (1,))}}
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("archive/data.pkl", pkl)
        with z.open("archive/data/0", "w", force_zip64=True) as entry:
            block = bytes(1 << 20)
            for _ in range(inflated_mib):
                entry.write(block)
    return path


@pytest.mark.slow
def test_a_zip_bomb_is_refused_before_it_inflates(tmp_path):
    path = _bomb(tmp_path / "bomb.ckpt", declared_numel=1)
    assert path.stat().st_size < 4 << 20
    result = peak_memory(
        f"""
        try:
            skseg.checkpoint.load_checkpoint({str(path)!r})
        except skseg.CheckpointError as e:
            result["error"] = str(e)
        """
    )
    assert str(path) in result["error"] and "wrong size" in result["error"]
    assert result["grown_mib"] < 64


@pytest.mark.slow
def test_tensor_bytes_are_bounded_even_when_the_sizes_agree(tmp_path):
    # the storage declares its true (inflated) size: over the tensor budget
    path = _bomb(tmp_path / "bomb.ckpt", declared_numel=(512 << 20) // 4)
    result = peak_memory(
        f"""
        try:
            skseg.checkpoint.load_checkpoint({str(path)!r})
        except skseg.CheckpointError as e:
            result["error"] = str(e)
        """
    )
    assert str(path) in result["error"] and "bytes of tensors" in result["error"]
    assert result["grown_mib"] < 64


def test_an_entry_larger_than_the_file_is_refused(tmp_path):
    path = float_checkpoint(tmp_path / "liar.ckpt")
    data = bytearray(path.read_bytes())
    # central directory record of the storage entry: set its sizes to 1 GiB
    name = b"archive/data/0"
    at = data.rindex(b"PK\x01\x02", 0, data.rindex(name))
    data[at + 20 : at + 28] = (1 << 30).to_bytes(4, "little") * 2
    path.write_bytes(bytes(data))
    refused(path, "claims 1073741824 bytes, more than the whole file")


# -- the pickle itself: size, memo, nesting, shared references ---------------------------


def with_entry(path, key: str, value_ops: bytes):
    """A valid checkpoint whose top-level dict also maps ``key`` to ``value_ops``."""
    state = {"state_dict": {"w": Tensor(Storage("0", 2), 0, (2,), (1,))}}
    pkl = dumps(state)[:-1] + text(key) + value_ops + b"s."
    return write_checkpoint(path, pkl, {"0": bytes(8)})


@pytest.mark.slow
def test_memo_indices_beyond_the_pickle_are_refused(tmp_path, checkpoint_path, genuine):
    # LONG_BINPUT 2**26: CPython's unpickler would grow its memo to 512 MiB
    path = write_checkpoint(tmp_path / "memo.ckpt", b"\x80\x02]r\x00\x00\x00\x04.")
    result = peak_memory(
        f"""
        try:
            skseg.checkpoint.load_checkpoint({str(path)!r})
        except skseg.CheckpointError as e:
            result["error"] = str(e)
        """
    )
    assert str(path) in result["error"] and "memo index" in result["error"]
    assert result["grown_mib"] < 64
    refused(path, "memo index 67108864")
    assert_genuine_intact(checkpoint_path, genuine)


def test_deep_nesting_is_a_checkpoint_error(tmp_path, checkpoint_path, genuine):
    depth = 100_000
    # hyper_parameters = [[[...]]], 100k deep
    path = with_entry(
        tmp_path / "deep.ckpt", "hyper_parameters", b"]" * depth + b"a" * (depth - 1)
    )
    refused(path, f"nested deeper than {MAX_DEPTH}")
    assert_genuine_intact(checkpoint_path, genuine)


@pytest.mark.slow
def test_deep_tuple_keys_do_not_crash_the_process(tmp_path):
    # a dict key nested a million tuples deep: hashing it recursed in C and crashed
    pkl = b"\x80\x02}K\x01" + b"\x85" * 1_000_000 + b"K\x02s."
    path = write_checkpoint(tmp_path / "tuple.ckpt", pkl)
    result = peak_memory(
        f"""
        try:
            skseg.checkpoint.load_checkpoint({str(path)!r})
        except skseg.CheckpointError as e:
            result["error"] = str(e)
        """
    )
    assert str(path) in result["error"] and "nested deeper" in result["error"]


@pytest.mark.slow
def test_shared_references_are_converted_once(tmp_path):
    # hyper-parameters as a DAG of depth 60: copied as a tree, 2**60 steps
    dag = 0
    for _ in range(60):
        dag = (dag, dag)
    path = float_checkpoint(tmp_path / "dag.ckpt", hyper_parameters={"dag": dag})
    code = f"""
        hp = skseg.checkpoint.load_checkpoint({str(path)!r}).hyper_parameters
        node, depth = hp["dag"], 0
        while isinstance(node, tuple):
            assert node[0] is node[1]
            node, depth = node[0], depth + 1
        result["depth"] = depth
        """
    # a hang is a failure: the subprocess is killed after the timeout
    result = peak_memory(code, timeout=60)
    assert result["depth"] == 60
    assert result["grown_mib"] < 64


def test_shared_hyper_parameters_keep_their_values(tmp_path):
    shared = {"hidden_size": 8}
    path = float_checkpoint(
        tmp_path / "shared.ckpt",
        hyper_parameters={"lstm": shared, "linear": shared, "sample_rate": 16000},
    )
    hp = load_checkpoint(path).hyper_parameters
    assert hp["lstm"] == hp["linear"] == {"hidden_size": 8}


def test_a_cycle_is_refused(tmp_path):
    # hyper_parameters = L where L = [L]
    path = with_entry(tmp_path / "cycle.ckpt", "hyper_parameters", b"]q\x00h\x00a")
    refused(path, "cycle")


def test_an_oversized_pickle_is_refused_before_it_is_read(tmp_path):
    pkl = b"\x80\x02" + b"N0" * (3 << 20) + b"}."
    refused(write_checkpoint(tmp_path / "big.ckpt", pkl), "data.pkl has")


# -- specifications and hyper-parameters ------------------------------------------------


def _spec_checkpoint(path, **spec):
    specification = {
        "problem": 2,
        "resolution": 1,
        "duration": 5.0,
        "classes": ["a", "b", "c"],
        "warm_up": (0.0, 0.0),
        "permutation_invariant": True,
        **spec,
    }
    return float_checkpoint(
        path, **{"pyannote.audio": {"specifications": specification}}
    )


@pytest.mark.parametrize("duration", [1e5, 0.0, math.nan, -5.0, 1e-4, math.inf])
def test_implausible_durations_are_refused_at_load(tmp_path, duration):
    path = _spec_checkpoint(tmp_path / "spec.ckpt", duration=duration)
    refused(path, "duration .* outside the plausible range")


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"duration": "5"}, "duration '5' is not a number"),
        ({"duration": True}, "duration True is not a number"),
        ({"problem": 7}, "unknown specifications problem 7"),
        ({"problem": "tennis"}, "unknown specifications problem 'tennis'"),
        ({"resolution": 9}, "unknown specifications resolution 9"),
        ({"classes": "abc"}, "1 to 64 distinct names"),
        ({"classes": ["a", "a"]}, "1 to 64 distinct names"),
        ({"classes": [1, 2]}, "1 to 64 distinct names"),
        ({"classes": [str(i) for i in range(65)]}, "of length 65"),
        ({"warm_up": (1.0,)}, "warm_up must be 2 numbers"),
        ({"warm_up": (3.0, 0.0)}, "warm_up 3.0 is outside"),
        ({"permutation_invariant": "yes"}, "permutation_invariant 'yes'"),
    ],
)
def test_bad_specifications_are_refused_at_load(tmp_path, spec, match):
    refused(_spec_checkpoint(tmp_path / "spec.ckpt", **spec), match)


@pytest.mark.parametrize(
    "meta, match",
    [
        ({"versions": ["torch", "1.0"]}, "'versions' must map"),
        ({"versions": {"torch": 1}}, "'versions' must map"),
        ({"architecture": "PyanNet"}, "'architecture' must map"),
        ({"architecture": {"class": ["x"]}}, "'architecture' must map"),
    ],
)
def test_bad_metadata_is_refused(tmp_path, meta, match):
    refused(float_checkpoint(tmp_path / "meta.ckpt", **{"pyannote.audio": meta}), match)


def test_non_mapping_metadata_is_refused(tmp_path):
    refused(
        float_checkpoint(tmp_path / "meta.ckpt", **{"pyannote.audio": [1]}),
        "not a mapping",
    )


@pytest.mark.parametrize("rate", [True, 0, 10, 10**9, 16000.5, "16000"])
def test_implausible_sample_rates_are_refused(tmp_path, rate):
    path = float_checkpoint(
        tmp_path / "rate.ckpt", hyper_parameters={"sample_rate": rate}
    )
    refused(path, "sample_rate .* is not an integer in \\[1000, 384000\\]")


def test_bad_hyper_parameter_sections_are_refused(tmp_path):
    path = float_checkpoint(tmp_path / "hp.ckpt", hyper_parameters={"lstm": [1, 2]})
    refused(path, "hyper-parameter lstm .* not a mapping")
    path = float_checkpoint(tmp_path / "hp2.ckpt", hyper_parameters=[1])
    refused(path, "hyper_parameters .* not a mapping")


# -- weights --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_weights_are_refused(tmp_path, bad):
    path = float_checkpoint(tmp_path / "nan.ckpt", {"w": torch.tensor([1.0, bad])})
    refused(path, "'w' holds NaN or infinite weights")


def test_integer_weights_are_refused(tmp_path):
    path = float_checkpoint(tmp_path / "int.ckpt", {"w": torch.tensor([1, 2])})
    refused(path, "'w' is int64, not floating-point weights")
    # a batch-norm counter is an integer by nature
    ok = float_checkpoint(
        tmp_path / "bn.ckpt",
        {"bn.weight": torch.ones(2), "bn.num_batches_tracked": torch.tensor([3])},
    )
    assert load_checkpoint(ok).state_dict["bn.num_batches_tracked"].item() == 3


def test_double_weights_load_as_double(tmp_path):
    path = float_checkpoint(
        tmp_path / "f64.ckpt", {"w": torch.tensor([0.5, 2.0], dtype=torch.float64)}
    )
    assert load_checkpoint(path).state_dict["w"].tolist() == [0.5, 2.0]


def test_non_string_storage_type_and_key_are_refused(tmp_path):
    pkl = dumps({"state_dict": {"w": Tensor(Storage(7, 2), 0, (2,), (1,))}})
    refused(
        write_checkpoint(tmp_path / "key.ckpt", pkl, {"7": bytes(8)}), "needs a name"
    )
    pkl = dumps({"state_dict": {"w": Tensor(Storage("0", "2"), 0, (2,), (1,))}})
    refused(
        write_checkpoint(tmp_path / "size.ckpt", pkl, {"0": bytes(8)}),
        "non-negative size",
    )


# -- the archive and the file -------------------------------------------------------------


def test_duplicate_entry_names_are_refused(tmp_path, recwarn):
    path = float_checkpoint(tmp_path / "dup.ckpt")
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("archive/data/0", bytes(8))
    refused(path, "holds 'archive/data/0' more than once")


def test_unsupported_compression_is_refused(tmp_path):
    path = tmp_path / "bz2.ckpt"
    pkl = dumps({"state_dict": {"w": Tensor(Storage("0", 2), 0, (2,), (1,))}})
    write_checkpoint(path, pkl, {"0": bytes(8)}, compression=zipfile.ZIP_BZIP2)
    refused(path, "unsupported compression \\(method 12\\)")


def test_encrypted_entries_are_refused(tmp_path):
    path = float_checkpoint(tmp_path / "enc.ckpt")
    data = bytearray(path.read_bytes())
    at = data.rindex(b"PK\x01\x02", 0, data.rindex(b"archive/data.pkl"))
    data[at + 8] |= 1  # general purpose flag: encrypted
    path.write_bytes(bytes(data))
    refused(path, "data.pkl is encrypted")


def _load_in_subprocess(target, timeout=30):
    code = (
        "import skseg.checkpoint as c\n"
        f"try:\n    c.load_checkpoint({str(target)!r})\n"
        "except c.CheckpointError as e:\n    print(e)\n"
    )
    import skseg

    root = os.path.dirname(os.path.dirname(os.path.abspath(skseg.__file__)))
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, PYTHONPATH=root),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


@pytest.mark.slow
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "model.ckpt"
    os.mkfifo(fifo)
    message = _load_in_subprocess(fifo)
    assert message == f"{fifo}: is a FIFO, not a checkpoint (a regular file)"


@pytest.mark.slow
def test_a_device_is_refused_without_reading(tmp_path):
    message = _load_in_subprocess("/dev/zero")
    assert message == "/dev/zero: is a device, not a checkpoint (a regular file)"


def test_a_directory_is_still_named(tmp_path):
    refused(tmp_path, "is a directory")


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("lstm", "hidden_size", 10**5),
        ("lstm", "num_layers", 1000),
        ("linear", "hidden_size", -1),
        ("sincnet", "stride", "10"),
    ],
)
def test_absurd_network_sizes_are_refused_at_load(tmp_path, section, key, value):
    path = float_checkpoint(
        tmp_path / "hp.ckpt", hyper_parameters={section: {key: value}}
    )
    refused(path, f"hyper-parameter {section}.{key} .* is not an integer in")


@pytest.mark.slow
def test_hyper_parameters_that_do_not_fit_allocate_nothing(tmp_path, checkpoint_path):
    # the genuine weights, with hyper-parameters describing a 50 GB network: the
    # shapes are compared on the meta device before anything is allocated
    from skseg.model import SegmentationModel

    ck = load_checkpoint(checkpoint_path)
    path = tmp_path / "big.ckpt"
    torch.save(
        {
            "state_dict": ck.state_dict,
            "hyper_parameters": {
                **ck.hyper_parameters,
                "lstm": {"hidden_size": 4096, "num_layers": 32},
            },
        },
        path,
    )
    result = peak_memory(
        f"""
        from skseg.model import SegmentationModel
        try:
            SegmentationModel.from_pretrained({str(path)!r})
        except skseg.CheckpointError as e:
            result["error"] = str(e)
        """,
        timeout=120,
    )
    assert str(path) in result["error"] and "do not fit" in result["error"]
    assert result["grown_mib"] < 128
    assert SegmentationModel.from_pretrained(checkpoint_path).num_classes == 3


def test_two_data_pkl_under_two_prefixes_is_called_ambiguous(tmp_path):
    # two checkpoints in one archive: which one loads must not be a guess, and
    # the refusal must not claim there is no data.pkl at all
    pkl = dumps({"state_dict": {}})
    path = tmp_path / "two.ckpt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a/data.pkl", pkl)
        z.writestr("b/data.pkl", pkl)
    error = refused(path, r"holds 2 data\.pkl \('a/data\.pkl', 'b/data\.pkl'\)")
    assert "ambiguous" in str(error) and "no data.pkl" not in str(error)
