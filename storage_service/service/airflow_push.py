"""Push a commit to Airflow: an asset event for ``datumflow://repo@branch`` when a commit finishes.

Configured by the service from the environment (nothing happens without it)::

    DATUMFLOW_AIRFLOW_URL=http://airflow:8080      # the API server
    DATUMFLOW_AIRFLOW_USER / DATUMFLOW_AIRFLOW_PASSWORD   (a JWT is fetched from /auth/token,
                                                          and fetched again when Airflow answers 401)
    or DATUMFLOW_AIRFLOW_TOKEN                     (a ready bearer token)

Each finished commit is queued and posted by one background thread
(``POST /api/v2/assets/events`` with extra ``{commit, repo, branch}``), so
finishing a commit never waits for Airflow. A branch Airflow has no asset for
is skipped; a failed post is logged, never raised. No Airflow import here.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from typing import Any

import httpx

__all__ = ["AirflowPush", "from_env"]

log = logging.getLogger("datumflow.airflow_push")


class AirflowPush:
    def __init__(self, url: str, *, username: str | None = None, password: str | None = None,
                 token: str | None = None, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._username, self._password, self._token = username, password, token
        self._http = httpx.Client(timeout=timeout)
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="datumflow-airflow-push", daemon=True)
        self._thread.start()

    def __call__(self, commit: Any) -> None:
        """The Store callback: queue a finished commit (failed ones are not news)."""
        if commit.branch and not commit.error:
            self._queue.put(commit)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until everything queued so far has been posted (or given up)."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                self.post(item.repo, item.branch, item.id)
            except Exception as exc:
                log.warning("could not tell Airflow about %s@%s: %s", item.repo, item.id, exc)

    def _headers(self) -> dict[str, str]:
        if self._token is None and self._username:
            answer = self._http.post(f"{self.url}/auth/token",
                                     json={"username": self._username, "password": self._password})
            answer.raise_for_status()
            self._token = answer.json()["access_token"]
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One API call; a 401 (the JWT expired, 24 h by default) gets a fresh token and one more try."""
        answer = self._http.request(method, f"{self.url}{path}", headers=self._headers(), **kwargs)
        if answer.status_code == 401 and self._username:
            self._token = None
            answer = self._http.request(method, f"{self.url}{path}", headers=self._headers(), **kwargs)
        answer.raise_for_status()
        return answer

    def post(self, repo: str, branch: str, commit: str) -> bool:
        """Post one asset event; False if Airflow has no asset for the branch."""
        uri = f"datumflow://{repo}@{branch}"
        found = self._request("GET", "/api/v2/assets", params={"uri_pattern": uri})
        ids = [a["id"] for a in found.json().get("assets", []) if a.get("uri") == uri]
        if not ids:
            return False
        self._request("POST", "/api/v2/assets/events",
                      json={"asset_id": ids[0], "extra": {"commit": commit, "repo": repo, "branch": branch}})
        return True


def from_env(environ: dict[str, str] | None = None) -> AirflowPush | None:
    env = os.environ if environ is None else environ
    url = env.get("DATUMFLOW_AIRFLOW_URL")
    if not url:
        return None
    return AirflowPush(url, username=env.get("DATUMFLOW_AIRFLOW_USER"),
                       password=env.get("DATUMFLOW_AIRFLOW_PASSWORD"), token=env.get("DATUMFLOW_AIRFLOW_TOKEN"))
