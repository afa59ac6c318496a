"""The CLI's SQLAlchemy-free read path (``store.local_read``): the store's answers, or None.

Every answer the reader gives is compared with the store's own ``list_files``
(and, for file content, ``get_file``) on the same store; every case it must leave to the store (a tag, an ancestry
ref, a missing repo or branch, an empty branch, a store it may not open)
answers None, and opening never creates or changes anything.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from pathlib import Path

import pytest
from datumflow.storage_service import Store
from datumflow.storage_service.errors import CorruptObject, InvalidArgument, ObjectNotFound, PathNotFound
from datumflow.storage_service.store.local_read import LocalReader


@pytest.fixture
def filled(local_store: Store) -> Store:
    store = local_store
    store.create_repo("r")
    store.put_files("r", "master", [
        ("a.txt", b"a"), ("b/c.txt", b"cc"), ("b/d/e.txt", b"eee"), ("b/d/f.txt", b"ffff"),
        ("b/g.txt", b"g" * 100), ("z.bin", b"\0" * 10), *[(f"many/{i:03d}", b"%d" % i) for i in range(60)],
    ])
    store.put_file("r", "master", "a.txt", b"changed")
    store.create_branch("r", "empty")
    store.create_tag("r", "v1", "master")
    return store


def reader_of(store: Store) -> LocalReader:
    reader = LocalReader.open(store.root)
    assert reader is not None
    return reader


CASES = [
    ("", {}), ("b", {}), ("b/d", {}), ("b/d/e.txt", {}), ("a.txt", {}), ("/b/", {}), ("many", {"limit": 7}),
    ("many", {"start_after": "010", "limit": 5}), ("", {"start_after": "b"}), ("", {"start_after": "many"}),
    ("", {"limit": 0}), ("many", {"start_after": "zzz"}), ("b", {"start_after": "d"}),
]


@pytest.mark.parametrize(("path", "options"), CASES)
def test_answers_are_the_stores(filled: Store, path: str, options: dict[str, object]) -> None:
    head = filled.inspect_branch("r", "master").head
    with reader_of(filled) as reader:
        for ref in ("master", head):
            assert reader.list_files("r", ref, path, **options) == filled.list_files("r", ref, path, **options)
        for commit in filled.list_commits("r"):  # both commits hold every path listed here
            assert reader.list_files("r", commit.id, path, **options) == filled.list_files("r", commit.id, path,
                                                                                          **options)


def test_a_missing_path_and_a_bad_path_raise_what_the_store_raises(filled: Store) -> None:
    with reader_of(filled) as reader:
        for path, error in (("nope", PathNotFound), ("b/nope", PathNotFound), ("a\x00b", InvalidArgument),
                            ("../x", InvalidArgument)):
            with pytest.raises(error) as mine:
                reader.list_files("r", "master", path)
            with pytest.raises(error) as theirs:
                filled.list_files("r", "master", path)
            assert str(mine.value) == str(theirs.value)


@pytest.mark.parametrize("ref", ["v1", "master~1", "master^", "nope", "empty", "0" * 32, ""])
def test_what_only_the_store_can_resolve_is_none(filled: Store, ref: str) -> None:
    with reader_of(filled) as reader:
        assert reader.list_files("r", ref) is None
        assert reader.list_files("nope", "master") is None


def test_a_commit_of_another_repo_is_none(filled: Store) -> None:
    filled.create_repo("s")
    other = filled.put_file("s", "master", "x", b"x").id
    with reader_of(filled) as reader:
        assert reader.list_files("r", other) is None
        assert reader.list_files("s", other) == filled.list_files("s", other)


def test_no_database_yet_is_none_and_creates_nothing(tmp_path: Path) -> None:
    assert LocalReader.open(str(tmp_path / "absent")) is None
    assert not (tmp_path / "absent").exists()
    (tmp_path / "empty").mkdir()
    assert LocalReader.open(str(tmp_path / "empty")) is None
    assert list((tmp_path / "empty").iterdir()) == []
    (tmp_path / "dir" / "metadata.db").mkdir(parents=True)  # a folder where the file should be
    assert LocalReader.open(str(tmp_path / "dir")) is None


def test_a_file_that_is_not_a_database_is_none(tmp_path: Path) -> None:
    (tmp_path / "metadata.db").write_bytes(b"this is not sqlite" * 100)
    assert LocalReader.open(str(tmp_path)) is None
    (tmp_path / "metadata.db").write_bytes(b"")  # SQLite reads an empty file as an empty database
    assert LocalReader.open(str(tmp_path)) is None
    assert (tmp_path / "metadata.db").read_bytes() == b""


def test_a_store_at_another_schema_revision_is_left_to_the_store(filled: Store) -> None:
    db = Path(filled.root) / "metadata.db"
    with sqlite3.connect(db) as conn:
        (revision,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        conn.execute("UPDATE alembic_version SET version_num = '0003'")
    assert LocalReader.open(filled.root) is None
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE alembic_version")
    assert LocalReader.open(filled.root) is None
    assert revision  # the store was at a revision the reader accepted before


def test_one_snapshot_while_a_writer_commits(filled: Store) -> None:
    """The reader's reads all see one commit of the database, whatever a writer does meanwhile."""
    with reader_of(filled) as reader:
        before = reader.list_files("r", "master", "many")
        done = threading.Event()

        def write() -> None:
            for i in range(20):
                filled.put_file("r", "master", f"many/new{i:02d}", b"n")
            done.set()

        writer = threading.Thread(target=write)
        writer.start()
        while not done.is_set():
            assert reader.list_files("r", "master", "many") == before
        writer.join()
        assert reader.list_files("r", "master", "many") == before
    with reader_of(filled) as reader:  # a new reader sees the writer's commits
        assert reader.list_files("r", "master", "many") == filled.list_files("r", "master", "many")
        assert len(reader.list_files("r", "master", "many") or []) == 80


def test_a_node_missing_from_the_database_is_an_error_not_an_empty_folder(filled: Store) -> None:
    db = Path(filled.root) / "metadata.db"
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM df_nodes")
    with reader_of(filled) as reader, pytest.raises(ObjectNotFound, match=r"index node \w+ is missing"):
        reader.list_files("r", "master")


def test_an_open_commit_with_a_lease_is_left_to_the_store(filled: Store) -> None:
    """The store fails a dead writer's commit when it opens and rolls its branch back: only it may list then."""
    commit = filled.start_commit("r", "master", owner="host:1:dead", lease=60)
    assert LocalReader.open(filled.root) is None
    filled.finish_commit("r", commit.id)
    with reader_of(filled) as reader:
        assert reader.list_files("r", "master") == filled.list_files("r", "master")


# -- file content (``datumflow get``) -------------------------------------------------------


@pytest.fixture
def with_content(filled: Store) -> Store:
    """Besides ``filled``'s small files: a file of many chunks (read ahead on the pool), an empty file,
    and a copy of the large one (its chunks stored once)."""
    big = random.Random(7).randbytes(9 * 1024 * 1024)
    filled.put_files("r", "master", [("big.bin", big), ("empty", b""), ("copy/big.bin", big)])
    return filled


def test_file_content_is_the_stores(with_content: Store) -> None:
    store = with_content
    files = [info.path for info in store.walk_files("r", "master")]
    assert {"big.bin", "empty", "a.txt", "b/d/e.txt"} <= set(files)
    assert len(store.inspect_file("r", "master", "big.bin").chunks) > 4
    with reader_of(store) as reader:
        for ref in ("master", store.inspect_branch("r", "master").head):
            for path in files:
                content = reader.open_file("r", ref, path)
                assert content is not None, path
                assert b"".join(content) == store.get_file("r", ref, path), path
        first = store.list_commits("r")[-1].id  # a.txt as it was first written
        assert b"".join(reader.open_file("r", first, "/a.txt") or []) == b"a"


def test_file_errors_are_the_stores(with_content: Store) -> None:
    with reader_of(with_content) as reader:
        for path, error in (("nope", PathNotFound), ("b", InvalidArgument), ("b/d/", InvalidArgument),
                            ("", InvalidArgument), ("a\x00b", InvalidArgument), ("../x", InvalidArgument)):
            with pytest.raises(error) as mine:
                reader.open_file("r", "master", path)
            with pytest.raises(error) as theirs:
                b"".join(with_content.open_file("r", "master", path))
            assert str(mine.value) == str(theirs.value), path


@pytest.mark.parametrize("ref", ["v1", "master~1", "nope", "empty", "0" * 32])
def test_file_refs_only_the_store_can_resolve_are_none(filled: Store, ref: str) -> None:
    with reader_of(filled) as reader:
        assert reader.open_file("r", ref, "a.txt") is None
        assert reader.open_file("nope", "master", "a.txt") is None


def test_a_damaged_chunk_is_refused_as_the_store_refuses_it(with_content: Store) -> None:
    where = with_content.chunks.locate([with_content.inspect_file("r", "master", "big.bin").chunks[2].hash])
    ((pack, offset, _length),) = where.values()
    pack_file = Path(with_content.root, "objects", "packs", pack[:2], pack)
    with open(pack_file, "r+b") as fh:
        fh.seek(offset + 100)
        byte = fh.read(1)
        fh.seek(offset + 100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with reader_of(with_content) as reader:
        content = reader.open_file("r", "master", "big.bin")
        assert content is not None
        with pytest.raises(CorruptObject) as mine:
            b"".join(content)
    with pytest.raises(CorruptObject) as theirs:
        b"".join(with_content.open_file("r", "master", "big.bin"))
    assert str(mine.value) == str(theirs.value)


def test_a_chunk_missing_from_the_database_is_refused_before_any_byte(with_content: Store) -> None:
    gone = with_content.inspect_file("r", "master", "big.bin").chunks[-1].hash
    with sqlite3.connect(Path(with_content.root) / "metadata.db") as conn:
        conn.execute("DELETE FROM df_chunks WHERE hash = ?", (gone,))
    with reader_of(with_content) as reader, pytest.raises(ObjectNotFound) as mine:
        reader.open_file("r", "master", "big.bin")  # raised by the call, not by the iteration
    with pytest.raises(ObjectNotFound) as theirs:
        b"".join(with_content.open_file("r", "master", "big.bin"))
    assert str(mine.value) == str(theirs.value) == f"chunk {gone} is not in the store"


def test_a_file_read_is_one_snapshot(with_content: Store) -> None:
    with reader_of(with_content) as reader:
        with_content.put_file("r", "master", "a.txt", b"rewritten after the reader opened")
        assert b"".join(reader.open_file("r", "master", "a.txt") or []) == b"changed"
    with reader_of(with_content) as reader:
        assert b"".join(reader.open_file("r", "master", "a.txt") or []) == b"rewritten after the reader opened"


def test_a_file_read_creates_nothing(with_content: Store) -> None:
    spool = Path(with_content.root, "objects", ".spool")
    spool.rmdir()  # the folder the store's writers build packs in
    with reader_of(with_content) as reader:
        assert len(b"".join(reader.open_file("r", "master", "big.bin") or [])) == 9 * 1024 * 1024
    assert not spool.exists()
