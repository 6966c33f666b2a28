"""Shared fixtures: the real weights and sample (fetched, verified, cached), and
small synthetic audio."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

DATA = Path(__file__).parent / "data"

# Fixtures whose set-up alone is too long for the fast tier (`make test-fast`, see
# docs/testing.md): a test that uses one is slow whatever it does itself. Each is
# named with the test module that defines it, so that a fixture of the same name
# elsewhere is not taken for it.
SLOW_FIXTURES = {
    ("test_labelstudio_server.py", "labelstudio"): "starts a Label Studio server",
    ("test_cli_finetune.py", "corpus"): "generates a synthetic corpus to fine-tune on",
}


def unmarked_slow_tests(items) -> list[str]:
    """The tests that use a slow fixture without the ``slow`` marker."""
    return [
        f"{item.nodeid} (its {name!r} fixture {why})"
        for item in items
        if item.get_closest_marker("slow") is None
        for (module, name), why in SLOW_FIXTURES.items()
        if item.path.name == module and name in getattr(item, "fixturenames", ())
    ]


def pytest_collection_modifyitems(config, items):
    # checked as the suite is collected, so a new test cannot bring a slow fixture
    # into the fast tier unnoticed (a check of timings would be flaky on a loaded
    # machine; this one is not)
    unmarked = unmarked_slow_tests(items)
    if unmarked:
        raise pytest.UsageError(
            "mark these tests @pytest.mark.slow:\n  " + "\n  ".join(unmarked)
        )


@pytest.fixture(scope="session")
def checkpoint_path():
    from skseg.hub import resolve_checkpoint

    # fetched from the pinned whisperx wheel on first use, then cached: never skipped
    return resolve_checkpoint("pyannote/segmentation")


@pytest.fixture(scope="session")
def model(checkpoint_path):
    from skseg.model import load_model

    return load_model(checkpoint_path)


@pytest.fixture(scope="session")
def sample():
    from skseg.datasets import fetch_sample

    return fetch_sample()


@pytest.fixture(scope="session")
def sample_chunks(model, sample):
    from skseg.inference import Inference

    return Inference(model)(sample)


@pytest.fixture(scope="session")
def reference_scores():
    return dict(np.load(DATA / "pyannote_sample_scores.npz"))


@pytest.fixture(scope="session")
def sample_waveform(sample):
    data, sr = sf.read(sample["audio"], dtype="float32")
    assert sr == 16000
    return data


def write_wav(path, data, sr=16000, subtype=None):
    sf.write(path, data, sr, subtype=subtype)
    return path
