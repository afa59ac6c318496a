"""One behaviour, two transports: every test runs on the embedded Store and on the HTTP Client.

``datumflow.connect("file://…")`` and ``connect("http://…")`` must be
interchangeable: same methods, same return types, same exception classes.
"""

from __future__ import annotations

import inspect
import io
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from datumflow.storage_service import errors
from datumflow.storage_service.client.http import Client
from datumflow.storage_service.model.core import Branch, Commit, CommitState, DiffEntry, FileInfo, ProvenanceEntry, Repo
from datumflow.storage_service.store.store import Store

import datumflow

from .conftest import Service


@pytest.fixture(params=["embedded", "http"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "embedded":
        s = datumflow.connect(f"file://{tmp_path / 'store'}")
    else:
        svc: Service = request.getfixturevalue("service")
        s = datumflow.connect(svc.url, token=svc.token)
    assert isinstance(s, Store if request.param == "embedded" else Client)
    yield s
    s.close()


@pytest.fixture
def repo(store: Any) -> str:
    name = f"c-{uuid.uuid4().hex[:10]}"
    store.create_repo(name, "conformance")
    return name


def test_client_mirrors_every_public_store_method() -> None:
    # glob_root takes an index root hash, write_entries raw index entries and read_content(s) a
    # FileInfo with its chunk list: all are for code running inside the store process
    # (pipelines, the HTTP routes, the S3 gateway), never for a client.
    # write_file, copy_version and remove_files (one S3 object version with its metadata and
    # preconditions) take callables and inspected versions, and branch_names is ListBuckets' one
    # query and head_commit GetObject's: the gateway's, in the store process too.
    skip = {"glob_root", "write_entries", "read_content", "read_contents", "write_file", "copy_version", "remove_files",
            "branch_names", "head_commit"}
    for name, method in inspect.getmembers(Store, inspect.isfunction):
        if name.startswith("_") or name in skip:
            continue
        assert hasattr(Client, name), f"Client lacks {name}"
        want = inspect.signature(method)
        got = inspect.signature(getattr(Client, name))
        assert list(got.parameters) == list(want.parameters), name
        for pname, param in want.parameters.items():
            assert got.parameters[pname].kind == param.kind, f"{name}({pname})"
            assert got.parameters[pname].default == param.default, f"{name}({pname}) default"


def test_repos(store: Any, repo: str) -> None:
    info = store.inspect_repo(repo)
    assert isinstance(info, Repo) and info.description == "conformance"
    assert repo in [r.name for r in store.list_repos()]
    with pytest.raises(errors.AlreadyExists):
        store.create_repo(repo)
    assert store.create_repo(repo, exist_ok=True).name == repo
    store.delete_repo(repo)
    with pytest.raises(errors.RepoNotFound):
        store.inspect_repo(repo)
    with pytest.raises(errors.InvalidArgument):
        store.create_repo("bad name!")


def test_branches_and_commits(store: Any, repo: str) -> None:
    commit = store.start_commit(repo, "master", description="first", metadata={"dag_id": "d1"})
    assert isinstance(commit, Commit) and commit.state is CommitState.OPEN
    beside = store.start_commit(repo, "master")  # a second writer gets its own commit, beside the first
    assert beside.parent is None and store.inspect_branch(repo, "master").head == commit.id
    store.delete_commit(repo, beside.id)
    done = store.finish_commit(repo, commit.id, metadata={"run": 1})
    assert done.state is CommitState.FINISHED and done.metadata == {"dag_id": "d1", "run": 1}
    with pytest.raises(errors.CommitFinished):
        store.finish_commit(repo, commit.id)
    second = store.put_file(repo, "master", "a.txt", b"hello")
    assert second.parent == commit.id
    assert store.resolve(repo, "master^") == commit.id
    assert [c.id for c in store.list_commits(repo, "master")] == [second.id, commit.id]
    assert [c.id for c in store.list_commits(repo, limit=1)] == [second.id]
    branch = store.create_branch(repo, "dev", head="master^")
    assert isinstance(branch, Branch) and branch.head == commit.id
    assert [b.name for b in store.list_branches(repo)] == ["dev", "master"]
    assert store.inspect_branch(repo, "dev").head == commit.id
    store.delete_branch(repo, "dev")
    with pytest.raises(errors.BranchNotFound):
        store.inspect_branch(repo, "dev")
    with pytest.raises(errors.CommitNotFound):
        store.inspect_commit(repo, "f" * 32)


def test_delete_commit(store: Any, repo: str) -> None:
    first = store.put_file(repo, "master", "a", b"1")
    second = store.put_file(repo, "master", "b", b"2")
    with pytest.raises(errors.InvalidArgument):
        store.delete_commit(repo, first.id)  # has a child
    store.delete_commit(repo, second.id)
    assert store.inspect_branch(repo, "master").head == first.id


def test_wait_commit_returns_when_finished_elsewhere(store: Any, repo: str) -> None:
    commit = store.start_commit(repo, "master")
    finisher = threading.Timer(0.3, lambda: store.finish_commit(repo, commit.id))
    finisher.start()
    try:
        waited = store.wait_commit(repo, commit.id, timeout=30)
    finally:
        finisher.join()
    assert waited.state is CommitState.FINISHED


def test_wait_commit_times_out(store: Any, repo: str) -> None:
    store.start_commit(repo, "master")
    with pytest.raises(errors.Timeout):
        store.wait_commit(repo, "master", timeout=0.2)


def test_provenance_commit_sets(store: Any, repo: str) -> None:
    out = f"{repo}-out"
    store.create_repo(out)
    store.create_branch(repo, "master")
    store.create_branch(out, "master", provenance=[f"{repo}@master"])
    commit = store.put_file(repo, "master", "in.csv", b"x")
    members = store.wait_commit_set(commit.commit_set, timeout=10)
    assert {c.repo for c in members} == {repo, out}
    assert {c.repo for c in store.commit_set(commit.commit_set)} == {repo, out}
    down = store.inspect_branch(out, "master").head
    prov = store.provenance(out, down)
    assert all(isinstance(p, ProvenanceEntry) for p in prov)
    assert [(p.repo, p.commit, p.depth) for p in prov] == [(repo, commit.id, 1)]
    assert [(s.repo, s.commit) for s in store.subvenance(repo, commit.id)] == [(out, down)]
    with pytest.raises(errors.BranchInUse):
        store.delete_branch(repo, "master")


def test_files_roundtrip(store: Any, repo: str, tmp_path: Path) -> None:
    big = bytes(range(256)) * 12000  # ~3 MB: several chunks
    local = tmp_path / "big.bin"
    local.write_bytes(big)
    store.put_file(repo, "master", "data/big.bin", local)
    store.put_file(repo, "master", "data/small.txt", io.BytesIO(b"small"))
    assert store.get_file(repo, "master", "data/big.bin") == big
    assert b"".join(store.open_file(repo, "master", "data/small.txt")) == b"small"
    assert store.read_range(repo, "master", "data/big.bin", 1000, 50) == big[1000:1050]
    assert store.read_range(repo, "master", "data/big.bin", len(big) - 5) == big[-5:]
    info = store.inspect_file(repo, "master", "data/big.bin")
    assert isinstance(info, FileInfo) and info.size == len(big) and info.type == "file"
    assert store.inspect_file(repo, "master", "data").type == "dir"
    with pytest.raises(errors.PathNotFound):
        store.get_file(repo, "master", "nope")
    with pytest.raises(errors.InvalidArgument):
        store.get_file(repo, "master", "data")  # a folder


def test_append_and_open_commit(store: Any, repo: str) -> None:
    store.put_file(repo, "master", "log.txt", b"one\n")
    commit = store.start_commit(repo, "master")
    store.put_file(repo, commit.id, "log.txt", b"two\n", append=True)
    store.put_file(repo, "master", "other.txt", b"x")  # lands in the open commit
    store.finish_commit(repo, commit.id)
    assert store.get_file(repo, "master", "log.txt") == b"one\ntwo\n"
    assert store.inspect_commit(repo, "master").id == commit.id
    with pytest.raises(errors.CommitFinished):
        store.put_file(repo, commit.id, "late.txt", b"x")


def test_put_files_folder_one_commit(store: Any, repo: str, tmp_path: Path) -> None:
    folder = tmp_path / "tree"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.csv").write_text("a")
    (folder / "sub" / "b.csv").write_text("bb")
    commit = store.put_files(repo, "master", [("in", folder), ("extra/c.txt", b"ccc")], description="bulk")
    assert commit.description == "bulk" and commit.file_count == 3
    assert [f.path for f in store.walk_files(repo, "master")] == ["extra/c.txt", "in/a.csv", "in/sub/b.csv"]
    assert len(store.list_commits(repo, "master")) == 1


def test_list_glob_paging(store: Any, repo: str) -> None:
    store.put_files(repo, "master", [(f"d/f{i:03d}.csv", b"%d" % i) for i in range(25)] + [("d/sub/x", b"x")])
    names = [f.path for f in store.list_files(repo, "master", "d")]
    assert names[:2] == ["d/f000.csv", "d/f001.csv"] and names[-1] == "d/sub" and len(names) == 26
    page = store.list_files(repo, "master", "d", start_after="f010.csv", limit=3)
    assert [f.path for f in page] == ["d/f011.csv", "d/f012.csv", "d/f013.csv"]
    assert [f.path for f in store.glob_files(repo, "master", "d/f00[1-3].csv")] == [
        "d/f001.csv", "d/f002.csv", "d/f003.csv"]
    assert [f.path for f in store.glob_files(repo, "master", "**/x")] == ["d/sub/x"]


def test_delete_copy_diff(store: Any, repo: str) -> None:
    first = store.put_files(repo, "master", [("a/1", b"1"), ("a/2", b"2"), ("b", b"b")])
    store.delete_file(repo, "master", "a")
    assert [f.path for f in store.list_files(repo, "master")] == ["b"]
    copied = store.copy_file(repo, first.id, "a", repo, "master", "c")
    assert copied.file_count == 3
    assert store.get_file(repo, "master", "c/2") == b"2"
    changes = list(store.diff(repo, first.id, "master"))
    assert all(isinstance(d, DiffEntry) for d in changes)
    assert {(d.path, d.change) for d in changes} == {
        ("a/1", "deleted"), ("a/2", "deleted"), ("c/1", "added"), ("c/2", "added")}
    last = list(store.diff(repo, None, "master"))  # against the parent
    assert {d.path for d in last} == {"c/1", "c/2"} and last[0].new is not None
    with pytest.raises(errors.PathNotFound):
        store.delete_file(repo, "master", "missing")


def test_fsck_and_gc(store: Any, repo: str) -> None:
    store.put_file(repo, "master", "x", b"payload")
    report = store.fsck()
    assert report["errors"] == []
    assert isinstance(store.gc(), dict)


def test_failed_commit_drops_content(store: Any, repo: str) -> None:
    store.put_file(repo, "master", "keep", b"k")
    commit = store.start_commit(repo, "master")
    store.put_file(repo, commit.id, "half", b"h")
    failed = store.finish_commit(repo, commit.id, error="boom")
    assert failed.state is CommitState.FAILED and failed.error == "boom"
    assert [f.path for f in store.list_files(repo, "master")] == ["keep"]


def test_sync_both_ways_and_put_files_removals(
    store: Any, repo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATUMFLOW_SYNC_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"a")
    (src / "sub" / "b.bin").write_bytes(os.urandom(300_000))
    (src / "empty").write_bytes(b"")
    first = store.sync_up(str(src), repo, "master", "in")
    assert (sorted(first.added), first.commit) == (["a.txt", "empty", "sub/b.bin"], store.resolve(repo, "master"))
    assert store.sync_up(str(src), repo, "master", "in").is_noop
    (src / "a.txt").unlink()
    gone = store.sync_up(str(src), repo, "master", "in", delete=True)
    assert gone.deleted == ("a.txt",)
    assert [e.path for e in store.diff(repo, None, "master")] == ["in/a.txt"]
    out = tmp_path / "out"
    down = store.sync_down(repo, "master", "in", str(out))
    assert sorted(down.added) == ["empty", "sub/b.bin"]
    assert (out / "sub" / "b.bin").read_bytes() == (src / "sub" / "b.bin").read_bytes()
    commit = store.put_files(repo, "master", [("in/empty", None), ("in/new", b"n")])
    assert sorted((e.change, e.path) for e in store.diff(repo, None, commit.id)) == [
        ("added", "in/new"), ("deleted", "in/empty"),
    ]
