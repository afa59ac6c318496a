"""Content-defined chunking and content hashes.

FastCDC (the compiled ``pyfastcdc`` implementation) cuts content where the
bytes say so, not at fixed offsets, so an insertion in the middle of a file
changes only the chunks around it. Chunks are named by their BLAKE3 hash.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import blake3
from pyfastcdc import FastCDC

__all__ = ["AVG_CHUNK", "MAX_CHUNK", "MIN_CHUNK", "Hasher", "chunk_bytes", "chunk_stream", "hash_bytes"]

# The chunker yields avg+min on average (about 768 KiB): large enough that a
# 1 GiB file is ~1,400 chunks, small enough that an insertion re-stores little.
AVG_CHUNK = 512 * 1024
MIN_CHUNK = 256 * 1024
MAX_CHUNK = 2 * 1024 * 1024

_CDC = FastCDC(avg_size=AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)


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


def chunk_stream(stream: BinaryIO) -> Iterator[memoryview]:
    """Cut a stream; each yielded view is valid only until the next one."""
    cdc = FastCDC(avg_size=AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)
    for chunk in cdc.cut_stream(stream):
        yield chunk.data


def chunk_file(path: str) -> Iterator[memoryview]:
    """Cut a local file through mmap (no copy until a chunk is stored)."""
    for chunk in _CDC.cut_file(path):
        yield chunk.data
