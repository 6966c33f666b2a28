"""The whole annotation loop against a real Label Studio 1.23.2 and skseg's backend.

A project set up by ``skseg labelstudio setup`` gets the backend's pre-annotations;
annotations submitted through Label Studio's API (as the labeling page does) reach
the backend by webhook and re-tune it (new model version, new predictions from the
new parameters); ``skseg labelstudio export`` writes the submitted regions as RTTM
+ UEM, and ``skseg tune`` runs on them. Then each failure: server unreachable, bad
token, unreadable audio, spans outside the audio.

The server is installed on first use (benchmarks/setup_labelstudio.sh, a few
minutes on a fresh machine, cached after) and started once for this module.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import soundfile as sf
from pyannote.core import Segment

from skseg import VADEstimator
from skseg.annotation.backend import LabelStudioBackend
from skseg.annotation.labelstudio_client import LabelStudioClient, LabelStudioError
from skseg.annotation.labelstudio_server import make_app
from skseg.annotation.spans import annotation_to_spans
from skseg.cli import main
from skseg.io import read_rttm, read_uem
from skseg.references import speech_reference

from .labelstudio_fixtures import BackendThread, free_port, launcher

# the fast tier (make test-fast) leaves this module out: it starts a Label Studio server
pytestmark = pytest.mark.slow

AUTH = ("labelstudio", "s3cret-backend")
GRID = {
    "onset": [0.3, 0.5, 0.7],
    "offset": [0.3, 0.5],
    "min_duration_on": [0.0],
    "min_duration_off": [0.0],
}
FIRST = {"onset": 0.9, "offset": 0.8, "min_duration_on": 0.0, "min_duration_off": 0.0}
EXCERPTS = {"call_a": (0.0, 12.0), "call_b": (12.0, 24.0)}


@pytest.fixture(scope="module")
def root(tmp_path_factory, sample):
    """LOCAL_FILES_DOCUMENT_ROOT with calls/ (two 12 s excerpts of the sample)."""
    root = tmp_path_factory.mktemp("ls-root")
    (root / "calls").mkdir()
    wav, sr = sf.read(sample["audio"], dtype="float32")
    for uri, (start, end) in EXCERPTS.items():
        sf.write(
            root / "calls" / f"{uri}.wav", wav[int(start * sr) : int(end * sr)], sr
        )
    return root


@pytest.fixture(scope="module")
def labelstudio(tmp_path_factory, root):
    data = tmp_path_factory.mktemp("ls-data")
    server = launcher().Server(data, root).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def backend(root):
    # thresholds far from the best on purpose: re-tuning must move them
    backend = LabelStudioBackend(
        VADEstimator(**FIRST), document_root=root, param_grid=GRID, cv=2
    )
    thread = BackendThread(make_app(backend, basic_auth=AUTH)).start()
    backend.url = thread.url
    yield backend
    thread.stop()


@pytest.fixture
def env(monkeypatch, labelstudio):
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", labelstudio.token)
    monkeypatch.setenv("SKSEG_BACKEND_AUTH", ":".join(AUTH))
    monkeypatch.setenv("LABEL_STUDIO_URL", labelstudio.url)


def reference_regions(sample, uri):
    """What the annotator submits for a call: the sample's speech, in task time."""
    start, end = EXCERPTS[uri]
    speech = speech_reference(sample["annotation"])
    return annotation_to_spans(speech, Segment(start, end))


def as_result(spans):
    return [
        {
            "id": f"r{i}",
            "from_name": "label",
            "to_name": "audio",
            "type": "labels",
            "origin": "manual",
            "value": {
                "start": s["start"],
                "end": s["end"],
                "channel": 0,
                "labels": [s["label"]],
            },
        }
        for i, s in enumerate(spans)
    ]


# what the labeling page's Submit does, through Label Studio's own SDK (in its venv)
SDK_ANNOTATE = """
import json, sys
from label_studio_sdk import LabelStudio
a = json.load(sys.stdin)
ls = LabelStudio(base_url=a["url"], api_key=a["token"])
annotation = ls.annotations.create(
    id=a["task"], result=a["result"], lead_time=12.5, parent_prediction=a["parent"]
)
print(annotation.id)
"""


def sdk_annotate(labelstudio, task, result):
    python = launcher().labelstudio_dir() / "venv" / "bin" / "python"
    request = {
        "url": labelstudio.url,
        "token": labelstudio.token,
        "task": task["id"],
        "result": result,
        "parent": task["predictions"][0]["id"],
    }
    done = subprocess.run(
        [str(python), "-c", SDK_ANNOTATE],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1])


def wait_for(condition, seconds=300.0, what="the backend"):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: timed out after {seconds} s"
        time.sleep(0.5)


def regions(prediction):
    return [
        (r["value"]["start"], r["value"]["end"], r["value"]["labels"][0])
        for r in prediction["result"]
    ]


def test_the_annotation_loop(env, labelstudio, backend, root, sample, tmp_path, capsys):
    client = LabelStudioClient(labelstudio.url, labelstudio.token)
    first_version = backend.model_version

    # set up: config, audio served, backend connected, one task per file
    status = main(
        ["labelstudio", "setup", "vad", str(root / "calls"), "--backend", backend.url]
    )
    assert status == 0
    project = int(capsys.readouterr().out.split()[0])
    tasks = {t["data"]["uri"]: t for t in client.tasks(project)}
    assert sorted(tasks) == sorted(EXCERPTS)
    assert "<Audio" in client.project(project)["label_config"]

    # Label Studio serves the audio to the labeling page
    assert client.download(tasks["call_a"]["data"]["audio"])[:4] == b"RIFF"

    # the backend's pre-annotations are on the tasks, from the first pipeline
    for task in tasks.values():
        (prediction,) = task["predictions"]
        assert prediction["model_version"] == first_version
        expected = backend.predict([task])[0]
        assert regions(prediction) == regions(expected) != []

    # annotate as the labeling page does (the first through Label Studio's SDK,
    # the second through the REST API): each annotation reaches the backend by
    # webhook; one annotated file cannot be cross-validated in 2 folds, so
    # that update fails and the first pipeline keeps serving
    submitted = {uri: reference_regions(sample, uri) for uri in EXCERPTS}

    def annotate(uri):
        client.request(
            "POST",
            f"/api/tasks/{tasks[uri]['id']}/annotations",
            json={"result": as_result(submitted[uri]), "lead_time": 12.5},
        )

    sdk_annotate(labelstudio, tasks["call_a"], as_result(submitted["call_a"]))
    wait_for(lambda: backend.failures, what="the first update")
    assert (
        "update on 1 Label Studio annotations failed: Cannot have number of "
        "splits n_splits=2" in backend.failures[0]
    )
    assert f"still serving {first_version}" in backend.failures[0]
    assert backend.model_version == first_version and backend.history == []

    # the second annotation re-tunes on both
    annotate("call_b")
    wait_for(lambda: backend.history, what="the second update")
    assert backend.history[-1]["n_annotations"] == 2
    new_version = backend.model_version
    assert new_version != first_version
    new_params = backend.history[-1]["best_params"]
    assert new_params != FIRST
    assert backend.estimator_.get_params()["onset"] == new_params["onset"]
    assert len(backend.failures) == 1

    # the next predictions come from the re-tuned pipeline
    client.retrieve_predictions(project)
    tasks = {t["data"]["uri"]: t for t in client.tasks(project)}
    for task in tasks.values():
        latest = [p for p in task["predictions"] if p["model_version"] == new_version]
        assert len(latest) == 1
        tuned = VADEstimator(**new_params)
        expected = annotation_to_spans(
            tuned({"audio": task["data"]["path"], "uri": task["data"]["uri"]}),
            Segment(0, task["data"]["end"]),
        )
        assert regions(latest[0]) == [
            (s["start"], s["end"], s["label"]) for s in expected
        ]

    # export: the RTTM is what was submitted, the UEM the whole files
    out = tmp_path / "exported"
    assert main(["labelstudio", "export", str(project), "--out", str(out)]) == 0
    rttm = read_rttm(out / "labelstudio.rttm")
    for uri, spans in submitted.items():
        got = sorted(
            (round(s.start, 3), round(s.end, 3), label)
            for s, _, label in rttm[uri].itertracks(yield_label=True)
        )
        assert got == sorted((s["start"], s["end"], s["label"]) for s in spans)
    uem = read_uem(out / "labelstudio.uem")
    assert {uri: list(uem[uri]) for uri in uem} == {
        uri: [Segment(0.0, end - start)] for uri, (start, end) in EXCERPTS.items()
    }

    # skseg tune reads the folder
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps(GRID))
    tuned = tmp_path / "vad.joblib"
    status = main(
        ["tune", str(out), "--pipeline", "vad", "--grid", str(grid), "--folds", "2"]
        + ["--out", str(tuned), "--quiet"]
    )
    assert status == 0 and tuned.stat().st_size > 0


def test_unreachable_server_is_named(env, capsys, tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(LabelStudioError, match=f"{url} is not reachable"):
        LabelStudioClient(url, "a.b.c").projects()
    status = main(["labelstudio", "export", "1", "--url", url, "--out", str(tmp_path)])
    assert status == 1
    assert f"Label Studio at {url} is not reachable" in capsys.readouterr().err


def test_bad_token_is_named(labelstudio, monkeypatch, capsys, tmp_path):
    forged = labelstudio.token[:-4] + (
        "AAAA" if labelstudio.token[-4:] != "AAAA" else "BBBB"
    )
    with pytest.raises(LabelStudioError, match="refused the personal access token"):
        LabelStudioClient(labelstudio.url, forged).projects()
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", forged)
    status = main(
        ["labelstudio", "export", "1", "--url", labelstudio.url, "--out", str(tmp_path)]
    )
    assert status == 1
    assert "refused the personal access token" in capsys.readouterr().err
    monkeypatch.delenv("LABEL_STUDIO_API_KEY")
    with pytest.raises(SystemExit):
        main(["labelstudio", "export", "1", "--out", str(tmp_path)])
    assert "$LABEL_STUDIO_API_KEY is not set" in capsys.readouterr().err


def test_unreadable_audio_is_named_and_the_others_imported(
    env, labelstudio, backend, root, capsys
):
    folder = root / "mixed"
    folder.mkdir()
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot audio")
    (folder / "good.wav").symlink_to(root / "calls" / "call_a.wav")
    status = main(
        ["labelstudio", "setup", "vad", str(folder), "--backend", backend.url]
        + ["--title", "mixed files"]
    )
    assert status == 1
    out, err = capsys.readouterr()
    assert "broken.wav" in err and "skipped" in err
    client = LabelStudioClient(labelstudio.url, labelstudio.token)
    assert [t["data"]["file"] for t in client.tasks(int(out.split()[0]))] == [
        "good.wav"
    ]
    # a task whose file became unreadable: an empty prediction, the file named
    task = {"id": 99, "data": {"path": str(folder / "broken.wav"), "uri": "broken"}}
    assert backend.predict([task])[0]["result"] == []
    assert "broken.wav" in backend.failures[-1]


def test_spans_outside_the_audio_are_named_and_left_out(
    env, labelstudio, backend, root, capsys, tmp_path
):
    folder = root / "short"
    folder.mkdir()
    (folder / "call_c.wav").symlink_to(root / "calls" / "call_b.wav")
    main(["labelstudio", "setup", "vad", str(folder), "--backend", backend.url])
    project = int(capsys.readouterr().out.split()[0])
    client = LabelStudioClient(labelstudio.url, labelstudio.token)
    (task,) = client.tasks(project)
    version, n_updates = backend.model_version, len(backend.history)
    outside = [{"start": 10.0, "end": 15.0, "label": "SPEECH"}]  # the file is 12 s
    client.request(
        "POST",
        f"/api/tasks/{task['id']}/annotations",
        json={"result": as_result(outside)},
    )
    wait_for(
        lambda: any(
            "call_c" in f or f"task {task['id']}" in f for f in backend.failures
        ),
        what="the webhook",
    )
    assert f"Label Studio task {task['id']}" in backend.failures[-1]
    assert "after the task's end (12 s)" in backend.failures[-1]
    assert backend.model_version == version and len(backend.history) == n_updates
    status = main(["labelstudio", "export", str(project), "--out", str(tmp_path)])
    assert status == 1
    assert "ends after the task's end (12 s)" in capsys.readouterr().err
