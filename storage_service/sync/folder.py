"""A local folder as a sync sees it: its files by relative path, and their content hashes.

Scanning costs one ``lstat`` per entry (and one listing per folder) and reads
nothing. It yields two columns, the relative paths in a fixed order and their
stats as one flat array of integers, so that an unchanged folder is told from
the stat cache by two comparisons in bulk, not a Python object per file. A
hash is asked for only where a comparison needs it; the stat cache answers
for unchanged files, and only the others are read (in parallel threads when
there are megabytes to read: reading and BLAKE3 release the GIL; small files
are read in turn, as threads would only contend for the interpreter lock). ``files_read`` counts those reads.

The scan is compiled where the install could build it (``_scan``, C: the
listing in one pass, the ``lstat`` calls on two threads, the paths handed back
as one blob that the stat cache compares without decoding); ``_scan_python``
is the fallback and the reference, with the same result.

A symbolic link to a file syncs as that file (its target's stat); links to
folders are not followed, so a link loop cannot make a scan endless.
"""

from __future__ import annotations

import array
import os
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

from datumflow.storage_service.core.chunking import file_hash
from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.sync.statcache import SEP, StatCache, StatTuple

compiled: ModuleType | None
try:
    from datumflow.storage_service.sync import _scan as compiled
except ImportError:  # installed without a C compiler: the Python scan
    compiled = None

__all__ = ["PART_SUFFIX", "LocalFolder", "check_folder", "compiled", "scan"]

PART_SUFFIX = ".datumflow-part"  # a file being written by a restore: never synced
_WORKERS = 4
_POOL_BYTES = 8 << 20  # below this much to read, threads only contend for the interpreter lock (small files)
_SCAN_THREADS = 2  # lstat on more threads than cores gains nothing here
_TYPE = 0o170000
_FILE = 0o100000
_DIR = 0o040000
_LINK = 0o120000


class LocalFolder:
    def __init__(self, root: str, cache: StatCache) -> None:
        self.root = os.path.abspath(root)
        self.cache = cache
        self.files_read = 0
        self.statted_ns = 0  # taken before the first stat: every hash read later is at least this fresh
        self._paths: list[str] | None = None
        self._blob: bytes | None = None
        self._stats: array.array[int] | None = None
        self._files: dict[str, StatTuple] | None = None

    def _scanned(self) -> array.array[int]:
        if self._stats is None:
            self.statted_ns = time.time_ns()
            if os.path.isdir(self.root):
                self._blob, self._paths, self._stats = scan(self.root)
            else:
                self._blob, self._paths, self._stats = b"", [], array.array("q")
        return self._stats

    @property
    def paths(self) -> list[str]:
        """Relative paths of the files, in scan order."""
        self._scanned()
        if self._paths is None:
            assert self._blob is not None
            self._paths = self._blob.decode("utf-8", "surrogateescape").split(SEP) if self._blob else []
        return self._paths

    @property
    def paths_blob(self) -> bytes:
        """:attr:`paths` as the stat cache stores them (joined by NUL, UTF-8 with surrogate escapes)."""
        self._scanned()
        if self._blob is None:
            assert self._paths is not None
            self._blob = SEP.join(self._paths).encode("utf-8", "surrogateescape")
        return self._blob

    @property
    def count(self) -> int:
        return len(self._scanned()) // 4

    @property
    def stats(self) -> array.array[int]:
        """(size, mtime_ns, inode, ctime_ns) of each path, flat."""
        return self._scanned()

    @property
    def files(self) -> dict[str, StatTuple]:
        """rel → (size, mtime_ns, inode, ctime_ns)."""
        if self._files is None:
            s = self.stats
            self._files = dict(zip(self.paths, zip(s[0::4], s[1::4], s[2::4], s[3::4], strict=True), strict=True))
        return self._files

    def abspath(self, rel: str) -> str:
        return f"{self.root}{os.sep}{rel}"

    def known_hash(self, rel: str) -> str | None:
        """The cached hash of ``rel``, without reading it (None if it must be read)."""
        return self.cache.lookup(rel, self.files[rel])

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
        files = self.files
        if len(misses) > 16 and sum(files[rel][0] for rel in misses) > _POOL_BYTES:
            with ThreadPoolExecutor(_WORKERS, thread_name_prefix="datumflow-hash") as pool:
                read = list(pool.map(self._read_hash, misses))
        else:
            read = [self._read_hash(rel) for rel in misses]
        out.update(zip(misses, read, strict=True))
        return out

    def _read_hash(self, rel: str) -> str:
        stat = self.files[rel]
        content, size = file_hash(self.abspath(rel))
        self.files_read += 1
        if size == stat[0]:  # else it changed under us: do not record it, its stat is stale
            self.cache.record(rel, stat, content, self.statted_ns)
        return content

    def learn(self, rel: str, content_hash: str) -> None:
        """Record a hash computed elsewhere (by the store, from the bytes it read after the scan's stat)."""
        stat = self.files.get(rel)
        if stat is not None:
            self.cache.record(rel, stat, content_hash, self.statted_ns)

    def finish(self) -> None:
        """Forget files that are gone and write the cache back (in scan order)."""
        self.cache.forget_except(self.paths)
        self.cache.save(self.paths)


def scan(root: str) -> tuple[bytes | None, list[str] | None, array.array[int]]:
    """(paths as a blob, or as a list, and flat stats) of the files under ``root``, compiled if it can."""
    if compiled is not None:
        blob, raw, _ = compiled.scan(root, PART_SUFFIX, _SCAN_THREADS)
        stats: array.array[int] = array.array("q")
        stats.frombytes(raw)
        return blob, None, stats
    paths, stats = _scan_python(root)
    return None, paths, stats


def _scan_python(root: str) -> tuple[list[str], array.array[int]]:
    """Depth first, each folder's names sorted (its files, then its folders one after the other): the same
    tree always gives the same columns."""
    paths: list[str] = []
    stats: array.array[int] = array.array("q")
    add, extend, lstat = paths.append, stats.extend, os.lstat
    pending = [("", root + os.sep)]
    while pending:
        rel_dir, abs_dir = pending.pop()
        try:
            names = os.listdir(abs_dir)
        except (FileNotFoundError, NotADirectoryError):  # removed (or replaced) while we scan
            continue
        names.sort()
        folders = []
        for name in names:
            try:
                st = lstat(abs_dir + name)
            except FileNotFoundError:
                continue
            kind = st.st_mode & _TYPE
            if kind == _LINK:
                try:
                    st = os.stat(abs_dir + name)
                except OSError:  # dangling
                    continue
                if st.st_mode & _TYPE != _FILE:
                    continue
                kind = _FILE
            if kind == _FILE:
                if not name.endswith(PART_SUFFIX):
                    add(rel_dir + name)
                    extend((st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns))
            elif kind == _DIR:
                folders.append((f"{rel_dir}{name}/", f"{abs_dir}{name}{os.sep}"))
        pending.extend(reversed(folders))
    return paths, stats


def check_folder(root: str, *, must_exist: bool) -> str:
    if os.path.exists(root) and not os.path.isdir(root):
        raise InvalidArgument(f"{root} is not a folder")
    if must_exist and not os.path.isdir(root):
        raise InvalidArgument(f"local folder {root} does not exist")
    return os.path.abspath(root)
