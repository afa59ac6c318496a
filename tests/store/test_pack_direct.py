"""Large files of a durable write reach their pack by direct I/O, byte for byte as through the page cache.

Direct writes go from the file's own pages, so each run of new bytes sits in
its pack as far into a block as it does into a page of the file: the gap
before it (under a block) holds zeros, and only chunks are ever read back.
The limits are shrunk (large file, pack, direct write) so that a few MiB
cross every boundary: a file whose first run starts inside a block other
bytes already hold, that fills packs, that follows or precedes small and
mid-sized files in the same pack, that shares chunks with stored content.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import os
import random
from pathlib import Path
from typing import Any

import pytest
from datumflow.storage_service import Store
from datumflow.storage_service.core import chunks as chunks_module
from datumflow.storage_service.core import reads as reads_module
from datumflow.storage_service.core.chunking import MAX_CHUNK, hash_bytes
from datumflow.storage_service.core.schema import chunks, packs
from datumflow.storage_service.model.core import ChunkRef
from sqlalchemy import func, select

from .conftest import pack_bytes, rewritten_in_the_middle

MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def _direct_io_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Direct I/O is off by default (DATUMFLOW_DIRECT_IO=1 turns it on): these tests are of that path."""
    monkeypatch.setenv("DATUMFLOW_DIRECT_IO", "1")


@pytest.fixture
def small_limits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The limits shrunk; the list gets the length of every direct write's buffer."""
    monkeypatch.setattr(chunks_module, "DIRECT_MIN", 3 * MIB)
    monkeypatch.setattr(chunks_module, "PACK_TARGET", 5 * MIB)
    monkeypatch.setattr(chunks_module, "_DIRECT_WRITE", 256 * 1024)
    written: list[int] = []
    real = chunks_module._write_direct

    def counted(direct: int, pack: int, data: memoryview, at: int) -> None:
        assert at % 4096 == 0 and len(data) % 4096 == 0
        written.append(len(data))
        real(direct, pack, data, at)

    monkeypatch.setattr(chunks_module, "_write_direct", counted)
    return written


def _write(path: Path, seed: int, size: int) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.write_bytes(data)
    return data


def _check_packs(store: Store, root: Path) -> int:
    """Every pack on disk is exactly as long as recorded (no padding left), every byte of it outside its
    chunks is zero, and no spool file remains; the number of such bytes (gaps) is returned."""
    with store.engine.connect() as conn:
        recorded = {row[0]: row[1] for row in conn.execute(select(packs.c.id, packs.c.size))}
        rows = list(conn.execute(select(chunks.c.pack, chunks.c.offset, chunks.c.length)))
    found = {p.name: p for p in (root / "objects" / "packs").rglob("*") if p.is_file()}
    assert {name: p.stat().st_size for name, p in found.items()} == recorded
    assert not [p for p in (root / "objects" / ".spool").iterdir() if p.name.endswith(".tmp")]
    gaps = 0
    for name, path in found.items():
        data = bytearray(path.read_bytes())
        for _, offset, length in (r for r in rows if r[0] == name):
            data[offset:offset + length] = bytes(length)
        gaps += len(data) - sum(r[2] for r in rows if r[0] == name)
        bad = [i for i in range(len(data)) if data[i]]
        assert not bad, f"pack {name} holds bytes outside its chunks: {bad[:3]}..{bad[-3:]} of {len(data)}"
    return gaps


def test_direct_and_cached_writes_share_packs(tmp_path: Path, small_limits: list[int]) -> None:
    root = tmp_path / "store"
    files = {
        "a-small": random.Random(1).randbytes(1000),
        "b-large": _write(tmp_path / "b", 2, 7 * MIB + 12345),  # fills a pack, starts the next one mid-block
        "c-mid": _write(tmp_path / "c", 3, 2 * MIB + 77),  # below DIRECT_MIN: copied through the cache
        "d-large": _write(tmp_path / "d", 4, 4 * MIB + 1),
        "e-small": random.Random(5).randbytes(333_333),
        "f-large": _write(tmp_path / "f", 6, 3 * MIB),
    }
    items: list[tuple[str, Any]] = [
        (name, data if name.endswith("small") else tmp_path / name[0]) for name, data in files.items()
    ]
    with Store(str(root), fsync=True) as store:
        store.create_repo("r")
        store.put_files("r", "master", items)
        for name, data in files.items():
            assert store.get_file("r", "master", name) == data, name
        gaps = _check_packs(store, root)
        n_packs = len([p for p in (root / "objects" / "packs").rglob("*") if p.is_file()])
        assert n_packs >= 3
        assert gaps < 4096 * (n_packs + 3)  # under a block before each direct run: one per pack and file
        assert pack_bytes(store) == sum(len(d) for d in files.values()) + gaps  # nothing twice
    large = sum(len(files[name]) for name in ("b-large", "d-large", "f-large"))
    assert large <= sum(small_limits) < large + 2 * 4096 * (n_packs + 3)  # and a block at each end of a run


@pytest.mark.usefixtures("small_limits")
def test_a_staged_file_stores_only_its_new_chunks(tmp_path: Path) -> None:
    data = _write(tmp_path / "v1", 7, 9 * MIB + 5)
    store, added, edited = rewritten_in_the_middle(tmp_path, data)
    with store:
        assert 0 < added <= 3 * MAX_CHUNK
        assert store.get_file("r", "master", "v1") == data
        assert store.get_file("r", "master", "v2") == edited
        _check_packs(store, tmp_path / "store")


def test_without_fsync_no_direct_write(tmp_path: Path, small_limits: list[int]) -> None:
    """Direct I/O is for writes that wait for the disk anyway; without fsync the page cache takes it all."""
    data = _write(tmp_path / "big", 8, 6 * MIB)
    with Store(str(tmp_path / "store"), fsync=False) as store:
        store.create_repo("r")
        store.put_files("r", "master", [("big", tmp_path / "big")])
        assert store.get_file("r", "master", "big") == data
    assert small_limits == []


@pytest.mark.usefixtures("small_limits")
def test_direct_io_refused_at_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A filesystem that refuses O_DIRECT: the pack is written through the page cache, the same bytes."""
    real_open = os.open

    def no_direct(path: Any, flags: int, *args: Any) -> int:
        if flags & os.O_DIRECT:
            raise OSError(errno.EINVAL, "no direct I/O here")
        return real_open(path, flags, *args)

    monkeypatch.setattr(chunks_module.os, "open", no_direct)
    root = tmp_path / "store"
    data = _write(tmp_path / "big", 9, 8 * MIB + 3)
    with Store(str(root), fsync=True) as store:
        store.create_repo("r")
        store.put_files("r", "master", [("big", tmp_path / "big"), ("again", tmp_path / "big")])
        assert store.get_file("r", "master", "big") == data
        assert _check_packs(store, root) == 0  # through the page cache: no gap
        assert pack_bytes(store) == len(data)


@pytest.mark.usefixtures("small_limits")
def test_direct_write_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A direct write the disk refuses (alignment, a device's rule) goes through the cache instead."""
    real_pwrite = os.pwrite
    refused: list[int] = []

    def picky(fd: int, data: Any, offset: int) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(fd)
            raise OSError(errno.EINVAL, "refused")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(chunks_module.os, "pwrite", picky)
    root = tmp_path / "store"
    small = random.Random(10).randbytes(5000)
    data = _write(tmp_path / "big", 11, 6 * MIB + 999)
    with Store(str(root), fsync=True) as store:
        store.create_repo("r")
        store.put_files("r", "master", [("small", small), ("big", tmp_path / "big")])
        assert store.get_file("r", "master", "big") == data
        assert store.get_file("r", "master", "small") == small
        _check_packs(store, root)
    assert refused


@pytest.mark.usefixtures("small_limits")
def test_a_failed_direct_write_fails_the_put(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A direct write that fails fails the whole put: nothing is recorded, no spool file stays behind."""
    real = chunks_module._write_direct
    calls: list[int] = []

    def failing(*args: Any) -> None:
        calls.append(1)
        if len(calls) == 5:
            raise OSError(errno.EIO, "disk gone")
        real(*args)

    monkeypatch.setattr(chunks_module, "_write_direct", failing)
    root = tmp_path / "store"
    _write(tmp_path / "big", 12, 8 * MIB)
    with Store(str(root), fsync=True) as store:
        store.create_repo("r")
        store.put_file("r", "master", "before", b"kept")
        with pytest.raises(OSError, match="disk gone"):
            store.put_files("r", "master", [("big", tmp_path / "big")])
        assert store.get_file("r", "master", "before") == b"kept"
        with pytest.raises(Exception, match="big"):
            store.get_file("r", "master", "big")
        assert not [p for p in (root / "objects" / ".spool").iterdir() if p.name.endswith(".tmp")]
        monkeypatch.setattr(chunks_module, "_write_direct", real)
        data = (tmp_path / "big").read_bytes()
        store.put_files("r", "master", [("big", tmp_path / "big")])  # and the next put stores it whole
        assert store.get_file("r", "master", "big") == data


def test_a_large_file_at_the_real_limits(tmp_path: Path) -> None:
    """Past DIRECT_MIN with the shipped sizes: packs full and partial, each exactly its recorded size."""
    root = tmp_path / "store"
    size = chunks_module.DIRECT_MIN + chunks_module.PACK_TARGET // 2 + 4321
    data = _write(tmp_path / "big", 13, size)
    with Store(str(root), fsync=True) as store:
        store.create_repo("r")
        store.put_files("r", "master", [("small", b"x" * 100), ("big", tmp_path / "big")])
        assert store.get_file("r", "master", "big") == data
        gaps = _check_packs(store, root)
        assert gaps < 4096 * 3
        assert pack_bytes(store) == size + 100 + gaps


@pytest.mark.parametrize("setting", ["0", None])
def test_direct_io_can_be_turned_off(
    tmp_path: Path, small_limits: list[int], monkeypatch: pytest.MonkeyPatch, setting: str | None
) -> None:
    """DATUMFLOW_DIRECT_IO=0, or unset (the default): durable writes of large files go through the page cache."""
    if setting is None:
        monkeypatch.delenv("DATUMFLOW_DIRECT_IO")
    else:
        monkeypatch.setenv("DATUMFLOW_DIRECT_IO", setting)
    root = tmp_path / "store"
    data = _write(tmp_path / "big", 14, 6 * MIB + 1)
    with Store(str(root), fsync=True) as store:
        store.create_repo("r")
        store.put_files("r", "master", [("big", tmp_path / "big")])
        assert store.get_file("r", "master", "big") == data
        _check_packs(store, root)
    assert small_limits == []


@pytest.mark.usefixtures("small_limits")
def test_a_cold_pack_is_read_ahead(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large read asks the kernel to read each pack ahead, in ranges that cover every chunk read."""
    monkeypatch.setattr(reads_module, "_PREFETCH", 1 * MIB)
    data = _write(tmp_path / "big", 15, 7 * MIB + 3)
    with Store(str(tmp_path / "store"), fsync=True) as store:
        store.create_repo("r")
        store.put_files("r", "master", [("big", tmp_path / "big")])
        hinted: list[tuple[str, int, int]] = []
        real = store.objects.will_read  # type: ignore[union-attr]
        monkeypatch.setattr(store.objects, "will_read", lambda *a: hinted.append(a) or real(*a))
        assert b"".join(store.open_file("r", "master", "big")) == data
        with store.engine.connect() as conn:
            sizes = {row[0]: row[1] for row in conn.execute(select(packs.c.id, packs.c.size))}
            first = dict(conn.execute(select(chunks.c.pack, func.min(chunks.c.offset)).group_by(chunks.c.pack)).all())
        for pack_id, size in sizes.items():
            ranges = sorted((start, start + n) for key, start, n in hinted if key.endswith(pack_id))
            assert ranges and ranges[0][0] == first[pack_id] < 4096  # the first chunk, after its gap
            assert all(a[1] >= b[0] for a, b in itertools.pairwise(ranges))  # no gap between them
            assert ranges[-1][1] >= size


@pytest.mark.parametrize("seed", range(4))
def test_runs_of_every_shape_land_where_recorded(tmp_path: Path, seed: int) -> None:
    """Runs written directly that carry on the last one, that jump (a chunk stored already, in between), that
    end inside their first block, that start on a block boundary: each chunk's bytes are where its row says,
    with zeros between runs, and any read of them checks out."""
    rng = random.Random(seed)
    size = 3 * MIB + rng.randrange(4096)
    data = _write(tmp_path / "src", 100 + seed, size)
    runs: list[tuple[int, int]] = []  # (file offset, length), in file order
    at = rng.randrange(3000)
    while at < size:
        length = min(rng.choice([1, 17, 700, 4095, 4096, 5000, 70_000, 300_001]), size - at)
        runs.append((at, length))
        at += length + rng.choice([0, 0, 0, 1, 4096, 12_345])  # mostly carried on, sometimes a jump
    with Store(str(tmp_path / "store"), fsync=True) as store:
        writer = store.chunks.writer()
        with open(tmp_path / "src", "rb") as src, chunks_module.mapped(src.fileno(), size) as view:
            writer._direct, writer._view = True, view
            try:
                for offset, length in runs:
                    piece = data[offset:offset + length]
                    writer._copy_run(src.fileno(), [(hash_bytes(piece), offset, length)])
                writer._end_direct()
                chunks_module._wait_all(writer._file_copies)
            finally:
                writer._direct, writer._view = False, None
            writer.close()
        gaps = _check_packs(store, tmp_path / "store")
        jumps = sum(1 for a, b in itertools.pairwise(runs) if a[0] + a[1] != b[0])
        assert gaps < 4096 * (jumps + 1)
        for offset, length in runs:
            piece = data[offset:offset + length]
            assert store.chunks.read(ChunkRef(hash_bytes(piece), length)) == piece
