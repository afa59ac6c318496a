"""Sync of a local folder with a branch, on the embedded store (see :mod:`..sync.engine`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from datumflow.storage_service.model.core import FileInfo
from datumflow.storage_service.model.sync import SyncResult
from datumflow.storage_service.store.base import StoreBase
from datumflow.storage_service.sync import engine

__all__ = ["SyncOps"]


class SyncOps(StoreBase):
    """``sync_up``/``sync_down`` of :class:`Store` (a mixin), the same calls as the HTTP client's."""

    def sync_up(
        self, local: str, repo: str, branch: str, path: str = "", *, delete: bool = False, dry_run: bool = False,
        description: str = "", progress: Any = None, cache: bool = True,
    ) -> SyncResult:
        """Make ``repo@branch:path`` hold what the folder ``local`` holds, in one commit of the differences.

        Added and changed files are written, and with ``delete`` files gone from
        the folder are removed; nothing differing means no commit. Unchanged
        files are not read (the stat cache knows their hashes).
        """
        return engine.sync_up(self, local, repo, branch, path, delete=delete, dry_run=dry_run,
                              description=description, progress=progress, cache=cache)

    def sync_down(
        self, repo: str, ref: str, path: str, local: str, *, delete: bool = False, dry_run: bool = False,
        progress: Any = None, cache: bool = True,
    ) -> SyncResult:
        """Make the folder ``local`` hold what ``repo@ref:path`` holds, writing only the files that differ."""
        return engine.sync_down(self, repo, ref, path, local, self.read_contents, delete=delete, dry_run=dry_run,
                                progress=progress, cache=cache)

    def read_contents(self, infos: Sequence[FileInfo]) -> Iterator[list[bytes]]:
        """The content of each entry (chunks checked), their chunks located together in batches."""
        refs = [ref for info in infos for ref in info.chunks]
        data = self.chunks.read_all(refs)
        for info in infos:
            yield [next(data) for _ in info.chunks]
