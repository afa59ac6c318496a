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
import mmap
import os
import sqlite3
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

from datumflow.storage_service.core.chunking import (
    MAX_CHUNK,
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
from datumflow.storage_service.core.db import Prepared, bulk_insert_ignore, select_in
from datumflow.storage_service.core.inflight import PACK_PREFIX, Pins, gc_lock
from datumflow.storage_service.core.objects import LocalObjects, ObjectStore
from datumflow.storage_service.core.reads import in_order, pack_key, read_chunk, read_located
from datumflow.storage_service.core.schema import chunks, packs
from datumflow.storage_service.core.writeback import reserve, start_writeback
from datumflow.storage_service.errors import CorruptObject, ObjectNotFound
from datumflow.storage_service.model.core import ChunkRef
from sqlalchemy import Engine, bindparam, select, update

__all__ = ["ChunkStore", "ChunkWriter", "pack_key"]

PACK_TARGET = 64 * 1024 * 1024
_PENDING_BYTES = 32 * 1024 * 1024
# Hashes per query, and per pinning transaction: a folder of small files makes a hundred thousand, and
# each transaction's commit costs more than its rows. SQLite before 3.32 takes at most 999 parameters.
_PLACE = ("hash", "pack", "offset", "length")
_LOOKUP_BATCH = 8000 if sqlite3.sqlite_version_info >= (3, 32, 0) else 900
_RANGE_BATCH = 128  # chunks of a large file looked up at once: small enough that copying starts early
_FIRST_RANGE_BATCH = 16  # a file's first lookup comes sooner, so that its first copies (and writes) start early
_COPY_RUN = 16 * 1024 * 1024  # consecutive new chunks of a file copied into a pack by one call, at most
# With direct I/O on, files from this size on go to a pack that is fsynced by direct writes from the file's own
# pages (see ChunkWriter._copy_direct); smaller ones through the page cache, whose writeback the pack's fsync
# waits for once for all of them.
DIRECT_MIN = 64 * 1024 * 1024
_ALIGN = 4096  # offsets, lengths and memory of direct writes: a multiple of every disk's block and of a page
_DIRECT_WRITE = 8 * 1024 * 1024  # bytes of a pack per direct write, at most (a few are in flight at once)
_LOCATE_ONE = Prepared(select(chunks.c.hash, chunks.c.pack, chunks.c.offset, chunks.c.length).where(
    chunks.c.hash == bindparam("hash")))


class ChunkStore:
    def __init__(
        self, engine: Engine, objects: ObjectStore, *, fsync: bool = True, direct_io: bool | None = None,
    ) -> None:
        self.engine = engine
        self.objects = objects
        self.fsync = fsync
        if direct_io is None:
            # DATUMFLOW_DIRECT_IO=1: large files of durable writes reach local packs by direct I/O from
            # the file's own pages (see ChunkWriter._copy_direct). Off by default: the put is faster (no
            # copy into the page cache, no writeback to drive: the disk reads the file's pages while it
            # is cut), but the packs are then not in the page cache, and reading the data back soon
            # after (a pipeline's datums, a restore) waits for the disk.
            direct_io = os.environ.get("DATUMFLOW_DIRECT_IO", "0") == "1"
        self.direct_io = direct_io
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
                for row in select_in(conn, chunks, _PLACE, "hash", wanted[i:i + _LOOKUP_BATCH]):
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
                for row in select_in(conn, chunks, _PLACE, "hash", wanted[i:i + _LOOKUP_BATCH]):
                    found[row[0]] = (row[1], row[2], row[3])
        return found

    def read(self, ref: ChunkRef, where: tuple[str, int, int] | None = None) -> bytes:
        if where is None:
            where = self.locate([ref.hash]).get(ref.hash)
            if where is None:
                raise ObjectNotFound(f"chunk {ref.hash} is not in the store")
        return read_chunk(self.objects, ref, where)

    def read_all(self, refs: Iterable[ChunkRef]) -> Iterator[bytes]:
        """The bytes of a file, chunk by chunk (checked), locations looked up in batches
        (see :func:`.reads.read_located`)."""
        refs = list(refs)
        yield from read_located(self.objects, refs, self._located(refs))

    def _located(self, refs: list[ChunkRef]) -> Iterator[tuple[ChunkRef, tuple[str, int, int]]]:
        for i in range(0, len(refs), _LOOKUP_BATCH):
            batch = refs[i:i + _LOOKUP_BATCH]
            yield from in_order(batch, self.locate(r.hash for r in batch))


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
        self._pack_direct: int | None = None  # the pack opened a second time, for direct writes
        self._pack_copies: list[Future[None]] = []  # copies into the current pack still running, maybe
        self._pack_moved = False  # the pack grew by copies: the next write must seek to its end
        self._pack_room = 0  # bytes of the current pack reserved at once (see _reserve)
        self._file_size = 0  # of the file being added
        self._file_copies: list[Future[None]] = []  # copies from the file being added, whatever their pack
        self._ranges_flushed = False  # the file being added had its first chunks looked up
        self._direct = False  # the file being added goes to the pack by direct I/O
        self._view: memoryview | None = None  # the mapping of the file being added, while it is
        self._shift: int | None = None  # pack offset minus file offset of its bytes being written directly
        self._written = 0  # pack offset up to which those bytes are handed to direct writes (a block boundary)
        self._block: mmap.mmap | None = None  # one aligned block, for a first or last block written directly
        self._direct_start = 0  # pack offsets where the bytes of that shift begin and, so far, end
        self._direct_end = 0
        self._no_direct = False  # direct I/O was refused here: the page cache only
        self._ranges: list[tuple[str, int, int]] = []  # (hash, offset, length) of a file being added
        self._sealing: deque[Future[None]] = deque()  # packs being sealed in the background, oldest first

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
        :func:`.chunking.hashed_cuts`), and new chunks go to the pack while the
        next ones are cut, consecutive ones together: copied by the kernel
        (``copy_file_range``), or, with direct I/O on and for a file of
        ``DIRECT_MIN`` bytes or more in a durable write, written to the disk
        from the file's own pages while the cutting goes on (see
        :meth:`_copy_direct`). No byte passes through Python (but a block at
        each end of a direct run); the file is closed only when nothing reads
        it any more.
        """
        with open(path, "rb") as src:
            size = os.fstat(src.fileno()).st_size
            if size <= SMALL_FILE:
                data = src.read()
                h, refs = self.add_bytes(data)
                return h, refs, len(data)
            refs = []
            self._file_size = size
            self._direct = size >= DIRECT_MIN and self.store.direct_io and self._durable() and not self._no_direct
            self._ranges_flushed = False
            try:
                with mapped(src.fileno(), size) as view:
                    self._view = view
                    try:
                        for cut in hashed_cuts(view):
                            refs.append(ChunkRef(cut.hash, cut.length))
                            self._add_range(src.fileno(), cut)
                        self._flush_ranges(src.fileno())
                        self._end_direct()  # its last, partial block
                        _wait_all(self._file_copies)
                    finally:
                        self._direct, self._shift = False, None
                        copies, self._file_copies = self._file_copies, []
                        _wait_quietly(copies)  # no write reads the mapping once it is closed
                        self._view = None
            finally:
                self._direct, self._shift, self._view = False, None, None
        return content_hash(refs), refs, size

    def _durable(self) -> bool:
        """Packs are fsynced before a write returns (a local store with fsync on)."""
        return self.store.fsync and isinstance(self.store.objects, LocalObjects)

    def _add_range(self, fd: int, cut: Cut) -> None:
        self.bytes_in += cut.length
        if cut.hash not in self.seen:
            self.seen.add(cut.hash)
            self._ranges.append((cut.hash, cut.offset, cut.length))
            if len(self._ranges) >= (_RANGE_BATCH if self._ranges_flushed else _FIRST_RANGE_BATCH):
                self._flush_ranges(fd)
                self._ranges_flushed = True

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
        """Copy the unknown chunks among the pending ranges of file ``fd`` into the pack.

        Consecutive new chunks are copied by one call (up to ``_COPY_RUN``
        bytes, never across the end of a pack), then recorded one by one.
        """
        if not self._ranges:
            return
        known = self._locate(h for h, _, _ in self._ranges)
        run: list[tuple[str, int, int]] = []
        run_end = 0
        for h, offset, length in self._ranges:
            if h in known:
                continue
            if run and offset != run_end:
                self._copy_run(fd, run)
                run = []
            run.append((h, offset, length))
            run_end = offset + length
            if self._pack_size + run_end - run[0][1] >= PACK_TARGET or run_end - run[0][1] >= _COPY_RUN:
                self._copy_run(fd, run)
                run = []
        if run:
            self._copy_run(fd, run)
        self._ranges.clear()

    def _copy_run(self, fd: int, run: list[tuple[str, int, int]]) -> None:
        """Append consecutive ranges of file ``fd`` to the pack with one copy, and record them.

        The copy writes at the offset the pack has it at (bytes written before
        it are flushed first), into room reserved for the rest of the file at
        once; in a durable write, the disk is asked to start on the copy at
        once too, so that the pack's fsync finds little left (see
        :mod:`.writeback`). A large file of a durable write may go by direct
        writes instead (:meth:`_copy_direct`), which run on the copying pool:
        the rows are recorded now, and the pack is sealed only once those
        writes are done.
        """
        pack = self._open_pack()
        start = run[0][1]
        length = run[-1][1] + run[-1][2] - start
        self._pack_moved = True
        if self._direct and self._copy_direct(start, length):
            if self._pack_size + length >= PACK_TARGET:  # the pack is full: its last block goes now
                self._end_direct()
        else:  # through the page cache, here: copies into one file take its lock in turn anyway
            pack.flush()
            self._reserve(pack.fileno(), self._pack_size + self._file_size - start)
            _copy_range(fd, pack.fileno(), start, length, self._pack_size)
            if self._durable():  # on the copying pool: starting writeback costs the caller's CPU otherwise
                self._pack_copies.append(_copiers().submit(_start_writeback, pack.fileno(), self._pack_size, length))
        for h, _, chunk_length in run:
            self._record(h, chunk_length)

    def _reserve(self, fd: int, end: int) -> None:
        """Have the first ``end`` bytes of the pack (at most a full one) allocated, if they are not yet.

        Copies into allocated blocks cost about a third less CPU than into
        blocks the file system must reserve one by one (see :mod:`.writeback`);
        the pack is cut back to its size when it is sealed or written to again.
        """
        if end <= self._pack_room:
            return
        end = min(end, PACK_TARGET + MAX_CHUNK)
        # Refused (a file system without fallocate, a full disk): not asked again for this pack.
        self._pack_room = end if reserve(fd, end) else PACK_TARGET + MAX_CHUNK

    def _copy_direct(self, start: int, length: int) -> bool:
        """Hand ``length`` bytes of the file being added, from ``start``, to direct writes into the pack.

        A direct write must start and end on a block boundary, in the pack as
        in memory, so it is written from the file's own pages (the mapping) at
        a pack offset that falls as far into a block as the bytes do into a
        page of the file: unless they carry on the last run of the same file
        (the same shift), the run is placed past the next block boundary of the
        pack, leaving a gap of under a block (zeros). Each whole block is then
        written straight from the mapping, a few MiB per write on the copying
        pool: the kernel reads the file's cached pages, no copy is made. The
        first block of a placed run (zeros, then its first bytes) and its last,
        partial one are written through an aligned block of memory; the last
        one only once the run is over (:meth:`_end_direct`), since the next run
        of the same file fills it further. False: direct I/O is refused here.
        """
        view = self._view
        direct = self._direct_fd() if view is not None else None
        if direct is None or view is None:
            return False
        if self._shift is None or start + self._shift != self._pack_size:
            self._end_direct()
            boundary = -(-self._pack_size // _ALIGN) * _ALIGN
            at = boundary + start % _ALIGN
            self._pack_size, self._shift, self._written, self._direct_start = at, at - start, boundary, at
        shift = self._shift
        end = self._direct_end = start + length + shift  # the run's end in the pack
        if self._written < self._direct_start and end >= self._written + _ALIGN:  # zeros, then the first bytes
            self._write_block(self._written, self._direct_start - self._written)
            self._written += _ALIGN
        whole = end - end % _ALIGN
        for lo in range(self._written, whole, _DIRECT_WRITE):
            hi = min(lo + _DIRECT_WRITE, whole)
            job = _copiers().submit(_write_direct, direct, self._pack_fd(), view[lo - shift:hi - shift], lo)
            self._pack_copies.append(job)
            self._file_copies.append(job)
        self._written = max(self._written, whole)
        return True

    def _end_direct(self) -> None:
        """Write the direct run's last, partial block, if it has one: its bytes, then zeros."""
        if self._shift is not None and self._direct_end > self._written:
            gap = max(0, self._direct_start - self._written)  # a run that ends in its first block
            self._write_block(self._written, gap, self._direct_end - self._written)
            self._written += _ALIGN
        self._shift = None

    def _write_block(self, at: int, gap: int, end: int = _ALIGN) -> None:
        """Write the block of the pack at ``at`` directly: ``gap`` zeros, the file's bytes up to ``end``, zeros."""
        assert self._view is not None and self._shift is not None and self._pack_direct is not None
        block = self._block
        if block is None:
            block = self._block = mmap.mmap(-1, _ALIGN)  # page-aligned, as direct I/O needs
        block[:] = bytes(_ALIGN)
        first = at + gap - self._shift
        block[gap:end] = self._view[first:first + end - gap]
        _write_direct(self._pack_direct, self._pack_fd(), memoryview(block), at)

    def _pack_fd(self) -> int:
        assert self._pack is not None
        return self._pack.fileno()

    def _direct_fd(self) -> int | None:
        """The current pack opened for direct writes, its room allocated; None if direct I/O is refused."""
        if self._pack_direct is None:
            try:
                self._pack_direct = os.open(self._pack_path, os.O_WRONLY | os.O_DIRECT)
            except (OSError, AttributeError):  # a filesystem (or system) without direct I/O
                self._no_direct = True
                self._direct = False
                return None
            # Direct writes into allocated blocks run side by side; past the end of the file, one at a time.
            with contextlib.suppress(OSError):
                os.posix_fallocate(self._pack_direct, 0, PACK_TARGET + MAX_CHUNK + 2 * _ALIGN)
        assert self._pack is not None
        self._pack.flush()  # bytes written before through the cache reach the file before any direct write
        return self._pack_direct

    def _free_buffers(self) -> None:
        block, self._block = self._block, None
        if block is not None:
            with contextlib.suppress(BufferError):
                block.close()

    def _locate(self, hashes: Iterable[str]) -> dict[str, tuple[str, int, int]]:
        if self.write_id is None:
            return self.store.locate(hashes)
        return self.store.locate_pinned(hashes, self.write_id)

    def copy_chunk(self, h: str, data: bytes) -> None:
        """Append a chunk known to be stored elsewhere (repacking), without a lookup."""
        self._append(h, data)

    def _append(self, h: str, data: bytes) -> None:
        pack = self._open_pack()
        self._end_direct()
        if self._pack_moved:  # the pack grew by copies, which leave its file position where it was
            _wait_all(self._pack_copies)
            pack.truncate(self._pack_size)  # the room reserved, or the padding of a direct write, goes
            pack.seek(self._pack_size)
            self._pack_moved = False
            self._pack_room = 0
        pack.write(data)
        self._record(h, len(data))

    def _open_pack(self) -> BinaryIO:
        if self._pack is None:
            self._pack_id = uuid.uuid4().hex
            if self.write_id is not None:  # gc must not sweep the spool file or the unrecorded object
                self.store.pins.pin_now(self.write_id, [PACK_PREFIX + self._pack_id])
            self._pack_path = os.path.join(self.store.objects.spool_dir(), f"{self._pack_id}.tmp")
            # Readable too: a direct write that shares its first block with bytes before it reads them back.
            self._pack = open(self._pack_path, "w+b")  # noqa: SIM115 (closed in _seal)
            self._pack_size = 0
            self._pack_direct = None
            self._pack_copies = []
            self._pack_moved = False
            self._pack_room = 0
        return self._pack

    def _record(self, h: str, length: int) -> None:
        self._pack_rows.append((h, self._pack_id, self._pack_size, length))
        self._pack_size += length
        self.bytes_new += length
        if self._pack_size >= PACK_TARGET:
            self._seal_in_background()

    def _seal(self) -> None:
        """Publish the current pack and record its chunks, beside the packs still in flight; wait for all."""
        job = self._detach()
        if job is not None:
            self._sealing.append(_sealers().submit(_finish_pack, self.store, *job))
        self._wait_sealing()

    def _seal_in_background(self) -> None:
        """Publish a full pack while the caller goes on chunking the next one.

        The pack's fsync is mostly waiting on the disk (and its copies may
        still be running); overlapping it with the CPU work of cutting and
        hashing keeps durability nearly free. A few packs are in flight at
        most (the writer waits for the oldest beyond that), and ``close``
        waits for them all.
        """
        job = self._detach()
        while self._sealing and (self._sealing[0].done() or len(self._sealing) >= _SEALS_IN_FLIGHT):
            self._sealing.popleft().result()
        if job is not None:
            self._sealing.append(_sealers().submit(_finish_pack, self.store, *job))

    def _detach(self) -> _SealJob | None:
        if self._pack is None:
            return None
        self._end_direct()
        pack, self._pack = self._pack, None
        job = (pack, self._pack_id, self._pack_path, self._pack_size, self._pack_rows, self.relocate,
               self._pack_copies, self._pack_direct)
        self._pack_rows = []
        self._pack_copies = []
        self._pack_direct = None
        return job

    def _wait_sealing(self) -> None:
        """Wait for every pack in flight; the first failure is raised once none runs any more."""
        sealing, self._sealing = list(self._sealing), deque()
        try:
            _wait_all(sealing)
        finally:
            _wait_quietly(sealing)

    def close(self) -> None:
        try:
            self.flush()
            self._seal()
        finally:
            self._free_buffers()

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the write is failing already; its pack is garbage
            self._wait_sealing()
        _wait_quietly(self._pack_copies)  # no copy may write to the pack once it is closed
        self._pack_copies = []
        self._free_buffers()
        if self._pack_direct is not None:
            os.close(self._pack_direct)
            self._pack_direct = None
        if self._pack is not None:
            self._pack.close()
            self._pack = None
            with contextlib.suppress(FileNotFoundError):
                os.remove(self._pack_path)
        self.pending.clear()
        self._ranges.clear()
        self._pack_rows = []


_SEALS_IN_FLIGHT = 4  # packs of one writer being sealed in the background, at most
_SEALERS: tuple[int, ThreadPoolExecutor] | None = None


def _sealers() -> ThreadPoolExecutor:
    """Threads that seal packs, one pool per process.

    A forked child gets a pool of its own: the parent's pool object comes
    with the fork, its threads do not, and a job handed to it would wait
    forever (every put hands its last pack to this pool).
    """
    global _SEALERS
    pool = _SEALERS
    if pool is None or pool[0] != os.getpid():
        workers = 2 * _SEALS_IN_FLIGHT
        pool = _SEALERS = (os.getpid(), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="datumflow-seal"))
    return pool[1]
_SealJob = tuple[BinaryIO, str, str, int, list[tuple[str, str, int, int]], bool, list[Future[None]], int | None]


def _finish_pack(
    store: ChunkStore, pack: BinaryIO, pack_id: str, path: str, size: int, rows: list[tuple[str, str, int, int]],
    relocate: bool, copies: list[Future[None]], direct: int | None,
) -> None:
    """Wait for the copies into a pack, make it durable, check it, publish it, then record its chunks.

    A pack that fails before it is published is removed: the write fails, and
    its spool file would be garbage.
    """
    try:
        try:
            try:
                _wait_all(copies)
            finally:
                _wait_quietly(copies)  # closed only once nothing writes to it
                if direct is not None:
                    os.close(direct)
            pack.flush()
            if os.fstat(pack.fileno()).st_size > size:  # the room reserved, or the last direct write's padding
                pack.truncate(size)
            if store.fsync and isinstance(store.objects, LocalObjects):
                os.fsync(pack.fileno())
        finally:
            pack.close()
        if os.path.getsize(path) != size:
            raise CorruptObject(f"pack {pack_id} was not written whole")
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        raise
    store.objects.publish(pack_key(pack_id), path)
    with store.engine.begin() as conn:
        conn.execute(packs.insert(), {"id": pack_id, "size": size, "created": time.time()})
        if relocate:
            for h, _, offset, length in rows:
                moved = update(chunks).where(chunks.c.hash == h)
                conn.execute(moved.values(pack=pack_id, offset=offset, length=length))
        else:
            bulk_insert_ignore(conn, chunks, ("hash", "pack", "offset", "length"), rows)


def _copy_range(src: int, dst: int, offset: int, length: int, at: int) -> None:
    """Copy ``length`` bytes of ``src`` at ``offset`` to ``dst`` at ``at``, in the kernel when it can."""
    done = 0
    try:
        while done < length:
            n = os.copy_file_range(src, dst, length - done, offset + done, at + done)
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
            done += os.pwrite(dst, data, at + done)


_COPIERS: tuple[int, ThreadPoolExecutor] | None = None


def _copiers() -> ThreadPoolExecutor:
    """Threads that copy chunks of files into packs, one pool per process (a forked child makes its own).

    Two per core: filling a buffer is kernel work, without the interpreter
    lock, and a direct write mostly waits for the disk, which goes fastest
    with a few writes at a time.
    """
    global _COPIERS
    pool = _COPIERS
    if pool is None or pool[0] != os.getpid():
        workers = max(4, 2 * (os.cpu_count() or 1))
        pool = _COPIERS = (os.getpid(), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="datumflow-copy"))
    return pool[1]


def _start_writeback(fd: int, offset: int, length: int) -> None:
    start_writeback(fd, offset, length)  # a hint: refused, the fsync does it all


def _wait_all(futures: list[Future[None]]) -> None:
    """Wait for every future in turn; the first failure is raised."""
    for future in futures:
        future.result()


def _wait_quietly(futures: list[Future[None]]) -> None:
    """Wait until none of ``futures`` runs any more, whatever they raised (unstarted ones are cancelled)."""
    for future in futures:
        if not future.cancel():
            with contextlib.suppress(Exception):
                future.result()



def _write_direct(direct: int, pack: int, data: memoryview, at: int) -> None:
    """Write ``data`` (whole blocks, page-aligned) to the pack at ``at`` by direct I/O.

    A write the disk refuses in this shape (a device's own rule) goes through
    the page cache instead: the same bytes, written back by the pack's fsync.
    """
    done = 0
    try:
        try:
            while done < len(data):
                n = os.pwrite(direct, data[done:], at + done)
                if n <= 0 or n % _ALIGN:
                    raise OSError("short direct write")
                done += n
        except OSError:
            while done < len(data):
                done += os.pwrite(pack, data[done:], at + done)
    finally:
        data.release()
