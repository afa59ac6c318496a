"""A local folder as a sync sees it: its files by relative path, and their content hashes.

Scanning costs one ``stat`` per file and reads nothing. A hash is asked for
only where a comparison needs it; the stat cache answers for unchanged
files, and only the others are read (in parallel threads: reading and BLAKE3
release the GIL). ``files_read`` counts those reads.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from datumflow.storage_service.core.chunking import file_hash
from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.sync.statcache import Stat, StatCache

__all__ = ["PART_SUFFIX", "LocalFile", "LocalFolder"]

PART_SUFFIX = ".datumflow-part"  # a file being written by a restore: never synced
_WORKERS = 4


class LocalFile(NamedTuple):
    path: str  # absolute
    stat: Stat
    statted_ns: int  # taken just before the stat: the hash read later is at least this fresh


class LocalFolder:
    def __init__(self, root: str, cache: StatCache) -> None:
        self.root = os.path.abspath(root)
        self.cache = cache
        self.files_read = 0
        self._files: dict[str, LocalFile] | None = None

    @property
    def files(self) -> dict[str, LocalFile]:
        if self._files is None:
            self._files = dict(self._scan()) if os.path.isdir(self.root) else {}
        return self._files

    def _scan(self) -> Iterable[tuple[str, LocalFile]]:
        pending = [("", self.root)]
        while pending:
            rel_dir, folder = pending.pop()
            statted = time.time_ns()
            with os.scandir(folder) as entries:
                for entry in entries:
                    rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                    if entry.is_dir(follow_symlinks=False):
                        pending.append((rel, entry.path))
                    elif entry.is_file() and not entry.name.endswith(PART_SUFFIX):
                        yield rel, LocalFile(entry.path, Stat.of(entry.stat()), statted)

    def known_hash(self, rel: str) -> str | None:
        """The cached hash of ``rel``, without reading it (None if it must be read)."""
        local = self.files[rel]
        return self.cache.lookup(rel, local.stat)

    def hashes(self, rels: Iterable[str]) -> dict[str, str]:
        """rel → content hash: from the cache where it can, by reading the file where not."""
        out: dict[str, str] = {}
        misses = []
        for rel in rels:
            found = self.known_hash(rel)
            if found is None:
                misses.append(rel)
            else:
                out[rel] = found
        if len(misses) > 16:
            with ThreadPoolExecutor(_WORKERS, thread_name_prefix="datumflow-hash") as pool:
                read = list(pool.map(self._read_hash, misses))
        else:
            read = [self._read_hash(rel) for rel in misses]
        out.update(zip(misses, read, strict=True))
        return out

    def _read_hash(self, rel: str) -> str:
        local = self.files[rel]
        content, size = file_hash(local.path)
        self.files_read += 1
        if size == local.stat.size:  # else it changed under us: do not record it, its stat is stale
            self.cache.record(rel, local.stat, content, local.statted_ns)
        return content

    def learn(self, rel: str, content_hash: str) -> None:
        """Record a hash computed elsewhere (by the store, from the bytes it read after the scan's stat)."""
        local = self.files.get(rel)
        if local is not None:
            self.cache.record(rel, local.stat, content_hash, local.statted_ns)

    def finish(self) -> None:
        """Forget files that are gone and write the cache back."""
        self.cache.forget_except(set(self.files))
        self.cache.save()


def check_folder(root: str, *, must_exist: bool) -> str:
    if os.path.exists(root) and not os.path.isdir(root):
        raise InvalidArgument(f"{root} is not a folder")
    if must_exist and not os.path.isdir(root):
        raise InvalidArgument(f"local folder {root} does not exist")
    return os.path.abspath(root)
