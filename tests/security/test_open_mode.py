"""Item 6: a service without users checks Host, refuses cross-site requests, and closes once users exist."""

from __future__ import annotations

import io
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import Service

from .conftest import auth_cli, bearer, launch


@pytest.fixture
def open_svc(tmp_path: Path) -> Iterator[Service]:
    service = launch(tmp_path / "store", token=None, log_level="warning")
    yield service
    service.stop()


def tar_of(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_a_foreign_host_header_is_refused(open_svc: Service) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends Host: evil.example."""
    rebound = httpx.get(f"{open_svc.url}/api/v1/repos", headers={"Host": "evil.example:8765"})
    assert rebound.status_code == 421
    for host in ("127.0.0.1", "localhost", "[::1]"):
        port = open_svc.url.rsplit(":", 1)[1]
        assert httpx.get(f"{open_svc.url}/api/v1/repos", headers={"Host": f"{host}:{port}"}).status_code == 200


def test_cross_site_simple_requests_are_refused(open_svc: Service) -> None:
    repo = f"o-{uuid.uuid4().hex[:8]}"
    assert httpx.post(f"{open_svc.url}/api/v1/repos", json={"name": repo}).status_code == 201
    page = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"}
    upload = httpx.post(f"{open_svc.url}/api/v1/repos/{repo}/commits/master/tar", headers=page,
                        content=tar_of("pwned.txt", b"pwned"))
    assert upload.status_code == 403
    delete = httpx.post(f"{open_svc.url}/s3/master.{repo}?delete", headers=page,
                        content=b"<Delete><Object><Key>a</Key></Object></Delete>")
    assert delete.status_code == 403
    only_origin = httpx.post(f"{open_svc.url}/api/v1/repos", json={"name": repo + "x"},
                             headers={"Origin": "http://evil.example"})
    assert only_origin.status_code == 403
    # a text/plain body without any browser header is refused as well: no browser form can send JSON
    plain = httpx.post(f"{open_svc.url}/api/v1/repos/{repo}/commits/master/tar",
                       headers={"Content-Type": "text/plain"}, content=tar_of("p.txt", b"p"))
    assert plain.status_code == 415
    files = httpx.get(f"{open_svc.url}/api/v1/repos/{repo}/commits/master/files")
    assert "pwned" not in files.text


def test_open_mode_ends_when_users_exist_without_a_restart(open_svc: Service) -> None:
    assert httpx.get(f"{open_svc.url}/api/v1/repos").status_code == 200
    token = str(auth_cli(open_svc.root, "init")["token"])
    deadline = time.monotonic() + 10
    while httpx.get(f"{open_svc.url}/api/v1/repos").status_code != 401:
        assert time.monotonic() < deadline, "still open after auth init"
        time.sleep(0.2)
    assert httpx.get(f"{open_svc.url}/api/v1/repos", headers=bearer(token)).status_code == 200
    assert httpx.get(f"{open_svc.url}/s3/").status_code == 403
    assert httpx.get(f"{open_svc.url}/healthz").json()["auth"] is True
