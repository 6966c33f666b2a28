"""Saved networks (model.safetensors + config.json) are never trusted.

Every refusal is one :class:`CheckpointError` naming the file; hyper-parameters,
headers and sizes are checked before anything they describe is allocated, and
the checks are measured in a subprocess.
"""

import hashlib
import json
import os
import shutil
import struct
import time

import pytest
import torch

from skseg.exceptions import CheckpointError
from skseg.serialization import (
    CONFIG_NAME,
    MAX_WEIGHTS_BYTES,
    WEIGHTS_NAME,
    load_network,
    load_state_dict,
    save_model,
)

from .hostile import peak_memory


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    return save_model(model, tmp_path_factory.mktemp("net") / "net")


def _copy(saved, tmp_path, config=None, weights=None):
    """A copy of the saved network with its config edited or its weights replaced.

    The config's digest is updated to the new weights, as a consistent (but
    hostile) writer would, so that the check under test is the one reached.
    """
    folder = shutil.copytree(saved, tmp_path / "copy")
    data = json.loads((folder / CONFIG_NAME).read_text())
    if config is not None:
        config(data)
    if weights is not None:
        (folder / WEIGHTS_NAME).write_bytes(weights)
        data["weights"]["sha256"] = hashlib.sha256(weights).hexdigest()
    (folder / CONFIG_NAME).write_text(json.dumps(data))
    return folder


def refused(path, match):
    with pytest.raises(CheckpointError, match=match) as info:
        load_network(path)
    message = str(info.value)
    assert os.fspath(path) in message and "\n" not in message
    return message


def _safetensors(header: dict, data: bytes = b"") -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


# -- hyper-parameters and specifications ----------------------------------------------


@pytest.mark.slow
def test_huge_hyper_parameters_are_refused_before_the_network_is_built(saved, tmp_path):
    # 100 M parameters (400 MB) of LSTM asked for by four numbers in config.json;
    # the weights file has 1.5 M: checked on the meta device, nothing is allocated
    def bigger(config):
        config["hyper_parameters"]["lstm"].update(hidden_size=1024, num_layers=4)

    folder = _copy(saved, tmp_path, config=bigger)
    result = peak_memory(
        f"""
        import skseg.serialization
        try:
            skseg.serialization.load_network({str(folder)!r})
        except skseg.CheckpointError as e:
            result["error"] = str(e)
        """
    )
    assert str(folder / WEIGHTS_NAME) in result["error"]
    assert "the architecture needs" in result["error"]
    assert result["grown_mib"] < 64


def test_absurd_hyper_parameters_are_refused_by_the_checkpoint_rule(saved, tmp_path):
    def absurd(config):
        config["hyper_parameters"]["lstm"]["num_layers"] = 10**6

    folder = _copy(saved, tmp_path, config=absurd)
    refused(folder / CONFIG_NAME, r"lstm\.num_layers 1000000 is not an integer")


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("duration", float("nan"), "duration nan"),
        ("duration", float("inf"), "duration inf"),
        ("duration", -5.0, "duration -5.0"),
        ("duration", 0.0, "duration 0.0"),
        ("duration", 1e9, "duration 1000000000.0"),
        ("duration", "5", "duration '5' is not a number"),
        ("warm_up", [-1.0, 0.0], "warm_up -1.0"),
        ("warm_up", [0.0, 4.0], "warm_up 4.0"),
        ("warm_up", [float("nan"), 0.0], "warm_up nan"),
        ("warm_up", [0.0], "warm_up must be 2 numbers"),
        ("classes", ["a", "a", "b"], "classes must be 1 to"),
        ("permutation_invariant", "yes", "permutation_invariant 'yes'"),
        ("problem", "regression", "unknown specifications problem"),
        ("powerset", "no", "powerset 'no' is not a bool"),
    ],
)
def test_specifications_follow_the_checkpoint_loaders_rule(
    saved, tmp_path, field, value, match
):
    def edit(config):
        config["specifications"][field] = value

    folder = _copy(saved, tmp_path, config=edit)
    message = refused(folder, match)
    assert str(folder / CONFIG_NAME) in message


# -- config.json ----------------------------------------------------------------------


@pytest.mark.slow
def test_a_huge_config_is_refused_before_it_is_read(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    with open(folder / CONFIG_NAME, "r+b") as f:
        f.truncate(2 << 30)  # sparse: 2 GB of NUL bytes announced
    result = peak_memory(
        f"""
        import skseg.serialization
        try:
            skseg.serialization.load_network({str(folder)!r})
        except skseg.CheckpointError as e:
            result["error"] = str(e)
        """
    )
    assert str(folder / CONFIG_NAME) in result["error"]
    assert "refused to read 2147483648 bytes" in result["error"]
    assert result["grown_mib"] < 16


def test_a_deeply_nested_config_is_refused(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    text = (folder / CONFIG_NAME).read_text()
    bomb = "[" * 100_000 + "]" * 100_000
    (folder / CONFIG_NAME).write_text(
        text.replace('"provenance": {}', '"provenance": ' + bomb)
    )
    assert bomb in (folder / CONFIG_NAME).read_text()
    refused(folder, "config.json is nested deeper than 100 levels")


def test_a_key_given_twice_in_the_config_is_refused(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    text = (folder / CONFIG_NAME).read_text()
    # a second duration, which a reader keeping the first and one keeping the
    # last would disagree on
    duplicated = text.replace('"duration": 5.0', '"duration": 5.0, "duration": 50.0')
    assert duplicated != text
    (folder / CONFIG_NAME).write_text(duplicated)
    refused(folder, "config.json gives 'duration' twice")


# -- model.safetensors's header -----------------------------------------------------------


@pytest.mark.slow
def test_overlapping_tensors_are_refused_before_any_is_copied(tmp_path):
    # 64 names for the same 4 MB: copying each before checking the layout made
    # 256 MB of tensors out of a 4 MB file
    size = 4 << 20
    header = {
        f"w{i}": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}
        for i in range(64)
    }
    path = tmp_path / "overlap.safetensors"
    path.write_bytes(_safetensors(header, bytes(size)))
    result = peak_memory(
        f"""
        import skseg.serialization
        try:
            skseg.serialization.load_state_dict({str(path)!r})
        except skseg.CheckpointError as e:
            result["error"] = str(e)
        """
    )
    assert str(path) in result["error"] and "overlaps another" in result["error"]
    assert result["grown_mib"] < 32


@pytest.mark.parametrize(
    "header, data, match",
    [
        # a dtype that is not a name (was a TypeError: unhashable list)
        (
            {"w": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}},
            4,
            "dtype list",
        ),
        (
            {"w": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}},
            1,
            "dtype 'F8_E4M3'",
        ),
        # booleans are not sizes or offsets
        (
            {"w": {"dtype": "U8", "shape": [True], "data_offsets": [0, 1]}},
            1,
            "malformed shape",
        ),
        # metadata must map names to strings
        (
            {
                "__metadata__": ["pt"],
                "w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
            },
            1,
            "__metadata__",
        ),
        # as before: beyond the file, size mismatch, gap, trailing bytes
        (
            {"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
            4,
            "beyond the end",
        ),
        (
            {"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}},
            8,
            "8 bytes for shape",
        ),
        (
            {"w": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}},
            2,
            "leaves a gap",
        ),
        (
            {"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}},
            2,
            "1 trailing bytes",
        ),
    ],
)
def test_header_tricks_are_refused(tmp_path, header, data, match):
    path = tmp_path / "w.safetensors"
    path.write_bytes(_safetensors(header, bytes(data)))
    with pytest.raises(CheckpointError, match=match) as info:
        load_state_dict(path)
    assert str(path) in str(info.value)


def test_a_tensor_named_twice_in_the_header_is_refused(tmp_path):
    entry = '{"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}'
    text = f'{{"w": {entry}, "w": {entry}}}'.encode()
    path = tmp_path / "twice.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text + bytes(4))
    with pytest.raises(CheckpointError, match="safetensors header gives 'w' twice"):
        load_state_dict(path)


def test_a_huge_header_is_refused_before_it_is_parsed(tmp_path):
    # valid JSON padded to 8 MB: the safetensors library's 100 MB limit would let
    # a parse of that size through
    text = b"{}" + b" " * (8 << 20)
    path = tmp_path / "header.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text)
    with pytest.raises(CheckpointError, match=r"its header has 8388610 bytes"):
        load_state_dict(path)


def test_a_deeply_nested_header_is_refused(tmp_path):
    text = b'{"__metadata__": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    path = tmp_path / "deep.safetensors"
    path.write_bytes(struct.pack("<Q", len(text)) + text)
    with pytest.raises(CheckpointError, match="header is nested deeper"):
        load_state_dict(path)


# -- a huge weights file ----------------------------------------------------------------


def test_a_huge_weights_file_is_neither_hashed_nor_read(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    with open(folder / WEIGHTS_NAME, "r+b") as f:
        f.truncate(4 << 30)  # sparse: 4 GB announced, hashed in seconds before
    start = time.perf_counter()
    message = refused(folder, "refused to read 4294967296 bytes")
    assert time.perf_counter() - start < 1.0
    assert str(folder / WEIGHTS_NAME) in message
    assert MAX_WEIGHTS_BYTES < 4 << 30


@pytest.mark.slow
def test_a_huge_bare_state_dict_is_not_read_whole(tmp_path):
    path = tmp_path / "big.safetensors"
    with open(path, "wb") as f:
        f.write(_safetensors({}))
        f.truncate(512 << 20)  # sparse
    result = peak_memory(
        f"""
        import skseg.serialization
        try:
            skseg.serialization.load_state_dict({str(path)!r})
        except skseg.CheckpointError as e:
            result["error"] = str(e)
        """
    )
    assert str(path) in result["error"] and "refused to read" in result["error"]
    assert result["grown_mib"] < 16


def test_the_valid_network_still_loads_identically(saved, model):
    loaded = load_network(saved)
    for name, tensor in model.network.state_dict().items():
        assert torch.equal(loaded.network.state_dict()[name], tensor), name
    assert loaded.specifications == model.specifications
