"""The stat cache's record of the commit last synced, on both transports.

An unchanged head costs no walk of the commit and a moved one only a diff from
the commit recorded; a record for another branch, repo or store, a deleted
cache and a damaged one all give the same results as no cache at all. Calls
are counted by a thin wrapper around the real store (it forwards everything).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from datumflow.storage_service.sync.statcache import StatCache, cache_file

import datumflow

from .conftest import Service


class Counting:
    """The store, with a count of the calls that cost a walk or a diff."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.store, name)
        if name in ("walk_files", "diff"):
            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls[name] += 1
                return found(*args, **kwargs)
            return counted
        return found

    def sync_up(self, local: str, repo: str, branch: str, path: str = "", **kwargs: Any) -> Any:
        from datumflow.storage_service.sync import engine

        return engine.sync_up(self, local, repo, branch, path, **kwargs)

    def take(self) -> dict[str, int]:
        out = dict(self.calls)
        self.calls.clear()
        return out


@pytest.fixture(params=["embedded", "http"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("DATUMFLOW_SYNC_CACHE", str(tmp_path / "cache"))
    if request.param == "embedded":
        s = datumflow.connect(f"file://{tmp_path / 'store'}")
    else:
        svc: Service = request.getfixturevalue("service")
        s = datumflow.connect(svc.url, token=svc.token)
    yield s
    s.close()


@pytest.fixture
def repo(store: Any) -> str:
    name = f"y-{uuid.uuid4().hex[:10]}"
    store.create_repo(name)
    return name


def _folder(root: Path, count: int = 30) -> Path:
    for i in range(count):
        (root / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 3}" / f"f{i:03d}").write_bytes(os.urandom(200))
    time.sleep(0.25)  # past the racy window: what the first sync records is trusted
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _remote(store: Any, repo: str, ref: str, prefix: str = "") -> dict[str, bytes]:
    cut = len(prefix) + 1 if prefix else 0
    return {f.path[cut:]: store.get_file(repo, ref, f.path) for f in store.walk_files(repo, ref, prefix)}


def test_an_unchanged_head_needs_no_walk_and_a_moved_one_only_a_diff(store: Any, repo: str, tmp_path: Path) -> None:
    src = _folder(tmp_path / "src")
    counting = Counting(store)
    counting.sync_up(str(src), repo, "master", "in")
    counting.take()
    again = counting.sync_up(str(src), repo, "master", "in")
    assert (again.is_noop, again.files_read, again.commit) == (True, 0, None)
    assert counting.take() == {}  # no walk, no diff: the head is the commit recorded
    store.put_files(repo, "master", [("in/d0/f000", b"theirs"), ("in/new", b"n"), ("elsewhere", b"e")])
    moved = counting.sync_up(str(src), repo, "master", "in")
    assert (moved.added, moved.changed, moved.deleted) == ((), ("d0/f000",), ())  # the folder wins, as rclone's
    assert counting.take() == {"diff": 2}  # recorded commit → head, then head → the new commit
    assert _remote(store, repo, "master", "in") == {**_files(src), "new": b"n"}
    assert counting.sync_up(str(src), repo, "master", "in", delete=True).deleted == ("new",)
    assert counting.take() == {"diff": 1}


def test_a_branch_moved_by_another_writer_restores_only_what_it_changed(
    store: Any, repo: str, tmp_path: Path
) -> None:
    src = _folder(tmp_path / "src")
    store.sync_up(str(src), repo, "master")
    out = tmp_path / "out"
    store.sync_down(repo, "master", "", str(out))
    time.sleep(0.25)
    store.put_files(repo, "master", [("d1/f001", b"other writer"), ("d2/f002", None), ("added", b"a")])
    down = store.sync_down(repo, "master", "", str(out), delete=True)
    assert (down.added, down.changed, down.deleted) == (("added",), ("d1/f001",), ("d2/f002",))
    assert _files(out) == _remote(store, repo, "master")
    time.sleep(0.25)
    settling = store.sync_down(repo, "master", "", str(out))  # hashes the two just written, once
    assert settling.is_noop and settling.files_read <= 2
    assert store.sync_down(repo, "master", "", str(out)).files_read == 0


@pytest.mark.parametrize("elsewhere", ["branch", "repo", "path"])
def test_a_record_for_another_branch_repo_or_path_gives_the_same_plan(
    store: Any, repo: str, tmp_path: Path, elsewhere: str
) -> None:
    src = _folder(tmp_path / "src")
    store.sync_up(str(src), repo, "master")
    other_repo, branch, path = repo, "master", ""
    if elsewhere == "branch":
        branch = "other"
        store.put_files(repo, branch, [("d0/f000", b"x"), ("only-there", b"o")])
    elif elsewhere == "repo":
        other_repo = f"{repo}-b"
        store.create_repo(other_repo)
        store.put_files(other_repo, branch, [("d0/f000", b"x"), ("only-there", b"o")])
    else:
        path = "sub"
        store.put_files(repo, branch, [("sub/d0/f000", b"x"), ("sub/only-there", b"o")])
    plan = store.sync_up(str(src), other_repo, branch, path, delete=True, dry_run=True)
    shutil.rmtree(tmp_path / "cache")
    cold = store.sync_up(str(src), other_repo, branch, path, delete=True, dry_run=True)
    assert (plan.added, plan.changed, plan.deleted) == (cold.added, cold.changed, cold.deleted)
    assert plan.changed == ("d0/f000",) and plan.deleted == ("only-there",) and len(plan.added) == 29
    store.sync_up(str(src), other_repo, branch, path, delete=True)
    assert _remote(store, other_repo, branch, path) == _files(src)


def test_a_record_from_another_store_is_not_trusted(repo: str, store: Any, tmp_path: Path) -> None:
    src = _folder(tmp_path / "src")
    store.put_files(repo, "master", [("d0/f000", b"old")])
    with datumflow.connect(f"file://{tmp_path / 'elsewhere'}") as other:
        other.create_repo(repo)
        other.sync_up(str(src), repo, "master")  # the cache now names a commit of the other store
    result = store.sync_up(str(src), repo, "master")
    assert (len(result.added), result.changed) == (29, ("d0/f000",))
    assert _remote(store, repo, "master") == _files(src)


def test_a_deleted_or_damaged_cache_changes_no_result(
    store: Any, repo: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = _folder(tmp_path / "src")
    store.sync_up(str(src), repo, "master")
    store.put_files(repo, "master", [("d2/f005", b"moved on")])
    (src / "d1" / "f004").write_bytes(os.urandom(200))
    warm = store.sync_up(str(src), repo, "master", dry_run=True)
    cache = cache_file(str(src))
    data = bytearray(cache.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cache.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="datumflow"):
        damaged = store.sync_up(str(src), repo, "master", dry_run=True)
    assert "damaged" in caplog.text and "checksum" in caplog.text
    cache.unlink(missing_ok=True)
    deleted = store.sync_up(str(src), repo, "master", dry_run=True)
    plans = {(r.added, r.changed, r.deleted) for r in (warm, damaged, deleted)}
    assert plans == {((), ("d1/f004", "d2/f005"), ())}
    assert warm.files_read == 1 and damaged.files_read == deleted.files_read == 29


def test_same_size_edits_and_racy_entries_miss_the_bulk_compare(store: Any, repo: str, tmp_path: Path) -> None:
    src = _folder(tmp_path / "src")
    store.sync_up(str(src), repo, "master")
    target = src / "d0" / "f003"
    st = target.stat()
    target.write_bytes(os.urandom(200))  # same size, and the very same mtime put back
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    edited = store.sync_up(str(src), repo, "master")
    assert edited.changed == ("d0/f003",)
    # Recorded moments after it was written (racy): the next sync hashes it again rather than trusting it.
    fresh = store.sync_up(str(src), repo, "master")
    assert fresh.is_noop and fresh.files_read <= 1
    time.sleep(0.25)
    store.sync_up(str(src), repo, "master")
    settled = store.sync_up(str(src), repo, "master")
    assert (settled.is_noop, settled.files_read) == (True, 0)
    assert _remote(store, repo, "master") == _files(src)


def test_links_to_files_sync_as_their_target_and_links_to_folders_are_not_followed(
    store: Any, repo: str, tmp_path: Path
) -> None:
    src = _folder(tmp_path / "src", count=3)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "target.txt").write_bytes(b"linked")
    (src / "file-link").symlink_to(outside / "target.txt")
    (src / "folder-link").symlink_to(outside, target_is_directory=True)
    (src / "loop").symlink_to(src, target_is_directory=True)
    (src / "dangling").symlink_to(tmp_path / "nowhere")
    first = store.sync_up(str(src), repo, "master")
    assert sorted(first.added) == ["d0/f000", "d1/f001", "d2/f002", "file-link"]
    assert store.get_file(repo, "master", "file-link") == b"linked"
    time.sleep(0.25)
    store.sync_up(str(src), repo, "master")  # settles the entries recorded while racy
    again = store.sync_up(str(src), repo, "master")
    assert (again.is_noop, again.files_read) == (True, 0)


def _settled(store: Any, src: Path, repo: str) -> None:
    time.sleep(0.25)  # past the racy window of what was just written
    store.sync_up(str(src), repo, "master")


@pytest.fixture
def rows_seen(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What each sync's in-place check answered (None: compared in full)."""
    seen: list[Any] = []
    real = StatCache.in_place

    def spy(self: StatCache, *args: Any, **kwargs: Any) -> Any:
        seen.append(real(self, *args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(StatCache, "in_place", spy)
    return seen


def test_edits_in_place_cost_what_changed_and_keep_the_record_right(
    store: Any, repo: str, tmp_path: Path, rows_seen: list[Any]
) -> None:
    """A folder with the very files it last matched, a few edited: compared by row, no walk of the commit,
    no diff either (the files were read after settled stats that still hold once stored, and the new
    commit sits on the head), and the record moves on to the new commit."""
    src = _folder(tmp_path / "src")
    counting = Counting(store)
    counting.sync_up(str(src), repo, "master")
    _settled(counting, src, repo)
    (src / "d0" / "f000").write_bytes(os.urandom(200))  # same size, new bytes: read, and sent
    (src / "d1" / "f001").write_bytes(os.urandom(300))  # another size, small: read (for its hash), and sent
    (src / "d2" / "f002").write_bytes((src / "d2" / "f002").read_bytes())  # touched only: read, not sent
    time.sleep(0.25)
    counting.take()
    rows_seen.clear()
    edited = counting.sync_up(str(src), repo, "master")
    assert [len(rows) for rows in rows_seen] == [3]  # by row: the three files whose stat moved
    assert (edited.added, edited.changed, edited.deleted) == ((), ("d0/f000", "d1/f001"), ())
    assert (edited.files_read, edited.unchanged, edited.bytes) == (3, 28, 500)
    assert counting.take() == {}
    assert _remote(store, repo, "master") == _files(src)
    again = counting.sync_up(str(src), repo, "master")
    assert (again.is_noop, again.files_read, again.commit) == (True, 0, None)
    assert counting.take() == {}  # the record names the new commit: no walk, no diff
    down = store.sync_down(repo, "master", "", str(src))
    assert down.is_noop and down.files_read == 0


def test_a_large_edit_in_place_learns_the_stored_hash_by_a_diff(
    store: Any, repo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file too large to hold is sent from disk: what the store read, the diff tells."""
    from datumflow.storage_service.sync import engine

    src = _folder(tmp_path / "src")
    store.sync_up(str(src), repo, "master")
    _settled(store, src, repo)
    monkeypatch.setattr(engine, "_HELD", 100)  # f000's new 150 bytes are more than a re-sync holds
    (src / "d0" / "f000").write_bytes(os.urandom(150))
    time.sleep(0.25)
    counting = Counting(store)
    result = counting.sync_up(str(src), repo, "master")
    assert result.changed == ("d0/f000",) and counting.take() == {"diff": 1}
    assert _remote(store, repo, "master") == _files(src)
    again = counting.sync_up(str(src), repo, "master")
    assert (again.changed, again.commit, counting.take()) == ((), None, {})


def test_an_edit_in_place_written_again_meanwhile_sends_what_was_read_then_the_rewrite(
    store: Any, repo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit holds the bytes read and hashed, whatever the file became since; the next sync sends
    the rewrite (its stat moved)."""
    src = _folder(tmp_path / "src")
    store.sync_up(str(src), repo, "master")
    _settled(store, src, repo)
    target = src / "d0" / "f000"
    first = os.urandom(200)
    target.write_bytes(first)
    time.sleep(0.25)
    counting = Counting(store)

    def put_files(*args: Any, **kwargs: Any) -> Any:  # another write lands after the read here
        target.write_bytes(b"rewritten, of another size")
        return store.put_files(*args, **kwargs)

    monkeypatch.setattr(counting, "put_files", put_files, raising=False)
    result = counting.sync_up(str(src), repo, "master")
    assert result.changed == ("d0/f000",) and counting.take() == {}
    assert _remote(store, repo, "master")["d0/f000"] == first
    monkeypatch.undo()
    time.sleep(0.25)
    again = Counting(store).sync_up(str(src), repo, "master")
    assert again.changed == ("d0/f000",)
    assert _remote(store, repo, "master") == _files(src)


def test_a_racy_edit_in_place_is_sent_right_and_compared_in_full_next_time(
    store: Any, repo: str, tmp_path: Path, rows_seen: list[Any]
) -> None:
    """Scanned within the timestamp granularity of its write: the commit holds what was read, and the next
    sync does not trust the entry (it compares in full and finds nothing to send)."""
    src = _folder(tmp_path / "src")
    store.sync_up(str(src), repo, "master")
    _settled(store, src, repo)
    (src / "d0" / "f000").write_bytes(os.urandom(200))
    result = store.sync_up(str(src), repo, "master")  # at once: racy
    assert result.changed == ("d0/f000",)
    assert _remote(store, repo, "master") == _files(src)
    rows_seen.clear()
    again = store.sync_up(str(src), repo, "master")
    assert rows_seen == [None] and (again.changed, again.commit) == ((), None)


def test_edits_in_place_while_another_writer_moves_the_branch(store: Any, repo: str, tmp_path: Path) -> None:
    src = _folder(tmp_path / "src")
    store.sync_up(str(src), repo, "master")
    _settled(store, src, repo)
    (src / "d0" / "f003").write_bytes(b"ours")
    time.sleep(0.25)

    class Racing(Counting):
        def put_files(self, *args: Any, **kwargs: Any) -> Any:  # another writer lands first
            self.store.put_files(repo, "master", [("theirs", b"t"), ("d1/f004", b"their edit")])
            return self.store.put_files(*args, **kwargs)

    racing = Racing(store)
    result = racing.sync_up(str(src), repo, "master")
    assert result.changed == ("d0/f003",)
    remote = _remote(store, repo, "master")
    assert remote["theirs"] == b"t" and remote["d0/f003"] == b"ours" and remote["d1/f004"] == b"their edit"
    # The record of the commit was dropped: the next sync walks once and finds the other writer's edit.
    counting = Counting(store)
    after = counting.sync_up(str(src), repo, "master")
    assert after.changed == ("d1/f004",) and counting.take().get("walk_files") == 1
    assert _remote(store, repo, "master") == {**_files(src), "theirs": b"t"}


def test_edits_in_place_with_delete_and_dry_run(store: Any, repo: str, tmp_path: Path, rows_seen: list[Any]) -> None:
    src = _folder(tmp_path / "src")
    store.sync_up(str(src), repo, "master")
    _settled(store, src, repo)
    (src / "d2" / "f005").write_bytes(b"planned")
    time.sleep(0.25)
    head = store.inspect_branch(repo, "master").head
    plan = store.sync_up(str(src), repo, "master", dry_run=True)
    assert plan.changed == ("d2/f005",) and plan.commit is None
    assert store.inspect_branch(repo, "master").head == head
    done = store.sync_up(str(src), repo, "master")
    assert done.changed == ("d2/f005",) and done.commit is not None
    store.put_files(repo, "master", [("only-remote", b"r")])
    store.sync_up(str(src), repo, "master")  # records a commit holding a file the folder lacks
    (src / "d0" / "f006").write_bytes(b"edited")
    time.sleep(0.25)
    rows_seen.clear()
    pruned = store.sync_up(str(src), repo, "master", delete=True)
    assert rows_seen == [None]  # a file to delete: compared in full
    assert (pruned.changed, pruned.deleted) == (("d0/f006",), ("only-remote",))
    assert _remote(store, repo, "master") == _files(src)


def test_edits_in_place_append_patches_that_read_back_whole_until_they_are_written_whole(
    store: Any, repo: str, tmp_path: Path
) -> None:
    """A re-sync by row appends its rows to the cache file (the same file, a little longer) instead of writing
    it again; every reopen reads the patches back (an unchanged folder is then known from its stats alone);
    after enough patches the file is written whole again."""
    from datumflow.storage_service.sync import statcache

    src = _folder(tmp_path / "src", count=300)
    store.sync_up(str(src), repo, "master")
    _settled(store, src, repo)
    path = cache_file(str(src))
    grew: list[bool] = []
    for rnd in range(statcache._PATCHES + 1):
        if grew and not grew[-1]:
            break
        before = path.stat()
        (src / "d1" / f"f{3 * rnd + 1:03d}").write_bytes(os.urandom(200))
        time.sleep(0.25)
        assert store.sync_up(str(src), repo, "master").changed == (f"d1/f{3 * rnd + 1:03d}",)
        after = path.stat()
        grew.append(after.st_ino == before.st_ino and after.st_size > before.st_size)
        same = store.sync_up(str(src), repo, "master")
        assert (same.is_noop, same.files_read) == (True, 0)
    assert len(grew) > 3 and grew == [True] * (len(grew) - 1) + [False]  # patches, then written whole
    assert _remote(store, repo, "master") == _files(src)


def test_a_torn_patch_is_ignored_and_the_sync_still_right(store: Any, repo: str, tmp_path: Path) -> None:
    """A crash in the middle of appending a patch: the patch fails its checksum and is left out; the cache
    then says what it said before that sync, which the next sync corrects (by a diff), sending nothing."""
    src = _folder(tmp_path / "src", count=300)
    store.sync_up(str(src), repo, "master")
    _settled(store, src, repo)
    path = cache_file(str(src))
    (src / "d0" / "f000").write_bytes(os.urandom(200))
    time.sleep(0.25)
    size = path.stat().st_size
    store.sync_up(str(src), repo, "master")
    head = store.inspect_branch(repo, "master").head
    with open(path, "r+b") as fh:  # cut the patch short
        fh.truncate(size + (path.stat().st_size - size) // 2)
    again = store.sync_up(str(src), repo, "master")
    assert (again.changed, again.commit, again.files_read) == ((), None, 1)
    assert store.inspect_branch(repo, "master").head == head
    assert path.exists()
    settled = store.sync_up(str(src), repo, "master")
    assert (settled.is_noop, settled.files_read) == (True, 0)


def test_a_patch_is_not_appended_to_a_cache_another_sync_moved_on(store: Any, repo: str, tmp_path: Path) -> None:
    """Two syncs of one folder: the one that saves second finds the file not as it read it and writes it
    whole (never a patch against rows it did not read)."""
    src = _folder(tmp_path / "src", count=300)
    store.sync_up(str(src), repo, "master")
    _settled(store, src, repo)
    path = cache_file(str(src))
    early = StatCache(str(src))  # read before the other sync saves
    (src / "d0" / "f000").write_bytes(os.urandom(200))
    time.sleep(0.25)
    store.sync_up(str(src), repo, "master")  # appends a patch
    assert early._saved is not None and early._saved.tail is not None
    early.record_at(3, early._saved.paths[3], tuple(early._saved.stats[12:16]), early._saved.hash_at(3), 0)
    ino = path.stat().st_ino
    early.save()
    assert path.stat().st_ino != ino  # written whole
    assert StatCache(str(src)).synced is not None
