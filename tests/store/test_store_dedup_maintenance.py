"""Dedup (equal bytes stored once), fsck (corruption is found) and gc (space comes back)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from datumflow.storage_service import Store
from datumflow.storage_service.core.schema import chunks, packs
from datumflow.storage_service.errors import CorruptObject
from sqlalchemy import func, select

from .conftest import pack_bytes


def chunk_rows(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(chunks)).scalar() or 0)


def test_equal_bytes_are_stored_once(store: Store) -> None:
    blob = os.urandom(1_500_000)
    store.create_repo("a")
    store.create_repo("b")
    store.put_file("a", "master", "one", blob)
    rows, stored = chunk_rows(store), pack_bytes(store)
    assert stored == len(blob)
    store.put_files("a", "master", [("two", blob), ("dir/three", blob)])  # across files and commits
    store.put_file("b", "master", "four", blob)  # across repos
    store.put_file("b", "dev", "five", blob)  # across branches
    assert (chunk_rows(store), pack_bytes(store)) == (rows, stored)
    assert store.get_file("b", "dev", "five") == blob


def test_equal_bytes_within_one_batch(store: Store) -> None:
    store.create_repo("a")
    store.put_files("a", "master", [(f"copy{i}", b"same bytes") for i in range(20)])
    assert (chunk_rows(store), pack_bytes(store)) == (1, len(b"same bytes"))


@pytest.mark.parametrize("seed", [2, 7])
def test_insertion_in_the_middle_stores_little(store: Store, seed: int) -> None:
    rng = random.Random(seed)
    blob = rng.randbytes(3 * 1024 * 1024)
    mid = len(blob) // 2
    edited = blob[:mid] + rng.randbytes(100 * 1024) + blob[mid:]
    with store.chunks.writer() as first:
        _, old_refs = first.add_bytes(blob)
    assert first.bytes_new == len(blob)
    with store.chunks.writer() as second:
        second.add_bytes(edited)
    assert second.bytes_in == len(edited)
    # Content-defined chunks: only the chunk around the insertion (and at worst the next one,
    # until the cut points fall back in step) is new; every other chunk is reused.
    ends = [sum(r.size for r in old_refs[: i + 1]) for i in range(len(old_refs))]
    hit = next(i for i, end in enumerate(ends) if end > mid)
    around = sum(r.size for r in old_refs[hit:hit + 2])
    assert len(old_refs) >= 4
    assert second.bytes_new <= 100 * 1024 + around
    assert second.bytes_new < 0.7 * len(edited)
    with store.chunks.writer() as third:
        third.add_bytes(edited)
    assert third.bytes_new == 0


def corrupt_one_pack_byte(store: Store) -> Path:
    root = Path(store.objects.root)  # type: ignore[union-attr]
    (pack,) = [p for p in (root / "packs").rglob("*") if p.is_file()]
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))
    store.objects.close()  # drop cached descriptors so reads see the new bytes
    return pack


def test_fsck_finds_a_flipped_byte(local_store: Store) -> None:
    store = local_store
    store.create_repo("data")
    store.put_files("data", "master", [("a", b"a" * 1000), ("b", os.urandom(5000))])
    report = store.fsck()
    assert report["ok"] and report["errors"] == [] and report["chunks"] == 2 and report["bytes"] == 6000
    corrupt_one_pack_byte(store)
    report = store.fsck()
    assert not report["ok"]
    assert len(report["errors"]) == 1 and "does not match its hash" in report["errors"][0]
    with pytest.raises(CorruptObject, match="does not match its hash"):
        store.get_file("data", "master", "b")
    assert store.get_file("data", "master", "a") == b"a" * 1000  # the other chunk is intact
    assert store.fsck(verify_content=False)["ok"]


def test_fsck_finds_a_missing_pack(local_store: Store) -> None:
    store = local_store
    store.create_repo("data")
    store.put_file("data", "master", "a", b"abc")
    corrupt_one_pack_byte(store).unlink()
    report = store.fsck()
    assert not report["ok"] and "missing" in report["errors"][0]
    with pytest.raises(FileNotFoundError):
        store.get_file("data", "master", "a")


def test_gc_reclaims_a_deleted_repo(store: Store) -> None:
    store.create_repo("keep")
    store.create_repo("drop")
    kept = os.urandom(300_000)
    store.put_file("keep", "master", "k", kept)
    store.put_file("drop", "master", "d", os.urandom(400_000))
    store.put_file("drop", "master", "shared", kept)
    dropped_chunks = len(store.inspect_file("drop", "master", "d").chunks)  # 1 or 2: cut by content
    before = pack_bytes(store)
    assert store.gc(grace_seconds=3600)["packs_deleted"] == 0  # nothing is old enough
    assert pack_bytes(store) == before
    store.delete_repo("drop")
    report = store.gc(grace_seconds=0)
    assert report["packs_deleted"] == 1 and report["chunks_deleted"] == dropped_chunks
    assert report["bytes_reclaimed"] >= 400_000
    assert pack_bytes(store) == 300_000
    assert store.get_file("keep", "master", "k") == kept
    assert store.fsck()["ok"]
    assert store.gc(grace_seconds=0)["bytes_reclaimed"] == 0


def test_gc_repacks_partly_live_packs(store: Store) -> None:
    store.create_repo("data")
    live, dead = os.urandom(100_000), os.urandom(500_000)
    store.put_files("data", "master", [("live", live), ("dead", dead)])  # one pack, 1/6 live
    store.delete_file("data", "master", "dead")
    store.delete_commit("data", "master")  # drop the commit holding "dead" ...
    store.delete_commit("data", "master")  # ... and the one before it
    store.put_file("data", "master", "live", live)
    with store.engine.connect() as conn:
        (old_pack,) = conn.execute(select(packs.c.id)).scalars().all()
    report = store.gc(grace_seconds=0)
    assert report["packs_rewritten"] == 1 and report["packs_deleted"] == 1
    assert pack_bytes(store) == len(live)
    with store.engine.connect() as conn:
        (new_pack,) = conn.execute(select(packs.c.id)).scalars().all()
    assert new_pack != old_pack
    assert store.get_file("data", "master", "live") == live
    assert store.fsck()["ok"]


def test_gc_keeps_a_mostly_live_pack(store: Store) -> None:
    store.create_repo("data")
    store.put_files("data", "master", [("big", os.urandom(200_000)), ("small", os.urandom(10_000))])
    store.delete_file("data", "master", "small")
    store.delete_commit("data", "master")
    store.delete_commit("data", "master")
    store.put_file("data", "master", "other", b"o")
    store.delete_repo("data")
    store.create_repo("data")
    big = os.urandom(10)
    store.put_file("data", "master", "x", big)
    report = store.gc(grace_seconds=0)
    assert store.get_file("data", "master", "x") == big
    assert report["packs_deleted"] >= 1 and store.fsck()["ok"]


def test_gc_keeps_open_commits(store: Store) -> None:
    store.create_repo("data")
    commit = store.start_commit("data", "master")
    blob = os.urandom(50_000)
    store.put_file("data", commit.id, "wip", blob)
    store.gc(grace_seconds=0)
    assert store.get_file("data", commit.id, "wip") == blob
    assert store.fsck()["ok"]
