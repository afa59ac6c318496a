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
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from sqlalchemy import Engine, select

from .chunking import chunk_bytes, chunk_file, chunk_stream, hash_bytes
from .db import insert_ignore
from .errors import CorruptObject, ObjectNotFound
from .model import ChunkRef
from .objects import LocalObjects, ObjectStore
from .schema import chunks, packs

__all__ = ["ChunkStore", "ChunkWriter", "pack_key"]

PACK_TARGET = 64 * 1024 * 1024
_PENDING_BYTES = 32 * 1024 * 1024
_LOOKUP_BATCH = 500


def pack_key(pack_id: str) -> str:
    return f"packs/{pack_id[:2]}/{pack_id}"


class ChunkStore:
    def __init__(self, engine: Engine, objects: ObjectStore, *, fsync: bool = True) -> None:
        self.engine = engine
        self.objects = objects
        self.fsync = fsync

    def writer(self) -> ChunkWriter:
        return ChunkWriter(self)

    def locate(self, hashes: Iterable[str]) -> dict[str, tuple[str, int, int]]:
        """hash -> (pack, offset, length) for the hashes that are stored."""
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, tuple[str, int, int]] = {}
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
        """The bytes of a file, chunk by chunk, locations looked up in batches."""
        refs = list(refs)
        for i in range(0, len(refs), _LOOKUP_BATCH):
            batch = refs[i:i + _LOOKUP_BATCH]
            where = self.locate(r.hash for r in batch)
            for ref in batch:
                if ref.hash not in where:
                    raise ObjectNotFound(f"chunk {ref.hash} is not in the store")
                yield self.read(ref, where[ref.hash])


class ChunkWriter:
    """Stores chunks for one batch of writes; use as a context manager.

    Chunks are buffered, looked up in batches (one query per few hundred
    chunks, not one per chunk), and the unknown ones appended to a pack.
    Leaving the ``with`` block publishes the pack and records its chunks;
    leaving it on an exception discards everything.
    """

    def __init__(self, store: ChunkStore) -> None:
        self.store = store
        self.seen: set[str] = set()
        self.pending: list[tuple[str, bytes]] = []
        self.pending_bytes = 0
        self.bytes_new = 0
        self.bytes_in = 0
        self._pack: BinaryIO | None = None
        self._pack_id = ""
        self._pack_path = ""
        self._pack_rows: list[dict[str, Any]] = []
        self._pack_size = 0

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
        refs = [self.add(piece) for piece in chunk_bytes(data)]
        return (refs[0].hash if len(refs) == 1 else hash_bytes(data)), refs

    def add_stream(self, stream: BinaryIO) -> tuple[str, list[ChunkRef], int]:
        """Store a stream: (content hash, chunks, size)."""
        from .chunking import Hasher

        hasher = Hasher()
        refs: list[ChunkRef] = []
        for piece in chunk_stream(stream):
            hasher.update(piece)
            refs.append(self.add(piece))
        return self._content_hash(refs, hasher), refs, sum(r.size for r in refs)

    def add_file(self, path: str) -> tuple[str, list[ChunkRef], int]:
        """Store a local file: (content hash, chunks, size)."""
        from .chunking import Hasher

        size = os.path.getsize(path)
        if size <= 1024 * 1024:
            with open(path, "rb") as fh:
                data = fh.read()
            h, refs = self.add_bytes(data)
            return h, refs, len(data)
        hasher = Hasher()
        refs = []
        for piece in chunk_file(path):
            hasher.update(piece)
            refs.append(self.add(piece))
        return self._content_hash(refs, hasher), refs, size

    @staticmethod
    def _content_hash(refs: list[ChunkRef], hasher: Any) -> str:
        if len(refs) == 1:
            return refs[0].hash
        return str(hasher.hexdigest())

    # -- writing packs -----------------------------------------------------------

    def flush(self) -> None:
        if not self.pending:
            return
        known = self.store.locate(h for h, _ in self.pending)
        for h, data in self.pending:
            if h not in known:
                self._append(h, data)
        self.pending.clear()
        self.pending_bytes = 0

    def _append(self, h: str, data: bytes) -> None:
        if self._pack is None:
            self._pack_id = uuid.uuid4().hex
            self._pack_path = os.path.join(self.store.objects.spool_dir(), f"{self._pack_id}.tmp")
            self._pack = open(self._pack_path, "wb")  # noqa: SIM115 (closed in _seal)
            self._pack_size = 0
        self._pack.write(data)
        self._pack_rows.append(
            {"hash": h, "pack": self._pack_id, "offset": self._pack_size, "length": len(data)}
        )
        self._pack_size += len(data)
        self.bytes_new += len(data)
        if self._pack_size >= PACK_TARGET:
            self._seal()

    def _seal(self) -> None:
        pack, self._pack = self._pack, None
        if pack is None:
            return
        pack.flush()
        if self.store.fsync and isinstance(self.store.objects, LocalObjects):
            os.fsync(pack.fileno())
        pack.close()
        if os.path.getsize(self._pack_path) != self._pack_size:
            raise CorruptObject(f"pack {self._pack_id} was not written whole")
        self.store.objects.publish(pack_key(self._pack_id), self._pack_path)
        with self.store.engine.begin() as conn:
            conn.execute(
                packs.insert(), {"id": self._pack_id, "size": self._pack_size, "created": time.time()}
            )
            if self._pack_rows:  # empty when gc's repack records the rows itself
                conn.execute(insert_ignore(self.store.engine, chunks), self._pack_rows)
        self._pack_rows = []

    def close(self) -> None:
        self.flush()
        self._seal()

    def abort(self) -> None:
        if self._pack is not None:
            self._pack.close()
            self._pack = None
            with contextlib.suppress(FileNotFoundError):
                os.remove(self._pack_path)
        self.pending.clear()
        self._pack_rows = []
