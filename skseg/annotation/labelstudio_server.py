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
401 without those credentials (compared in constant time). Label Studio sends
them when the backend is connected with ``auth_method="BASIC_AUTH"``,
``basic_auth_user`` and ``basic_auth_pass``, and a project webhook sends them as
an ``Authorization`` header
(:func:`~skseg.annotation.labelstudio_client.LabelStudioClient.connect_backend`
sets up both). ``skseg labelstudio serve`` always asks for them unless told
``--no-auth``. :func:`serve` binds to 127.0.0.1 by default and refuses any other
address without credentials; basic auth over plain HTTP is readable on the
network, so put a TLS proxy in front of a backend reached from another machine.

Hostile requests: a body over ``max_body`` bytes is refused with 413 as soon as
its ``Content-Length`` says so, or when that many bytes have arrived (it is never
read whole); a body that is not a JSON object, or one nested too deeply, is a 400
naming the route; an error inside the backend is a 500 naming its type, never a
traceback (that goes to the server's log).

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
import ipaddress
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .backend import LabelStudioBackend

__all__ = ["MAX_BODY", "is_loopback", "make_app", "serve"]

logger = logging.getLogger(__name__)

#: the largest request body read, in bytes: far above a batch of tasks or
#: annotations, far below what a JSON decoder turns into too much memory
MAX_BODY = 8 * 2**20


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address of this machine only.

    Parameters
    ----------
    host : str
        An IP address or ``"localhost"``; any other name counts as not loopback
        (it may resolve anywhere).

    Returns
    -------
    loopback : bool

    Examples
    --------
    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
    backend: LabelStudioBackend,
    *,
    basic_auth: tuple[str, str] | None = None,
    max_body: int = MAX_BODY,
) -> Any:
    """Return the ASGI application serving ``backend`` to Label Studio.

    Parameters
    ----------
    backend : LabelStudioBackend
    basic_auth : (str, str), optional
        ``(user, password)`` every request must carry (HTTP basic auth).
    max_body : int, default=MAX_BODY
        The largest request body read, in bytes; a larger one gets 413.

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
        declared = request.headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise _BadRequest(f"Content-Length {declared[:40]!r} is not a number")
            if int(declared) > max_body:
                raise _TooLarge(int(declared), max_body)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:  # stop reading: the rest is never buffered
                raise _TooLarge(size, max_body)
            chunks.append(chunk)
        try:
            data = json.loads(b"".join(chunks))
        except RecursionError:
            raise _BadRequest("the body is nested too deeply") from None
        except ValueError as e:  # UnicodeDecodeError is one
            raise _BadRequest(f"the body is not JSON ({e})") from None
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
            annotations = task.get("annotations")
            for annotation in annotations if isinstance(annotations, list) else []:
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
            except _TooLarge as e:
                return JSONResponse(
                    {"error": f"skseg ML backend: {request.url.path}: {e}"},
                    status_code=413,
                    headers={"Connection": "close"},
                )
            except Exception as e:  # noqa: BLE001 -- the log has the traceback
                logger.exception("%s %s failed", request.method, request.url.path)
                return JSONResponse(
                    {
                        "error": f"skseg ML backend: {request.url.path}: internal "
                        f"error ({type(e).__name__}); see the backend's log"
                    },
                    status_code=500,
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


class _TooLarge(Exception):
    def __init__(self, size: int, limit: int):
        super().__init__(
            f"the body is larger than {limit} bytes (at least {size}); not read"
        )


def serve(
    backend: LabelStudioBackend,
    *,
    host: str = "127.0.0.1",
    port: int = 9090,
    basic_auth: tuple[str, str] | None = None,
    log_level: str = "info",
    max_body: int = MAX_BODY,
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
    max_body : int, default=MAX_BODY
        See :func:`make_app`.

    Raises
    ------
    ValueError
        If ``host`` is not a loopback address and ``basic_auth`` is None:
        anyone on the network could read the audio's predictions and re-tune.

    Examples
    --------
    >>> serve(None, host="0.0.0.0")
    Traceback (most recent call last):
    ...
    ValueError: skseg ML backend: refusing to listen on 0.0.0.0 without \
authentication: ...
    """
    if basic_auth is None and not is_loopback(host):
        raise ValueError(
            f"skseg ML backend: refusing to listen on {host} without "
            "authentication: anyone who reaches it could read predictions and "
            "re-tune the pipeline; give credentials, or listen on 127.0.0.1"
        )
    import uvicorn

    uvicorn.run(
        make_app(backend, basic_auth=basic_auth, max_body=max_body),
        host=host,
        port=port,
        log_level=log_level,
    )
