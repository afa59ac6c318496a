"""Reading chunks back: their locations in, checked bytes out.

The one read path of stored bytes, for the :class:`~.chunks.ChunkStore` and
for the command line's read-only path into a local store
(:mod:`datumflow.storage_service.store.local_read`), which looks locations up
with the standard library's ``sqlite3``: nothing here imports SQLAlchemy.
Every chunk read is checked against its hash.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from datumflow.storage_service.core.chunking import hash_bytes
from datumflow.storage_service.errors import CorruptObject, ObjectNotFound
from datumflow.storage_service.model.core import ChunkRef

__all__ = ["Located", "RangeReader", "in_order", "pack_key", "read_chunk", "read_located"]

Located = tuple[str, int, int]  # (pack, offset, length) of a stored chunk


class RangeReader(Protocol):
    """What reading needs of an object store (:class:`~.objects.LocalObjects` and the fsspec one)."""

    def read_range(self, key: str, start: int, length: int) -> bytes: ...


def pack_key(pack_id: str) -> str:
    return f"packs/{pack_id[:2]}/{pack_id}"


def in_order(refs: Iterable[ChunkRef], where: dict[str, Located]) -> Iterator[tuple[ChunkRef, Located]]:
    """Each ref with its location from ``where`` (hash -> location), in order; a ref it lacks is an error."""
    for ref in refs:
        found = where.get(ref.hash)
        if found is None:
            raise ObjectNotFound(f"chunk {ref.hash} is not in the store")
        yield ref, found


def read_chunk(objects: RangeReader, ref: ChunkRef, where: Located) -> bytes:
    """The bytes of one chunk, checked against its hash."""
    pack, offset, length = where
    data = objects.read_range(pack_key(pack), offset, length)
    if hash_bytes(data) != ref.hash:
        raise CorruptObject(f"chunk {ref.hash} in pack {pack} does not match its hash")
    return data


def read_located(
    objects: RangeReader, refs: list[ChunkRef], located: Iterable[tuple[ChunkRef, Located]],
) -> Iterator[bytes]:
    """The bytes of ``refs`` (a file's chunks, in order), chunk by chunk; ``located`` yields each ref with
    its location, in the same order (looked up in batches, as the caller sees fit).

    A large file's chunks are read and checked a few ahead on a pool (reads
    and hashing release the interpreter lock), while the caller writes out
    the ones before them; from a local folder, the kernel is asked to read
    the packs further ahead still (``_PREFETCH``).
    """
    total = sum(r.size for r in refs)
    if len(refs) < 2 or total < _READ_AHEAD_BYTES or total < len(refs) * _READ_AHEAD_CHUNK:
        for ref, where in located:
            yield read_chunk(objects, ref, where)
        return
    pool = _readers()
    window: deque[Future[bytes]] = deque()
    hint = getattr(objects, "will_read", None)  # a local folder: the kernel reads packs ahead
    ahead: dict[str, int] = {}  # pack -> offset up to which it was asked to
    try:
        for ref, where in located:
            pack, offset, length = where
            if hint is not None and offset + length > ahead.get(pack, -1):
                span = max(_PREFETCH, length)
                hint(pack_key(pack), offset, span)
                ahead[pack] = offset + span
            window.append(pool.submit(read_chunk, objects, ref, where))
            if len(window) >= _READ_AHEAD:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
    finally:
        for reading in window:
            reading.cancel()


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
