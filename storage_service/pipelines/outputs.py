"""A job's output files: one path several datums wrote becomes one file, as Pachyderm merges it.

Pachyderm keeps every datum's part of an output path and serves their
concatenation, ordered by datum id; a cron pipeline that writes a fixed name
in every datum, or a reduce step appending to one file, relies on that. The
parts are already stored chunks, so the merged file is written by reading
them back in order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from datumflow.storage_service.store.files import entry_of
from datumflow.storage_service.store.listing import chunks_of

if TYPE_CHECKING:
    from datumflow.storage_service.store.store import Store

__all__ = ["merge_parts"]


class _Concat:
    """A read-only stream over the parts' bytes, one chunk at a time."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self.blocks, self.pending = blocks, b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.pending) < size:
            block = next(self.blocks, None)
            if block is None:
                break
            self.pending += block
        if size < 0:
            out, self.pending = self.pending, b""
        else:
            out, self.pending = self.pending[:size], self.pending[size:]
        return out


def merge_parts(store: Store, entries: Sequence[list[Any]]) -> list[Any]:
    """The file entry of ``entries``' contents concatenated in the order given."""
    blocks = (block for entry in entries for block in store.chunks.read_all(chunks_of(entry)))
    with store.chunks.writer() as writer:
        h, refs, size = writer.add_stream(_Concat(blocks))  # only read() is used
    return entry_of(size, h, refs)
