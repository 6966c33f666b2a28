"""The Label Studio ML backend tried as an attacker would (reliability round 3).

Credentials asked for by default, audio read only from regular files under the
document root and never fetched, request bodies bounded and malformed ones named,
annotations arriving out of order or all at once. Every request goes to 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time

import pytest
import requests

from skseg import VADEstimator
from skseg.annotation import backend as backend_module
from skseg.annotation.backend import LabelStudioBackend, task_audio_path
from skseg.annotation.labelstudio_server import make_app
from skseg.cli import main
from skseg.exceptions import FileError

from .hostile import peak_memory
from .labelstudio_fixtures import BackendThread, free_port
from .test_labelstudio_backend import PARAMS, event, task

AUTH = ("ls", "pw")


@pytest.fixture
def root(tmp_path, sample):
    (tmp_path / "root" / "calls").mkdir(parents=True)
    shutil.copy(sample["audio"], tmp_path / "root" / "calls" / "sample.wav")
    return tmp_path / "root"


@pytest.fixture
def served(root):
    backend = LabelStudioBackend(
        VADEstimator(**PARAMS), document_root=root, retune=False
    )
    server = BackendThread(make_app(backend, basic_auth=AUTH)).start()
    server.backend = backend
    yield server
    server.stop()


# -- authentication on by default -------------------------------------------------


def _serve_kwargs(monkeypatch, capsys, argv, env=None):
    import skseg.annotation.labelstudio_server as server

    monkeypatch.delenv("SKSEG_BACKEND_AUTH", raising=False)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    calls = []
    monkeypatch.setattr(server, "serve", lambda backend, **kw: calls.append(kw))
    assert main(["labelstudio", "serve", "vad", *argv]) == 0
    (kwargs,) = calls
    return kwargs, capsys.readouterr().err


def test_serve_asks_for_credentials_unless_told_not_to(monkeypatch, capsys, root):
    first, err = _serve_kwargs(monkeypatch, capsys, ["--audio-root", str(root)])
    user, password = first["basic_auth"]
    assert len(password) >= 20
    assert f"password {password!r} made for this run" in err
    assert f"SKSEG_BACKEND_AUTH='{user}:{password}'" in err
    second, _ = _serve_kwargs(monkeypatch, capsys, ["--audio-root", str(root)])
    assert second["basic_auth"][1] != password  # made anew, never a fixed default
    given, err = _serve_kwargs(
        monkeypatch, capsys, [], env={"SKSEG_BACKEND_AUTH": "me:s3cret"}
    )
    assert given["basic_auth"] == ("me", "s3cret") and "s3cret" not in err
    # a non-loopback address keeps the credentials
    wide, _ = _serve_kwargs(monkeypatch, capsys, ["--host", "0.0.0.0"])
    assert wide["basic_auth"] is not None
    off, err = _serve_kwargs(monkeypatch, capsys, ["--no-auth"])
    assert off["basic_auth"] is None and "no authentication (--no-auth)" in err


@pytest.mark.parametrize(
    "argv, env, message",
    [
        (["--no-auth", "--host", "0.0.0.0"], {}, "--no-auth refused on --host 0.0.0.0"),
        (["--no-auth", "--host", "ls.example"], {}, "--no-auth refused on --host"),
        (["--no-auth"], {"SKSEG_BACKEND_AUTH": "a:b"}, "$SKSEG_BACKEND_AUTH is set"),
    ],
)
def test_serve_refuses_no_auth_off_loopback(monkeypatch, capsys, argv, env, message):
    import skseg.annotation.labelstudio_server as server

    monkeypatch.delenv("SKSEG_BACKEND_AUTH", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(server, "serve", lambda backend, **kw: pytest.fail("served"))
    with pytest.raises(SystemExit) as exit:
        main(["labelstudio", "serve", "vad", *argv])
    assert exit.value.code == 2
    # one line after the usage names the problem
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_serve_function_refuses_a_wide_bind_without_credentials():
    from skseg.annotation.labelstudio_server import serve

    for host in ("0.0.0.0", "::", "192.168.1.5", "backend.example"):
        with pytest.raises(ValueError, match=f"refusing to listen on {host} without"):
            serve(LabelStudioBackend(VADEstimator()), host=host)


def test_setup_connects_a_backend_only_with_its_credentials(monkeypatch, capsys, root):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: never reached
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "a.b.c")
    monkeypatch.delenv("SKSEG_BACKEND_AUTH", raising=False)
    argv = ["labelstudio", "setup", "vad", str(root / "calls"), "--url", url]
    with pytest.raises(SystemExit) as exit:
        main([*argv, "--backend", "http://127.0.0.1:9090"])
    assert exit.value.code == 2
    assert "--backend: $SKSEG_BACKEND_AUTH is not set" in capsys.readouterr().err


def test_generated_credentials_guard_every_route(root):
    backend = LabelStudioBackend(VADEstimator(**PARAMS), document_root=root)
    server = BackendThread(make_app(backend, basic_auth=("skseg", "x" * 24))).start()
    try:
        for method, path in [("GET", "/health"), ("GET", "/status")] + [
            ("POST", p) for p in ("/setup", "/predict", "/webhook", "/train")
        ]:
            answer = requests.request(method, server.url + path, json={}, timeout=10)
            assert answer.status_code == 401, path
            # the prefix of the right password is no better than any other guess
            answer = requests.request(
                method, server.url + path, auth=("skseg", "x" * 23), timeout=10
            )
            assert answer.status_code == 401, path
        assert backend.examples == {} and backend.history == []
    finally:
        server.stop()


# -- what a task can make the backend read or fetch ---------------------------------


def test_task_audio_is_read_only_under_the_document_root(root, tmp_path):
    secret = tmp_path / "secret.wav"
    shutil.copy(root / "calls" / "sample.wav", secret)
    (root / "calls" / "link.wav").symlink_to(secret)
    os.mkfifo(root / "calls" / "pipe.wav")
    inside = str((root / "calls" / "sample.wav").resolve())
    assert task_audio_path({"id": 1, "data": {"path": inside}}, root) == inside
    cases = [
        ({"path": str(secret)}, "lies outside the document root"),
        ({"path": "/etc/passwd"}, "lies outside the document root"),
        ({"path": "calls/../../secret.wav"}, "lies outside the document root"),
        ({"audio": str(secret)}, "lies outside the document root"),
        ({"audio": "../secret.wav"}, "lies outside the document root"),
        ({"audio": "/data/local-files/?d=/etc/passwd"}, "lies outside"),
        ({"path": str(root / "calls" / "link.wav")}, "lies outside"),  # symlink out
        ({"audio": "/data/local-files/?d=calls/link.wav"}, "lies outside"),
        ({"path": str(root / "calls" / "pipe.wav")}, "is not a regular file"),
        ({"path": str(root / "calls")}, "is not a regular file"),
        ({"audio": "/data/local-files/?d=calls/a%00.wav"}, "cannot be read"),
        ({"path": "calls/missing.wav"}, "no such file under"),
        ({"audio": f"file://{secret}"}, "not a file the backend can read"),
        ({"audio": "file:///data/local-files/?d=calls/sample.wav"}, "not a file"),
        ({"path": ["calls/sample.wav"]}, "is not a string"),
    ]
    for data, message in cases:
        with pytest.raises(FileError, match=message) as error:
            task_audio_path({"id": 7, "data": data}, root)
        assert str(error.value).startswith("Label Studio task 7: "), data
        assert "\n" not in str(error.value)
    with pytest.raises(FileError, match="task 8: its 'data' is not an object"):
        task_audio_path({"id": 8, "data": ["calls/sample.wav"]}, root)
    with pytest.raises(FileError, match="has no document root .* --audio-root"):
        task_audio_path({"id": 9, "data": {"path": inside}}, None)


def test_a_task_url_never_makes_the_backend_connect(root):
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    backend = LabelStudioBackend(VADEstimator(**PARAMS), document_root=root)
    urls = [
        f"http://127.0.0.1:{port}/audio.wav",
        f"https://127.0.0.1:{port}/audio.wav",
        f"http://127.0.0.1:{port}/data/upload/1/a.wav",
        f"ftp://127.0.0.1:{port}/a.wav",
        f"gopher://127.0.0.1:{port}/_",
        f"//127.0.0.1:{port}/a.wav",
    ]
    try:
        results = backend.predict([task(i, audio=url) for i, url in enumerate(urls)])
        assert [r["result"] for r in results] == [[]] * len(urls)
        assert len(backend.failures) == len(urls)
        for url, failure in zip(urls, backend.failures, strict=True):
            assert repr(url) in failure and "reads local files" in failure
        with pytest.raises(BlockingIOError):  # nobody knocked
            listener.accept()
    finally:
        listener.close()


def test_an_annotation_naming_a_file_outside_is_not_read(root, monkeypatch):
    read = []
    monkeypatch.setattr(backend_module, "_duration", lambda path: read.append(path))
    backend = LabelStudioBackend(
        VADEstimator(**PARAMS), document_root=root, retune=False
    )
    hostile = {"id": 3, "data": {"path": "/etc/passwd", "start": 0, "end": 1}}
    assert not backend.add_annotation(event(hostile, [(0.0, 0.5)]))
    assert read == [] and backend.examples == {}
    assert "Label Studio task 3" in backend.failures[-1]
    assert "lies outside the document root" in backend.failures[-1]


# -- request bodies ------------------------------------------------------------------


def _raw(url: str, head: str, body: bytes = b"", timeout: float = 20) -> tuple:
    """Send a raw request to 127.0.0.1; return (status, JSON body)."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head.encode() + body)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    header, _, payload = answer.partition(b"\r\n\r\n")
    return int(header.split()[1]), json.loads(payload)


def _authorization() -> str:
    import base64

    return "Basic " + base64.b64encode(":".join(AUTH).encode()).decode()


def test_a_huge_declared_body_is_refused_before_it_is_read(served):
    started = time.monotonic()
    status, answer = _raw(
        served.url,
        "POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
        f"\r\nAuthorization: {_authorization()}\r\nContent-Length: {10**12}\r\n\r\n",
    )
    assert status == 413, answer
    assert time.monotonic() - started < 10
    assert answer["error"].startswith("skseg ML backend: /predict: the body is larger")


@pytest.mark.slow
def test_a_streamed_body_stops_being_read_at_the_limit():
    # the server in a fresh process: its peak memory is the body it kept
    code = """
    import base64, socket, threading
    from skseg import VADEstimator
    from skseg.annotation.backend import LabelStudioBackend
    from skseg.annotation.labelstudio_server import make_app
    from tests.labelstudio_fixtures import BackendThread

    app = make_app(LabelStudioBackend(VADEstimator()), basic_auth=("ls", "pw"))
    server = BackendThread(app).start()
    auth = base64.b64encode(b"ls:pw").decode()
    chunk = b"[" + b" " * (2**20 - 2) + b"]"
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(
            b"POST /webhook HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n"
            b"Authorization: Basic " + auth.encode() + b"\\r\\n"
            b"Transfer-Encoding: chunked\\r\\n\\r\\n"
        )
        try:
            for _ in range(256):  # 256 MiB offered
                s.sendall(b"%x\\r\\n" % len(chunk) + chunk + b"\\r\\n")
                sent += len(chunk)
        except OSError:
            pass  # the server closed the connection: it stopped reading
        try:
            while data := s.recv(65536):
                answer += data
        except OSError:
            pass
    server.stop()
    result["sent_mib"] = sent / 2**20
    result["answer"] = answer.decode(errors="replace")[:300]
    """
    result = peak_memory(code, timeout=300)
    assert result["sent_mib"] < 64, result
    assert result["grown_mib"] < 100, result
    if result["answer"]:  # else the close came before the answer could be read
        assert " 413 " in result["answer"].splitlines()[0], result


@pytest.mark.parametrize(
    "path, body, message",
    [
        ("/predict", b"{not json", "/predict: the body is not JSON"),
        ("/predict", b"\xff\xfe", "/predict: the body is not JSON"),
        ("/webhook", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ("/setup", b"[1, 2]", "/setup: the body is not a JSON object"),
        ("/train", b'{"annotations": 3}', "'annotations' is not a list"),
    ],
)
def test_malformed_bodies_are_a_400_naming_the_route(served, path, body, message):
    answer = requests.post(
        served.url + path,
        data=body,
        auth=AUTH,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert message in error and "\n" not in error and "Traceback" not in error


def test_malformed_tasks_and_payloads_are_named_not_a_crash(served):
    backend = served.backend
    predicted = requests.post(
        served.url + "/predict",
        json={"tasks": [1, "x", {"id": 4, "data": []}, task(5, end="late")]},
        auth=AUTH,
        timeout=60,
    )
    assert predicted.status_code == 200, predicted.text
    assert [r["result"] for r in predicted.json()["results"]] == [[]] * 4
    assert "'data' is not an object" in backend.failures[2]
    assert "'start'/'end' are not numbers" in backend.failures[3]
    for payload in [
        {"action": "ANNOTATION_CREATED", "task": [1, 2], "annotation": {}},
        {"action": "ANNOTATION_CREATED", "task": task(6), "annotation": "x"},
        {"action": "ANNOTATION_CREATED", "task": {"id": [1], "data": {}}},
        {"action": "ANNOTATION_UPDATED", "task": task(7), "annotation": {"result": 3}},
    ]:
        hook = requests.post(
            served.url + "/webhook", json=payload, auth=AUTH, timeout=30
        )
        assert hook.status_code == 201, hook.text
        assert hook.json() == {"status": "ignored"}
    legacy = requests.post(
        served.url + "/train",
        json={"annotations": [3, {"id": 9, "annotations": "x"}]},
        auth=AUTH,
        timeout=30,
    )
    assert legacy.status_code == 201 and legacy.json() == {"annotations": 0}
    assert backend.examples == {}


# -- annotations out of order, and all at once ------------------------------------------


def test_a_late_older_annotation_does_not_replace_a_newer_one(root):
    backend = LabelStudioBackend(
        VADEstimator(**PARAMS), document_root=root, retune=False
    )
    newer = event(task(1), [(1.0, 3.0)], action="ANNOTATION_UPDATED")
    newer["annotation"] |= {"id": 11, "updated_at": "2026-05-01T10:00:02.5Z"}
    older = event(task(1), [(1.0, 2.0)])
    older["annotation"] |= {"id": 11, "updated_at": "2026-05-01T10:00:01Z"}
    assert backend.add_annotation(newer)
    assert not backend.add_annotation(older)
    assert backend.examples[1]["audio_spans"][0]["end"] == 3.0
    # nor does an older skip remove it
    skipped = event(task(1), [], cancelled=True)
    skipped["annotation"] |= {"id": 11, "updated_at": "2026-05-01T10:00:00Z"}
    assert not backend.add_annotation(skipped)
    assert 1 in backend.examples
    # a later one replaces it, and a later skip removes it
    latest = event(task(1), [(1.0, 4.0)], action="ANNOTATION_UPDATED")
    latest["annotation"] |= {"id": 11, "updated_at": "2026-05-01T10:00:03Z"}
    assert backend.add_annotation(latest)
    assert backend.examples[1]["audio_spans"][0]["end"] == 4.0
    skipped["annotation"]["updated_at"] = "2026-05-01T10:00:04Z"
    assert not backend.add_annotation(skipped) and backend.examples == {}


def test_concurrent_webhooks_run_one_update_at_a_time_on_the_latest_set(
    root, monkeypatch
):
    active, seen, guard = [0], [], threading.Lock()
    peak = [0]

    class Result:
        metric = "detection_error_rate"
        best_score = 0.1

    def slow_tune(estimator, examples, **kwargs):
        with guard:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.3)
        with guard:
            active[0] -= 1
            seen.append(len(examples))
        result = Result()
        result.best_params = {"onset": 0.5 + len(examples) / 1000}
        return result

    monkeypatch.setattr(backend_module, "tune_on_examples", slow_tune)
    backend = LabelStudioBackend(VADEstimator(**PARAMS), document_root=root)
    server = BackendThread(make_app(backend, basic_auth=AUTH)).start()
    n = 16
    try:
        barrier = threading.Barrier(n)

        def post(i):
            barrier.wait()
            answer = requests.post(
                server.url + "/webhook",
                json=event(task(i), [(1.0, 2.0)]),
                auth=AUTH,
                timeout=60,
            )
            assert answer.status_code == 201

        threads = [threading.Thread(target=post, args=(i,)) for i in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        deadline = time.monotonic() + 60
        while requests.get(server.url + "/status", auth=AUTH, timeout=10).json()[
            "updating"
        ]:
            assert time.monotonic() < deadline, "updates did not end"
            time.sleep(0.1)
    finally:
        server.stop()
    assert len(backend.examples) == n
    assert peak[0] == 1, "two re-tunings ran at once"
    assert len(seen) < n  # events arriving during an update coalesce
    assert seen[-1] == n and backend.history[-1]["n_annotations"] == n
    assert backend.estimator_.onset == 0.5 + n / 1000  # the latest set won
    assert [entry["n_annotations"] for entry in backend.history] == sorted(seen)
