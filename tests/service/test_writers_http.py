"""Writers over HTTP: two ``serve`` replicas on one PostgreSQL, and a failing upload beside a good one."""

from __future__ import annotations

import io
import tarfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from datumflow.storage_service import CommitState
from datumflow.storage_service.client.http import Client

from .conftest import Service, init_auth

API = "/api/v1"


def _write_all(url: str, token: str, n: int, commits: int) -> tuple[list[tuple[str, str]], int]:
    acked, failed = [], 0
    with Client(url, token=token) as client:
        for i in range(commits):
            try:
                acked.append((f"w{n}/f{i}", client.put_file("shared", "master", f"w{n}/f{i}", f"{n}-{i}".encode()).id))
            except Exception:
                failed += 1
    return acked, failed


def _replicas_on_postgres(
    postgres_url: str, tmp_path: Path, start_service: Any, writers: int, commits: int,
) -> None:
    root = tmp_path / "shared"
    token = init_auth(root, db=postgres_url)
    replicas = [start_service(root, token=token, db=postgres_url) for _ in range(2)]
    with Client(replicas[0].url, token=token) as c:
        c.create_repo("shared")
    with ThreadPoolExecutor(writers) as pool:  # each writer its own client, half on each replica
        results = list(pool.map(lambda n: _write_all(replicas[n % 2].url, token, n, commits), range(writers)))
    acked = [a for got, _ in results for a in got]
    assert sum(f for _, f in results) == 0
    with Client(replicas[1].url, token=token) as c:
        history = c.list_commits("shared", "master")
        assert len(history) == len(acked) == writers * commits  # commits = writes
        assert {cid for _, cid in acked} == {h.id for h in history}
        assert all(h.state is CommitState.FINISHED for h in history)
        assert {f.path for f in c.walk_files("shared", "master")} == {p for p, _ in acked}
        assert c.fsck()["ok"]


@pytest.mark.slow
def test_writers_on_two_replicas(postgres_url: str, tmp_path: Path, start_service: Any) -> None:
    _replicas_on_postgres(postgres_url, tmp_path, start_service, writers=4, commits=10)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sixteen_writers_on_two_replicas(postgres_url: str, tmp_path: Path, start_service: Any) -> None:
    _replicas_on_postgres(postgres_url, tmp_path, start_service, writers=16, commits=50)


class _SlowTar(io.RawIOBase):
    """A tar whose second member is hostile (``a/../../bad.txt``), sent slowly after the first."""

    def __init__(self, release: threading.Event) -> None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in (("good.txt", b"good" * 1000), ("a/../../bad.txt", b"bad")):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        self.data = buf.getvalue()
        self.release = release
        self.pos = 0

    def chunks(self) -> Iterator[bytes]:
        yield self.data[:4096]  # the first member's header and some of its bytes
        assert self.release.wait(60)  # ... then wait until the other client was answered
        yield self.data[4096:]


@pytest.mark.slow
def test_a_failing_tar_upload_loses_nothing_of_another_clients_upload(service: Service, client: Client,
                                                                        repo_name: str) -> None:
    client.create_repo(repo_name)
    client.put_file(repo_name, "master", "before.txt", b"before")
    released = threading.Event()
    slow = _SlowTar(released)
    url = f"{service.url}{API}/repos/{repo_name}/commits/master/tar"
    answers: list[httpx.Response] = []

    def send_bad() -> None:
        with httpx.Client(headers={"Authorization": f"Bearer {service.token}"}, timeout=60) as http:
            answers.append(http.post(url, content=slow.chunks()))

    bad = threading.Thread(target=send_bad)
    bad.start()
    time.sleep(0.5)  # the slow upload is in flight
    good = client.put_file(repo_name, "master", "other.txt", b"client B")  # answered 200
    released.set()
    bad.join(60)
    assert answers and answers[0].status_code == 400
    assert client.get_file(repo_name, "master", "other.txt") == b"client B"
    assert client.inspect_commit(repo_name, good.id).state is CommitState.FINISHED
    assert [f.path for f in client.walk_files(repo_name, "master")] == ["before.txt", "other.txt"]
