"""Large files reach their pack through the page cache into room reserved at once, with writeback started early.

The pack is shrunk so that a few MiB cross every boundary: a large file that
fills packs, small files appended after copies (the room is cut back), a
file that shares chunks with stored content. Both hints may be refused; the
bytes, the pack sizes and the rows must be the same either way.
"""

from __future__ import annotations

import multiprocessing
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from datumflow.storage_service import Store
from datumflow.storage_service.core import chunks as chunks_module
from datumflow.storage_service.core import writeback
from datumflow.storage_service.core.chunking import MAX_CHUNK
from datumflow.storage_service.core.schema import packs
from datumflow.storage_service.errors import CorruptObject
from sqlalchemy import select

from .conftest import pack_bytes, rewritten_in_the_middle

MIB = 1024 * 1024
PACK = 5 * MIB


@pytest.fixture(autouse=True)
def _small_packs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATUMFLOW_DIRECT_IO", raising=False)
    monkeypatch.setattr(chunks_module, "PACK_TARGET", PACK)


def _recorded(monkeypatch: pytest.MonkeyPatch, name: str) -> list[tuple[int, ...]]:
    """Every call of ``chunks.<name>`` (reserve or start_writeback), its arguments but the descriptor."""
    calls: list[tuple[int, ...]] = []
    real: Callable[..., bool] = getattr(chunks_module, name)

    def recorded(fd: int, *args: int) -> bool:
        calls.append(args)
        return real(fd, *args)

    monkeypatch.setattr(chunks_module, name, recorded)
    return calls


def _refused(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setattr(chunks_module, name, lambda *_: False)


def _files(tmp_path: Path) -> dict[str, bytes]:
    sizes = {"a-small": 1000, "b-large": 12 * MIB + 12345, "c-mid": 2 * MIB + 77, "d-small": 333_333,
             "e-large": 4 * MIB + 1}
    files = {name: random.Random(i).randbytes(size) for i, (name, size) in enumerate(sizes.items())}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return files


def _put_and_check(tmp_path: Path, *, fsync: bool) -> None:
    root = tmp_path / "store"
    files = _files(tmp_path)
    items: list[tuple[str, Any]] = [(name, tmp_path / name) for name in files]
    with Store(str(root), fsync=fsync) as store:
        store.create_repo("r")
        store.put_files("r", "master", items)
        for name, data in files.items():
            assert store.get_file("r", "master", name) == data, name
        assert pack_bytes(store) == sum(len(d) for d in files.values())  # nothing reserved is left, nothing twice
        with store.engine.connect() as conn:
            recorded = {row[0]: row[1] for row in conn.execute(select(packs.c.id, packs.c.size))}
    on_disk = {p.name: p.stat().st_size for p in (root / "objects" / "packs").rglob("*") if p.is_file()}
    assert on_disk == recorded
    assert len(on_disk) >= 4
    assert not [p for p in (root / "objects" / ".spool").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("fsync", [True, False])
def test_reserved_packs_are_cut_to_their_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool) -> None:
    reserved = _recorded(monkeypatch, "reserve")
    _put_and_check(tmp_path, fsync=fsync)
    assert reserved
    assert all(length <= PACK + MAX_CHUNK for (length,) in reserved)


@pytest.mark.parametrize("refused", [["reserve"], ["start_writeback"], ["reserve", "start_writeback"]])
def test_refused_hints_change_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused: list[str]) -> None:
    for name in refused:
        _refused(monkeypatch, name)
    _put_and_check(tmp_path, fsync=True)


def test_a_durable_write_starts_writeback_of_every_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each range copied into a pack is handed to the disk at once: together, every byte of the large files."""
    started = _recorded(monkeypatch, "start_writeback")
    _put_and_check(tmp_path, fsync=True)
    copied = sorted(started)
    assert sum(length for _, length in copied) == 12 * MIB + 12345 + 2 * MIB + 77 + 4 * MIB + 1
    assert all(offset + length <= PACK + MAX_CHUNK for offset, length in copied)


def test_without_fsync_no_writeback_is_started(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started = _recorded(monkeypatch, "start_writeback")
    _put_and_check(tmp_path, fsync=False)
    assert started == []


def test_a_rewrite_reserves_only_for_new_chunks(tmp_path: Path) -> None:
    """A file put again with a change in the middle stores a chunk or two, in a pack cut to them."""
    store, added, edited = rewritten_in_the_middle(tmp_path, random.Random(7).randbytes(9 * MIB + 5))
    with store:
        assert 0 < added <= 3 * MAX_CHUNK
        assert store.get_file("r", "master", "v2") == edited


def test_a_failed_put_leaves_no_reserved_pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy that fails after room was reserved fails the put; no spool file, pack or row remains of it."""
    root = tmp_path / "store"
    (tmp_path / "big").write_bytes(random.Random(9).randbytes(8 * MIB))
    real = chunks_module._copy_range
    copies = [0]

    def failing(*args: int) -> None:
        copies[0] += 1
        if copies[0] == 2:  # the second pack's first copy: the first pack is sealed by now
            raise CorruptObject("source file ended early while storing it")
        real(*args)

    monkeypatch.setattr(chunks_module, "_copy_range", failing)
    with Store(str(root), fsync=True) as store:
        store.create_repo("r")
        with pytest.raises(CorruptObject):
            store.put_files("r", "master", [("big", tmp_path / "big")])
        assert not [p for p in (root / "objects" / ".spool").iterdir() if p.name.endswith(".tmp")]
        monkeypatch.setattr(chunks_module, "_copy_range", real)
        store.put_files("r", "master", [("big", tmp_path / "big")])
        assert store.get_file("r", "master", "big") == (tmp_path / "big").read_bytes()
        assert pack_bytes(store) == 8 * MIB  # the first pack, sealed before the failure, is found again


def test_the_hints_on_a_real_file(tmp_path: Path) -> None:
    """On this file system both are taken (Linux, ext4 or tmpfs); on a closed descriptor both are refused."""
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:
        assert writeback.reserve(fd, 3 * MIB)
        assert os.fstat(fd).st_size == 3 * MIB
        os.pwrite(fd, b"x" * 4096, 0)
        assert writeback.start_writeback(fd, 0, 4096)
    finally:
        os.close(fd)
    assert not writeback.reserve(fd, MIB)
    assert not writeback.start_writeback(fd, 0, 4096)


def test_a_forked_child_seals_its_packs(tmp_path: Path) -> None:
    """Every put hands its last pack to the sealing pool; a child forked after the parent used it has its own."""
    root = tmp_path / "store"
    (tmp_path / "big").write_bytes(random.Random(11).randbytes(12 * MIB))  # fills packs: the pool has threads
    with Store(str(root), fsync=True) as store:
        store.create_repo("r")
        store.put_files("r", "master", [("big", tmp_path / "big")])
    child = multiprocessing.get_context("fork").Process(target=_put_small, args=(str(root),))
    child.start()
    child.join(60)
    if child.is_alive():  # hung: not left behind
        child.kill()
        child.join()
    assert child.exitcode == 0
    with Store(str(root), fsync=True) as store:
        assert store.get_file("r", "master", "small") == b"from the child"


def _put_small(root: str) -> None:
    with Store(root, fsync=True) as store:
        store.put_files("r", "master", [("small", b"from the child")])
