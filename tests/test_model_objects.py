"""An estimator over a model object (a network fine-tuned in memory, say).

``segmentation=`` may be a loaded :class:`SegmentationModel`: it must survive
``clone``, ``GridSearchCV`` (shared, not reloaded; the network run once per file)
and joblib in a fresh process, and the score cache must key it by its weights,
so that it never shares an entry with the pretrained network.
"""

import copy
import pickle
import subprocess
import sys

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold

from skseg import SegmentationModel, VADEstimator, load_model
from skseg.cache import get_cache
from skseg.metrics import DetectionErrorRateScorer
from skseg.tuning import split_excerpts


@pytest.fixture(scope="module")
def perturbed(model):
    tuned = copy.deepcopy(model)
    with torch.no_grad():
        for parameter in tuned.network.classifier.parameters():
            parameter.add_(0.05)
    return tuned


def test_deepcopy_is_a_real_copy_and_the_digest_follows_the_weights(model, perturbed):
    assert perturbed is not model and perturbed.sha256 == model.sha256
    assert perturbed.weights_digest != model.weights_digest
    assert copy.deepcopy(model).weights_digest == model.weights_digest
    # the shared pretrained network was not touched by the perturbation
    assert not torch.equal(
        model.network.classifier.bias, perturbed.network.classifier.bias
    )


def test_a_model_object_is_shared_by_clone_and_validated(perturbed):
    vad = VADEstimator(segmentation=perturbed, onset=0.6)
    assert clone(vad).segmentation is perturbed
    assert vad.fit().model_ is perturbed
    assert isinstance(vad.segmentation, SegmentationModel)


@pytest.mark.slow
def test_cache_entries_follow_the_weights_not_the_checkpoint(
    model, perturbed, sample, tmp_path
):
    directory = str(tmp_path / "scores")
    pretrained = VADEstimator(cache=directory)
    tuned = VADEstimator(segmentation=perturbed, cache=directory)
    a = pretrained.decision_function([sample])[0].data
    b = tuned.decision_function([sample])[0].data
    assert not np.array_equal(a, b)
    cache = get_cache(directory)
    assert cache.computed == 2
    assert len(list((tmp_path / "scores").rglob("*.npz"))) == 2
    key_a = pretrained.score_source().key(sample)
    key_b = tuned.score_source().key(sample)
    assert key_a != key_b
    # each one's scores are its own network's, from memory and from disk alike
    cache.clear()
    np.testing.assert_array_equal(
        VADEstimator(segmentation=perturbed, cache=directory)
        .decision_function([sample])[0]
        .data,
        b,
    )
    np.testing.assert_array_equal(
        VADEstimator(cache=False, segmentation=perturbed)
        .decision_function([sample])[0]
        .data,
        b,
    )


@pytest.mark.slow
def test_grid_search_runs_the_in_memory_network_once_per_file(
    perturbed, sample, tmp_path
):
    directory = str(tmp_path / "scores")
    X, _ = split_excerpts([sample], None, duration=10.0)
    search = GridSearchCV(
        VADEstimator(segmentation=perturbed, cache=directory),
        {"onset": [0.4, 0.6, 0.8], "offset": [0.3, 0.5]},
        scoring=DetectionErrorRateScorer(),
        cv=KFold(3),
        error_score="raise",
    ).fit(X, [sample["annotation"]] * len(X))
    # 6 candidates x 3 folds and the refit, over 3 excerpts of one recording
    assert get_cache(directory).computed == 1
    assert search.best_estimator_.segmentation is perturbed
    assert search.best_estimator_.model_ is perturbed


@pytest.mark.slow
def test_joblib_round_trip_of_a_model_object_in_a_fresh_process(
    perturbed, sample, tmp_path
):
    vad = VADEstimator(segmentation=perturbed, onset=0.6, cache=False).fit()
    expected = vad.decision_function([sample])[0].data
    dump = tmp_path / "tuned.joblib"
    joblib.dump(vad, dump)
    code = f"""
import numpy as np, joblib
from skseg import load_model
from skseg.datasets import fetch_sample
pretrained = load_model()  # same checkpoint digest, other weights: not to be reused
vad = joblib.load({str(dump)!r})
assert vad.model_ is vad.segmentation and vad.model_ is not pretrained
print(vad.model_.weights_digest)
np.save({str(tmp_path / "scores.npy")!r},
        vad.decision_function([fetch_sample()])[0].data)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == perturbed.weights_digest
    np.testing.assert_array_equal(np.load(tmp_path / "scores.npy"), expected)


@pytest.mark.slow
def test_a_model_object_goes_with_its_estimators(model, sample):
    import gc
    import weakref

    tuned = copy.deepcopy(model)
    VADEstimator(segmentation=tuned, cache=False).predict([sample])
    assert tuned.memo["score_sources"]  # its score source lives with it
    alive = weakref.ref(tuned)
    del tuned
    gc.collect()
    assert alive() is None  # nothing process-wide keeps a fine-tuned copy alive


def test_a_saved_network_with_the_same_weights_leaves_the_checkpoint_shared(
    model, tmp_path
):
    from skseg.serialization import save_model

    # what an interrupted fine-tuning saves: the checkpoint's weights, other digest
    twin = load_model(save_model(model, tmp_path / "twin"))
    assert twin.weights_digest == model.weights_digest and twin.sha256 != model.sha256
    vad = VADEstimator().fit()
    assert pickle.loads(pickle.dumps(vad)).model_ is vad.model_
    assert pickle.loads(pickle.dumps(twin)) is twin
