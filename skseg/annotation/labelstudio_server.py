"""Label Studio's ML backend protocol over HTTP, serving a :class:`LabelStudioBackend`.

The routes are those Label Studio 1.23 calls (``label_studio/ml/api_connector.py``):

* ``GET /health`` (and ``GET /``): ``{"status": "UP", "model_class",
  "model_version"}``; Label Studio checks it before every other call;
* ``POST /setup`` ``{"project", "schema", "hostname", "access_token",
  "extra_params"}``: ``{"model_version"}``;
* ``POST /predict`` ``{"tasks", "project", "label_config", "params"}``:
  ``{"results": [one prediction per task], "model_version"}``;
* ``POST /webhook``: a project webhook's ``{"action": "ANNOTATION_CREATED" |
  "ANNOTATION_UPDATED", "task", "annotation", "project"}`` -- the annotation is
  taken at once and the pipeline updated in the background (Label Studio waits
  ``WEBHOOK_TIMEOUT``, 1 s by default, for the answer); ``START_TRAINING`` (the
  project's "start training on annotation submission") re-runs the update on the
  annotations received so far;
* ``POST /train`` (Label Studio before 1.4.1): ``{"annotations": [tasks with
  their annotations]}``, each taken as an annotation event;
* ``GET /status`` (skseg's own): ``{"model_version", "n_annotations",
  "updating", "history", "failures"}``.

Access control: with ``basic_auth=(user, password)`` every route answers
401 without those credentials. Label Studio sends them when the backend is
connected with ``auth_method="BASIC_AUTH"``, ``basic_auth_user`` and
``basic_auth_pass``, and a project webhook sends them as an ``Authorization``
header (:func:`~skseg.annotation.labelstudio_client.LabelStudioClient.connect_backend`
sets up both). Bind to 127.0.0.1 unless the backend must be reached from another
machine; basic auth over plain HTTP is readable on the network, so put a TLS proxy
in front of a backend that is.

Why not ``label-studio-ml``: its last release on the package index (1.0.9, January
2023) pins Flask 1.1.2 and Werkzeug 2.0.2, does not import without ``rq`` and
``redis``, which it does not declare, and speaks the protocol of Label Studio
before 1.4.1 (its newer versions are not released on the index). The protocol is
five JSON routes, served here by Starlette on uvicorn.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .backend import LabelStudioBackend

__all__ = ["make_app", "serve"]

logger = logging.getLogger(__name__)


def _check_auth(header: str | None, basic_auth: tuple[str, str]) -> bool:
    if not header or not header.startswith("Basic "):
        return False
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return False
    user, _, password = decoded.partition(":")
    # constant time: the comparison does not tell how much of a guess was right
    return hmac.compare_digest(user, basic_auth[0]) & hmac.compare_digest(
        password, basic_auth[1]
    )


class _Updates:
    """One background update at a time; events arriving meanwhile coalesce."""

    def __init__(self, backend: LabelStudioBackend):
        self.backend = backend
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skseg")
        self.lock = threading.Lock()
        self.queued = 0

    def submit(self) -> None:
        with self.lock:
            if self.queued >= 2:  # one running, one to come: it will see everything
                return
            self.queued += 1
        self.executor.submit(self._run)

    def _run(self) -> None:
        try:
            self.backend.update()
        finally:
            with self.lock:
                self.queued -= 1

    @property
    def busy(self) -> bool:
        with self.lock:
            return self.queued > 0


def make_app(
    backend: LabelStudioBackend, *, basic_auth: tuple[str, str] | None = None
) -> Any:
    """Return the ASGI application serving ``backend`` to Label Studio.

    Parameters
    ----------
    backend : LabelStudioBackend
    basic_auth : (str, str), optional
        ``(user, password)`` every request must carry (HTTP basic auth).

    Returns
    -------
    app : starlette.applications.Starlette

    Examples
    --------
    >>> from skseg import VADEstimator
    >>> app = make_app(LabelStudioBackend(VADEstimator()), basic_auth=("ls", "s3"))
    >>> sorted(route.path for route in app.routes)
    ['/', '/health', '/predict', '/setup', '/status', '/train', '/webhook']
    """
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    updates = _Updates(backend)

    async def body(request: Request) -> dict:
        try:
            data = await request.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise _BadRequest("the body is not a JSON object")
        return data

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "status": "UP",
                "model_class": f"skseg {type(backend.estimator_).__name__}",
                "model_version": backend.model_version,
            }
        )

    async def setup(request: Request) -> JSONResponse:
        await body(request)
        return JSONResponse({"model_version": backend.model_version})

    async def predict(request: Request) -> JSONResponse:
        tasks = (await body(request)).get("tasks")
        if not isinstance(tasks, list):
            raise _BadRequest("'tasks' is not a list of tasks")
        # the network runs outside the event loop, so /health stays responsive
        results = await run_in_threadpool(backend.predict, tasks)
        version = results[0]["model_version"] if results else backend.model_version
        return JSONResponse({"results": results, "model_version": version})

    async def webhook(request: Request) -> JSONResponse:
        payload = await body(request)
        action = payload.get("action")
        if action == "START_TRAINING":
            if backend.examples:
                updates.submit()
            return JSONResponse({"status": "updating"}, status_code=201)
        taken = await run_in_threadpool(backend.add_annotation, payload)
        if taken and backend.ready:
            updates.submit()
        return JSONResponse(
            {"status": "updating" if taken and backend.ready else "ignored"},
            status_code=201,
        )

    async def train(request: Request) -> JSONResponse:
        tasks = (await body(request)).get("annotations")
        if not isinstance(tasks, list):
            raise _BadRequest("'annotations' is not a list of tasks")
        taken = 0
        for task in tasks:
            if not isinstance(task, dict):
                continue
            for annotation in task.get("annotations") or []:
                payload = {
                    "action": "ANNOTATION_UPDATED",
                    "task": task,
                    "annotation": annotation,
                }
                taken += await run_in_threadpool(backend.add_annotation, payload)
        if taken and backend.ready:
            updates.submit()
        return JSONResponse({"annotations": taken}, status_code=201)

    async def status(request: Request) -> JSONResponse:
        return JSONResponse(backend.status() | {"updating": updates.busy})

    class Guard(BaseHTTPMiddleware):
        async def dispatch(self, request, call_next):
            if basic_auth is not None and not _check_auth(
                request.headers.get("authorization"), basic_auth
            ):
                return JSONResponse(
                    {
                        "error": "skseg ML backend: missing or wrong basic-auth "
                        "credentials"
                    },
                    status_code=401,
                    headers={"WWW-Authenticate": 'Basic realm="skseg"'},
                )
            try:
                return await call_next(request)
            except _BadRequest as e:
                return JSONResponse(
                    {"error": f"skseg ML backend: {request.url.path}: {e}"},
                    status_code=400,
                )

    return Starlette(
        routes=[
            Route("/", health, methods=["GET"]),
            Route("/health", health, methods=["GET"]),
            Route("/setup", setup, methods=["POST"]),
            Route("/predict", predict, methods=["POST"]),
            Route("/webhook", webhook, methods=["POST"]),
            Route("/train", train, methods=["POST"]),
            Route("/status", status, methods=["GET"]),
        ],
        middleware=[Middleware(Guard)],
    )


class _BadRequest(Exception):
    pass


def serve(
    backend: LabelStudioBackend,
    *,
    host: str = "127.0.0.1",
    port: int = 9090,
    basic_auth: tuple[str, str] | None = None,
    log_level: str = "info",
) -> None:
    """Serve ``backend`` with uvicorn until interrupted.

    Parameters
    ----------
    backend : LabelStudioBackend
    host : str, default="127.0.0.1"
    port : int, default=9090
    basic_auth : (str, str), optional
        See :func:`make_app`.
    log_level : str, default="info"

    Examples
    --------
    >>> serve  # doctest: +ELLIPSIS
    <function serve at ...>
    """
    import uvicorn

    uvicorn.run(
        make_app(backend, basic_auth=basic_auth),
        host=host,
        port=port,
        log_level=log_level,
    )
