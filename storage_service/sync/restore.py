"""Write files of a commit into a local folder, straight from the walked index entries.

Files go in batches to a few threads (one, for small files): the reader of a batch fetches the
chunks of all its files at once (one location lookup per few hundred chunks,
not a lookup per file by path), then each file is written under a temporary
name and renamed, so no reader ever sees half a file. Chunks are checked
against their hashes by the reader; ``verify`` also checks each written file's
content hash (for readers that do not see chunks, e.g. over HTTP).

Written files are recorded in the stat cache with one stat at the end, so the
next sync up does not read them again (only those written in the last racy
window are hashed once more).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from datumflow.storage_service.core.chunking import file_hash
from datumflow.storage_service.errors import CorruptObject
from datumflow.storage_service.model.core import FileInfo
from datumflow.storage_service.sync.folder import PART_SUFFIX
from datumflow.storage_service.sync.statcache import Stat, StatCache

__all__ = ["BatchReader", "restore", "write_atomically"]

BatchReader = Callable[[Sequence[FileInfo]], Iterator[Iterable[bytes]]]
"""Given files, yields the content of each (chunk by chunk), in order."""

_BATCH_FILES = 256
_BATCH_BYTES = 16 * 1024 * 1024
_WORKERS = 4
_THREADED_AVERAGE = 256 * 1024  # files smaller than this on average are written by one thread
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
_FOLDER = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


def restore(
    root: str, wanted: Sequence[tuple[str, FileInfo]], read: BatchReader, *,
    cache: StatCache | None = None, verify: bool = False, progress: Any = None, workers: int = _WORKERS,
) -> int:
    """Write ``wanted`` (relative path, entry) under ``root``; returns the bytes written."""
    made: set[str] = set()
    for rel, _ in wanted:  # folders first, once each (the threads then only write files)
        parent = rel.rpartition("/")[0]
        if parent not in made:
            os.makedirs(os.path.join(root, parent) if parent else root, exist_ok=True)
            made.add(parent)
    batches = list(_batches(wanted))
    unnamed = bool(wanted) and unnamed_files_work(root)
    written: list[tuple[str, tuple[int, int, int], str]] = []

    def one(batch: Sequence[tuple[str, FileInfo]]) -> list[tuple[str, tuple[int, int, int], str]]:
        out = []
        with _Folders(root) as folders:
            for (rel, info), content in zip(batch, read([i for _, i in batch]), strict=True):
                parent, _, name = rel.rpartition("/")
                fd, where = folders.open(parent)
                stat = _write_in(fd, where, name, content, info if verify else None, unnamed=unnamed)
                out.append((rel, stat, str(info.hash)))
                if progress is not None:
                    progress(info.size)
        return out

    total = sum(info.size for _, info in wanted)
    if total < len(wanted) * _THREADED_AVERAGE:
        # Small files: each is a few system calls that release and retake the interpreter lock, and
        # threads taking turns at it cost more (measured here: two or four threads spent 2-4 times the
        # system time of one, handing the lock over) than they overlap. Large ones overlap their I/O.
        workers = 1
    if len(batches) > 1 and workers > 1:
        with ThreadPoolExecutor(workers, thread_name_prefix="datumflow-restore") as pool:
            for done in pool.map(one, batches):
                written.extend(done)
    else:
        for batch in batches:
            written.extend(one(batch))
    if cache is not None:
        _record(cache, root, written)
    return total


class _Folders:
    """The folders a batch writes into, each opened once: files are made and named relative to them
    (no path is resolved again from the root for every file)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._open: dict[str, tuple[int, str]] = {}

    def open(self, rel: str) -> tuple[int, str]:
        """(descriptor, path) of the folder ``rel`` under the root ("" is the root itself)."""
        found = self._open.get(rel)
        if found is None:
            where = os.path.join(self.root, rel) if rel else self.root
            found = self._open[rel] = (os.open(where, _FOLDER), where)
        return found

    def __enter__(self) -> _Folders:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd, _ in self._open.values():
            os.close(fd)
        self._open.clear()


def _batches(wanted: Sequence[tuple[str, FileInfo]]) -> Iterator[Sequence[tuple[str, FileInfo]]]:
    start, size = 0, 0
    for i, (_, info) in enumerate(wanted):
        if i > start and (i - start >= _BATCH_FILES or size + info.size > _BATCH_BYTES):
            yield wanted[start:i]
            start, size = i, 0
        size += info.size
    if start < len(wanted):
        yield wanted[start:]


def write_atomically(
    target: str, chunks: Iterable[bytes], expect: FileInfo | None = None, *, unnamed: bool = False
) -> tuple[int, int, int]:
    """Write under a temporary name, then rename; returns (size, mtime_ns, inode) of what was written.

    Plain descriptor writes (no buffered file object: a restore of many small
    files is mostly their creation) and no fsync per file: like ``cp`` and
    ``restic restore``, durability is left to the filesystem's own flush.
    ``unnamed`` (where :func:`unnamed_files_work`): the file is made without a
    name and linked in under ``target`` once whole, so no temporary name is
    made and removed (each leaves the kernel a dead directory entry: a
    restore of 100,000 files left 100,000, and creating files slowed as they
    piled up); over an existing file, it is linked under the temporary name
    and renamed, as before.
    """
    where, name = os.path.split(target)
    where = where or "."
    folder = os.open(where, _FOLDER)
    try:
        return _write_in(folder, where, name, chunks, expect, unnamed=unnamed)
    finally:
        os.close(folder)


def _write_in(
    folder: int, where: str, name: str, chunks: Iterable[bytes], expect: FileInfo | None, *, unnamed: bool
) -> tuple[int, int, int]:
    """:func:`write_atomically` of ``name`` in the folder open as ``folder`` (its path: ``where``)."""
    part = f".{name}{PART_SUFFIX}"
    if unnamed:
        return _write_unnamed(folder, name, part, chunks, expect)
    try:
        fd = os.open(part, _CREATE, 0o666, dir_fd=folder)
        try:
            st = _write_all(fd, chunks)
        finally:
            os.close(fd)
        if expect is not None and file_hash(os.path.join(where, part))[0] != expect.hash:
            raise CorruptObject(f"{expect.path}: the downloaded bytes do not match the content hash {expect.hash}")
        os.replace(part, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part, dir_fd=folder)
        raise
    return st.st_size, st.st_mtime_ns, st.st_ino


def _write_all(fd: int, chunks: Iterable[bytes]) -> os.stat_result:
    """Write every chunk to ``fd`` (short writes resumed); the file's stat after."""
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view):]
    return os.fstat(fd)


def _write_unnamed(
    folder: int, name: str, part: str, chunks: Iterable[bytes], expect: FileInfo | None,
) -> tuple[int, int, int]:
    fd = os.open(".", os.O_WRONLY | _TMPFILE | os.O_CLOEXEC, 0o666, dir_fd=folder)
    try:
        st = _write_all(fd, chunks)
        if expect is not None and file_hash(f"/proc/self/fd/{fd}")[0] != expect.hash:
            raise CorruptObject(f"{expect.path}: the downloaded bytes do not match the content hash {expect.hash}")
        try:
            _link(fd, name, folder)
        except FileExistsError:  # replacing a file: in under the temporary name, then renamed over it
            _link(fd, part, folder)
            try:
                os.replace(part, name, src_dir_fd=folder, dst_dir_fd=folder)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(part, dir_fd=folder)
                raise
    finally:
        os.close(fd)
    return st.st_size, st.st_mtime_ns, st.st_ino


_TMPFILE = getattr(os, "O_TMPFILE", 0)
_ROOT: list[int] = []


def _link(fd: int, path: str, folder: int | None = None) -> None:
    """Give the unnamed file open as ``fd`` the name ``path`` (in the folder open as ``folder``, if given)
    (linkat through /proc, following the link)."""
    if not _ROOT:
        _ROOT.append(os.open("/", _FOLDER))
    os.link(f"/proc/self/fd/{fd}", path, src_dir_fd=_ROOT[0], dst_dir_fd=folder, follow_symlinks=True)


def unnamed_files_work(folder: str) -> bool:
    """Whether files can be made unnamed in ``folder`` and linked in (O_TMPFILE, and /proc mounted)."""
    if not _TMPFILE:
        return False
    probe = os.path.join(folder, f".datumflow-probe-{os.getpid()}-{threading.get_ident()}{PART_SUFFIX}")
    try:
        fd = os.open(folder, os.O_WRONLY | _TMPFILE | os.O_CLOEXEC, 0o600)
    except OSError:  # a file system without it (NFS, FAT, ...), or an old kernel
        return False
    try:
        _link(fd, probe)
        os.unlink(probe)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def _record(cache: StatCache, root: str, written: list[tuple[str, tuple[int, int, int], str]]) -> None:
    statted = time.time_ns()
    for rel, (size, mtime_ns, ino), content_hash in written:
        try:
            st = os.stat(os.path.join(root, rel))
        except OSError:
            continue
        if (st.st_size, st.st_mtime_ns, st.st_ino) == (size, mtime_ns, ino):  # still what we wrote
            cache.record(rel, Stat.of(st), content_hash, statted)
