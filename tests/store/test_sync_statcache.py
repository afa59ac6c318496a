"""The stat cache's rules, on a real SQLite file: what it trusts, and what it never does."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from datumflow.storage_service.core.chunking import file_hash
from datumflow.storage_service.sync.statcache import Stat, StatCache

SECOND = 1_000_000_000


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATUMFLOW_SYNC_CACHE", str(tmp_path / "cache"))


def _stat(mtime_ns: int, ctime_ns: int | None = None) -> Stat:
    return Stat(size=6, mtime_ns=mtime_ns, ino=42, ctime_ns=mtime_ns if ctime_ns is None else ctime_ns)


def _reopened(folder: Path, path: str, stat: Stat, statted_ns: int) -> StatCache:
    cache = StatCache(str(folder))
    cache.record(path, stat, "h", statted_ns)
    cache.save()
    return StatCache(str(folder))


def test_an_old_unchanged_stat_is_trusted_after_a_reopen(tmp_path: Path) -> None:
    now = 1_700_000_000 * SECOND + 123_456_789
    stat = _stat(now - SECOND)
    assert _reopened(tmp_path, "a", stat, now).lookup("a", stat) == "h"


@pytest.mark.parametrize("age_ns", [0, 50_000_000, -SECOND])  # same instant, within the window, in the future
def test_a_racy_entry_is_never_trusted(tmp_path: Path, age_ns: int) -> None:
    now = 1_700_000_000 * SECOND + 123_456_789
    stat = _stat(now - age_ns)
    assert _reopened(tmp_path, "a", stat, now).lookup("a", stat) is None


def test_whole_second_timestamps_get_the_coarse_window(tmp_path: Path) -> None:
    now = 1_700_000_000 * SECOND + 500_000_000
    coarse = _stat(1_700_000_000 * SECOND - SECOND)  # 1.5 s before: fine for ns stamps, racy for whole seconds
    assert _reopened(tmp_path, "a", coarse, now).lookup("a", coarse) is None
    fine = _stat(1_700_000_000 * SECOND - SECOND + 1)
    assert _reopened(tmp_path, "b", fine, now).lookup("b", fine) == "h"


@pytest.mark.parametrize("field", ["size", "mtime_ns", "ino", "ctime_ns"])
def test_any_stat_change_is_a_miss(tmp_path: Path, field: str) -> None:
    now = 1_700_000_000 * SECOND
    stat = _stat(now - 10 * SECOND)
    cache = _reopened(tmp_path, "a", stat, now)
    assert cache.lookup("a", stat._replace(**{field: getattr(stat, field) + 1})) is None


def test_a_recent_ctime_alone_makes_an_entry_racy(tmp_path: Path) -> None:
    now = 1_700_000_000 * SECOND + 7
    stat = _stat(now - 10 * SECOND, ctime_ns=now - 1000)  # mtime set back (utime), ctime moments ago
    assert _reopened(tmp_path, "a", stat, now).lookup("a", stat) is None


def test_a_damaged_cache_is_dropped_not_trusted(tmp_path: Path) -> None:
    cache = StatCache(str(tmp_path))
    cache.path.parent.mkdir(parents=True)
    cache.path.write_bytes(b"garbage" * 100)
    assert StatCache(str(tmp_path)).lookup("a", _stat(1)) is None
    assert not cache.path.exists()


def test_each_folder_has_its_own_cache(tmp_path: Path) -> None:
    now = 1_700_000_000 * SECOND
    stat = _stat(now - 10 * SECOND)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    _reopened(tmp_path / "one", "a", stat, now)
    assert StatCache(str(tmp_path / "two")).lookup("a", stat) is None


@pytest.mark.parametrize("size", [0, 1, 256 * 1024, 256 * 1024 + 1, 1024 * 1024 + 1, 3_000_000])
def test_file_hash_is_the_hash_the_store_gives(tmp_path: Path, size: int) -> None:
    from datumflow.storage_service.store.store import Store

    local = tmp_path / "f"
    local.write_bytes(os.urandom(size))
    with Store(str(tmp_path / "store"), fsync=False) as store:
        store.create_repo("r")
        store.put_files("r", "master", [("f", local)])
        with open(local, "rb") as stream:
            store.put_file("r", "master", "g", stream)
        assert store.inspect_file("r", "master", "f").hash == file_hash(str(local))[0]
        assert store.inspect_file("r", "master", "g").hash == file_hash(str(local))[0]


def test_saves_patched_or_rewritten_keep_every_entry_and_the_commit_record(tmp_path: Path) -> None:
    """Random rounds of records, removals and commit moves; each reopen must give back exactly the model."""
    from datumflow.storage_service.sync.statcache import Synced

    rng = random.Random(20)
    now = 1_700_000_000 * SECOND
    entries = {f"d{i % 7}/f{i:03d}": (_stat(now - 10 * SECOND)._replace(ino=i), f"h{i}") for i in range(200)}
    remote = {path: (6, h) for path, (_, h) in entries.items()}
    for rnd in range(30):
        cache = StatCache(str(tmp_path))
        if rnd:
            assert {p: cache.lookup(p, s) for p, (s, _) in entries.items()} == {p: h for p, (_, h) in entries.items()}
            assert cache.remote == remote
        structural = rnd % 3 == 2  # every third round: files come and go (a rewrite); else contents only (a patch)
        for path in rng.sample(sorted(entries), 5):
            entries[path] = (entries[path][0]._replace(mtime_ns=now - SECOND * rng.randint(3, 9)), f"x{rnd}{path}")
        if structural:
            entries.pop(rng.choice(sorted(entries)))
            entries[f"new/{rnd}"] = (_stat(now - 5 * SECOND), f"n{rnd}")
            remote.pop(rng.choice(sorted(remote)))
            remote[f"only-remote/{rnd}"] = (1, "r")
        for path in rng.sample(sorted(remote), 3):
            remote[path] = (6, f"moved{rnd}")
        for path, (stat, h) in entries.items():
            cache.record(path, stat, h, now)
        cache.forget_except(set(entries))
        cache.set_synced(Synced("r", "", f"{rnd:032x}"), dict(remote))
        cache.save(sorted(entries))
    final = StatCache(str(tmp_path))
    assert final.synced == Synced("r", "", f"{29:032x}") and final.remote == remote
    assert {p: final.lookup(p, s) for p, (s, _) in entries.items()} == {p: h for p, (_, h) in entries.items()}


def test_a_cache_of_another_format_is_started_afresh_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A cache written by an earlier format (one without patch records) is not damage: it is dropped quietly
    and written anew by the next save."""
    cache = StatCache(str(tmp_path))
    cache.path.parent.mkdir(parents=True)
    cache.path.write_bytes(b"datumflow stat cache 3\n" + os.urandom(64))
    with caplog.at_level("WARNING"):
        fresh = StatCache(str(tmp_path))
    assert fresh.lookup("a", _stat(1)) is None and not caplog.records
    now = 1_700_000_000 * SECOND
    fresh.record("a", _stat(now - 10 * SECOND), "h", now)
    fresh.save()
    assert StatCache(str(tmp_path)).lookup("a", _stat(now - 10 * SECOND)) == "h"
