"""Prodigy recipes: registration, components, before_db, export, tuning, model in
the loop and bad inputs, with a stand-in `prodigy` module (Prodigy is commercial and
not installable here) and the real weights on the real sample."""

import base64
import importlib.util
import inspect
import io
import json
import logging
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pyannote.core import Segment, Timeline

from skseg import VADEstimator
from skseg.annotation import (
    annotation_to_spans,
    before_db,
    collect_annotations,
    make_tasks,
    validate_answer,
)
from skseg.annotation.recipes import correct_recipe
from skseg.exceptions import FileError
from skseg.io import read_rttm, read_uem
from skseg.references import speech_reference

ROOT = Path(__file__).resolve().parents[1]
RECIPE_FILES = sorted((ROOT / "recipes").glob("*.py"))
RECIPE_NAMES = {
    "skseg.vad.correct",
    "skseg.osd.correct",
    "skseg.segment.correct",
    "skseg.review",
    "skseg.tune",
    "skseg.export",
}
# Prodigy's documented recipe components (prodi.gy/docs/custom-recipes)
COMPONENTS = {
    "dataset",
    "stream",
    "view_id",
    "config",
    "update",
    "before_db",
    "on_load",
    "on_exit",
    "validate_answer",
    "progress",
    "exclude",
    "get_session_id",
}
CALLBACK_ARITY = {"update": 1, "before_db": 1, "validate_answer": 1, "on_exit": 1}
KINDS = {"positional", "option", "flag"}


class FakeDB:
    """Prodigy's database, as far as the recipes use it."""

    def __init__(self, datasets):
        self.datasets = datasets

    def __contains__(self, name):
        return name in self.datasets

    def get_dataset_examples(self, name):
        return list(self.datasets[name])


@pytest.fixture
def prodigy(monkeypatch):
    """A stand-in `prodigy` that records `prodigy.recipe(name, **args)` calls."""
    module = types.ModuleType("prodigy")
    module.registry = {}
    module.datasets = {}

    def recipe(name, **arguments):
        def decorate(function):
            module.registry[name] = (function, arguments)
            return function

        return decorate

    module.recipe = recipe
    components = types.ModuleType("prodigy.components")
    db = types.ModuleType("prodigy.components.db")
    db.connect = lambda: FakeDB(module.datasets)
    components.db = db
    module.components = components
    monkeypatch.setitem(sys.modules, "prodigy", module)
    monkeypatch.setitem(sys.modules, "prodigy.components", components)
    monkeypatch.setitem(sys.modules, "prodigy.components.db", db)
    return module


def load_file(path):
    spec = importlib.util.spec_from_file_location(f"recipe_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_all(prodigy):
    for path in RECIPE_FILES:
        load_file(path)
    return prodigy.registry


def decode(task):
    header, payload = task["audio"].split(",", 1)
    assert header == "data:audio/wav;base64"
    return sf.read(io.BytesIO(base64.b64decode(payload)), dtype="float32")


# -- registration -------------------------------------------------------------------


def test_recipe_files_register_every_recipe_with_plac_arguments(prodigy):
    registry = load_all(prodigy)
    assert set(registry) == RECIPE_NAMES
    for name, (function, arguments) in registry.items():
        parameters = inspect.signature(function).parameters
        # every argument annotation names a parameter of the function, and back
        assert list(arguments) == list(parameters), name
        for arg, spec in arguments.items():
            help_text, kind, shortcut, convert = spec
            assert isinstance(help_text, str) and help_text, (name, arg)
            assert kind in KINDS, (name, arg)
            assert shortcut is None or (
                isinstance(shortcut, str) and len(shortcut) == 1
            )
            assert callable(convert)
            has_default = parameters[arg].default is not inspect.Parameter.empty
            assert has_default == (kind != "positional"), (name, arg)
        shortcuts = [s[2] for s in arguments.values() if s[2]]
        assert len(shortcuts) == len(set(shortcuts)), name


def test_recipe_files_are_thin():
    for path in RECIPE_FILES:
        code = [
            line
            for line in path.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
        assert len(code) <= 12, path
        assert "def " not in path.read_text(), path


def test_entry_points_resolve_to_the_same_recipes(prodigy):
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    entry_points = pyproject["project"]["entry-points"]["prodigy_recipes"]
    assert set(entry_points) == RECIPE_NAMES
    for name, target in entry_points.items():
        module_name, attribute = target.split(":")
        module = importlib.import_module(module_name)
        getattr(module, attribute)  # what importlib.metadata's load() does
        assert name in prodigy.registry


def test_without_prodigy_registering_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "prodigy", None)
    import skseg.annotation.prodigy as recipes_module  # importable without it

    with pytest.raises(ImportError, match=r"need Prodigy \(https://prodi.gy\)"):
        recipes_module.register("skseg.vad.correct")
    with pytest.raises(ImportError, match="Label Studio"):
        load_file(ROOT / "recipes" / "correct.py")
    with pytest.raises(ValueError, match="unknown recipe"):
        recipes_module.register("skseg.nope")


# -- the correct recipes' components ------------------------------------------------


def test_correct_components_follow_prodigys_contract(prodigy, sample):
    recipe, _ = load_all(prodigy)["skseg.vad.correct"]
    components = recipe("vad_sample", sample["audio"], chunk=10.0, retune_every=3)
    assert set(components) <= COMPONENTS
    assert components["dataset"] == "vad_sample"
    assert components["view_id"] == "audio_manual"
    for name, arity in CALLBACK_ARITY.items():
        assert len(inspect.signature(components[name]).parameters) == arity, name
    config = components["config"]
    assert config["labels"] == ["SPEECH"] and config["exclude_by"] == "input"
    json.dumps(config)
    stream = components["stream"]
    assert iter(stream) is stream  # lazy: tasks are made when Prodigy asks
    tasks = list(stream)
    assert [t["meta"]["start"] for t in tasks] == [0.0, 10.0, 20.0]
    for task in tasks:
        samples, sr = decode(task)
        assert sr == 16000 and len(samples) == 160000
        assert np.abs(samples).max() > 0.9  # peak-normalised, as pyannote's recipes
        assert task["meta"]["path"] == str(Path(sample["audio"]).resolve())
        assert task["meta"]["uri"] == "sample" and task["path"] == task["meta"]["path"]
        assert isinstance(task["_input_hash"], int) and isinstance(
            task["_task_hash"], int
        )
        for span in task["audio_spans"]:
            assert set(span) == {"start", "end", "label"}
            assert 0 <= span["start"] < span["end"] <= 10.0
        assert task["audio_spans_original"] == task["audio_spans"]
        json.dumps(task)
    # the model's regions, cut at the chunk edges, are the VAD of the whole file
    expected = VADEstimator()(sample)
    found = [
        (s["start"] + t["meta"]["start"], s["end"] + t["meta"]["start"])
        for t in tasks
        for s in t["audio_spans"]
    ]
    merged = Timeline([Segment(a, b) for a, b in found]).support()
    assert len(merged) == len(expected.get_timeline())
    for a, b in zip(merged, expected.get_timeline(), strict=True):
        assert abs(a.start - b.start) < 0.02 and abs(a.end - b.end) < 0.02


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, labels",
    [("skseg.osd.correct", ["OVERLAP"]), ("skseg.segment.correct", None)],
)
def test_osd_and_segmentation_correct_recipes(prodigy, sample, name, labels):
    recipe, _ = load_all(prodigy)[name]
    components = recipe("ds", sample["audio"], chunk=15.0, audio="none", labels=["X"])
    tasks = list(components["stream"])
    assert len(tasks) == 2 and "audio" not in tasks[0]
    spans = [s for t in tasks for s in t["audio_spans"]]
    assert spans
    if labels is not None:
        assert components["config"]["labels"] == sorted(labels + ["X"])
        assert {s["label"] for s in spans} == set(labels)
    else:
        assert all(s["label"].startswith("SPEAKER_") for s in spans)
        for task in tasks:
            assert "X" in task["config"]["labels"]


def test_whole_file_tasks_carry_the_path(sample):
    components = correct_recipe("ds", [sample], chunk=None, context=None, audio="path")
    (task,) = list(components["stream"])
    assert task["audio"] == str(Path(sample["audio"]).resolve())
    assert task["chunk"] == {"start": 0.0, "end": 30.0}
    with pytest.raises(ValueError, match="whole-file tasks"):
        make_tasks(VADEstimator(), [sample], chunk=10.0, audio="path")


# -- round trip ---------------------------------------------------------------------


def corrected(tasks):
    """Simulated corrections: spans moved, added and removed; the last task ignored.

    Returns the answers and the regions they mean in file time, computed here by
    plain arithmetic from the task offsets.
    """
    answers, expected, annotated = [], [], []
    for i, task in enumerate(tasks):
        spans = [dict(s) for s in task["audio_spans"]]
        if i == 0:  # move the first span and add one
            spans[0]["start"] = round(spans[0]["start"] + 0.25, 3)
            spans[0]["end"] = round(spans[0]["end"] - 0.125, 3)
            spans.append({"start": 0.5, "end": 1.25, "label": "SPEECH"})
        elif i == 1:  # shorten and relabel the first, up to the chunk's end
            first = spans[0]
            spans = [
                dict(first, end=round(first["start"] + 1.5, 3), label="NOISE"),
                {"start": 5.0, "end": 7.5, "label": "SPEECH"},
            ]
        elif i == 2:  # remove everything: nobody speaks here
            spans = []
        answer = dict(task, audio_spans=spans, answer="accept" if i < 3 else "ignore")
        answers.append(answer)
        if i < 3:
            offset = task["meta"]["start"]
            expected += [
                (offset + s["start"], offset + s["end"], s["label"]) for s in spans
            ]
            annotated.append(Segment(task["meta"]["start"], task["meta"]["end"]))
    return answers, sorted(expected), Timeline(annotated).support()


@pytest.mark.slow
def test_round_trip_to_rttm_in_file_time_to_the_millisecond(prodigy, sample, tmp_path):
    registry = load_all(prodigy)
    recipe, _ = registry["skseg.vad.correct"]
    components = recipe("vad_sample", sample["audio"], chunk=7.5)
    tasks = list(components["stream"])
    assert len(tasks) == 4
    answers, expected, annotated = corrected(tasks)
    saved = components["before_db"](answers)
    assert len(saved) == 4 and not any("audio" in eg for eg in saved)
    assert all(eg["spans_time"] == "file" for eg in saved)
    assert saved[0]["meta"]["path"] == str(Path(sample["audio"]).resolve())
    prodigy.datasets["vad_sample"] = saved

    export, _ = registry["skseg.export"]
    export("vad_sample", str(tmp_path / "out.rttm"))
    turns = read_rttm(tmp_path / "out.rttm")["sample"]
    found = sorted(
        (s.start, s.end, label) for s, _, label in turns.itertracks(yield_label=True)
    )
    assert [f[2] for f in found] == [e[2] for e in expected]
    assert (
        np.abs(np.array([f[:2] for f in found]) - [e[:2] for e in expected]).max()
        < 5e-4
    )
    uem = read_uem(tmp_path / "out.uem")["sample"]
    assert list(uem) == list(annotated) == [Segment(0.0, 22.5)]


def test_before_db_keeps_the_good_examples_of_a_batch_with_a_bad_one(sample, caplog):
    tasks = list(make_tasks(VADEstimator(), [sample], chunk=10.0))
    bad = dict(tasks[1], audio_spans=[{"start": 8.0, "end": 10.5, "label": "SPEECH"}])
    with pytest.raises(ValueError, match=r"ends after the task's end \(10 s\)"):
        validate_answer(bad)
    with caplog.at_level(logging.WARNING):
        saved = before_db([tasks[0], bad, tasks[2]])
    assert [("skseg_error" in eg) for eg in saved] == [False, True, False]
    assert "audio" not in saved[1] and saved[1]["audio_spans"] == bad["audio_spans"]
    assert sample["audio"].split("/")[-1] in saved[1]["skseg_error"]
    assert "[10.000, 20.000]" in caplog.text
    # nothing annotated is lost: the export writes the good ones, names the bad one
    result = collect_annotations(saved)
    assert result.annotated["sample"] == Timeline([Segment(0, 10), Segment(20, 30)])
    assert len(result.failures) == 1 and "ends after" in result.failures[0]


def test_export_names_the_bad_examples_and_writes_the_others(
    prodigy, sample, tmp_path, capsys
):
    registry = load_all(prodigy)
    tasks = list(make_tasks(VADEstimator(), [sample], chunk=10.0, audio="none"))
    good = before_db([dict(t, answer="accept") for t in tasks[:2]])
    not_a_task = {"answer": "accept", "audio_spans": [], "text": "stray"}
    prodigy.datasets["mixed"] = [*good, not_a_task]
    export, _ = registry["skseg.export"]
    export("mixed", str(tmp_path / "m.rttm"), str(tmp_path / "m.uem"))
    out = capsys.readouterr().out
    assert "2 examples from dataset 'mixed'" in out
    assert "left out: task ?: no 'meta'" in out
    assert list(read_uem(tmp_path / "m.uem")["sample"]) == [Segment(0, 20)]


# -- bad inputs ---------------------------------------------------------------------


def test_an_unknown_audio_path_is_skipped_and_named(sample, tmp_path, caplog):
    missing = str(tmp_path / "missing.wav")
    components = correct_recipe("ds", [missing, sample["audio"]], audio="none")
    with caplog.at_level(logging.WARNING):
        tasks = list(components["stream"])
    assert [t["meta"]["uri"] for t in tasks] == ["sample"] * 3
    (failure,) = components["failures"]
    assert str(failure) == f"{missing}: file not found"
    assert f"skipped {missing}: file not found" in caplog.text


def test_a_model_file_that_is_not_there_is_named(tmp_path):
    from skseg.annotation import load_estimator

    with pytest.raises(FileError, match="missing.joblib: no such file"):
        load_estimator(tmp_path / "missing.joblib")


def test_a_dataset_with_no_annotations_is_a_clear_error(prodigy, tmp_path):
    registry = load_all(prodigy)
    export, _ = registry["skseg.export"]
    tune, _ = registry["skseg.tune"]
    prodigy.datasets["empty"] = []
    prodigy.datasets["ignored"] = [
        {"answer": "ignore", "meta": {"uri": "a", "start": 0, "end": 1}}
    ]
    with pytest.raises(
        FileError, match="dataset 'empty': the dataset has no annotations"
    ):
        export("empty", str(tmp_path / "x.rttm"))
    with pytest.raises(FileError, match="dataset 'nope': no such Prodigy dataset"):
        tune("nope", str(tmp_path / "x.joblib"))
    with pytest.raises(FileError, match="dataset 'ignored': no annotated examples"):
        export("ignored", str(tmp_path / "x.rttm"))
    assert not (tmp_path / "x.rttm").exists()


# -- tune and model in the loop -----------------------------------------------------


def reference_examples(sample, chunk=10.0):
    """The sample's reference speech, as accepted correction examples."""
    speech = speech_reference(sample["annotation"])
    tasks = make_tasks(VADEstimator(), [sample], chunk=chunk, audio="none")
    return [
        dict(
            t,
            answer="accept",
            audio_spans=annotation_to_spans(
                speech, Segment(t["meta"]["start"], t["meta"]["end"])
            ),
        )
        for t in tasks
    ]


@pytest.mark.slow
def test_tune_recipe_writes_an_estimator_that_reloads_and_predicts(
    prodigy, sample, tmp_path, capsys
):
    registry = load_all(prodigy)
    prodigy.datasets["vad_sample"] = before_db(reference_examples(sample))
    tune, _ = registry["skseg.tune"]
    output = tmp_path / "vad.joblib"
    tune("vad_sample", str(output))
    table = capsys.readouterr().out.splitlines()
    assert table[0] == (
        "| dataset | onset | offset | min_duration_on | min_duration_off | metric "
        "| score |"
    )
    row = table[2].split(" | ")
    assert row[0] == "| vad_sample" and row[5] == "detection error rate"
    code = (
        "import json, sys, joblib\n"
        "e = joblib.load(sys.argv[1])\n"
        "speech = e(sys.argv[2])\n"
        "p = e.get_params()\n"
        "print(json.dumps([type(e).__name__, [p[k] for k in ('onset', 'offset',"
        " 'min_duration_on', 'min_duration_off')], len(speech)]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(output), sample["audio"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    name, params, n_regions = json.loads(out)
    assert name == "VADEstimator" and n_regions > 0
    assert row[1:5] == [f"{value:.3f}" for value in params]


@pytest.mark.slow
def test_model_in_the_loop_pre_annotates_the_next_tasks_with_retuned_thresholds(sample):
    bad = VADEstimator(onset=0.9, offset=0.9, min_duration_on=1.0, min_duration_off=0.0)
    grid = {
        "onset": [0.5, 0.9],
        "offset": [0.5, 0.9],
        "min_duration_on": [0.0, 1.0],
        "min_duration_off": [0.0],
    }
    components = correct_recipe(
        "ds",
        [sample],
        estimator=bad,
        chunk=5.0,
        audio="none",
        retune_every=2,
        param_grid=grid,
    )
    stream, update, loop = (
        components["stream"],
        components["update"],
        components["loop"],
    )
    truth = {
        eg["meta"]["start"]: eg["audio_spans"] for eg in reference_examples(sample, 5.0)
    }
    first = [next(stream), next(stream)]
    update(
        [dict(t, answer="accept", audio_spans=truth[t["meta"]["start"]]) for t in first]
    )
    assert len(loop.history) == 1 and loop.failures == []
    tuned = loop.history[0]["best_params"]
    assert bad.get_params()["onset"] == tuned["onset"]
    assert tuned != {
        "onset": 0.9,
        "offset": 0.9,
        "min_duration_on": 1.0,
        "min_duration_off": 0.0,
    }
    third = next(stream)
    with_new = list(
        make_tasks(VADEstimator(**tuned), [sample], chunk=5.0, audio="none")
    )
    with_old = list(
        make_tasks(
            VADEstimator(
                onset=0.9, offset=0.9, min_duration_on=1.0, min_duration_off=0.0
            ),
            [sample],
            chunk=5.0,
            audio="none",
        )
    )
    later = [third["audio_spans"]] + [t["audio_spans"] for t in stream]
    assert later == [t["audio_spans"] for t in with_new[2:]]
    assert later != [t["audio_spans"] for t in with_old[2:]]


def test_a_failed_retuning_keeps_the_session_going(sample):
    components = correct_recipe(
        "ds", [sample], chunk=10.0, audio="none", retune_every=1
    )
    task = next(components["stream"])
    components["update"](
        [dict(task, answer="accept", meta=dict(task["meta"], path=None))]
    )
    (message,) = components["loop"].failures
    assert "re-tuning on 1 corrections failed" in message
    # the default onset is "auto" (0.767 on pyannote/segmentation): kept as it was
    estimator = components["loop"].estimator
    assert estimator.get_params()["onset"] == "auto"
    assert estimator.resolve_thresholds()[0] == 0.767
    assert next(components["stream"])["meta"]["start"] == 10.0


# -- review -------------------------------------------------------------------------


def test_review_recipe_shows_missed_false_alarm_and_confusion(
    prodigy, sample, tmp_path
):
    registry = load_all(prodigy)
    reference = tmp_path / "ref.rttm"
    reference.write_text(
        "SPEAKER sample 1 1.000 4.000 <NA> <NA> alice <NA> <NA>\n"
        "SPEAKER sample 1 5.000 3.000 <NA> <NA> bob <NA> <NA>\n"
    )
    other = tmp_path / "annotator2.rttm"
    other.write_text(
        "SPEAKER sample 1 2.000 4.000 <NA> <NA> alice <NA> <NA>\n"
        "SPEAKER sample 1 6.000 4.000 <NA> <NA> bob <NA> <NA>\n"
    )
    review, _ = registry["skseg.review"]
    components = review(
        "rev",
        sample["audio"],
        str(reference),
        hypotheses=[str(other)],
        chunk=10.0,
        mode="identification",
    )
    assert set(components) <= COMPONENTS and components["view_id"] == "audio_manual"
    (task,) = components["stream"]
    assert [(s["start"], s["end"], s["label"]) for s in task["audio_spans"]] == [
        (1.0, 2.0, "missed detection"),
        (5.0, 6.0, "confusion"),
        (8.0, 10.0, "false alarm"),
    ]
    assert task["audio_spans_reference"][0] == {
        "start": 1.0,
        "end": 5.0,
        "label": "alice",
    }
    assert "audio_spans_annotator2" in task
    (saved,) = components["before_db"]([dict(task, answer="accept")])
    assert saved["audio_spans_annotator2"][0]["end"] == 6.0 and "audio" not in saved


# -- pyannote.database --------------------------------------------------------------


@pytest.mark.slow
def test_pyannote_database_protocol_files_are_accepted_as_X(sample, tmp_path):
    import shutil

    from pyannote.database import FileFinder, registry

    shutil.copy(sample["audio"], tmp_path / "sample.wav")
    from skseg.io import write_rttm, write_uem

    write_rttm(sample["annotation"], tmp_path / "sample.rttm")
    write_uem({"sample": sample["annotated"]}, tmp_path / "sample.uem")
    (tmp_path / "test.lst").write_text("sample\n")
    (tmp_path / "database.yml").write_text(
        "Databases:\n"
        f"  SkSample: {tmp_path}/{{uri}}.wav\n"
        "Protocols:\n"
        "  SkSample:\n"
        "    SpeakerDiarization:\n"
        "      Only:\n"
        "        test:\n"
        "          uri: test.lst\n"
        "          annotation: sample.rttm\n"
        "          annotated: sample.uem\n"
    )
    registry.load_database(tmp_path / "database.yml")
    protocol = registry.get_protocol(
        "SkSample.SpeakerDiarization.Only", preprocessors={"audio": FileFinder()}
    )
    files = list(protocol.test())
    assert type(files[0]).__name__ == "ProtocolFile"
    vad = VADEstimator()
    (speech,) = vad.predict(files)
    assert speech == vad(sample)
    assert vad.score(files) == pytest.approx(vad.score([sample]))
    tasks = list(make_tasks(vad, files, chunk=10.0, audio="none"))
    assert [t["meta"]["uri"] for t in tasks] == ["sample"] * 3
