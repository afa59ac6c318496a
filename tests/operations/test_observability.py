"""What an operator watches, against a real ``serve`` process: Prometheus metrics (parsed with the
Prometheus client's own parser), liveness/readiness, request ids and JSON access logs."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from datumflow.storage_service.client.http import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.service.conftest import Service, init_auth, launch


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("obs") / "store"
    token = init_auth(root)
    service = launch(root, token=token, args=("--log-level", "info"))
    yield service
    service.stop()


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url + "/metrics", timeout=10).text
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _value(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and all((k, w) in ls for k, w in labels.items()))


def test_metrics_count_requests_by_route_template_and_the_store_by_state(svc: Service) -> None:
    with Client(svc.url, token=svc.token) as c:
        c.create_repo("obs")
        for i in range(3):
            c.put_files("obs", "master", [(f"f{i}.txt", b"x" * 100)])
        assert c.get_file("obs", "master", "f0.txt") == b"x" * 100
        with pytest.raises(FileNotFoundError):
            c.get_file("obs", "master", "missing.txt")
    samples = _samples(svc.url)
    names = {n for n, _ in samples}
    assert "datumflow_http_request_duration_seconds_bucket" in names
    routes = {dict(ls).get("route") for n, ls in samples if n == "datumflow_http_requests_total"}
    assert routes and all("obs" not in (r or "") for r in routes), routes  # templates, never raw paths
    assert _value(samples, "datumflow_http_requests_total", status="404") >= 1
    assert _value(samples, "datumflow_http_received_bytes_total") >= 300
    assert _value(samples, "datumflow_commits", state="finished") >= 3
    assert ("datumflow_jobs_waiting", ()) in samples


def test_liveness_and_readiness(svc: Service) -> None:
    assert httpx.get(svc.url + "/livez").json() == {"status": "ok"}
    ready = httpx.get(svc.url + "/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "objects": "ok"}


def test_readiness_fails_when_the_object_store_is_gone(tmp_path: Path) -> None:
    root = tmp_path / "store"
    service = launch(root, token=None)
    try:
        shutil.rmtree(root / "objects")  # the object store goes away under the running service
        (root / "objects").write_text("not a folder")
        answer = httpx.get(service.url + "/readyz")
        assert answer.status_code == 503
        assert answer.json()["checks"]["objects"].startswith("error")
        assert answer.json()["checks"]["database"] == "ok"
    finally:
        service.stop()


def test_every_answer_carries_a_request_id_and_the_access_log_is_json(svc: Service) -> None:
    answer = httpx.get(svc.url + "/api/v1/repos", headers={"Authorization": f"Bearer {svc.token}",
                                                           "X-Request-Id": "trace-abc-123"})
    assert answer.headers["x-request-id"] == "trace-abc-123"
    generated = httpx.get(svc.url + "/api/v1/repos", headers={"Authorization": f"Bearer {svc.token}"})
    assert len(generated.headers["x-request-id"]) == 16
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        lines = [json.loads(line) for line in svc.log.read_text().splitlines() if line.startswith("{")]
        hits = [e for e in lines if e.get("http", {}).get("id") == "trace-abc-123"]
        if hits:
            break
        time.sleep(0.2)
    assert hits, svc.log.read_text()[-2000:]
    entry = hits[0]
    assert entry["http"]["route"] == "/api/v1/repos" and entry["http"]["status"] == 200
    assert svc.token not in svc.log.read_text()  # the bearer token never reaches the log
