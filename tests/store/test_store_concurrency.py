"""Concurrent writers: threads, two Store instances, and (SQLite) processes lose nothing."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from datumflow.storage_service import CommitState, Store
from datumflow.storage_service.errors import Conflict

WRITERS = 2
FILES_EACH = 6


def put_retrying(store: Store, repo: str, target: str, path: str, data: bytes) -> str:
    """put_file, retried while another writer holds or finishes the branch's open commit."""
    for _ in range(200):
        try:
            return store.put_file(repo, target, path, data).id
        except Conflict:
            continue
    raise AssertionError(f"{path} never landed")


def run_threads(work: Callable[[int], None]) -> None:
    errors: list[BaseException] = []

    def guarded(n: int) -> None:
        try:
            work(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=(n,)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def expected_files() -> dict[str, bytes]:
    return {f"w{n}/f{i}": f"{n}-{i}".encode() for n in range(WRITERS) for i in range(FILES_EACH)}


def assert_nothing_lost(store: Store, repo: str, landed: list[str]) -> None:
    got = {f.path: store.get_file(repo, "master", f.path) for f in store.walk_files(repo, "master")}
    assert got == expected_files()
    history = [c.id for c in store.list_commits(repo, "master")]
    assert set(landed) <= set(history)  # every commit a writer saw is in the branch's history
    assert all(c.state is CommitState.FINISHED for c in store.list_commits(repo, "master"))


def test_threads_on_one_branch(make_store: Any) -> None:
    stores = [make_store(), make_store()]  # two instances on one database and object store
    stores[0].create_repo("data")
    landed: list[str] = []

    def work(n: int) -> None:
        for i in range(FILES_EACH):
            landed.append(put_retrying(stores[n], "data", "master", f"w{n}/f{i}", f"{n}-{i}".encode()))

    run_threads(work)
    assert_nothing_lost(stores[0], "data", landed)


def test_threads_on_one_open_commit(make_store: Any) -> None:
    stores = [make_store(), make_store()]
    stores[0].create_repo("data")
    commit = stores[0].start_commit("data", "master")

    def work(n: int) -> None:
        for i in range(FILES_EACH):
            stores[n].put_file("data", commit.id, f"w{n}/f{i}", f"{n}-{i}".encode())

    run_threads(work)
    done = stores[1].finish_commit("data", commit.id)
    assert done.file_count == WRITERS * FILES_EACH
    assert_nothing_lost(stores[0], "data", [commit.id])


def _process_writer(root: str, n: int, target: str) -> None:
    with Store(root, fsync=False) as store:
        for i in range(FILES_EACH):
            path, data = f"w{n}/f{i}", f"{n}-{i}".encode()
            if target == "master":
                put_retrying(store, "data", target, path, data)
            else:
                for _ in range(200):
                    try:
                        store.put_file("data", target, path, data)
                        break
                    except Conflict:
                        continue


@pytest.mark.parametrize("target", ["branch", "open-commit"])
def test_processes_on_sqlite(tmp_path: Path, target: str) -> None:
    root = str(tmp_path / "root")
    with Store(root, fsync=False) as store:
        store.create_repo("data")
        dest = "master" if target == "branch" else store.start_commit("data", "master").id
    # Spawned, not forked: a pytest-xdist worker has threads of its own, and a child forked while one
    # of them held a lock can hang before its first write (two of sixteen once did).
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_process_writer, args=(root, n, dest)) for n in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * WRITERS
    with Store(root, fsync=False) as store:
        if target == "open-commit":
            store.finish_commit("data", dest)
        assert_nothing_lost(store, "data", [])
        assert store.fsck()["ok"]
