"""A small client of Label Studio's REST API: what ``skseg labelstudio`` needs.

Authentication is Label Studio 1.23's default: a *personal access token* (Account
& Settings > Personal Access Token) is a JWT refresh token; the client exchanges it
at ``POST /api/token/refresh/`` for a short-lived access token sent as ``Authorization:
Bearer ...``, and exchanges it again when Label Studio answers 401. Legacy tokens
(40 hex characters, disabled by default since 1.22 and enabled per organisation)
are sent as ``Authorization: Token ...``.

Every failure is a :class:`~skseg.exceptions.LabelStudioError` naming the server
and the problem: the server not reachable, the token refused, a project that does
not exist, an answer that is not JSON.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable, Mapping
from typing import Any

from ..exceptions import LabelStudioError

__all__ = ["LabelStudioClient", "LabelStudioError"]

#: the actions a project webhook sends to the ML backend
WEBHOOK_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")


def _is_jwt(token: str) -> bool:
    return token.count(".") == 2


class LabelStudioClient:
    """Talk to a Label Studio server with a personal access token.

    Parameters
    ----------
    url : str
        The server, e.g. ``"http://127.0.0.1:8080"``.
    token : str
        A personal access token (JWT refresh token), or a legacy token.
    timeout : float, default=30.0
        Seconds to wait for each answer.

    Examples
    --------
    >>> client = LabelStudioClient("http://127.0.0.1:9", "a.b.c", timeout=2)
    >>> client.projects()
    Traceback (most recent call last):
    ...
    skseg.exceptions.LabelStudioError: Label Studio at \
http://127.0.0.1:9 is not reachable (connection refused); is it running?
    """

    def __init__(self, url: str, token: str, *, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.token = token.strip()
        self.timeout = timeout
        self._access: str | None = None
        self._http: Any = None

    def _session(self):
        import requests

        if self._http is None:
            self._http = requests.Session()
        return self._http

    def _send(self, method: str, path: str, **kwargs: Any):
        import requests

        try:
            return self._session().request(
                method, self.url + path, timeout=self.timeout, **kwargs
            )
        except requests.ConnectionError as e:
            reason = "connection refused" if "refused" in str(e).lower() else str(e)
            raise LabelStudioError(
                f"Label Studio at {self.url} is not reachable ({reason}); "
                "is it running?"
            ) from None
        except requests.RequestException as e:
            raise LabelStudioError(f"Label Studio at {self.url}: {e}") from None

    def _authorization(self, renew: bool = False) -> str:
        if not _is_jwt(self.token):
            return f"Token {self.token}"
        if self._access is None or renew:
            response = self._send(
                "POST", "/api/token/refresh/", json={"refresh": self.token}
            )
            if response.status_code in (400, 401, 403):
                raise LabelStudioError(
                    f"Label Studio at {self.url} refused the personal access token "
                    f"({response.status_code}: {_detail(response)}); copy a valid "
                    "one from Account & Settings > Personal Access Token"
                )
            self._access = self._json(response, "/api/token/refresh/")["access"]
        return f"Bearer {self._access}"

    def _json(self, response, path: str) -> Any:
        if response.status_code >= 400:
            raise LabelStudioError(
                f"Label Studio at {self.url}: {path}: {response.status_code} "
                f"{_detail(response)}"
            )
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise LabelStudioError(
                f"Label Studio at {self.url}: {path}: the answer is not JSON "
                f"({response.text[:200]!r}); is this a Label Studio server?"
            ) from None

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send one API request; return its JSON answer.

        Parameters
        ----------
        method : str
        path : str
            From the server's root, e.g. ``"/api/projects"``.
        **kwargs
            For :meth:`requests.Session.request` (``json``, ``params``).

        Returns
        -------
        answer : object
            The decoded JSON (None for an empty answer).

        Raises
        ------
        LabelStudioError
        """
        for attempt in range(2):
            headers = {"Authorization": self._authorization(renew=attempt > 0)}
            response = self._send(method, path, headers=headers, **kwargs)
            # an access token lives minutes: exchange the PAT again, once
            if response.status_code != 401 or not _is_jwt(self.token):
                break
        if response.status_code == 401:
            raise LabelStudioError(
                f"Label Studio at {self.url} refused the token (401: "
                f"{_detail(response)})"
            )
        return self._json(response, path)

    def download(self, path: str) -> bytes:
        """Return what the server serves at ``path`` (e.g. a task's audio URL).

        Parameters
        ----------
        path : str
            From the server's root, e.g. ``"/data/local-files/?d=calls/a.wav"``.

        Returns
        -------
        content : bytes

        Raises
        ------
        LabelStudioError
            If the server refuses or does not have it.
        """
        headers = {"Authorization": self._authorization()}
        response = self._send("GET", path, headers=headers)
        if response.status_code != 200:
            raise LabelStudioError(
                f"Label Studio at {self.url}: {path}: {response.status_code} "
                f"{response.reason}"
            )
        return response.content

    # -- projects -------------------------------------------------------------

    def projects(self) -> list[dict]:
        """Return the projects the token's user sees.

        Returns
        -------
        projects : list of dict
        """
        answer = self.request("GET", "/api/projects", params={"page_size": 1000})
        return answer["results"] if isinstance(answer, dict) else answer

    def project(self, project: int | str) -> dict:
        """Return a project by id or title.

        Parameters
        ----------
        project : int or str

        Returns
        -------
        project : dict

        Raises
        ------
        LabelStudioError
            If no project has that id or title.
        """
        for candidate in self.projects():
            if str(candidate["id"]) == str(project) or candidate["title"] == project:
                return candidate
        raise LabelStudioError(
            f"Label Studio at {self.url}: no project with id or title {project!r}"
        )

    def create_project(self, title: str, label_config: str, **settings: Any) -> dict:
        """Create a project.

        Parameters
        ----------
        title : str
        label_config : str
            From :func:`~skseg.annotation.labelstudio.labeling_config`.
        **settings
            Other project fields.

        Returns
        -------
        project : dict
        """
        body = {"title": title, "label_config": label_config, **settings}
        return self.request("POST", "/api/projects", json=body)

    def import_tasks(self, project: int, tasks: Iterable[Mapping]) -> dict:
        """Import tasks (Label Studio's JSON import format) into a project.

        Parameters
        ----------
        project : int
        tasks : iterable of mapping

        Returns
        -------
        answer : dict
            ``{"task_count", ...}``.
        """
        return self.request("POST", f"/api/projects/{project}/import", json=list(tasks))

    def tasks(self, project: int) -> list[dict]:
        """Return a project's tasks with their annotations and predictions.

        Parameters
        ----------
        project : int

        Returns
        -------
        tasks : list of dict
        """
        answer = self.request(
            "GET",
            "/api/tasks",
            params={"project": project, "page_size": 10000, "fields": "all"},
        )
        return answer["tasks"] if isinstance(answer, dict) else answer

    def export(self, project: int) -> list[dict]:
        """Return a project's annotated tasks in Label Studio's JSON export format.

        Parameters
        ----------
        project : int

        Returns
        -------
        tasks : list of dict
        """
        return self.request(
            "GET", f"/api/projects/{project}/export", params={"exportType": "JSON"}
        )

    def connect_backend(
        self,
        project: int,
        backend_url: str,
        *,
        basic_auth: tuple[str, str] | None = None,
        title: str = "skseg",
    ) -> dict:
        """Connect an ML backend to a project, and its webhook to annotations.

        The backend gives the project's predictions; the project's webhook to
        ``<backend_url>/webhook`` sends it ``ANNOTATION_CREATED`` and
        ``ANNOTATION_UPDATED`` with their payload, on which it re-tunes. Both
        carry ``basic_auth`` when given.

        Parameters
        ----------
        project : int
        backend_url : str
            As Label Studio reaches it, e.g. ``"http://127.0.0.1:9090"``.
        basic_auth : (str, str), optional
        title : str, default="skseg"

        Returns
        -------
        ml_backend : dict
            Label Studio's record of the connection.
        """
        backend_url = backend_url.rstrip("/")
        body: dict[str, Any] = {
            "url": backend_url,
            "project": project,
            "title": title,
            "is_interactive": False,
            "auth_method": "NONE",
        }
        headers = {}
        if basic_auth is not None:
            body.update(
                auth_method="BASIC_AUTH",
                basic_auth_user=basic_auth[0],
                basic_auth_pass=basic_auth[1],
            )
            credentials = base64.b64encode(":".join(basic_auth).encode()).decode()
            headers["Authorization"] = f"Basic {credentials}"
        ml = self.request("POST", "/api/ml", json=body)
        # Label Studio 1.23 creates a webhook to <backend>/webhook for every
        # action when a backend is connected (ml/models.py, create_ml_webhook),
        # without the backend's credentials: give it them, and only the actions
        # the backend uses; create it where that version did not
        webhook = {
            "project": project,
            "url": f"{backend_url}/webhook",
            "send_payload": True,
            "send_for_all_actions": False,
            "actions": list(WEBHOOK_ACTIONS),
            "headers": headers,
            "is_active": True,
        }
        existing = [
            hook
            for hook in self.request(
                "GET", "/api/webhooks/", params={"project": project}
            )
            if hook.get("url") == webhook["url"] and hook.get("project") == project
        ]
        if existing:
            self.request("PATCH", f"/api/webhooks/{existing[0]['id']}/", json=webhook)
        else:
            self.request("POST", "/api/webhooks/", json=webhook)
        return ml

    def add_local_storage(
        self, project: int, path: str, title: str = "skseg audio"
    ) -> dict:
        """Give a project a local-files storage, so Label Studio serves its audio.

        Label Studio serves ``/data/local-files/?d=...`` only for files under a
        project's local storage, itself under ``LOCAL_FILES_DOCUMENT_ROOT``. The
        storage is not synced: tasks are imported by
        :meth:`import_tasks`.

        Parameters
        ----------
        project : int
        path : str
            An absolute folder, under Label Studio's document root.
        title : str, default="skseg audio"

        Returns
        -------
        storage : dict
        """
        return self.request(
            "POST",
            "/api/storages/localfiles",
            json={
                "project": project,
                "path": path,
                "title": title,
                "use_blob_urls": True,
            },
        )

    def retrieve_predictions(self, project: int) -> None:
        """Ask the project's ML backend for predictions of every task now.

        Label Studio skips tasks that already have a prediction of the backend's
        current model version.

        Parameters
        ----------
        project : int
        """
        self.request(
            "POST",
            "/api/dm/actions",
            params={"id": "retrieve_tasks_predictions", "project": project},
            json={"selectedItems": {"all": True, "excluded": []}},
        )

    def wait(self, seconds: float = 60.0) -> None:
        """Wait until the server answers its health check.

        Parameters
        ----------
        seconds : float, default=60.0

        Raises
        ------
        LabelStudioError
            If it does not answer in time.
        """
        deadline = time.monotonic() + seconds
        while True:
            try:
                if self._send("GET", "/health").status_code == 200:
                    return
            except LabelStudioError:
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise LabelStudioError(f"Label Studio at {self.url}: not healthy")
            time.sleep(0.5)


def _detail(response) -> str:
    try:
        answer = response.json()
    except ValueError:
        return response.text[:200] or response.reason
    if isinstance(answer, dict):
        detail = answer.get("detail")
        errors = answer.get("validation_errors")
        if errors:
            return f"{detail or 'invalid'}: {errors}"
        return str(detail or answer)
    return str(answer)[:200]
