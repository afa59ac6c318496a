"""Repos and branches: create, list, inspect, delete, heads and branch provenance."""

from __future__ import annotations

import itertools

import pytest
from datumflow.storage_service import BranchRef, Store
from datumflow.storage_service.errors import (
    AlreadyExists,
    BranchInUse,
    BranchNotFound,
    InvalidArgument,
    RepoNotFound,
)

from .conftest import snapshot


def test_create_list_inspect_delete_repo(store: Store) -> None:
    created = store.create_repo("images", "raw camera frames")
    store.create_repo("labels")
    assert created.name == "images" and created.description == "raw camera frames"
    assert created.branches == () and created.size_bytes == 0
    assert [r.name for r in store.list_repos()] == ["images", "labels"]
    store.put_file("images", "master", "a.png", b"x" * 10)
    repo = store.inspect_repo("images")
    assert repo.branches == ("master",) and repo.size_bytes == 10
    store.delete_repo("images")
    assert [r.name for r in store.list_repos()] == ["labels"]
    with pytest.raises(RepoNotFound, match="images"):
        store.inspect_repo("images")


def test_create_repo_twice(store: Store) -> None:
    store.create_repo("data", "first")
    before = snapshot(store)
    with pytest.raises(AlreadyExists, match="data already exists"):
        store.create_repo("data", "second")
    again = store.create_repo("data", "second", exist_ok=True)
    assert again.description == "first"
    assert snapshot(store) == before


def test_recreated_repo_starts_empty(store: Store) -> None:
    store.create_repo("data")
    store.put_file("data", "master", "f", b"old")
    store.delete_repo("data")
    store.create_repo("data")
    assert store.list_branches("data") == []
    assert store.list_commits("data") == []


def test_branch_head_moves_with_commits(store: Store) -> None:
    store.create_repo("data")
    first = store.put_file("data", "master", "f", b"1")
    assert store.inspect_branch("data", "master").head == first.id
    second = store.put_file("data", "master", "f", b"2")
    assert store.inspect_branch("data", "master").head == second.id
    dev = store.create_branch("data", "dev", head="master^")
    assert dev.head == first.id
    assert store.get_file("data", "dev", "f") == b"1"
    moved = store.create_branch("data", "dev", head=second.id)
    assert moved.head == second.id
    assert [b.name for b in store.list_branches("data")] == ["dev", "master"]


def test_empty_branch_has_no_head(store: Store) -> None:
    store.create_repo("data")
    branch = store.create_branch("data", "staging")
    assert branch.head is None and branch.provenance == ()
    assert store.list_commits("data", "staging") == []


def test_branch_provenance_and_subvenance(store: Store) -> None:
    for name in ("raw", "clean", "model"):
        store.create_repo(name)
    store.create_branch("raw", "master")
    store.create_branch("clean", "master", provenance=["raw@master"])
    store.create_branch("model", "master", provenance=[BranchRef("clean", "master"), "raw@master"])
    assert store.inspect_branch("model", "master").provenance == (
        BranchRef("clean", "master"), BranchRef("raw", "master"),
    )
    assert store.inspect_branch("raw", "master").subvenance == (
        BranchRef("clean", "master"), BranchRef("model", "master"),
    )


def test_delete_branch_refused_while_others_are_provenant(store: Store) -> None:
    store.create_repo("raw")
    store.create_repo("clean")
    store.create_branch("raw", "master")
    store.create_branch("clean", "master", provenance=["raw@master"])
    before = snapshot(store)
    with pytest.raises(BranchInUse, match=r"raw@master is provenance of clean@master"):
        store.delete_branch("raw", "master")
    with pytest.raises(BranchInUse, match="raw is provenance of clean@master"):
        store.delete_repo("raw")
    assert snapshot(store) == before
    store.delete_branch("clean", "master")
    store.delete_branch("raw", "master")
    assert store.list_branches("raw") == []


def test_delete_branch_force_drops_its_provenance_edges(store: Store) -> None:
    store.create_repo("raw")
    store.create_repo("clean")
    store.create_branch("raw", "master")
    store.create_branch("clean", "master", provenance=["raw@master"])
    store.delete_branch("raw", "master", force=True)
    assert store.inspect_branch("clean", "master").provenance == ()


@pytest.mark.parametrize("chain", [1, 2, 3])
def test_provenance_cycles_are_refused(store: Store, chain: int) -> None:
    names = [f"r{i}" for i in range(chain)]
    for name in names:
        store.create_repo(name)
    store.create_branch(names[0], "master")
    for up, down in itertools.pairwise(names):
        store.create_branch(down, "master", provenance=[f"{up}@master"])
    before = snapshot(store)
    with pytest.raises(InvalidArgument, match="cycle"):
        store.create_branch(names[0], "master", provenance=[f"{names[-1]}@master"])
    assert snapshot(store) == before


def test_provenance_on_a_missing_branch(store: Store) -> None:
    store.create_repo("down")
    store.create_repo("up")
    before = snapshot(store)
    with pytest.raises(BranchNotFound, match="nope"):
        store.create_branch("down", "master", provenance=["up@nope"])
    with pytest.raises(RepoNotFound, match="ghost"):
        store.create_branch("down", "master", provenance=["ghost@master"])
    assert snapshot(store) == before


def test_delete_missing_branch_and_repo(store: Store) -> None:
    store.create_repo("data")
    with pytest.raises(BranchNotFound):
        store.delete_branch("data", "nope")
    with pytest.raises(RepoNotFound):
        store.delete_repo("nope")
    with pytest.raises(RepoNotFound):
        store.list_branches("nope")
