"""Content-defined chunking and content hashes.

FastCDC (the compiled ``pyfastcdc`` implementation) cuts content where the
bytes say so, not at fixed offsets, so an insertion in the middle of a file
changes only the chunks around it. Chunks are named by their BLAKE3 hash.

Large files are cut and hashed at once (:func:`hashed_cuts`): one thread
cuts while a pool hashes the chunks already cut, over one mmap of the file
(no copies); while the reader lags (copying new chunks), the cutter hashes
each chunk itself as soon as it is cut, from its own core's cache. Both
libraries release the interpreter lock while they work, so on two cores a
file costs about the longer of the two passes, not their sum; the chunks and
hashes are exactly those of cutting, then hashing, in turn.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, NamedTuple, Protocol

import blake3
from pyfastcdc import Chunk, FastCDC

__all__ = [
    "AVG_CHUNK",
    "MAX_CHUNK",
    "MIN_CHUNK",
    "SMALL_FILE",
    "Cut",
    "Hasher",
    "chunk_bytes",
    "chunk_stream",
    "content_hash",
    "cut_file",
    "file_hash",
    "hash_bytes",
    "hashed_cuts",
    "mapped",
    "read_hashed",
]

# The chunker yields avg+min on average (about 768 KiB): large enough that a
# 1 GiB file is ~1,400 chunks, small enough that an insertion re-stores little.
AVG_CHUNK = 512 * 1024
MIN_CHUNK = 256 * 1024
MAX_CHUNK = 2 * 1024 * 1024
SMALL_FILE = 1024 * 1024  # files up to this size are read whole and cut in memory; larger ones through mmap


class ChunkRefLike(Protocol):
    @property
    def hash(self) -> str: ...


def hash_bytes(data: bytes | memoryview) -> str:
    return blake3.blake3(data).hexdigest()


Hasher = blake3.blake3


def chunk_bytes(data: bytes | memoryview) -> Iterator[memoryview]:
    """Cut an in-memory buffer; small buffers are one chunk."""
    if len(data) <= MIN_CHUNK:
        yield memoryview(data)
        return
    for chunk in FastCDC(avg_size=AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK).cut_buf(data):
        yield chunk.data


class Readable(Protocol):
    """Anything with ``read(n)`` returning bytes (all the chunker needs of a stream)."""

    def read(self, n: int = -1, /) -> bytes: ...


def chunk_stream(stream: BinaryIO | Readable) -> Iterator[memoryview]:
    """Cut a stream; each yielded view is valid only until the next one."""
    cdc = FastCDC(avg_size=AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)
    for chunk in cdc.cut_stream(stream):
        yield chunk.data


def cut_file(path: str) -> Iterator[Chunk]:
    """Cut a local file through mmap; each cut has ``offset``, ``length`` and ``data``.

    The reference pass: :func:`hashed_cuts` must give exactly these chunks.
    """
    return FastCDC(avg_size=AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK).cut_file(path)


class Cut(NamedTuple):
    """One chunk of a buffer: where it lies and its hash."""

    offset: int
    length: int
    hash: str


_DONE = object()
_Found = queue.SimpleQueue[Any]  # (offset, length, Future of the hash), an exception, then _DONE


def hashed_cuts(view: memoryview) -> Iterator[Cut]:
    """The chunks of ``view`` with their hashes, in order, cut and hashed at the same time.

    A thread of its own cuts (FastCDC releases the interpreter lock for each
    cut) and hands every chunk to the hashing pool (BLAKE3 releases it too)
    as soon as it is cut; the caller gets each cut once its hash is known, and
    may meanwhile do its own lock-free work (copy the chunk in the kernel).
    While the caller is behind (cuts wait for it), the cutter hashes each
    chunk itself, straight after cutting it: with two cores busy cutting and
    copying, a pool thread would only compete with the copy.
    When the iterator ends or is closed, no thread touches ``view`` any more.
    """
    found: _Found = queue.SimpleQueue()
    stop = threading.Event()
    cutter = threading.Thread(target=_cut_into, args=(view, found, stop), name="datumflow-cut", daemon=True)
    cutter.start()
    try:
        while (item := found.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            offset, length, digest = item
            yield Cut(offset, length, digest.result())
    finally:
        stop.set()
        cutter.join()
        _drain(found)


def _cut_into(view: memoryview, found: _Found, stop: threading.Event) -> None:
    try:
        cdc = FastCDC(avg_size=AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)
        for chunk in cdc.cut_buf(view):
            if stop.is_set():
                break
            offset, length = chunk.offset, chunk.length
            if found.qsize() >= _HASH_INLINE_BEHIND:
                # The reader is behind (it is copying new chunks): the cutter has time to spare, and the
                # chunk it just read is still in its core's cache, where a pool thread would read it again
                # from memory beside the reader's copies.
                digest: Future[str] = Future()
                digest.set_result(_hash_range(view, offset, length))
            else:
                digest = _hashers().submit(_hash_range, view, offset, length)
            found.put((offset, length, digest))
    except BaseException as exc:  # handed to the reader, which raises it
        found.put(exc)
    finally:
        found.put(_DONE)


# Cuts waiting for the reader from which the cutter hashes the next chunks itself (see _cut_into).
_HASH_INLINE_BEHIND = 8
_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _hashers() -> ThreadPoolExecutor:
    """Hashing threads shared by every writer (they only hash, so they never wait on anything).

    One pool per process: a forked child gets a pool of its own, not the
    parent's threads, which do not exist in the child. (Two threads racing
    here may make two pools; both work.)
    """
    global _POOL
    pool = _POOL
    if pool is None or pool[0] != os.getpid():
        workers = max(2, os.cpu_count() or 1)
        pool = _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=workers, thread_name_prefix="datumflow-hash"))
    return pool[1]


def _hash_range(view: memoryview, offset: int, length: int) -> str:
    with view[offset:offset + length] as piece:
        return blake3.blake3(piece).hexdigest()


def _drain(found: _Found) -> None:
    """Wait out the hashes nobody will read, so that the buffer is free once this returns."""
    while True:
        try:
            item = found.get_nowait()
        except queue.Empty:
            return
        if isinstance(item, tuple) and not item[2].cancel():
            with contextlib.suppress(Exception):
                item[2].result()


@contextlib.contextmanager
def mapped(fd: int, size: int) -> Iterator[memoryview]:
    """A read-only view of the first ``size`` bytes of open file ``fd`` (``size`` > 0), through mmap."""
    mm = mmap.mmap(fd, size, access=mmap.ACCESS_READ)
    view = memoryview(mm)
    try:
        yield view
    finally:
        view.release()
        with contextlib.suppress(BufferError):  # a view still held elsewhere: the mapping goes with it
            mm.close()


def file_hash(path: str) -> tuple[str, int]:
    """(content hash, size) of a local file: what the store would name it, without storing a byte."""
    digest, size, _ = read_hashed(path)
    return digest, size


def read_hashed(path: str) -> tuple[str, int, bytes | None]:
    """(content hash, size, content) of a local file; the content of a small file only, which is read
    whole (None for a larger one, which is hashed through mmap)."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size <= SMALL_FILE:
            data = fh.read()
            return content_hash([_Digest(hash_bytes(piece)) for piece in chunk_bytes(data)]), len(data), data
        with mapped(fh.fileno(), size) as view:
            return content_hash(list(hashed_cuts(view))), size, None


class _Digest:
    __slots__ = ("hash",)

    def __init__(self, digest: str) -> None:
        self.hash = digest


def content_hash(refs: Sequence[ChunkRefLike]) -> str:
    """The identity of a file's content, from its chunks.

    One chunk: its BLAKE3 hash, i.e. the BLAKE3 of the content. Several: the
    BLAKE3, in a key-derivation context of its own (so it can never equal a
    plain content hash), of the chunk hashes in order. Chunking is a pure
    function of the bytes, so equal content always gives equal hashes, and
    large files are not hashed a second time end to end.
    """
    if len(refs) == 1:
        return refs[0].hash
    digests = b"".join(bytes.fromhex(r.hash) for r in refs)
    return str(blake3.blake3(digests, derive_key_context=_CHUNK_LIST_CONTEXT).hexdigest())


_CHUNK_LIST_CONTEXT = "datumflow 2026 chunk list v1"
