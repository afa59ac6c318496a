"""Commits: open and finish, immutability, metadata, ancestry, log, wait, delete, failure."""

from __future__ import annotations

import threading

import pytest
from datumflow.storage_service import CommitState, Origin, Store
from datumflow.storage_service.errors import (
    CommitFinished,
    CommitNotFound,
    InvalidArgument,
    Timeout,
)

from .conftest import snapshot


@pytest.fixture
def repo(store: Store) -> str:
    store.create_repo("data")
    return "data"


def test_start_and_finish(store: Store, repo: str) -> None:
    commit = store.start_commit(repo, "master", description="nightly", metadata={"run": 7})
    assert commit.state is CommitState.OPEN and commit.origin is Origin.USER
    assert commit.parent is None and commit.commit_set == commit.id and commit.finished is None
    store.put_file(repo, commit.id, "a.txt", b"alpha")
    store.put_file(repo, "master", "b.txt", b"beta")  # the branch's open commit takes it
    done = store.finish_commit(repo, commit.id, metadata={"rows": 2})
    assert done.state is CommitState.FINISHED and done.finished is not None
    assert done.metadata == {"run": 7, "rows": 2}
    assert done.description == "nightly"
    assert (done.file_count, done.size_bytes) == (2, 9)
    assert store.get_file(repo, commit.id, "b.txt") == b"beta"


def test_finish_can_set_the_description(store: Store, repo: str) -> None:
    commit = store.start_commit(repo, "master", description="draft")
    assert store.finish_commit(repo, commit.id, description="final").description == "final"
    assert store.inspect_commit(repo, commit.id).description == "final"


def test_finished_commit_is_immutable(store: Store, repo: str) -> None:
    commit = store.put_file(repo, "master", "a.txt", b"alpha")
    before = snapshot(store)
    with pytest.raises(CommitFinished, match="writes need an open commit"):
        store.put_file(repo, commit.id, "a.txt", b"changed")
    with pytest.raises(CommitFinished):
        store.delete_file(repo, commit.id, "a.txt")
    with pytest.raises(CommitFinished):
        store.copy_file(repo, commit.id, "a.txt", repo, commit.id, "b.txt")
    with pytest.raises(CommitFinished, match="already finished"):
        store.finish_commit(repo, commit.id)
    assert snapshot(store) == before
    assert store.get_file(repo, commit.id, "a.txt") == b"alpha"


def test_second_open_commit_on_a_branch_starts_beside_the_first(store: Store, repo: str) -> None:
    base = store.put_file(repo, "master", "base", b"0")
    first = store.start_commit(repo, "master")
    second = store.start_commit(repo, "master")  # another writer: never refused, never shared
    assert second.parent == base.id and store.inspect_branch(repo, "master").head == first.id
    store.put_file(repo, first.id, "one", b"1")
    store.put_file(repo, second.id, "two", b"2")
    assert [f.path for f in store.walk_files(repo, second.id)] == ["base", "two"]
    done = store.finish_commit(repo, second.id)  # lands beneath the first, which is still open
    assert done.parent == base.id
    assert store.inspect_commit(repo, first.id).parent == second.id
    store.finish_commit(repo, first.id)
    assert [f.path for f in store.walk_files(repo, "master")] == ["base", "one", "two"]
    assert [c.id for c in store.list_commits(repo, "master")] == [first.id, second.id, base.id]


def test_parent_chain_and_ancestry_refs(store: Store, repo: str) -> None:
    ids = [store.put_file(repo, "master", "n", str(i).encode()).id for i in range(4)]
    assert store.resolve(repo, "master") == ids[3]
    assert store.resolve(repo, "master^") == ids[2]
    assert store.resolve(repo, "master^^") == ids[1]
    assert store.resolve(repo, "master~2") == ids[1]
    assert store.resolve(repo, "master~3") == ids[0]
    assert store.resolve(repo, "master~1^") == ids[1]
    assert store.resolve(repo, f"{ids[3]}~2") == ids[1]
    assert store.get_file(repo, "master~2", "n") == b"1"
    assert [store.inspect_commit(repo, i).parent for i in ids] == [None, *ids[:3]]
    with pytest.raises(CommitNotFound, match="only 4 commit"):
        store.resolve(repo, "master~4")


def test_list_commits_is_newest_first(store: Store, repo: str) -> None:
    ids = [store.put_file(repo, "master", "n", str(i).encode()).id for i in range(3)]
    side = store.put_file(repo, "side", "s", b"s").id
    assert [c.id for c in store.list_commits(repo, "master")] == ids[::-1]
    assert [c.id for c in store.list_commits(repo, "master", limit=2)] == ids[:0:-1]
    assert [c.id for c in store.list_commits(repo)] == [side, *ids[::-1]]
    assert [c.id for c in store.list_commits(repo, limit=1)] == [side]
    open_ = store.start_commit(repo, "master").id
    assert [c.id for c in store.list_commits(repo, state="open")] == [open_]


def test_start_commit_on_an_older_parent(store: Store, repo: str) -> None:
    first = store.put_file(repo, "master", "f", b"1")
    store.put_file(repo, "master", "f", b"2")
    fork = store.start_commit(repo, "master", parent=first.id)
    assert fork.parent == first.id
    assert store.get_file(repo, fork.id, "f") == b"1"


def test_wait_commit(store: Store, repo: str) -> None:
    commit = store.start_commit(repo, "master")
    with pytest.raises(Timeout, match="did not finish"):
        store.wait_commit(repo, commit.id, timeout=0.1)
    finisher = threading.Timer(0.2, store.finish_commit, args=(repo, commit.id))
    finisher.start()
    try:
        waited = store.wait_commit(repo, commit.id, timeout=30)
    finally:
        finisher.join()
    assert waited.state is CommitState.FINISHED


def test_delete_open_commit_restores_the_head(store: Store, repo: str) -> None:
    first = store.put_file(repo, "master", "f", b"1")
    commit = store.start_commit(repo, "master")
    store.put_file(repo, commit.id, "f", b"half-written")
    store.delete_commit(repo, commit.id)
    assert store.inspect_branch(repo, "master").head == first.id
    assert store.get_file(repo, "master", "f") == b"1"
    with pytest.raises(CommitNotFound):
        store.inspect_commit(repo, commit.id)


def test_delete_commit_with_children_is_refused(store: Store, repo: str) -> None:
    first = store.put_file(repo, "master", "f", b"1")
    store.put_file(repo, "master", "f", b"2")
    before = snapshot(store)
    with pytest.raises(InvalidArgument, match="has children"):
        store.delete_commit(repo, first.id)
    assert snapshot(store) == before


def test_failed_commit_rolls_the_branch_back(store: Store, repo: str) -> None:
    good = store.put_file(repo, "master", "f", b"good")
    bad = store.start_commit(repo, "master")
    store.put_file(repo, bad.id, "f", b"partial")
    store.put_file(repo, bad.id, "extra", b"partial")
    failed = store.finish_commit(repo, bad.id, error="worker crashed")
    assert failed.state is CommitState.FAILED and failed.error == "worker crashed"
    assert failed.is_finished
    assert store.inspect_branch(repo, "master").head == good.id
    assert store.get_file(repo, bad.id, "f") == b"good"  # partial data dropped
    assert [f.path for f in store.walk_files(repo, bad.id)] == ["f"]
    following = store.put_file(repo, "master", "g", b"next")
    assert following.parent == good.id
    assert store.wait_commit(repo, bad.id, timeout=1).state is CommitState.FAILED


def test_failed_write_makes_no_commit(store: Store, repo: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store.put_file(repo, "master", "f", b"good")
    head = store.inspect_branch(repo, "master").head
    with pytest.raises(FileNotFoundError):
        store.put_files(repo, "master", [("a", b"a"), ("b", tmp_path / "missing")])
    assert store.inspect_branch(repo, "master").head == head
    assert [c.id for c in store.list_commits(repo)] == [head]  # a branch write commits only when it lands
    assert [f.path for f in store.walk_files(repo, "master")] == ["f"]


@pytest.mark.parametrize(
    "metadata", [{"when": object()}, {1: "int key"}, {"nan": {1, 2}}, ["not", "a", "mapping"]],
    ids=["object", "int-key", "set", "list"],
)
def test_metadata_must_be_json(store: Store, repo: str, metadata: object) -> None:
    before = snapshot(store)
    with pytest.raises(InvalidArgument, match="commit metadata must be"):
        store.start_commit(repo, "master", metadata=metadata)  # type: ignore[arg-type]
    assert snapshot(store) == before
    commit = store.start_commit(repo, "master")
    before = snapshot(store)
    with pytest.raises(InvalidArgument, match="commit metadata must be"):
        store.finish_commit(repo, commit.id, metadata=metadata)  # type: ignore[arg-type]
    assert snapshot(store) == before


def test_commit_to_dict_round_trips(store: Store, repo: str) -> None:
    from datumflow.storage_service import Commit

    commit = store.put_file(repo, "master", "f", b"x")
    assert Commit.from_dict(commit.to_dict()) == commit
