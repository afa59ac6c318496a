"""Content-defined chunking and content hashes.

FastCDC (the compiled ``pyfastcdc`` implementation) cuts content where the
bytes say so, not at fixed offsets, so an insertion in the middle of a file
changes only the chunks around it. Chunks are named by their BLAKE3 hash.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import BinaryIO, Protocol

import blake3
from pyfastcdc import Chunk, FastCDC

__all__ = [
    "AVG_CHUNK", "MAX_CHUNK", "MIN_CHUNK", "SMALL_FILE", "Hasher", "chunk_bytes", "chunk_stream", "content_hash",
    "cut_file", "file_hash", "hash_bytes",
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
    """Cut a local file through mmap; each cut has ``offset``, ``length`` and ``data``."""
    return FastCDC(avg_size=AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK).cut_file(path)


def file_hash(path: str) -> tuple[str, int]:
    """(content hash, size) of a local file: what the store would name it, without storing a byte."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size <= SMALL_FILE:
            data = fh.read()
            return content_hash([_Digest(hash_bytes(piece)) for piece in chunk_bytes(data)]), len(data)
    return content_hash([_Digest(hash_bytes(cut.data)) for cut in cut_file(path)]), size


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
