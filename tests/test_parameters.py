"""One registry of the pipelines' parameters: estimators, tuning, CLI and plot read it."""

import re

import pytest
from sklearn.utils._param_validation import InvalidParameterError

from skseg import (
    OSDEstimator,
    ResegmentationEstimator,
    SegmentationEstimator,
    VADEstimator,
)
from skseg.pipelines.parameters import (
    HYPER_PARAMETERS,
    PARAMETERS,
    RUNTIME_PARAMETERS,
    parameter_docs,
)
from skseg.tuning import TUNED_PARAMETERS, default_grid

ESTIMATORS = (
    VADEstimator,
    OSDEstimator,
    SegmentationEstimator,
    ResegmentationEstimator,
)


def entry(doc, name):
    """The numpydoc entry of ``name`` in a class docstring (type line and text)."""
    match = re.search(rf"^    {name} : .*?(?=^    \S|^\s*$)", doc, re.M | re.S)
    assert match, name
    return match.group(0)


@pytest.mark.parametrize("name", RUNTIME_PARAMETERS)
def test_the_estimators_document_shared_parameters_identically(name):
    texts = {cls.__name__: entry(cls.__doc__, name) for cls in ESTIMATORS}
    assert len(set(texts.values())) == 1, texts
    assert next(iter(texts.values())).rstrip() == parameter_docs((name,))


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_every_estimator_has_the_registered_parameters(cls):
    params = cls().get_params()
    assert set(HYPER_PARAMETERS) | set(RUNTIME_PARAMETERS) <= set(params)
    assert set(cls._parameter_constraints) == set(params)
    for name in params:
        assert name in PARAMETERS, name


def test_tuning_searches_the_registered_hyper_parameters():
    assert TUNED_PARAMETERS == HYPER_PARAMETERS
    assert set(default_grid(VADEstimator())) == set(HYPER_PARAMETERS)


@pytest.mark.parametrize(
    "params",
    [
        dict(onset=2.0),
        dict(mode="turbo"),
        dict(step=7.5),
        dict(batch_size=0),
        dict(device="tpu-9000"),
    ],
)
@pytest.mark.parametrize("method", ["predict", "decision_function", "transform"])
def test_a_bad_value_set_after_fit_raises_on_the_next_call(sample, params, method):
    vad = VADEstimator().fit()
    vad.set_params(**params)
    (name,) = params
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
        getattr(vad, method)([sample])
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
        vad(sample)


def test_cuda_on_a_machine_without_it_is_one_parameter_error(sample, monkeypatch):
    import torch

    vad = VADEstimator().fit()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    vad.set_params(device="cuda")
    with pytest.raises(InvalidParameterError, match="'device' parameter of VAD"):
        vad.predict([sample])


# -- the model card's presets --------------------------------------------------------
CARD = {  # pyannote/segmentation model card, "Reproducible research" (Interspeech2021)
    ("vad", "ami"): (0.684, 0.577, 0.181, 0.037),
    ("vad", "dihard3"): (0.767, 0.377, 0.136, 0.067),
    ("vad", "voxconverse"): (0.767, 0.713, 0.182, 0.501),
    ("osd", "ami"): (0.448, 0.362, 0.116, 0.187),
    ("osd", "dihard3"): (0.430, 0.320, 0.091, 0.144),
    ("osd", "voxconverse"): (0.587, 0.426, 0.337, 0.112),
    ("resegment", "ami"): (0.542, 0.527, 0.044, 0.705),
    ("resegment", "dihard3"): (0.592, 0.489, 0.163, 0.182),
    ("resegment", "voxconverse"): (0.537, 0.724, 0.410, 0.563),
}


@pytest.mark.parametrize("key", sorted(CARD))
def test_presets_are_the_model_cards_values(key):
    from skseg.pipelines import PIPELINES
    from skseg.pipelines.presets import preset

    pipeline, dataset = key
    expected = dict(zip(HYPER_PARAMETERS, CARD[key], strict=True))
    assert preset(pipeline, dataset) == expected
    estimator = PIPELINES[pipeline].from_preset(dataset, mode="fast")
    assert {k: estimator.get_params()[k] for k in HYPER_PARAMETERS} == expected
    assert estimator.mode == "fast"


def test_the_dihard3_presets_are_the_detection_defaults():
    for cls, name in ((VADEstimator, "vad"), (OSDEstimator, "osd")):
        default = {k: cls().get_params()[k] for k in HYPER_PARAMETERS}
        # onset/offset default to "auto": the dihard3 values on pyannote/segmentation
        assert default["onset"] == default["offset"] == "auto"
        default["onset"], default["offset"], _ = cls().resolve_thresholds()
        assert default == pytest.approx(
            dict(zip(HYPER_PARAMETERS, CARD[name, "dihard3"], strict=True))
        )


def test_there_is_no_segmentation_preset():
    with pytest.raises(ValueError, match="no model card preset for pipeline 'segment'"):
        SegmentationEstimator.from_preset("ami")
