"""Client transport: retries and typed errors; the AsyncClient that sensors use."""

from __future__ import annotations

import asyncio
import threading
import uuid

import pytest
from datumflow.storage_service import errors
from datumflow.storage_service.client.http import AsyncClient, Client
from datumflow.storage_service.model.core import CommitState

from .conftest import Service, free_port


def test_unreachable_service_is_retried_then_unavailable() -> None:
    with (
        Client(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.01) as c,
        pytest.raises(errors.ServiceUnavailable) as failed,
    ):
        c.list_repos()
    assert isinstance(failed.value, ConnectionError) and "cannot reach" in str(failed.value)


def test_4xx_is_not_retried_and_keeps_its_class(client: Client) -> None:
    with pytest.raises(errors.RepoNotFound) as missing:
        client.inspect_repo("never-created")
    assert isinstance(missing.value, FileNotFoundError) and "never-created" in str(missing.value)


def test_open_file_streams_and_raises_early(client: Client, repo_name: str) -> None:
    client.create_repo(repo_name)
    data = b"0123456789" * 300_000
    client.put_file(repo_name, "master", "f", data)
    pieces = list(client.open_file(repo_name, "master", "f"))
    assert b"".join(pieces) == data and len(pieces) > 1
    with pytest.raises(errors.PathNotFound):
        client.open_file(repo_name, "master", "missing")


def test_put_files_reports_progress(client: Client, repo_name: str) -> None:
    client.create_repo(repo_name)
    seen: list[int] = []
    client.put_files(repo_name, "master", [("a", b"aaa"), ("b", b"bb")], progress=seen.append)
    assert sum(seen) == 5


def test_async_client(service: Service, client: Client) -> None:
    repo = f"a-{uuid.uuid4().hex[:8]}"
    client.create_repo(repo)
    first = client.put_file(repo, "master", "x/1.csv", b"1")

    async def scenario() -> None:
        async with AsyncClient(service.url, token=service.token) as ac:
            assert (await ac.inspect_repo(repo)).name == repo
            assert (await ac.inspect_branch(repo, "master")).head == first.id
            assert (await ac.inspect_commit(repo, "master")).id == first.id
            assert [c.id for c in await ac.list_commits(repo, "master")] == [first.id]
            assert [f.path for f in await ac.glob_files(repo, "master", "x/*.csv")] == ["x/1.csv"]
            assert (await ac.inspect_file(repo, "master", "x/1.csv")).size == 1
            assert [c.id for c in await ac.commit_set(first.commit_set)] == [first.id]
            opened = client.start_commit(repo, "master")
            timer = threading.Timer(0.3, lambda: client.finish_commit(repo, opened.id))
            timer.start()
            waited = await ac.wait_commit(repo, opened.id, timeout=30)
            timer.join()
            assert waited.state is CommitState.FINISHED
            assert [c.id for c in await ac.wait_commit_set(opened.commit_set, timeout=5)] == [opened.id]
            later = threading.Timer(0.3, lambda: client.put_file(repo, "master", "x/2.csv", b"2"))
            later.start()
            new = await ac.wait_new_commit(repo, "master", after=opened.id, timeout=30, poll_interval=0.05)
            later.join()
            assert new.parent == opened.id
            with pytest.raises(errors.Timeout):
                await ac.wait_new_commit(repo, "master", after=new.id, timeout=0.2, poll_interval=0.05)
            with pytest.raises(errors.CommitNotFound):
                await ac.inspect_commit(repo, "0" * 32)

    asyncio.run(scenario())
