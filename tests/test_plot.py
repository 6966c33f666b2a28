"""skseg.plot: what the figure draws is the estimator's data, on one time axis."""

import sys

import numpy as np
import pytest
from pyannote.core import Annotation, Segment

from skseg import OSDEstimator, SegmentationEstimator, VADEstimator
from skseg.plot import _envelope, plot_annotation, plot_file

PNG = b"\x89PNG\r\n\x1a\n"


def bars(ax):
    """{label: [(start, end), ...]} of the broken_barh rows of a region panel."""
    labels = [tick.get_text() for tick in ax.get_yticklabels()]
    return {
        label: [
            (round(float(path.vertices[:, 0].min()), 6),
             round(float(path.vertices[:, 0].max()), 6))
            for path in collection.get_paths()
        ]
        for label, collection in zip(labels, ax.collections, strict=True)
    }  # fmt: skip


def spans(annotation):
    return {
        label: [
            (round(s.start, 6), round(s.end, 6))
            for s in annotation.label_timeline(label)
        ]
        for label in annotation.labels()
    }


def test_vad_figure_draws_the_estimators_scores_thresholds_and_regions(sample):
    vad = VADEstimator(onset=0.6, offset=0.45)
    figure = plot_file(sample, vad)
    axes = {ax.get_ylabel(): ax for ax in figure.axes}
    assert list(axes) == ["waveform", "scores", "prediction", "reference"]
    # one time axis: every panel spans the file
    (xlim,) = {ax.get_xlim() for ax in figure.axes}
    assert xlim == (0.0, pytest.approx(sample["annotated"].extent().end))

    scores = axes["scores"]
    lines = {line.get_label(): line for line in scores.get_lines()}
    speech = vad.decision_function([sample])[0]
    overlap = OSDEstimator().decision_function([sample])[0]
    np.testing.assert_array_equal(lines["speech"].get_ydata(), speech.data[:, 0])
    np.testing.assert_array_equal(lines["overlap"].get_ydata(), overlap.data[:, 0])
    # frames drawn at their middles
    window = speech.sliding_window
    assert lines["speech"].get_xdata()[10] == pytest.approx(window[10].middle)
    assert set(lines["onset"].get_ydata()) == {0.6}
    assert set(lines["offset"].get_ydata()) == {0.45}
    assert lines["offset"].get_linestyle() == "--"

    prediction = vad.predict([sample])[0]
    assert bars(axes["prediction"]) == spans(prediction)
    assert bars(axes["reference"]) == spans(sample["annotation"])

    # the waveform envelope covers the samples' range
    import soundfile as sf

    wav, _ = sf.read(sample["audio"], dtype="float32")
    (envelope,) = axes["waveform"].collections
    y = np.concatenate([path.vertices[:, 1] for path in envelope.get_paths()])
    assert y.min() == pytest.approx(wav.min()) and y.max() == pytest.approx(wav.max())


def test_speaker_pipeline_adds_per_speaker_activations(sample):
    estimator = SegmentationEstimator()
    figure = plot_file({"audio": sample["audio"]}, estimator)  # no reference
    axes = {ax.get_ylabel(): ax for ax in figure.axes}
    assert list(axes) == ["waveform", "scores", "speakers", "prediction"]
    decision = estimator.decision_function([sample])[0]
    prediction = estimator.predict([sample])[0]
    lines = {line.get_label(): line for line in axes["speakers"].get_lines()}
    assert sorted(lines) == sorted(prediction.labels()) == decision.labels
    for k, label in enumerate(decision.labels):
        np.testing.assert_array_equal(lines[label].get_ydata(), decision.data[:, k])
    assert bars(axes["prediction"]) == spans(prediction)
    # thresholds are the speaker activation thresholds
    labels = {line.get_label() for line in axes["scores"].get_lines()}
    assert {"speaker onset", "speaker offset"} <= labels


def test_figure_saves_as_png(sample, tmp_path):
    path = tmp_path / "fig.png"
    plot_file(sample, OSDEstimator()).savefig(path, dpi=50)
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > 10_000


def test_envelope_is_min_max_per_bin_whatever_the_block_size(monkeypatch):
    rng = np.random.default_rng(0)
    wav = rng.standard_normal(16000 * 7 + 123).astype("float32")
    file = {"waveform": wav[None], "sample_rate": 16000}
    times, low, high, duration = _envelope(file, bins=100)
    per_bin = -(-len(wav) // 100)
    assert duration == pytest.approx(len(wav) / 16000)
    assert len(low) == len(high) == len(times) == -(-len(wav) // per_bin)
    for b in (0, 50, len(low) - 1):
        chunk = wav[b * per_bin : (b + 1) * per_bin]
        assert low[b] == chunk.min() and high[b] == chunk.max()
    # read in blocks of ~1 s instead of one: the same envelope
    monkeypatch.setattr("skseg.plot._BLOCK_SECONDS", 1.0)
    again = _envelope(file, bins=100)
    np.testing.assert_array_equal(again[1], low)
    np.testing.assert_array_equal(again[2], high)


def test_plot_annotation_rows_and_empty():
    annotation = Annotation(uri="x")
    annotation[Segment(1, 2)] = "B"
    annotation[Segment(0, 1.5)] = "A"
    annotation[Segment(3, 4)] = "A"
    ax = plot_annotation(annotation)
    assert bars(ax) == {"A": [(0.0, 1.5), (3.0, 4.0)], "B": [(1.0, 2.0)]}
    assert ax.get_ylabel() == "x"
    empty = plot_annotation(Annotation(uri="e"))
    assert [t.get_text() for t in empty.texts] == ["(empty)"]


def test_missing_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "skseg\[plot\]"'):
        plot_annotation(Annotation(uri="x"))


def test_annotation_renders_inline_in_notebooks():
    # pyannote.core's own _repr_png_ (what Jupyter calls) works with the extra
    annotation = Annotation(uri="x")
    annotation[Segment(0, 1)] = "A"
    annotation[Segment(0.5, 2)] = "B"
    png = annotation._repr_png_()
    assert isinstance(png, bytes) and png[:8] == PNG and len(png) > 1000


@pytest.mark.slow
def test_a_fast_mode_figure_uses_fast_mode_scores_only(sample, tmp_path):
    from skseg.cache import get_cache

    directory = str(tmp_path / "scores")
    vad = VADEstimator(mode="fast", cache=directory)
    figure = plot_file(sample, vad)
    lines = {line.get_label(): line for line in figure.axes[1].get_lines()}
    fast_overlap = OSDEstimator(mode="fast", cache=False).decision_function([sample])
    np.testing.assert_array_equal(
        lines["overlap"].get_ydata(), fast_overlap[0].data[:, 0]
    )
    # one network pass, in fast mode: the overlap curve came from the same chunks
    assert get_cache(directory).computed == 1
    assert len(list((tmp_path / "scores").rglob("*.npz"))) == 1
