"""Files of commits: put (bytes, streams, paths, folders), read, list, walk, glob, delete, copy."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest
from datumflow.storage_service import FileInfo, Store
from datumflow.storage_service.core.schema import chunks
from datumflow.storage_service.errors import InvalidArgument, PathNotFound
from sqlalchemy import func, select

from .conftest import pack_bytes, snapshot

TREE = {
    "top.csv": b"a,b\n1,2\n",
    "z.bin": b"\x00\x01\x02",
    "x/1.txt": b"one",
    "x/2.txt": b"two!",
    "x/y/3.txt": b"three",
    "x/y/deep/4.log": b"four",
    "xa/5.txt": b"five5",
}


@pytest.fixture
def full(store: Store) -> Store:
    store.create_repo("data")
    store.put_files("data", "master", sorted(TREE.items()))
    return store


def paths(infos: list[FileInfo]) -> list[str]:
    return [f.path for f in infos]


def test_put_bytes_stream_and_path(store: Store, tmp_path: Path) -> None:
    store.create_repo("data")
    local = tmp_path / "local.bin"
    local.write_bytes(os.urandom(2_000_000))  # above the 1 MiB in-memory cut: chunked from disk
    big = os.urandom(1_500_000)
    commit = store.put_files(
        "data", "master",
        [("b.bin", b"bytes"), ("s.bin", io.BytesIO(big)), ("p.bin", local), ("m.bin", memoryview(b"view"))],
    )
    assert store.get_file("data", commit.id, "b.bin") == b"bytes"
    assert store.get_file("data", commit.id, "s.bin") == big
    assert store.get_file("data", commit.id, "p.bin") == local.read_bytes()
    assert store.get_file("data", commit.id, "m.bin") == b"view"
    assert b"".join(store.open_file("data", commit.id, "s.bin")) == big
    assert commit.file_count == 4
    assert commit.size_bytes == 5 + len(big) + 2_000_000 + 4


def test_stream_and_bytes_give_the_same_entry(store: Store) -> None:
    store.create_repo("data")
    blob = random.Random(1).randbytes(3_000_000)
    store.put_files("data", "master", [("a", blob), ("b", io.BytesIO(blob))])
    a, b = store.inspect_file("data", "master", "a"), store.inspect_file("data", "master", "b")
    assert (a.hash, a.chunks, a.size) == (b.hash, b.chunks, b.size)
    assert len(a.chunks) > 1


def test_put_folder(store: Store, tmp_path: Path) -> None:
    store.create_repo("data")
    src = tmp_path / "src"
    for rel, data in TREE.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    store.put_file("data", "master", "in", src)
    store.put_file("data", "master", "/", src)
    got = {f.path: store.get_file("data", "master", f.path) for f in store.walk_files("data", "master")}
    assert got == {**{f"in/{k}": v for k, v in TREE.items()}, **TREE}


def test_overwrite_and_append(store: Store) -> None:
    store.create_repo("data")
    store.put_file("data", "master", "log", b"one\n")
    store.put_file("data", "master", "log", b"two\n", append=True)
    assert store.get_file("data", "master", "log") == b"one\ntwo\n"
    store.put_file("data", "master", "new", b"first", append=True)
    assert store.get_file("data", "master", "new") == b"first"
    store.put_file("data", "master", "log", b"over")
    assert store.get_file("data", "master", "log") == b"over"
    assert store.get_file("data", "master^", "log") == b"one\ntwo\n"


def test_read_range(store: Store) -> None:
    store.create_repo("data")
    blob = os.urandom(3 * 1024 * 1024)
    store.put_file("data", "master", "big", blob)
    assert len(store.inspect_file("data", "master", "big").chunks) > 1
    for start, length in [(0, 10), (5, None), (300_000, 1_000_000), (len(blob) - 3, 100), (len(blob), 5)]:
        expected = blob[start:] if length is None else blob[start:start + length]
        assert store.read_range("data", "master", "big", start, length) == expected
    with pytest.raises(InvalidArgument, match="outside"):
        store.read_range("data", "master", "big", len(blob) + 1, 1)
    with pytest.raises(InvalidArgument, match="outside"):
        store.read_range("data", "master", "big", -1, 1)


def test_inspect_file_and_dir(full: Store) -> None:
    f = full.inspect_file("data", "master", "/x/1.txt")
    assert (f.path, f.type, f.size, f.is_dir) == ("x/1.txt", "file", 3, False)
    d = full.inspect_file("data", "master", "x/")
    assert (d.path, d.type, d.size) == ("x", "dir", 3 + 4 + 5 + 4)
    root = full.inspect_file("data", "master", "")
    assert (root.type, root.size) == ("dir", sum(map(len, TREE.values())))
    with pytest.raises(PathNotFound, match="'x/nope'"):
        full.inspect_file("data", "master", "x/nope")
    with pytest.raises(InvalidArgument, match="is a folder"):
        full.get_file("data", "master", "x")


def test_list_files(full: Store) -> None:
    assert [(f.path, f.type) for f in full.list_files("data", "master")] == [
        ("top.csv", "file"), ("x", "dir"), ("xa", "dir"), ("z.bin", "file"),
    ]
    assert [(f.path, f.size) for f in full.list_files("data", "master", "x")] == [
        ("x/1.txt", 3), ("x/2.txt", 4), ("x/y", 9),
    ]
    assert paths(full.list_files("data", "master", "x/1.txt")) == ["x/1.txt"]
    with pytest.raises(PathNotFound):
        full.list_files("data", "master", "nope")


@pytest.mark.parametrize("folder", ["", "x"])
@pytest.mark.parametrize("limit", [1, 2, 3])
def test_list_files_paging(full: Store, folder: str, limit: int) -> None:
    everything = paths(full.list_files("data", "master", folder))
    pages: list[str] = []
    after = None
    while True:
        page = paths(full.list_files("data", "master", folder, start_after=after, limit=limit))
        assert len(page) <= limit
        if not page:
            break
        pages.extend(page)
        after = page[-1].rsplit("/", 1)[-1]
    assert pages == everything


def test_walk_files(full: Store) -> None:
    assert paths(list(full.walk_files("data", "master"))) == sorted(TREE)
    assert paths(list(full.walk_files("data", "master", "x/y"))) == ["x/y/3.txt", "x/y/deep/4.log"]
    assert paths(list(full.walk_files("data", "master", "x/1.txt"))) == ["x/1.txt"]
    assert list(full.walk_files("data", "master", "nothing")) == []


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*", ["top.csv", "x", "xa", "z.bin"]),
        ("/*", ["top.csv", "x", "xa", "z.bin"]),
        ("/x", ["x"]),
        ("x/*", ["x/1.txt", "x/2.txt", "x/y"]),
        ("*/*.txt", ["x/1.txt", "x/2.txt", "xa/5.txt"]),
        ("x/?.txt", ["x/1.txt", "x/2.txt"]),
        ("x/[2-9].txt", ["x/2.txt"]),
        ("x/[!2].txt", ["x/1.txt"]),
        ("{top.csv,z.bin}", ["top.csv", "z.bin"]),
        ("x{,a}", ["x", "xa"]),
        ("x/**", ["x/1.txt", "x/2.txt", "x/y", "x/y/3.txt", "x/y/deep", "x/y/deep/4.log"]),
        ("**/*.log", ["x/y/deep/4.log"]),
        ("**/*.csv", ["top.csv"]),
        ("**/y/*.txt", ["x/y/3.txt"]),
        ("x/**/*.txt", ["x/1.txt", "x/2.txt", "x/y/3.txt"]),
        ("*.csv", ["top.csv"]),
        ("nothing/*", []),
    ],
)
def test_glob(full: Store, pattern: str, expected: list[str]) -> None:
    assert paths(full.glob_files("data", "master", pattern)) == expected


def test_glob_double_star_includes_everything(full: Store) -> None:
    found = {f.path: f.type for f in full.glob_files("data", "master", "**")}
    assert {p for p, t in found.items() if t == "file"} == set(TREE)
    assert {p for p, t in found.items() if t == "dir"} == {"x", "x/y", "x/y/deep", "xa"}


def test_glob_dir_sizes(full: Store) -> None:
    (x,) = full.glob_files("data", "master", "x")
    assert (x.type, x.size) == ("dir", 16)


@pytest.mark.parametrize("pattern", ["x/[12.txt", "{a,b", "../x", "a\x00b"])
def test_bad_glob(full: Store, pattern: str) -> None:
    with pytest.raises(InvalidArgument, match="glob"):
        full.glob_files("data", "master", pattern)


def test_delete_file_and_folder(full: Store) -> None:
    full.delete_file("data", "master", "x/1.txt")
    assert "x/1.txt" not in paths(list(full.walk_files("data", "master")))
    full.delete_file("data", "master", "x/y")
    assert paths(list(full.walk_files("data", "master", "x"))) == ["x/2.txt"]
    assert full.get_file("data", "master~2", "x/y/3.txt") == b"three"
    head = full.inspect_branch("data", "master").head
    before = snapshot(full)
    with pytest.raises(PathNotFound, match="'x/y'"):
        full.delete_file("data", "master", "x/y")
    # Nothing changes: no commit, the head, the index and the bytes stay as they were.
    assert full.inspect_branch("data", "master").head == head
    assert snapshot(full) == before


def test_delete_everything_leaves_an_empty_commit(full: Store) -> None:
    commit = full.delete_file("data", "master", "/")
    assert (commit.file_count, commit.size_bytes, commit.root) == (0, 0, None)
    assert full.list_files("data", "master") == []


def test_copy_across_repos_moves_no_bytes(full: Store) -> None:
    full.create_repo("other")
    with full.engine.connect() as conn:
        chunk_rows = conn.execute(select(func.count()).select_from(chunks)).scalar()
    stored = pack_bytes(full)
    full.copy_file("data", "master", "x", "other", "master", "copied")
    full.copy_file("data", "master", "top.csv", "other", "master", "t.csv")
    full.copy_file("data", "master", "/", "other", "master", "all")
    with full.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(chunks)).scalar() == chunk_rows
    assert pack_bytes(full) == stored
    assert full.get_file("other", "master", "copied/y/deep/4.log") == b"four"
    assert full.get_file("other", "master", "t.csv") == TREE["top.csv"]
    assert {f.path[4:] for f in full.walk_files("other", "master", "all")} == set(TREE)
    assert full.inspect_file("other", "master", "t.csv").hash == full.inspect_file("data", "master", "top.csv").hash
    with pytest.raises(PathNotFound):
        full.copy_file("data", "master", "nope", "other", "master", "x")


def test_paths_are_normalized(store: Store) -> None:
    store.create_repo("data")
    store.put_file("data", "master", "/a//b/./c.txt", b"c")
    store.put_file("data", "master", "a\\d.txt", b"d")
    assert paths(list(store.walk_files("data", "master"))) == ["a/b/c.txt", "a/d.txt"]
    assert store.get_file("data", "master", "a/./b//c.txt") == b"c"


def test_file_info_to_dict(full: Store) -> None:
    info = full.inspect_file("data", "master", "x/1.txt")
    again = FileInfo.from_dict(info.to_dict())
    assert (again.path, again.type, again.size, again.hash) == (info.path, info.type, info.size, info.hash)
