"""skseg's Label Studio ML backend on its own: predictions, annotations, updates, HTTP.

The loop with a real Label Studio is in test_labelstudio_server.py; these check the
backend's rules directly, with the real model on the sample.
"""

from __future__ import annotations

import shutil

import pytest
import requests
from pyannote.core import Segment

from skseg import OSDEstimator, VADEstimator
from skseg.annotation.backend import LabelStudioBackend, model_version, task_audio_path
from skseg.annotation.labelstudio_server import make_app
from skseg.annotation.spans import annotation_to_spans
from skseg.exceptions import FileError

from .labelstudio_fixtures import BackendThread

PARAMS = {"onset": 0.5, "offset": 0.5, "min_duration_on": 0.0, "min_duration_off": 0.0}
GRID = {
    "onset": [0.4, 0.6],
    "offset": [0.4],
    "min_duration_on": [0.0],
    "min_duration_off": [0.0],
}


@pytest.fixture
def root(tmp_path, sample):
    (tmp_path / "calls").mkdir()
    shutil.copy(sample["audio"], tmp_path / "calls" / "sample.wav")
    return tmp_path


def task(id, start=0.0, end=30.0, audio="/data/local-files/?d=calls/sample.wav"):
    return {
        "id": id,
        "data": {"audio": audio, "uri": "sample", "start": start, "end": end},
    }


def event(task, spans, action="ANNOTATION_CREATED", cancelled=False):
    result = [
        {
            "from_name": "label",
            "to_name": "audio",
            "type": "labels",
            "value": {"start": s, "end": e, "channel": 0, "labels": ["SPEECH"]},
        }
        for s, e in spans
    ]
    return {
        "action": action,
        "task": task,
        "annotation": {"result": result, "was_cancelled": cancelled},
    }


def test_model_version_follows_the_parameters():
    vad = VADEstimator(**PARAMS)
    assert model_version(vad) == model_version(VADEstimator(**PARAMS))
    assert model_version(vad) != model_version(VADEstimator(**PARAMS | {"onset": 0.6}))
    assert model_version(vad) != model_version(VADEstimator(**PARAMS, mode="fast"))


def test_local_file_urls_map_under_the_document_root_only(root):
    path = task_audio_path(task(1), root)
    assert path == str(root.resolve() / "calls" / "sample.wav")
    with pytest.raises(FileError, match="lies outside"):
        task_audio_path(task(1, audio="/data/local-files/?d=../etc/passwd"), root)
    with pytest.raises(FileError, match="task 2: audio .* not a file the backend"):
        task_audio_path(task(2, audio="https://example.org/a.wav"), root)


@pytest.mark.slow
def test_predictions_are_the_pipeline_regions_in_task_time(root, sample):
    backend = LabelStudioBackend(VADEstimator(**PARAMS), document_root=root)
    (prediction,) = backend.predict([task(1, start=10.0, end=20.0)])
    expected = annotation_to_spans(VADEstimator(**PARAMS)(sample), Segment(10.0, 20.0))
    assert [
        (r["value"]["start"], r["value"]["end"], r["value"]["labels"])
        for r in prediction["result"]
    ] == [(s["start"], s["end"], [s["label"]]) for s in expected]
    assert {r["type"] for r in prediction["result"]} == {"labels"}
    assert prediction["model_version"] == backend.model_version


@pytest.mark.slow
def test_an_unreadable_task_gets_an_empty_prediction_and_is_named(root):
    (root / "calls" / "bad.wav").write_bytes(b"not audio")
    backend = LabelStudioBackend(VADEstimator(**PARAMS), document_root=root)
    good, bad = backend.predict(
        [task(1), task(2, audio="/data/local-files/?d=calls/bad.wav")]
    )
    assert good["result"] and bad["result"] == []
    assert "Label Studio task 2" in backend.failures[0]
    assert "bad.wav" in backend.failures[0]


def test_annotations_kept_replaced_cancelled_and_refused(root):
    backend = LabelStudioBackend(
        VADEstimator(**PARAMS), document_root=root, retune=False
    )
    assert backend.add_annotation(event(task(1), [(1.0, 2.0)]))
    assert backend.add_annotation(
        event(task(1), [(1.0, 3.0)], action="ANNOTATION_UPDATED")
    )
    assert backend.examples[1]["audio_spans"] == [
        {"start": 1.0, "end": 3.0, "label": "SPEECH"}
    ]
    assert not backend.add_annotation(event(task(1), [], cancelled=True))
    assert backend.examples == {}
    assert not backend.add_annotation(event(task(1), [(1, 2)], action="TASK_CREATED"))
    # the task says 40 s, the file is 30 s: spans past its end are refused
    assert not backend.add_annotation(event(task(3, end=40.0), [(25.0, 35.0)]))
    assert "Label Studio task 3" in backend.failures[-1]
    assert "after the end of" in backend.failures[-1]
    assert backend.examples == {}


@pytest.mark.slow
def test_an_update_retunes_and_a_failed_one_keeps_the_pipeline(root):
    backend = LabelStudioBackend(
        VADEstimator(**PARAMS),
        document_root=root,
        param_grid={"onset": ["not a number"]},
    )
    first = backend.model_version
    assert backend.annotation_event(event(task(1), [(6.7, 7.2), (7.5, 21.5)])) is None
    assert backend.model_version == first and backend.history == []
    assert f"still serving {first}" in backend.failures[-1]
    backend.param_grid = GRID
    entry = backend.update()
    assert entry["model_version"] == backend.model_version != first
    assert backend.estimator_.onset == entry["best_params"]["onset"]
    assert backend.estimator.onset == PARAMS["onset"]  # the original is untouched


@pytest.mark.slow
def test_http_routes_and_basic_auth(root):
    backend = LabelStudioBackend(
        VADEstimator(**PARAMS), document_root=root, retune=False
    )
    server = BackendThread(make_app(backend, basic_auth=("ls", "pw"))).start()
    try:
        url = server.url
        refused = requests.get(f"{url}/health", timeout=10)
        assert refused.status_code == 401
        assert "basic-auth" in refused.json()["error"]
        assert (
            requests.get(f"{url}/health", auth=("ls", "no"), timeout=10).status_code
            == 401
        )
        health = requests.get(f"{url}/health", auth=("ls", "pw"), timeout=10).json()
        assert health["status"] == "UP"
        assert health["model_version"] == backend.model_version
        setup = requests.post(
            f"{url}/setup", json={"project": "1.0"}, auth=("ls", "pw"), timeout=10
        ).json()
        assert setup == {"model_version": backend.model_version}
        bad = requests.post(
            f"{url}/predict", json={"tasks": 3}, auth=("ls", "pw"), timeout=10
        )
        assert bad.status_code == 400 and "'tasks' is not a list" in bad.json()["error"]
        predicted = requests.post(
            f"{url}/predict", json={"tasks": [task(1)]}, auth=("ls", "pw"), timeout=60
        ).json()
        assert predicted["results"] == backend.predict([task(1)])
        hook = requests.post(
            f"{url}/webhook",
            json=event(task(1), [(1.0, 2.0)]),
            auth=("ls", "pw"),
            timeout=10,
        )
        assert hook.status_code == 201 and 1 in backend.examples
        legacy = requests.post(
            f"{url}/train",
            json={
                "annotations": [
                    event(task(2), [(1.0, 2.0)])["task"]
                    | {"annotations": [{"result": [], "id": 1}]}
                ]
            },
            auth=("ls", "pw"),
            timeout=10,
        )
        assert legacy.status_code == 201 and legacy.json() == {"annotations": 1}
        status = requests.get(f"{url}/status", auth=("ls", "pw"), timeout=10).json()
        assert status["n_annotations"] == 2 and status["params"]["onset"] == 0.5
    finally:
        server.stop()


@pytest.mark.slow
def test_a_fine_tuned_network_gets_a_new_model_version_and_serves(root, model):
    import copy

    import torch

    tuned = copy.deepcopy(model)
    with torch.no_grad():
        tuned.network.classifier.bias.add_(0.05)
    seen = []

    def fine_tune(estimator, X, y):
        seen.append(([x["uri"] for x in X], [len(a) for a in y]))
        return estimator.set_params(segmentation=tuned)

    annotation = event(task(1), [(6.7, 7.2), (7.5, 21.5)])
    backend = LabelStudioBackend(
        VADEstimator(**PARAMS),
        document_root=root,
        param_grid=GRID,
        fine_tune=fine_tune,
    )
    entry = backend.annotation_event(annotation)
    assert seen == [(["sample"], [2])]
    assert backend.estimator_.segmentation is tuned
    thresholds_only = LabelStudioBackend(
        VADEstimator(**PARAMS), document_root=root, param_grid=GRID
    )
    thresholds_only.annotation_event(annotation)
    assert entry["model_version"] == backend.model_version
    assert backend.model_version != thresholds_only.model_version
    (prediction,) = backend.predict([task(1)])
    assert prediction["model_version"] == backend.model_version
    assert prediction["result"]


@pytest.mark.slow
def test_the_serve_command_serves_with_basic_auth(root, tmp_path):
    import os
    import subprocess
    import sys
    import time

    from .labelstudio_fixtures import ROOT, free_port

    port = free_port()
    env = dict(os.environ, SKSEG_BACKEND_AUTH="ls:pw", PYTHONPATH=str(ROOT))
    command = [
        sys.executable,
        "-m",
        "skseg",
        "labelstudio",
        "serve",
        "osd",
        "--port",
        str(port),
        "--onset",
        "0.6",
        "--audio-root",
        str(root),
    ]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                health = requests.get(
                    f"http://127.0.0.1:{port}/health", auth=("ls", "pw"), timeout=5
                )
                break
            except requests.ConnectionError:
                assert process.poll() is None, process.stderr.read()
                assert time.monotonic() < deadline, "skseg labelstudio serve: no answer"
                time.sleep(0.5)
        assert health.json()["model_class"] == "skseg OSDEstimator"
        # the command's estimator: the flags given, and the score cache on
        expected = model_version(OSDEstimator(onset=0.6, cache=True))
        assert health.json()["model_version"] == expected
        assert (
            requests.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code
            == 401
        )
    finally:
        process.terminate()
        process.wait(30)
