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
# Files from this size on go to a pack that is fsynced by direct I/O (see _Staging); smaller ones through the
# page cache, whose writeback the pack's fsync waits for once for all of them.
DIRECT_MIN = 64 * 1024 * 1024
_ALIGN = 4096  # offsets and lengths of direct writes: a multiple of every disk's logical block
_STAGING_BUFFER = 8 * 1024 * 1024  # bytes of a pack gathered per direct write
_STAGING_BUFFERS = 6  # buffers per writer: a few being filled while others are written
_LOCATE_ONE = Prepared(select(chunks.c.hash, chunks.c.pack, chunks.c.offset, chunks.c.length).where(
    chunks.c.hash == bindparam("hash")))


def pack_key(pack_id: str) -> str:
    return f"packs/{pack_id[:2]}/{pack_id}"


class ChunkStore:
    def __init__(
        self, engine: Engine, objects: ObjectStore, *, fsync: bool = True, direct_io: bool | None = None,
    ) -> None:
        self.engine = engine
        self.objects = objects
        self.fsync = fsync
        if direct_io is None:
            # DATUMFLOW_DIRECT_IO=1: large files of durable writes reach local packs by direct I/O (see
            # _Staging). Off by default: the put is faster (the disk writes while the file is cut), but
            # the packs are then not in the page cache, and reading the data back soon after (a
            # pipeline's datums, a restore) waits for the disk: measured, a 1 GiB put 0.15 s faster and
            # its restore right after 0.4 s slower.
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
        pack, offset, length = where
        data = self.objects.read_range(pack_key(pack), offset, length)
        if hash_bytes(data) != ref.hash:
            raise CorruptObject(f"chunk {ref.hash} in pack {pack} does not match its hash")
        return data

    def read_all(self, refs: Iterable[ChunkRef]) -> Iterator[bytes]:
        """The bytes of a file, chunk by chunk, locations looked up in batches.

        A large file's chunks are read and checked a few ahead on a pool (reads
        and hashing release the interpreter lock), while the caller writes out
        the ones before them; from a local folder, the kernel is asked to read
        the packs further ahead still (``_PREFETCH``).
        """
        refs = list(refs)
        total = sum(r.size for r in refs)
        if len(refs) < 2 or total < _READ_AHEAD_BYTES or total < len(refs) * _READ_AHEAD_CHUNK:
            for ref, where in self._located(refs):
                yield self.read(ref, where)
            return
        pool = _readers()
        window: deque[Future[bytes]] = deque()
        hint = getattr(self.objects, "will_read", None)  # a local folder: the kernel reads packs ahead
        ahead: dict[str, int] = {}  # pack -> offset up to which it was asked to
        try:
            for ref, where in self._located(refs):
                pack, offset, length = where
                if hint is not None and offset + length > ahead.get(pack, -1):
                    span = max(_PREFETCH, length)
                    hint(pack_key(pack), offset, span)
                    ahead[pack] = offset + span
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
# Bytes of a pack the kernel is asked to read ahead of a large read, each time the read gets past the last
# such range: a pack not in the page cache (a cold store, or one written by direct I/O) is read from disk in
# large requests, ahead of the readers, instead of chunk by chunk as they ask.
_PREFETCH = 32 * 1024 * 1024
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
        self._pack_direct: int | None = None  # the pack opened a second time, for direct writes
        self._pack_copies: list[Future[None]] = []  # copies into the current pack still running, maybe
        self._pack_moved = False  # the pack grew by copies: the next write must seek to its end
        self._pack_room = 0  # bytes of the current pack reserved at once (see _reserve)
        self._file_size = 0  # of the file being added
        self._file_copies: list[Future[None]] = []  # copies from the file being added, whatever their pack
        self._ranges_flushed = False  # the file being added had its first chunks looked up
        self._direct = False  # the file being added goes to the pack by direct I/O
        self._staging: _Staging | None = None  # its bytes bound for the current pack
        self._buffers: list[tuple[mmap.mmap, Future[None] | None]] = []  # staging buffers, each with its last use
        self._next_buffer = 0
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
        (``copy_file_range``), or, for a file of ``DIRECT_MIN`` bytes or more
        in a durable write, staged for direct writes that the disk does while
        the cutting goes on (see :class:`_Staging`). No byte passes through
        Python; the file is closed only when nothing reads it any more.
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
                    for cut in hashed_cuts(view):
                        refs.append(ChunkRef(cut.hash, cut.length))
                        self._add_range(src.fileno(), cut)
                self._flush_ranges(src.fileno())
                self._end_staging()  # its last, partial buffer
                _wait_all(self._file_copies)
            finally:
                self._direct, self._staging = False, None
                copies, self._file_copies = self._file_copies, []
                _wait_quietly(copies)
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
        :mod:`.writeback`). A large file of a durable write may be staged for
        direct writes instead, which run on the copying pool: the rows are
        recorded now, and the pack is sealed only once those writes are done.
        """
        pack = self._open_pack()
        start = run[0][1]
        length = run[-1][1] + run[-1][2] - start
        self._pack_moved = True
        staging = self._staging_for(fd) if self._direct else None
        if staging is not None:
            staging.add(start, length)
            if self._pack_size + length >= PACK_TARGET:  # the pack is full: its last buffer goes now
                self._end_staging()
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

    def _staging_for(self, fd: int) -> _Staging | None:
        """The staging of file ``fd`` into the current pack, begun if need be; None if direct I/O is refused."""
        if self._staging is not None:
            return self._staging
        if self._pack_direct is None:
            try:
                self._pack_direct = os.open(self._pack_path, os.O_WRONLY | os.O_DIRECT)
            except (OSError, AttributeError):  # a filesystem (or system) without direct I/O
                self._no_direct = True
                self._direct = False
                return None
            # Direct writes into allocated blocks run side by side; past the end of the file, one at a time.
            with contextlib.suppress(OSError):
                os.posix_fallocate(self._pack_direct, 0, PACK_TARGET + MAX_CHUNK + _ALIGN)
        assert self._pack is not None
        self._pack.flush()  # a first block shared with bytes before it is read back from the pack
        self._staging = _Staging(self, fd, self._pack.fileno(), self._pack_direct, self._pack_size)
        return self._staging

    def _end_staging(self) -> None:
        staging, self._staging = self._staging, None
        if staging is not None:
            staging.finish()

    def _buffer(self) -> mmap.mmap:
        """The next staging buffer, once its last direct write is done."""
        if len(self._buffers) < _STAGING_BUFFERS:
            buf = mmap.mmap(-1, _STAGING_BUFFER)  # page-aligned, as direct I/O needs
            self._buffers.append((buf, None))
            return buf
        i = self._next_buffer
        self._next_buffer = (i + 1) % _STAGING_BUFFERS
        buf, last = self._buffers[i]
        if last is not None:
            last.result()
        return buf

    def _staged(self, buf: mmap.mmap, write: Future[None]) -> None:
        """Note the direct write that uses ``buf``, the current pack's and the file's."""
        self._buffers = [(b, write if b is buf else last) for b, last in self._buffers]
        self._pack_copies.append(write)
        self._file_copies.append(write)

    def _free_buffers(self) -> None:
        buffers, self._buffers = self._buffers, []
        _wait_quietly([last for _, last in buffers if last is not None])
        for buf, _ in buffers:
            with contextlib.suppress(BufferError):  # a view kept by a failed write's traceback: freed with it
                buf.close()

    def _locate(self, hashes: Iterable[str]) -> dict[str, tuple[str, int, int]]:
        if self.write_id is None:
            return self.store.locate(hashes)
        return self.store.locate_pinned(hashes, self.write_id)

    def copy_chunk(self, h: str, data: bytes) -> None:
        """Append a chunk known to be stored elsewhere (repacking), without a lookup."""
        self._append(h, data)

    def _append(self, h: str, data: bytes) -> None:
        pack = self._open_pack()
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
        pack, self._pack = self._pack, None
        if pack is None:
            return None
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
    """Wait for the copies into a pack, make it durable, check it, publish it, then record its chunks."""
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



class _Staging:
    """The new chunks of one large file on their way to one pack by direct I/O.

    A durable write must wait for the disk anyway; written through the page
    cache, a file's bytes are first copied into fresh cache pages (allocated,
    dirtied, then written back): about as much CPU as cutting it. Here they
    are read into a few reused, aligned buffers instead, each written with
    ``O_DIRECT`` as soon as it is full, on the copying pool while the next
    chunks are cut, so the disk writes from the start and the pack's fsync
    finds nothing left but the disk's own cache. Each buffer covers whole
    blocks of the pack: a first block shared with bytes already in the pack
    is read back from it, the last one is padded (the pack is cut back to
    its size when it is sealed or written to again).
    """

    def __init__(self, writer: ChunkWriter, src: int, pack: int, direct: int, start: int) -> None:
        self.writer = writer
        self.src = src
        self.pack = pack  # the pack through the page cache: its first block is read back, a refused write goes there
        self.direct = direct
        self.base = start - start % _ALIGN  # pack offset of the buffer being filled
        self.head = start - self.base  # bytes of the pack before the staged ones, in the first buffer
        self.used = self.head
        self.pieces: list[tuple[int, int, int]] = []  # (buffer offset, file offset, length)

    def add(self, offset: int, length: int) -> None:
        """Stage ``length`` bytes of the file from ``offset``, next in the pack."""
        while length:
            n = min(length, _STAGING_BUFFER - self.used)
            self.pieces.append((self.used, offset, n))
            self.used += n
            offset += n
            length -= n
            if self.used == _STAGING_BUFFER:
                self._write()

    def finish(self) -> None:
        """Write what is staged (the last block padded)."""
        if self.used > self.head:
            self._write()

    def _write(self) -> None:
        buf = self.writer._buffer()
        job = _copiers().submit(_write_staged, self.src, self.pack, self.direct, buf, self.base, self.head,
                                self.pieces, self.used)
        self.writer._staged(buf, job)
        self.base += _STAGING_BUFFER  # only a full buffer is followed by another
        self.head = self.used = 0
        self.pieces = []


def _write_staged(
    src: int, pack: int, direct: int, buf: mmap.mmap, base: int, head: int, pieces: list[tuple[int, int, int]],
    used: int,
) -> None:
    """Fill ``buf`` (the pack's bytes from ``base``) and write it whole blocks at a time by direct I/O."""
    view = memoryview(buf)
    try:
        if head:
            _read_into(pack, view[:head], base, "the pack")
        for at, offset, length in pieces:
            _read_into(src, view[at:at + length], offset, "source file")
        size = -(-used // _ALIGN) * _ALIGN
        done = 0
        try:
            while done < size:
                n = os.pwrite(direct, view[done:size], base + done)
                if n <= 0 or n % _ALIGN:
                    raise OSError("short direct write")
                done += n
        except OSError:  # a filesystem or disk that takes no direct write of this shape: through the cache
            while done < used:
                done += os.pwrite(pack, view[done:used], base + done)
    finally:
        view.release()


def _read_into(fd: int, view: memoryview, offset: int, what: str) -> None:
    done = 0
    while done < len(view):
        n = os.preadv(fd, [view[done:]], offset + done)
        if n == 0:
            raise CorruptObject(f"{what} ended {len(view) - done} bytes early while storing it")
        done += n
