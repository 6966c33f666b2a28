"""Shared fixtures: the real weights and sample (fetched, verified, cached), and
small synthetic audio."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

DATA = Path(__file__).parent / "data"


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
