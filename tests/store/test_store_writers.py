"""Writes are never lost: many writers on one branch, killed writers, gc in the middle of a write.

The figures of the issue this answers: 16 processes x 50 single-file commits on one branch must
leave exactly 800 finished commits holding every acknowledged write, with no failed call.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from datumflow.storage_service import CommitState, Store

WRITERS = 16
COMMITS_EACH = 50


def _writer(root: str, backend: dict[str, Any], n: int, commits: int, out: Any) -> None:
    acked: list[tuple[str, str]] = []
    failed = 0
    with Store(root, fsync=False, **backend) as store:
        for i in range(commits):
            try:
                commit = store.put_file("data", "master", f"w{n}/f{i}", f"{n}-{i}".encode())
                acked.append((f"w{n}/f{i}", commit.id))
            except Exception:
                failed += 1
        # the same path, written by everyone: last writer wins
        try:
            acked.append(("shared", store.put_file("data", "master", "shared", f"{n}".encode()).id))
        except Exception:
            failed += 1
    out.put((n, acked, failed))


def run_writers(
    root: str, backend: dict[str, Any], writers: int = WRITERS, commits: int = COMMITS_EACH,
) -> tuple[list[tuple[str, str]], int]:
    # Spawned, not forked: a pytest-xdist worker has threads of its own, and a child forked while one
    # of them held a lock can hang before its first write (two of sixteen once did).
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(root, backend, n, commits, out)) for n in range(writers)]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * writers
    acked = [a for _, got, _ in results for a in got]
    return acked, sum(f for _, _, f in results)


def assert_every_ack_present(
    store: Store, acked: list[tuple[str, str]], writers: int, commits: int = COMMITS_EACH,
) -> None:
    history = store.list_commits("data", "master")
    assert all(c.state is CommitState.FINISHED for c in history)
    assert len(history) == len(acked) == writers * (commits + 1)  # commits = writes
    order = {c.id: pos for pos, c in enumerate(reversed(history))}
    assert {cid for _, cid in acked} == set(order)  # every acknowledged commit is in the history
    for path, cid in acked:  # and each holds the write it acknowledged
        if path != "shared":
            assert store.get_file("data", cid, path) == path[1:].replace("/f", "-").encode()
    head = {f.path for f in store.walk_files("data", "master")}
    assert head == {p for p, _ in acked}
    last_shared = max((order[cid], cid) for p, cid in acked if p == "shared")[1]
    assert store.get_file("data", "master", "shared") == store.get_file("data", last_shared, "shared")


@pytest.mark.slow
@pytest.mark.timeout(900)  # 800 commits from 16 processes: minutes on a loaded machine
def test_sixteen_processes_on_one_branch(make_store: Any, backend: dict[str, Any], tmp_path: Path) -> None:
    store = make_store()
    store.create_repo("data")
    acked, failed = run_writers(str(tmp_path / "root"), backend)
    assert failed == 0
    assert_every_ack_present(store, acked, WRITERS)
    assert store.fsck()["ok"]


def test_four_processes_on_one_branch(make_store: Any, backend: dict[str, Any], tmp_path: Path) -> None:
    store = make_store()
    store.create_repo("data")
    acked, failed = run_writers(str(tmp_path / "root"), backend, writers=4, commits=10)
    assert failed == 0
    assert_every_ack_present(store, acked, 4, commits=10)


def test_branch_writes_land_beneath_an_open_commit_never_in_it(store: Store) -> None:
    store.create_repo("data")
    base = store.put_file("data", "master", "base", b"0")
    held = store.start_commit("data", "master")
    store.put_file("data", held.id, "mine", b"m")
    theirs = store.put_file("data", "master", "theirs", b"t")  # another writer, same branch
    assert theirs.state is CommitState.FINISHED and theirs.parent == base.id
    assert store.inspect_commit("data", held.id).parent == theirs.id
    assert [f.path for f in store.walk_files("data", theirs.id)] == ["base", "theirs"]  # not "mine"
    store.finish_commit("data", held.id, error="changed my mind")
    assert store.inspect_branch("data", "master").head == theirs.id  # theirs survives my failure
    assert [f.path for f in store.walk_files("data", "master")] == ["base", "theirs"]


# -- gc in the middle of writes --------------------------------------------------------------


def _paused_before_commit(store: Store) -> tuple[threading.Event, threading.Event]:
    """A pause point between a write storing its bytes and its commit (the window gc must respect)."""
    reached, go = threading.Event(), threading.Event()
    original = store._publish_edits

    def paused(*args: Any, **kwargs: Any) -> Any:
        reached.set()
        assert go.wait(60)
        return original(*args, **kwargs)

    store._publish_edits = paused  # type: ignore[method-assign]
    return reached, go


def test_gc_in_the_middle_of_a_deduplicating_put_loses_nothing(store: Store) -> None:
    files = [(f"f{i:04d}", f"file {i} ".encode() * 40) for i in range(2000)]
    store.create_repo("gone")
    store.put_files("gone", "master", files)
    store.delete_repo("gone")  # its chunks are garbage now, and a new put will find them stored
    store.create_repo("data")
    reached, go = _paused_before_commit(store)
    done: list[Any] = []
    writer = threading.Thread(target=lambda: done.append(store.put_files("data", "master", files)))
    writer.start()
    assert reached.wait(60)
    report = store.gc(grace_seconds=0)  # with the put's commit not yet made
    go.set()
    writer.join(60)
    assert done and done[0].state is CommitState.FINISHED
    assert report["chunks_deleted"] == 0
    lost = [p for p, data in files[::50] if store.get_file("data", "master", p) != data]
    assert lost == []
    assert store.fsck()["ok"]
    assert store.gc(grace_seconds=0)["chunks_deleted"] == 0  # and later gc agrees: all are used


def test_gc_during_multipart_uploads_keeps_their_parts(store: Store) -> None:
    from datumflow.storage_service.service.s3.multipart import Multipart

    store.create_repo("data")
    store.create_branch("data", "master")
    uploads = Multipart(store)
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(5 * 1024 * 1024), os.urandom(1024)]
    started = []
    for n in range(2):
        upload = uploads.create("data", "master", f"big{n}.bin")
        etags = [uploads.put_part(upload, i + 1, _stream(p)).etag for i, p in enumerate(parts)]
        started.append((upload, etags))
    report = store.gc(grace_seconds=0)  # every part is stored, no commit references it yet
    assert report["chunks_deleted"] == 0
    for upload, etags in started:
        uploads.complete(upload, list(enumerate(etags, 1)), lambda meta, etag: meta)
    for n in range(2):
        assert store.get_file("data", "master", f"big{n}.bin") == b"".join(parts)
    assert store.fsck()["ok"]


def _stream(data: bytes) -> Any:
    import io

    return io.BytesIO(data)


# -- killed writers ------------------------------------------------------------------------------

_KILLED = textwrap.dedent("""
    import sys, time
    from datumflow.storage_service import Store

    class Slow:
        def __init__(self):
            self.sent = 0
        def read(self, n=-1):
            if self.sent > 2_000_000:
                print("writing", flush=True)
                time.sleep(600)
            self.sent += 65536
            return bytes(65536)

    store = Store(sys.argv[1], fsync=False)
    if sys.argv[2] == "explicit":
        with store.writing("data", "master") as commit:
            print(commit.id, flush=True)
            store.put_file("data", commit.id, "big.bin", Slow())
    else:
        store.put_file("data", "master", "big.bin", Slow())
""")


@pytest.mark.parametrize("how", ["put", "explicit"])
def test_a_writer_killed_mid_put_leaves_nothing_half_done(tmp_path: Path, how: str) -> None:
    root = str(tmp_path / "root")
    with Store(root, fsync=False) as store:
        store.create_repo("data")
        before = store.put_file("data", "master", "kept", b"kept")
    proc = subprocess.Popen([sys.executable, "-c", _KILLED, root, how], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    opened = proc.stdout.readline().strip() if how == "explicit" else None
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    with Store(root, fsync=False) as store:  # the next start of a store: the dead writer's commit is failed
        after = store.put_file("data", "master", "next", b"next")
        assert after.state is CommitState.FINISHED and after.parent == before.id
        assert [f.path for f in store.walk_files("data", "master")] == ["kept", "next"]
        assert store.list_commits("data", state="open") == []
        if opened:
            dead = store.inspect_commit("data", opened)
            assert dead.state is CommitState.FAILED and "abandoned" in (dead.error or "")
        assert store.fsck()["ok"]


def test_a_lapsed_lease_fails_the_commit_and_refuses_writes(store: Store) -> None:
    from datumflow.storage_service.errors import CommitFinished

    store.create_repo("data")
    commit = store.start_commit("data", "master", lease=3)
    store.put_file("data", commit.id, "a", b"a")  # renews it
    time.sleep(3.5)
    with pytest.raises(CommitFinished, match="abandoned"):
        store.put_file("data", commit.id, "b", b"b")
    assert store.inspect_commit("data", commit.id).state is CommitState.FAILED
    other = store.start_commit("data", "master", lease=0.1)
    time.sleep(0.3)
    assert store.fsck(repair=True)["repaired"] == [other.id]
