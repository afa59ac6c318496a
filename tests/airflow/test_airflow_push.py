"""``storage_service.airflow_push`` against a real HTTP endpoint on loopback.

The endpoint is a small ``http.server`` app standing in for Airflow's REST API
(``POST /auth/token``, ``GET /api/v2/assets``, ``POST /api/v2/assets/events``):
running Airflow's full API server here is too heavy. It records what it receives.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from datumflow.storage_service.service.airflow_push import AirflowPush, from_env

ASSETS = [{"id": 7, "uri": "datumflow://raw@master"}, {"id": 8, "uri": "datumflow://raw@master-old"}]


class FakeAirflow(BaseHTTPRequestHandler):
    received: list[tuple[str, str, dict, str | None]] = []

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self, body: dict) -> None:
        self.received.append((self.command, self.path, body, self.headers.get("Authorization")))

    def do_GET(self) -> None:
        self._record({})
        url = urlsplit(self.path)
        if url.path != "/api/v2/assets":
            return self._reply(404, {})
        pattern = parse_qs(url.query)["uri_pattern"][0]
        self._reply(200, {"assets": [a for a in ASSETS if pattern in a["uri"]]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        self._record(body)
        if self.path == "/auth/token":
            ok = body == {"username": "admin", "password": "pw"}
            return self._reply(201 if ok else 401, {"access_token": "jwt-1"} if ok else {})
        if self.path == "/api/v2/assets/events":
            return self._reply(200, {"id": 1, "asset_id": body["asset_id"], "extra": body["extra"]})
        self._reply(404, {})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def airflow_api():
    FakeAirflow.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAirflow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def finished(repo="raw", branch="master", id="c1", error=None):
    return SimpleNamespace(repo=repo, branch=branch, id=id, error=error)


def test_a_finished_commit_becomes_an_asset_event(airflow_api):
    push = AirflowPush(airflow_api, username="admin", password="pw")
    push(finished(id="c1"))
    push(finished(id="c2", error="boom"))  # failed commits are not news
    push(finished(branch=None, id="c3"))  # nor commits on no branch
    push.flush(timeout=10)
    posts = [r for r in FakeAirflow.received if r[1] == "/api/v2/assets/events"]
    assert [p[2] for p in posts] == [{"asset_id": 7, "extra": {"commit": "c1", "repo": "raw", "branch": "master"}}]
    assert posts[0][3] == "Bearer jwt-1"  # the JWT fetched from /auth/token
    assert sum(r[1] == "/auth/token" for r in FakeAirflow.received) == 1


def test_a_branch_without_asset_is_skipped_and_a_ready_token_is_used(airflow_api):
    push = AirflowPush(airflow_api, token="ready")
    assert push.post("raw", "dev", "c9") is False
    assert push.post("raw", "master", "c9") is True
    assert all(r[3] == "Bearer ready" for r in FakeAirflow.received)
    assert [r[1] for r in FakeAirflow.received if r[0] == "POST"] == ["/api/v2/assets/events"]


def test_a_refused_login_is_logged_not_raised(airflow_api, caplog):
    push = AirflowPush(airflow_api, username="admin", password="wrong")
    push(finished())
    push.flush(timeout=10)
    assert "could not tell Airflow about raw@c1" in caplog.text and "401" in caplog.text
    assert not [r for r in FakeAirflow.received if r[1] == "/api/v2/assets/events"]


def test_from_env():
    assert from_env({}) is None
    push = from_env({"DATUMFLOW_AIRFLOW_URL": "http://af:8080/", "DATUMFLOW_AIRFLOW_TOKEN": "t"})
    assert push is not None and push.url == "http://af:8080"
