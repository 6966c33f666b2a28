"""Label Studio conversion: labeling config, import JSON with predictions, export JSON
back to file-time annotations, on the real sample."""

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from pyannote.core import Segment

from skseg import VADEstimator
from skseg.annotation import (
    collect_annotations,
    export,
    from_labelstudio,
    labeling_config,
    make_tasks,
    to_labelstudio,
)
from skseg.exceptions import FileError
from skseg.io import read_rttm, read_uem


@pytest.fixture(scope="module")
def tasks(sample):
    return list(make_tasks(VADEstimator(), [sample], chunk=10.0, audio="none"))


def test_labeling_config_is_labels_over_audio():
    root = ET.fromstring(labeling_config(["SPEECH", 'a "quoted" <label>']))
    assert root.tag == "View"
    labels, audio = list(root)
    assert labels.tag == "Labels" and labels.attrib == {
        "name": "label",
        "toName": "audio",
    }
    assert [label.attrib["value"] for label in labels] == [
        "SPEECH",
        'a "quoted" <label>',
    ]
    assert audio.tag == "Audio" and audio.attrib == {"name": "audio", "value": "$audio"}


@pytest.mark.slow
def test_import_json_has_data_and_labels_predictions(tasks):
    imported = to_labelstudio(tasks, audio_url="/data/local-files/?d=audio/{file}")
    json.loads(json.dumps(imported))
    assert len(imported) == 3
    for task, ls in zip(tasks, imported, strict=True):
        assert ls["data"]["audio"] == "/data/local-files/?d=audio/sample.wav"
        assert ls["data"]["uri"] == "sample"
        assert ls["data"]["start"] == task["meta"]["start"]
        (prediction,) = ls["predictions"]
        assert prediction["model_version"] == "skseg"
        assert len(prediction["result"]) == len(task["audio_spans"])
        for region, span in zip(prediction["result"], task["audio_spans"], strict=True):
            assert region["from_name"] == "label" and region["to_name"] == "audio"
            assert region["type"] == "labels"
            assert region["value"] == {
                "start": span["start"],
                "end": span["end"],
                "channel": 0,
                "labels": [span["label"]],
            }
    with pytest.raises(ValueError, match="the task has no audio"):
        to_labelstudio(tasks)


def as_exported(imported, results):
    """What Label Studio exports after people annotated: annotations per task."""
    out = []
    for i, (task, result) in enumerate(zip(imported, results, strict=True)):
        exported = dict(task, id=i + 1)
        if result == "cancelled":
            exported["annotations"] = [{"id": 1, "was_cancelled": True, "result": []}]
        elif result is not None:
            exported["annotations"] = [
                {
                    "id": 1,
                    "was_cancelled": False,
                    "result": [],
                    "updated_at": "2026-01-01T10:00:00Z",
                },
                {
                    "id": 2,
                    "was_cancelled": False,
                    "result": result,
                    "updated_at": "2026-01-01T11:00:00Z",
                },
            ]
        out.append(exported)
    return out


def region(start, end, label):
    return {
        "id": f"x{start}",
        "from_name": "label",
        "to_name": "audio",
        "type": "labels",
        "value": {"start": start, "end": end, "channel": 0, "labels": [label]},
    }


def test_export_json_round_trips_to_rttm_and_uem(tasks, tmp_path, sample):
    imported = to_labelstudio(tasks, audio_url="{path}")
    first = [dict(r) for r in imported[0]["predictions"][0]["result"]]
    first[0] = region(
        first[0]["value"]["start"] + 0.3, first[0]["value"]["end"], "SPEECH"
    )
    first.append(region(0.25, 1.5, "NOISE"))
    results = [first, "cancelled", None]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(as_exported(imported, results)))

    examples = from_labelstudio(path)
    assert [e["answer"] for e in examples] == ["accept", "ignore"]
    export(examples, tmp_path / "ls.rttm", tmp_path / "ls.uem")
    expected = sorted(
        (r["value"]["start"], r["value"]["end"], r["value"]["labels"][0]) for r in first
    )
    turns = read_rttm(tmp_path / "ls.rttm")["sample"]
    found = sorted(
        (s.start, s.end, lab) for s, _, lab in turns.itertracks(yield_label=True)
    )
    assert [f[2] for f in found] == [e[2] for e in expected]
    assert (
        np.abs(np.array([f[:2] for f in found]) - [e[:2] for e in expected]).max()
        < 5e-4
    )
    assert list(read_uem(tmp_path / "ls.uem")["sample"]) == [Segment(0, 10)]


def test_predictions_accepted_as_they_are_give_the_prodigy_tasks_regions(tasks):
    imported = to_labelstudio(tasks, audio_url="{path}")
    results = [task["predictions"][0]["result"] for task in imported]
    via_labelstudio = collect_annotations(
        from_labelstudio(as_exported(imported, results))
    )
    via_prodigy = collect_annotations(tasks)
    assert via_labelstudio.annotations["sample"] == via_prodigy.annotations["sample"]
    assert via_labelstudio.annotated == via_prodigy.annotated
    assert via_labelstudio.annotated["sample"].duration() == 30.0


def test_bad_exports_are_named_and_the_good_tasks_kept(tasks, tmp_path):
    with pytest.raises(FileError, match="missing.json: no such file"):
        from_labelstudio(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(FileError, match="broken.json: not a Label Studio JSON export"):
        from_labelstudio(broken)

    imported = to_labelstudio(tasks, audio_url="{path}")
    results = [task["predictions"][0]["result"] for task in imported]
    exported = as_exported(imported, results)
    del exported[1]["data"]["uri"]  # a task Label Studio got from elsewhere
    exported[2]["annotations"][1]["result"].append(region(9.0, 12.0, "SPEECH"))
    examples = from_labelstudio(exported)
    result = collect_annotations(examples)
    assert list(result.annotated["sample"]) == [Segment(0, 10)]
    assert len(result.failures) == 2
    assert "Label Studio task 2: data has no uri/start/end" in result.failures[0]
    assert "ends after the task's end (10 s)" in result.failures[1]
