"""Bad input: a clear error class and message, and nothing stored changes."""

from __future__ import annotations

import pytest
from datumflow.storage_service import Store
from datumflow.storage_service.errors import (
    BranchNotFound,
    CommitNotFound,
    InvalidArgument,
    NotFound,
    PathNotFound,
    RepoNotFound,
)

from .conftest import snapshot

BAD_REPO_NAMES = ["", "-lead", "has space", "dot.name", "slash/name", "x" * 64, "ünï", "a@b"]
BAD_BRANCH_NAMES = ["", "-lead", "feature/x", "v1.0", "a^", "a~1", "0123456789abcdef0123456789abcdef", "b" * 128]


@pytest.fixture
def seeded(store: Store) -> Store:
    store.create_repo("data")
    store.put_file("data", "master", "a/b.txt", b"content")
    return store


@pytest.mark.parametrize("name", BAD_REPO_NAMES)
def test_invalid_repo_name(seeded: Store, name: str) -> None:
    before = snapshot(seeded)
    with pytest.raises(InvalidArgument, match="invalid repo name"):
        seeded.create_repo(name)
    with pytest.raises(InvalidArgument, match="invalid repo name"):
        seeded.put_file(name, "master", "f", b"x")
    assert snapshot(seeded) == before


@pytest.mark.parametrize("name", BAD_BRANCH_NAMES)
def test_invalid_branch_name(seeded: Store, name: str) -> None:
    before = snapshot(seeded)
    with pytest.raises(InvalidArgument, match="invalid branch name"):
        seeded.create_branch("data", name)
    with pytest.raises(InvalidArgument):
        seeded.start_commit("data", name)
    assert snapshot(seeded) == before


@pytest.mark.parametrize(
    ("path", "message"),
    [("../etc/passwd", "may not escape"), ("a/../../b", "may not escape"), ("a/../b", "may not escape"),
     ("a\x00b", "NUL"), ("x" * 1025, "longer than 1024"), ("", "destination file path is required"),
     ("/", "destination file path is required")],
)
def test_invalid_paths_change_nothing(seeded: Store, path: str, message: str) -> None:
    before = snapshot(seeded)
    with pytest.raises(InvalidArgument, match=message):
        seeded.put_file("data", "master", path, b"evil")
    assert snapshot(seeded) == before


@pytest.mark.parametrize("path", ["../a/b.txt", "a/b.txt\x00"])
def test_invalid_paths_on_read(seeded: Store, path: str) -> None:
    with pytest.raises(InvalidArgument):
        seeded.get_file("data", "master", path)
    with pytest.raises(InvalidArgument):
        seeded.delete_file("data", "master", path)


def test_absolute_paths_normalize(seeded: Store) -> None:
    assert seeded.get_file("data", "master", "/a/b.txt") == b"content"
    assert seeded.get_file("data", "master", "//a/./b.txt") == b"content"


def test_unknown_references(seeded: Store) -> None:
    cases = [
        (RepoNotFound, "repo nope not found", lambda: seeded.inspect_repo("nope")),
        (RepoNotFound, "repo nope not found", lambda: seeded.get_file("nope", "master", "a/b.txt")),
        (BranchNotFound, "branch dev not found", lambda: seeded.get_file("data", "dev", "a/b.txt")),
        (BranchNotFound, "branch dev not found", lambda: seeded.inspect_branch("data", "dev")),
        (CommitNotFound, "not found in repo data", lambda: seeded.inspect_commit("data", "f" * 32)),
        (CommitNotFound, "only 1 commit", lambda: seeded.inspect_commit("data", "master^")),
        (PathNotFound, "no file or folder 'a/c.txt'", lambda: seeded.get_file("data", "master", "a/c.txt")),
    ]
    for klass, message, call in cases:
        with pytest.raises(klass, match=message) as info:
            call()
        assert isinstance(info.value, NotFound) and isinstance(info.value, FileNotFoundError)


def test_commit_of_another_repo_is_not_found(seeded: Store) -> None:
    seeded.create_repo("other")
    head = seeded.resolve("data", "master")
    with pytest.raises(CommitNotFound, match="not found in repo other"):
        seeded.inspect_commit("other", head)


def test_empty_branch_has_no_commit(seeded: Store) -> None:
    seeded.create_branch("data", "empty")
    with pytest.raises(CommitNotFound, match="has no commits yet"):
        seeded.get_file("data", "empty", "a/b.txt")


@pytest.mark.parametrize("ref", ["master^x", "~2", "master~", ""])
def test_malformed_references(seeded: Store, ref: str) -> None:
    with pytest.raises(InvalidArgument):
        seeded.resolve("data", ref)


def test_unsupported_source_type(seeded: Store) -> None:
    before = snapshot(seeded)
    with pytest.raises(InvalidArgument, match="cannot store a int"):
        seeded.put_file("data", "master", "f", 42)  # type: ignore[arg-type]
    assert snapshot(seeded) == before


def test_missing_local_source(seeded: Store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    head = seeded.resolve("data", "master")
    with pytest.raises(PathNotFound, match="does not exist"):
        seeded.put_file("data", "master", "f", tmp_path / "missing")
    assert seeded.resolve("data", "master") == head


def test_a_replaced_file_cannot_become_a_folder_in_the_same_write(store: Store) -> None:
    """The clash check skips the lookup under a path the write replaces (it was a file, with nothing under
    it), so what the write itself puts under that path must still be refused."""
    store.create_repo("clash")
    store.put_files("clash", "master", [(f"d/{i}", b"x") for i in range(300)])
    before = store.inspect_branch("clash", "master").head
    with pytest.raises(InvalidArgument, match="cannot also be"):
        store.put_files("clash", "master", [("d/7", b"new"), ("d/7/under", b"u")])
    with pytest.raises(InvalidArgument, match="cannot also be"):
        store.put_files("clash", "master", [("d/8/under", b"u")])
    assert store.inspect_branch("clash", "master").head == before
    store.put_files("clash", "master", [(f"d/{i}", b"y") for i in range(0, 300, 7)])  # replacements pass
    assert store.get_file("clash", "master", "d/7") == b"y"
