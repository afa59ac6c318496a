"""Chunks, deduplicated and packed.

A chunk is stored once, whatever file, commit or repo it came from. Chunks are
appended to *pack* objects (up to ``PACK_TARGET`` bytes) so an object store is
asked for one object per tens of megabytes, not one per small file. A pack is
built under a temporary name, checked, then published under its final name;
only then are its chunks recorded in ``df_chunks`` — a chunk that is listed is
always readable. Reads check every chunk against its hash.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

from datumflow.storage_service.core.chunking import (
    MIN_CHUNK,
    SMALL_FILE,
    Cut,
    Readable,
    chunk_bytes,
    chunk_stream,
    content_hash,
    hash_bytes,
    hashed_cuts,
    mapped,
)
from datumflow.storage_service.core.db import Prepared, bulk_insert_ignore
from datumflow.storage_service.core.inflight import PACK_PREFIX, Pins, gc_lock
from datumflow.storage_service.core.objects import LocalObjects, ObjectStore
from datumflow.storage_service.core.schema import chunks, packs
from datumflow.storage_service.errors import CorruptObject, ObjectNotFound
from datumflow.storage_service.model.core import ChunkRef
from sqlalchemy import Engine, bindparam, select, update

__all__ = ["ChunkStore", "ChunkWriter", "pack_key"]

PACK_TARGET = 64 * 1024 * 1024
_PENDING_BYTES = 32 * 1024 * 1024
# Hashes per query, and per pinning transaction: a folder of small files makes a hundred thousand, and
# each transaction's commit costs more than its rows. SQLite before 3.32 takes at most 999 parameters.
_LOOKUP_BATCH = 8000 if sqlite3.sqlite_version_info >= (3, 32, 0) else 900
_RANGE_BATCH = 128  # chunks of a large file looked up at once: small enough that copying starts early
_LOCATE_ONE = Prepared(select(chunks.c.hash, chunks.c.pack, chunks.c.offset, chunks.c.length).where(
    chunks.c.hash == bindparam("hash")))


def pack_key(pack_id: str) -> str:
    return f"packs/{pack_id[:2]}/{pack_id}"


class ChunkStore:
    def __init__(self, engine: Engine, objects: ObjectStore, *, fsync: bool = True) -> None:
        self.engine = engine
        self.objects = objects
        self.fsync = fsync
        self.pins = Pins(engine)

    def writer(self, *, relocate: bool = False, write_id: str | None = None) -> ChunkWriter:
        """A writer; with ``write_id`` (see :class:`Pins`) every chunk it counts on is pinned."""
        return ChunkWriter(self, relocate=relocate, write_id=write_id)

    def locate_pinned(self, hashes: Iterable[str], write_id: str) -> dict[str, tuple[str, int, int]]:
        """Pin ``hashes`` for a write, then look them up, in one transaction (see :mod:`.inflight`)."""
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, tuple[str, int, int]] = {}
        with self.engine.begin() as conn:
            gc_lock(conn, exclusive=False)
            self.pins.pin(conn, write_id, wanted)
            for i in range(0, len(wanted), _LOOKUP_BATCH):
                query = select(chunks.c.hash, chunks.c.pack, chunks.c.offset, chunks.c.length)
                for row in conn.execute(query.where(chunks.c.hash.in_(wanted[i:i + _LOOKUP_BATCH]))):
                    found[row[0]] = (row[1], row[2], row[3])
        return found

    def locate(self, hashes: Iterable[str]) -> dict[str, tuple[str, int, int]]:
        """hash -> (pack, offset, length) for the hashes that are stored."""
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, tuple[str, int, int]] = {}
        if len(wanted) == 1:  # a small file: one prebuilt statement
            for row in _LOCATE_ONE.rows(self.engine, hash=wanted[0]):
                found[row[0]] = (row[1], row[2], row[3])
            return found
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), _LOOKUP_BATCH):
                batch = wanted[i:i + _LOOKUP_BATCH]
                query = select(chunks.c.hash, chunks.c.pack, chunks.c.offset, chunks.c.length)
                for row in conn.execute(query.where(chunks.c.hash.in_(batch))):
                    found[row[0]] = (row[1], row[2], row[3])
        return found

    def read(self, ref: ChunkRef, where: tuple[str, int, int] | None = None) -> bytes:
        if where is None:
            where = self.locate([ref.hash]).get(ref.hash)
            if where is None:
                raise ObjectNotFound(f"chunk {ref.hash} is not in the store")
        pack, offset, length = where
        data = self.objects.read_range(pack_key(pack), offset, length)
        if hash_bytes(data) != ref.hash:
            raise CorruptObject(f"chunk {ref.hash} in pack {pack} does not match its hash")
        return data

    def read_all(self, refs: Iterable[ChunkRef]) -> Iterator[bytes]:
        """The bytes of a file, chunk by chunk, locations looked up in batches.

        A large file's chunks are read and checked a few ahead on a pool (reads
        and hashing release the interpreter lock), while the caller writes out
        the ones before them.
        """
        refs = list(refs)
        total = sum(r.size for r in refs)
        if len(refs) < 2 or total < _READ_AHEAD_BYTES or total < len(refs) * _READ_AHEAD_CHUNK:
            for ref, where in self._located(refs):
                yield self.read(ref, where)
            return
        pool = _readers()
        window: deque[Future[bytes]] = deque()
        try:
            for ref, where in self._located(refs):
                window.append(pool.submit(self.read, ref, where))
                if len(window) >= _READ_AHEAD:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for reading in window:
                reading.cancel()

    def _located(self, refs: list[ChunkRef]) -> Iterator[tuple[ChunkRef, tuple[str, int, int]]]:
        for i in range(0, len(refs), _LOOKUP_BATCH):
            batch = refs[i:i + _LOOKUP_BATCH]
            where = self.locate(r.hash for r in batch)
            for ref in batch:
                if ref.hash not in where:
                    raise ObjectNotFound(f"chunk {ref.hash} is not in the store")
                yield ref, where[ref.hash]


_READ_AHEAD = 4  # chunks in flight per reader: a few MiB
_READ_AHEAD_BYTES = 4 * 1024 * 1024  # less is read in the caller's thread (handing chunks to a pool costs more)
_READ_AHEAD_CHUNK = 64 * 1024  # nor are many small chunks (small files restored together), on average below this
_READERS: tuple[int, ThreadPoolExecutor] | None = None


def _readers() -> ThreadPoolExecutor:
    """Threads that read and check chunks, one pool per process (a forked child makes its own)."""
    global _READERS
    pool = _READERS
    if pool is None or pool[0] != os.getpid():
        pool = _READERS = (os.getpid(), ThreadPoolExecutor(max_workers=4, thread_name_prefix="datumflow-read"))
    return pool[1]


class ChunkWriter:
    """Stores chunks for one batch of writes; use as a context manager.

    Chunks are buffered, looked up in batches (one query per few hundred
    chunks, not one per chunk), and the unknown ones appended to a pack.
    Leaving the ``with`` block publishes the pack and records its chunks;
    leaving it on an exception discards everything.
    """

    def __init__(self, store: ChunkStore, *, relocate: bool = False, write_id: str | None = None) -> None:
        self.store = store
        self.relocate = relocate  # gc's repack: rows of stored chunks move to the new pack
        self.write_id = write_id
        self.seen: set[str] = set()
        self.pending: list[tuple[str, bytes]] = []
        self.pending_bytes = 0
        self.bytes_new = 0
        self.bytes_in = 0
        self._pack: BinaryIO | None = None
        self._pack_id = ""
        self._pack_path = ""
        self._pack_rows: list[tuple[str, str, int, int]] = []  # (hash, pack, offset, length)
        self._pack_size = 0
        self._ranges: list[tuple[str, int, int]] = []
        self._sealing: Future[None] | None = None  # (hash, offset, length) of a file being added

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- adding content ---------------------------------------------------------

    def add(self, data: bytes | memoryview) -> ChunkRef:
        h = hash_bytes(data)
        self.bytes_in += len(data)
        if h not in self.seen:
            self.seen.add(h)
            self.pending.append((h, bytes(data)))
            self.pending_bytes += len(data)
            if len(self.pending) >= _LOOKUP_BATCH or self.pending_bytes >= _PENDING_BYTES:
                self.flush()
        return ChunkRef(h, len(data))

    def add_bytes(self, data: bytes) -> tuple[str, list[ChunkRef]]:
        """Store a whole buffer: (content hash, chunks)."""
        if len(data) <= MIN_CHUNK:  # one chunk, the content hash itself: no cutting, no copy
            ref = self.add(data)
            return ref.hash, [ref]
        refs = [self.add(piece) for piece in chunk_bytes(data)]
        return content_hash(refs), refs

    def add_stream(self, stream: BinaryIO | Readable) -> tuple[str, list[ChunkRef], int]:
        """Store a stream: (content hash, chunks, size)."""
        refs = [self.add(piece) for piece in chunk_stream(stream)] or [self.add(b"")]  # empty: as add_bytes has it
        return content_hash(refs), refs, sum(r.size for r in refs)

    def add_file(self, path: str) -> tuple[str, list[ChunkRef], int]:
        """Store a local file: (content hash, chunks, size).

        Large files are cut and hashed at once over an mmap (see
        :func:`.chunking.hashed_cuts`), and new chunks are copied into the pack
        by the kernel (``copy_file_range``) while the next ones are cut: no
        byte passes through Python.
        """
        with open(path, "rb") as src:
            size = os.fstat(src.fileno()).st_size
            if size <= SMALL_FILE:
                data = src.read()
                h, refs = self.add_bytes(data)
                return h, refs, len(data)
            refs = []
            with mapped(src.fileno(), size) as view:
                for cut in hashed_cuts(view):
                    refs.append(ChunkRef(cut.hash, cut.length))
                    self._add_range(src.fileno(), cut)
            self._flush_ranges(src.fileno())
        return content_hash(refs), refs, size

    def _add_range(self, fd: int, cut: Cut) -> None:
        self.bytes_in += cut.length
        if cut.hash not in self.seen:
            self.seen.add(cut.hash)
            self._ranges.append((cut.hash, cut.offset, cut.length))
            if len(self._ranges) >= _RANGE_BATCH:
                self._flush_ranges(fd)

    # -- writing packs -----------------------------------------------------------

    def flush(self) -> None:
        if not self.pending:
            return
        known = self._locate(h for h, _ in self.pending)
        for h, data in self.pending:
            if h not in known:
                self._append(h, data)
        self.pending.clear()
        self.pending_bytes = 0

    def _flush_ranges(self, fd: int) -> None:
        """Copy the unknown chunks among the pending ranges of file ``fd`` into the pack."""
        if not self._ranges:
            return
        known = self._locate(h for h, _, _ in self._ranges)
        for h, offset, length in self._ranges:
            if h not in known:
                pack = self._open_pack()
                pack.flush()
                _copy_range(fd, pack.fileno(), offset, length)
                self._record(h, length)
        self._ranges.clear()

    def _locate(self, hashes: Iterable[str]) -> dict[str, tuple[str, int, int]]:
        if self.write_id is None:
            return self.store.locate(hashes)
        return self.store.locate_pinned(hashes, self.write_id)

    def copy_chunk(self, h: str, data: bytes) -> None:
        """Append a chunk known to be stored elsewhere (repacking), without a lookup."""
        self._append(h, data)

    def _append(self, h: str, data: bytes) -> None:
        self._open_pack().write(data)
        self._record(h, len(data))

    def _open_pack(self) -> BinaryIO:
        if self._pack is None:
            self._pack_id = uuid.uuid4().hex
            if self.write_id is not None:  # gc must not sweep the spool file or the unrecorded object
                self.store.pins.pin_now(self.write_id, [PACK_PREFIX + self._pack_id])
            self._pack_path = os.path.join(self.store.objects.spool_dir(), f"{self._pack_id}.tmp")
            self._pack = open(self._pack_path, "wb")  # noqa: SIM115 (closed in _seal)
            self._pack_size = 0
        return self._pack

    def _record(self, h: str, length: int) -> None:
        self._pack_rows.append((h, self._pack_id, self._pack_size, length))
        self._pack_size += length
        self.bytes_new += length
        if self._pack_size >= PACK_TARGET:
            self._seal_in_background()

    def _seal(self) -> None:
        """Publish the current pack and record its chunks, now."""
        job = self._detach()
        self._wait_sealing()
        if job is not None:
            _finish_pack(self.store, *job)

    def _seal_in_background(self) -> None:
        """Publish a full pack while the caller goes on chunking the next one.

        The pack's fsync is mostly waiting on the disk; overlapping it with the
        CPU work of cutting and hashing keeps durability nearly free. At most one
        pack is in flight, and ``close`` waits for it.
        """
        job = self._detach()
        self._wait_sealing()
        if job is not None:
            self._sealing = _SEALER.submit(_finish_pack, self.store, *job)

    def _detach(self) -> tuple[BinaryIO, str, str, int, list[tuple[str, str, int, int]], bool] | None:
        pack, self._pack = self._pack, None
        if pack is None:
            return None
        job = (pack, self._pack_id, self._pack_path, self._pack_size, self._pack_rows, self.relocate)
        self._pack_rows = []
        return job

    def _wait_sealing(self) -> None:
        sealing, self._sealing = self._sealing, None
        if sealing is not None:
            sealing.result()

    def close(self) -> None:
        self.flush()
        self._seal()

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the write is failing already; its pack is garbage
            self._wait_sealing()
        if self._pack is not None:
            self._pack.close()
            self._pack = None
            with contextlib.suppress(FileNotFoundError):
                os.remove(self._pack_path)
        self.pending.clear()
        self._ranges.clear()
        self._pack_rows = []


_SEALER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="datumflow-seal")


def _finish_pack(
    store: ChunkStore, pack: BinaryIO, pack_id: str, path: str, size: int, rows: list[tuple[str, str, int, int]],
    relocate: bool,
) -> None:
    """Make a pack durable, check it, publish it, then record its chunks."""
    try:
        pack.flush()
        if store.fsync and isinstance(store.objects, LocalObjects):
            os.fsync(pack.fileno())
    finally:
        pack.close()
    if os.path.getsize(path) != size:
        raise CorruptObject(f"pack {pack_id} was not written whole")
    store.objects.publish(pack_key(pack_id), path)
    with store.engine.begin() as conn:
        conn.execute(packs.insert(), {"id": pack_id, "size": size, "created": time.time()})
        if relocate:
            for h, _, offset, length in rows:
                moved = update(chunks).where(chunks.c.hash == h)
                conn.execute(moved.values(pack=pack_id, offset=offset, length=length))
        else:
            bulk_insert_ignore(conn, chunks, ("hash", "pack", "offset", "length"), rows)


def _copy_range(src: int, dst: int, offset: int, length: int) -> None:
    """Append ``length`` bytes of ``src`` at ``offset`` to ``dst``, in the kernel when it can."""
    done = 0
    try:
        while done < length:
            n = os.copy_file_range(src, dst, length - done, offset + done)
            if n == 0:
                raise CorruptObject(f"source file ended {length - done} bytes early while storing it")
            done += n
    except (OSError, AttributeError) as exc:  # other filesystems, other kernels: plain copy
        if isinstance(exc, CorruptObject):
            raise
        while done < length:
            data = os.pread(src, min(length - done, 1 << 20), offset + done)
            if not data:
                raise CorruptObject("source file ended early while storing it") from exc
            os.write(dst, data)
            done += len(data)
