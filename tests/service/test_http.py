"""The HTTP surface itself: error bodies, ranges, streaming, interrupted uploads, shared PostgreSQL."""

from __future__ import annotations

import io
import socket
import tarfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from datumflow.storage_service import errors
from datumflow.storage_service.client.http import Client

from .conftest import Service, init_auth, run_cli

API = "/api/v1"


@pytest.fixture
def http(service: Service) -> Any:
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {service.token}"}) as h:
        yield h


def assert_error(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["type"] == kind
    assert body["message"]
    return str(body["message"])


def test_health_openapi_and_docs(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok", "auth": True}
    spec = http.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ["/api/v1/repos", "/api/v1/repos/{repo}/commits/{ref}/content", "/api/v1/commit-sets/{set_id}/wait"]:
        assert path in paths
    assert "text/html" in http.get("/docs").headers["content-type"]


def test_error_bodies(http: httpx.Client, repo_name: str) -> None:
    assert "not found" in assert_error(http.get(f"{API}/repos/{repo_name}"), 404, "RepoNotFound")
    assert_error(http.get(f"{API}/no/such/route"), 404, "NotFound")
    assert_error(http.post(f"{API}/repos", content=b"{not json", headers={"Content-Type": "application/json"}),
                 422, "InvalidArgument")
    assert_error(http.post(f"{API}/repos", json={"name": "white space"}), 400, "InvalidArgument")
    assert_error(http.post(f"{API}/repos", json={"nom": "x"}), 422, "InvalidArgument")
    http.post(f"{API}/repos", json={"name": repo_name}).raise_for_status()
    assert_error(http.post(f"{API}/repos", json={"name": repo_name}), 409, "AlreadyExists")
    assert_error(http.get(f"{API}/repos/{repo_name}/commits/master/wait", params={"timeout": -1}),
                 422, "InvalidArgument")
    assert_error(http.delete("/healthz"), 405, "InvalidArgument")
    assert http.get("/healthz").status_code == 200  # still up


def test_range_requests(http: httpx.Client, client: Client, repo_name: str) -> None:
    client.create_repo(repo_name)
    data = bytes(range(256)) * 8
    client.put_file(repo_name, "master", "f.bin", data)
    url = f"{API}/repos/{repo_name}/commits/master/content"
    whole = http.get(url, params={"path": "f.bin"})
    assert whole.content == data and whole.headers["accept-ranges"] == "bytes"
    part = http.get(url, params={"path": "f.bin"}, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == data[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(data)}"
    assert http.get(url, params={"path": "f.bin"}, headers={"Range": "bytes=-4"}).content == data[-4:]
    assert http.get(url, params={"path": "f.bin"}, headers={"Range": "bytes=2040-"}).content == data[2040:]
    assert_error(http.get(url, params={"path": "f.bin"}, headers={"Range": "bytes=5000-"}), 416, "InvalidArgument")
    assert_error(http.get(url, params={"path": "f.bin"}, headers={"Range": "lines=1-2"}), 400, "InvalidArgument")


def test_download_route_answers_as_the_api_does(
    http: httpx.Client, client: Client, service: Service, repo_name: str
) -> None:
    # GET …/content?path= is served by a plain route placed before the API's (no dependency solving);
    # it must authenticate, check the role and fail exactly as the API route does.
    client.create_repo(repo_name)
    client.put_file(repo_name, "master", "small.bin", b"s" * 1024)
    commit = client.put_file(repo_name, "master", "big.bin", bytes(range(256)) * 400)  # > 64 KiB: streamed
    url = f"{API}/repos/{repo_name}/commits/master/content"
    small = http.get(url, params={"path": "small.bin"})
    assert small.content == b"s" * 1024 and small.headers["content-length"] == "1024"
    assert small.headers["etag"] == f'"{client.inspect_file(repo_name, "master", "small.bin").hash}"'
    assert http.get(url, params={"path": "big.bin"}).content == bytes(range(256)) * 400
    by_id = http.get(f"{API}/repos/{repo_name}/commits/{commit.id}/content", params={"path": "small.bin"})
    assert by_id.content == b"s" * 1024
    parent = http.get(f"{API}/repos/{repo_name}/commits/master~1/content", params={"path": "small.bin"})
    assert parent.status_code == 200 and parent.content == b"s" * 1024
    assert_error(http.get(url, params={"path": "nope"}), 404, "PathNotFound")
    assert_error(http.get(f"{API}/repos/{repo_name}/commits/nobranch/content", params={"path": "small.bin"}),
                 404, "BranchNotFound")
    assert_error(http.get(f"{API}/repos/no-{repo_name}/commits/master/content", params={"path": "a"}),
                 404, "RepoNotFound")
    assert_error(http.get(url), 422, "InvalidArgument")  # no path: the API route's validation answers
    with httpx.Client(base_url=service.url) as anonymous:
        assert_error(anonymous.get(url, params={"path": "small.bin"}), 401, "Unauthenticated")
        assert_error(anonymous.get(url, params={"path": "small.bin"}, headers={"Authorization": "Basic eA=="}),
                     401, "Unauthenticated")
        assert_error(anonymous.get(url, params={"path": "small.bin"}, headers={"Authorization": "Bearer dft_x"}),
                     401, "Unauthenticated")
    name = f"u{repo_name[2:]}"
    assert run_cli("auth", "user", "create", name, "--root", str(service.root)).returncode == 0
    token = run_cli("auth", "token", "create", name, "--root", str(service.root)).stdout.strip()
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {token}"}) as stranger:
        assert_error(stranger.get(url, params={"path": "small.bin"}), 403, "Forbidden")
        assert run_cli("auth", "grant", name, repo_name, "reader", "--root", str(service.root)).returncode == 0
        assert stranger.get(url, params={"path": "small.bin"}).content == b"s" * 1024
        assert run_cli("auth", "token", "revoke", token, "--root", str(service.root)).returncode == 0
        assert_error(stranger.get(url, params={"path": "small.bin"}), 401, "Unauthenticated")  # at once


def test_tar_upload_is_one_commit_and_bad_tar_makes_none(http: httpx.Client, client: Client, repo_name: str) -> None:
    client.create_repo(repo_name)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in ["a.txt", "dir/b.txt"]:
            info = tarfile.TarInfo(name)
            info.size = len(name)
            tar.addfile(info, io.BytesIO(name.encode()))
    url = f"{API}/repos/{repo_name}/commits/master/tar"
    done = http.post(url, params={"path": "up"}, content=buf.getvalue())
    assert done.status_code == 200 and done.json()["file_count"] == 2
    assert client.get_file(repo_name, "master", "up/dir/b.txt") == b"dir/b.txt"
    assert_error(http.post(url, content=b"not a tar" * 100), 400, "InvalidArgument")
    history = client.list_commits(repo_name)
    assert [c.state.value for c in history] == ["finished"]  # the bad upload made no commit
    assert client.inspect_branch(repo_name, "master").head == history[0].id


def _interrupted_put(service: Service, repo: str, target: str, path: str, sent: int, declared: int) -> None:
    """Send the headers and ``sent`` of ``declared`` body bytes, then hang up."""
    where = urlsplit(service.url)
    with socket.create_connection((where.hostname, where.port)) as sock:
        head = (
            f"PUT {API}/repos/{repo}/commits/{target}/content?path={path} HTTP/1.1\r\n"
            f"Host: {where.netloc}\r\nAuthorization: Bearer {service.token}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n"
        )
        sock.sendall(head.encode() + b"x" * sent)
        time.sleep(0.2)


def _settled(client: Client, repo: str, want_states: list[str]) -> list[str]:
    deadline = time.monotonic() + 10
    while True:
        states = [c.state.value for c in client.list_commits(repo)]
        if states == want_states or time.monotonic() > deadline:
            return states
        time.sleep(0.05)


def test_interrupted_upload_leaves_no_partial_data(service: Service, client: Client, repo_name: str) -> None:
    client.create_repo(repo_name)
    base = client.put_file(repo_name, "master", "keep.txt", b"kept")
    _interrupted_put(service, repo_name, "master", "big.bin", sent=3 * 1024 * 1024, declared=10 * 1024 * 1024)
    time.sleep(0.5)  # the server notices the hang-up; the write it was taking makes no commit
    assert _settled(client, repo_name, ["finished"]) == ["finished"]
    assert client.inspect_branch(repo_name, "master").head == base.id
    assert [f.path for f in client.list_files(repo_name, "master")] == ["keep.txt"]
    # into an open commit: the commit stays open and does not gain the file
    commit = client.start_commit(repo_name, "master")
    _interrupted_put(service, repo_name, commit.id, "half.bin", sent=1024 * 1024, declared=4 * 1024 * 1024)
    time.sleep(0.5)
    with pytest.raises(errors.PathNotFound):
        client.inspect_file(repo_name, commit.id, "half.bin")
    assert client.inspect_commit(repo_name, commit.id).state.value == "open"
    client.put_file(repo_name, commit.id, "whole.bin", b"w")
    assert client.finish_commit(repo_name, commit.id).file_count == 2


@pytest.mark.slow
def test_large_streamed_upload_and_download(client: Client, repo_name: str, tmp_path: Path) -> None:
    client.create_repo(repo_name)
    size = 64 * 1024 * 1024
    local = tmp_path / "big.bin"
    with local.open("wb") as fh:
        for i in range(size // (1024 * 1024)):
            fh.write(bytes([i % 251]) * (1024 * 1024))
    commit = client.put_file(repo_name, "master", "big.bin", local)
    assert commit.size_bytes == size
    total, pieces = 0, 0
    for piece in client.open_file(repo_name, "master", "big.bin"):
        total += len(piece)
        pieces += 1
    assert total == size and pieces > 1


@pytest.mark.postgres
def test_two_processes_share_one_postgres(
    postgres_url: str, tmp_path: Path, start_service: Any
) -> None:
    root = tmp_path / "shared"
    token = init_auth(root, db=postgres_url)
    writer = start_service(root, token=token, db=postgres_url)
    reader = start_service(root, token=token, db=postgres_url)
    with Client(writer.url, token=token) as w, Client(reader.url, token=token) as r:
        w.create_repo("shared")
        commit = w.put_file("shared", "master", "x.csv", b"a,b\n1,2\n")
        assert r.inspect_commit("shared", "master").id == commit.id
        assert r.get_file("shared", "master", "x.csv") == b"a,b\n1,2\n"
        open_commit = r.start_commit("shared", "master")
        w.put_file("shared", open_commit.id, "y.csv", b"y")
        assert r.finish_commit("shared", open_commit.id).file_count == 2
        assert [c.id for c in w.list_commits("shared", "master")] == [open_commit.id, commit.id]


def test_contents_batch_and_tar_removals(http: httpx.Client, client: Client, repo_name: str) -> None:
    client.create_repo(repo_name)
    client.put_files(repo_name, "master", [("a", b"aa"), ("d/b", b"bbb"), ("d/c", b"c")])
    url = f"/api/v1/repos/{repo_name}/commits/master/contents"
    assert http.post(url, json={"paths": ["d/b", "a", "d/b"]}).content == b"bbbaabbb"
    assert http.post(url, json={"paths": ["d"]}).status_code == 400  # a folder
    assert http.post(url, json={"paths": ["nope"]}).status_code == 404
    assert http.post(url, json={"paths": ["a"] * 1001}).status_code == 422  # bounded
    # A tar member flagged DATUMFLOW.delete removes its path; one that also has content is refused.
    commit = client.put_files(repo_name, "master", [("d", None), ("e", b"e")])
    assert sorted((e.change, e.path) for e in client.diff(repo_name, None, commit.id)) == [
        ("added", "e"), ("deleted", "d/b"), ("deleted", "d/c"),
    ]
    member = tarfile.TarInfo("a")
    member.size = 1
    member.pax_headers = {"DATUMFLOW.delete": "1"}
    body = io.BytesIO()
    with tarfile.open(fileobj=body, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(member, io.BytesIO(b"x"))
    bad = http.post(f"/api/v1/repos/{repo_name}/commits/master/tar", content=body.getvalue())
    assert bad.status_code == 400 and "removes its path" in bad.text
    assert client.get_file(repo_name, "master", "a") == b"aa"
