"""Diffs, commit provenance and subvenance, commit sets and alias-finishing downstream."""

from __future__ import annotations

import pytest
from datumflow.storage_service import CommitState, Origin, Store
from datumflow.storage_service.errors import BranchInUse, CommitNotFound, InvalidArgument, OutputBranch


def test_diff_added_deleted_modified(store: Store) -> None:
    store.create_repo("data")
    first = store.put_files("data", "master", [("keep", b"k"), ("change", b"old"), ("drop", b"d")])
    store.put_files("data", "master", [("change", b"new"), ("add/me", b"a")])
    second = store.delete_file("data", "master", "drop")
    got = {(d.path, d.change) for d in store.diff("data", first.id, second.id)}
    assert got == {("add/me", "added"), ("change", "modified"), ("drop", "deleted")}
    (mod,) = [d for d in store.diff("data", first.id, second.id) if d.change == "modified"]
    assert mod.old is not None and mod.new is not None
    assert (mod.old.size, mod.new.size) == (3, 3) and mod.old.hash != mod.new.hash
    assert [(d.path, d.change) for d in store.diff("data", None, "master")] == [("drop", "deleted")]
    assert [(d.path, d.change) for d in store.diff("data", None, first.id)] == [
        ("change", "added"), ("drop", "added"), ("keep", "added"),
    ]
    assert list(store.diff("data", "master", "master")) == []
    assert mod.to_dict()["change"] == "modified"


def test_diff_across_repos(store: Store) -> None:
    store.create_repo("a")
    store.create_repo("b")
    store.put_files("a", "master", [("same", b"s"), ("only-a", b"1")])
    store.put_files("b", "master", [("same", b"s"), ("only-b", b"2")])
    got = [(d.path, d.change) for d in store.diff("b", "master", "master", old_repo="a")]
    assert got == [("only-a", "deleted"), ("only-b", "added")]


@pytest.fixture
def pipeline(store: Store) -> Store:
    """raw -> clean -> model, plus code -> model (code is provenance too)."""
    for name in ("raw", "clean", "model", "code"):
        store.create_repo(name)
    store.create_branch("raw", "master")
    store.create_branch("code", "master")
    store.put_file("code", "master", "train.py", b"print('hi')")
    store.create_branch("clean", "master", provenance=["raw@master"])
    store.create_branch("model", "master", provenance=["clean@master", "code@master"])
    return store


def test_upstream_commit_opens_downstream_commits_in_its_set(pipeline: Store) -> None:
    store = pipeline
    raw = store.start_commit("raw", "master")
    members = store.commit_set(raw.id)
    assert [(c.repo, c.origin) for c in members] == [
        ("raw", Origin.USER), ("clean", Origin.AUTO), ("model", Origin.AUTO),
    ]
    assert all(c.state is CommitState.OPEN for c in members)
    clean = store.inspect_commit("clean", "master")
    model = store.inspect_commit("model", "master")
    code = store.inspect_commit("code", "master")
    assert clean.provenance == (raw.id,)
    assert set(model.provenance) == {clean.id, code.id}
    store.put_file("raw", raw.id, "f.csv", b"1,2")
    store.finish_commit("raw", raw.id)
    done = store.wait_commit_set(raw.id, timeout=5)
    assert all(c.state is CommitState.FINISHED for c in done)


def test_owned_downstream_commits_wait_for_their_owner(pipeline: Store) -> None:
    store = pipeline
    store.create_branch("model", "master", owner="train")
    raw = store.start_commit("raw", "master")
    store.finish_commit("raw", raw.id)
    states = {c.repo: c.state for c in store.commit_set(raw.id)}
    assert states == {"raw": CommitState.FINISHED, "clean": CommitState.FINISHED, "model": CommitState.OPEN}
    model = store.inspect_commit("model", "master")
    assert model.commit_set == raw.id and model.origin is Origin.AUTO
    with pytest.raises(OutputBranch, match="only the job"):  # the owner's job writes it, nobody else
        store.put_file("model", model.id, "weights", b"w")
    store.finish_commit("model", model.id)
    assert all(c.is_finished for c in store.wait_commit_set(raw.id, timeout=5))


def test_provenance_and_subvenance_with_depth(pipeline: Store) -> None:
    store = pipeline
    raw = store.put_file("raw", "master", "f", b"x")
    clean = store.inspect_commit("clean", "master")
    model = store.inspect_commit("model", "master")
    code = store.inspect_commit("code", "master")
    full = {(e.repo, e.commit, e.depth) for e in store.provenance("model", model.id)}
    assert full == {("clean", clean.id, 1), ("code", code.id, 1), ("raw", raw.id, 2)}
    assert {e.commit for e in store.provenance("model", model.id, depth=1)} == {clean.id, code.id}
    assert store.provenance("model", model.id, depth=0) == []
    sub = [(e.repo, e.depth, e.origin) for e in store.subvenance("raw", raw.id)]
    assert sub == [("clean", 1, Origin.AUTO), ("model", 2, Origin.AUTO)]
    assert [e.repo for e in store.subvenance("raw", raw.id, depth=1)] == ["clean"]
    assert store.provenance("raw", raw.id) == []
    with pytest.raises(InvalidArgument, match="depth"):
        store.provenance("raw", raw.id, depth=-1)


def test_explicit_provenance_commits(store: Store) -> None:
    store.create_repo("in")
    store.create_repo("out")
    src = store.put_file("in", "master", "f", b"x")
    out = store.start_commit("out", "master", origin="pipeline", provenance=[src.id])
    assert out.provenance == (src.id,) and out.origin is Origin.PIPELINE
    with pytest.raises(CommitNotFound, match="provenance commit"):
        store.start_commit("out", "other", provenance=["0" * 32])
    store.finish_commit("out", out.id)
    with pytest.raises(BranchInUse, match="provenance of finished commits"):
        store.delete_commit("in", src.id)


def test_failed_upstream_leaves_downstream_open(pipeline: Store) -> None:
    store = pipeline
    before = store.inspect_branch("clean", "master").head
    raw = store.start_commit("raw", "master")
    store.finish_commit("raw", raw.id, error="bad input")
    assert store.inspect_branch("raw", "master").head is None
    clean = store.inspect_commit("clean", "master")
    assert clean.id != before and clean.commit_set == raw.id


def test_delete_open_upstream_commit_drops_its_downstream(pipeline: Store) -> None:
    store = pipeline
    first = store.put_file("raw", "master", "f", b"1")
    clean_before = store.inspect_branch("clean", "master").head
    model_before = store.inspect_branch("model", "master").head
    raw = store.start_commit("raw", "master")
    assert store.inspect_branch("clean", "master").head != clean_before
    store.delete_commit("raw", raw.id)
    assert store.inspect_branch("raw", "master").head == first.id
    assert store.inspect_branch("clean", "master").head == clean_before
    with pytest.raises(CommitNotFound):
        store.commit_set(raw.id)
    # The whole chain of open commits it caused is gone, so downstream branches can commit again.
    assert store.inspect_branch("model", "master").head == model_before
    store.start_commit("model", "master")
