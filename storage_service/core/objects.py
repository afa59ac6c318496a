"""The object store: named immutable blobs on a local folder or any fsspec URL.

Objects are written whole and become visible at once: a local write goes to a
temporary name and is renamed; a remote write is one PUT (S3 objects appear
atomically). Foreign errors become :mod:`errors` classes here and only here.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any, Protocol

from datumflow.storage_service.errors import ObjectNotFound, ServiceUnavailable

__all__ = ["FsspecObjects", "LocalObjects", "ObjectStore", "open_object_store"]


_PROBE_KEY = "probe/ready"  # outside packs/, so gc never looks at it


class ObjectStore(Protocol):
    url: str

    def publish(self, key: str, local_path: str) -> None:
        """Move a finished local file to ``key`` atomically (the file is consumed)."""

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def read_range(self, key: str, start: int, length: int) -> bytes: ...

    def size(self, key: str) -> int: ...

    def delete(self, key: str) -> None: ...

    def list(self, prefix: str) -> Iterator[tuple[str, int]]: ...

    def spool_dir(self) -> str:
        """A local folder for files being built before ``publish``."""

    def probe(self) -> None:
        """Write and read back a small object outside ``packs/`` (readiness); raises when that fails."""


class LocalObjects:
    """A folder on local disk; the fast path (pread on cached descriptors)."""

    def __init__(self, root: str, *, writable: bool = True) -> None:
        self.root = os.path.abspath(root)
        self.url = "file://" + self.root
        if writable:  # a reader alone (the CLI's read-only path) creates nothing
            os.makedirs(os.path.join(self.root, ".spool"), exist_ok=True)
        # Open packs, shared by every thread of the process (request threads, the read-ahead pool).
        # A descriptor is closed only when no read holds it: closing one under a pread would fail that
        # read, or let the number be reused for another file and hand it other bytes.
        self._fds: dict[str, _OpenFile] = {}
        self._fds_lock = threading.Lock()

    def _path(self, key: str) -> str:
        return os.path.join(self.root, key)

    def spool_dir(self) -> str:
        return os.path.join(self.root, ".spool")

    def publish(self, key: str, local_path: str) -> None:
        dest = self._path(key)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.replace(local_path, dest)

    def put_bytes(self, key: str, data: bytes) -> None:
        tmp = os.path.join(self.spool_dir(), uuid.uuid4().hex)
        with open(tmp, "wb") as fh:
            fh.write(data)
        self.publish(key, tmp)

    def _acquire(self, key: str) -> _OpenFile:
        with self._fds_lock:
            held = self._fds.get(key)
            if held is not None:
                held.users += 1
                return held
        try:
            fd = os.open(self._path(key), os.O_RDONLY)
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"object {key} is missing from {self.url}") from exc
        with self._fds_lock:
            held = self._fds.get(key)
            if held is not None:  # another thread opened it meanwhile: ours is spare
                held.users += 1
                os.close(fd)
                return held
            if len(self._fds) >= _MAX_OPEN:
                for name, idle in [(k, f) for k, f in self._fds.items() if f.users == 0]:
                    del self._fds[name]
                    os.close(idle.fd)
            held = self._fds[key] = _OpenFile(fd)
            return held

    def _release(self, held: _OpenFile) -> None:
        with self._fds_lock:
            held.users -= 1
            if held.users == 0 and held.retired:
                os.close(held.fd)

    def _retire(self, held: _OpenFile) -> None:
        """Out of the cache (lock held): closed now if idle, else by its last reader."""
        if held.users == 0:
            os.close(held.fd)
        else:
            held.retired = True

    def read_range(self, key: str, start: int, length: int) -> bytes:
        held = self._acquire(key)
        try:
            data = os.pread(held.fd, length, start)
        finally:
            self._release(held)
        if len(data) != length:
            raise ObjectNotFound(f"object {key} is shorter than expected ({start}+{length})")
        return data

    def will_read(self, key: str, start: int, length: int) -> None:
        """Hint that ``length`` bytes from ``start`` will be read soon: the kernel starts reading them now."""
        held = self._acquire(key)
        try:
            os.posix_fadvise(held.fd, start, length, os.POSIX_FADV_WILLNEED)
        finally:
            self._release(held)

    def size(self, key: str) -> int:
        try:
            return os.stat(self._path(key)).st_size
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"object {key} is missing from {self.url}") from exc

    def delete(self, key: str) -> None:
        with self._fds_lock:
            held = self._fds.pop(key, None)
            if held is not None:
                self._retire(held)
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._path(key))

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        base = self._path(prefix)
        if not os.path.isdir(base):
            return
        for dirpath, _, files in os.walk(base):
            for name in files:
                full = os.path.join(dirpath, name)
                yield os.path.relpath(full, self.root), os.stat(full).st_size

    def probe(self) -> None:
        self.put_bytes(_PROBE_KEY, b"ok")
        if self.read_range(_PROBE_KEY, 0, 2) != b"ok":
            raise ServiceUnavailable(f"object store {self.url} returned other bytes than it was given")

    def _close_all(self) -> None:
        with self._fds_lock:
            for held in self._fds.values():
                self._retire(held)
            self._fds.clear()

    def close(self) -> None:
        self._close_all()


_MAX_OPEN = 256  # packs kept open per store


class _OpenFile:
    """An open pack and how many reads hold it right now."""

    __slots__ = ("fd", "retired", "users")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.users = 1
        self.retired = False


class FsspecObjects:
    """Any fsspec filesystem (S3, GCS, …); files are built in a local spool."""

    def __init__(self, url: str, **storage_options: Any) -> None:
        import fsspec  # here, not at the top: a local store (every CLI start) never needs it

        self.url = url.rstrip("/")
        self.fs, self.base = fsspec.core.url_to_fs(self.url, **storage_options)
        self._spool = os.path.join(
            os.environ.get("DATUMFLOW_SPOOL", os.path.join(os.path.expanduser("~"), ".cache")),
            "datumflow-spool",
        )
        os.makedirs(self._spool, exist_ok=True)
        try:
            self.fs.makedirs(self.base, exist_ok=True)
        except Exception as exc:  # foreign errors vary by backend
            raise ServiceUnavailable(f"cannot reach object store {url}: {exc}") from exc

    def _path(self, key: str) -> str:
        return f"{self.base}/{key}"

    def spool_dir(self) -> str:
        return self._spool

    def publish(self, key: str, local_path: str) -> None:
        try:
            self.fs.put_file(local_path, self._path(key))
        finally:
            os.remove(local_path)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(key), data)

    def read_range(self, key: str, start: int, length: int) -> bytes:
        try:
            data: bytes = self.fs.cat_file(self._path(key), start=start, end=start + length)
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"object {key} is missing from {self.url}") from exc
        if len(data) != length:
            raise ObjectNotFound(f"object {key} is shorter than expected ({start}+{length})")
        return data

    def size(self, key: str) -> int:
        try:
            return int(self.fs.info(self._path(key))["size"])
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"object {key} is missing from {self.url}") from exc

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(key))

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        try:
            found = self.fs.find(self._path(prefix), detail=True)
        except FileNotFoundError:
            return
        skip = len(self.base) + 1
        for path, info in found.items():
            yield path[skip:], int(info.get("size", 0))

    def close(self) -> None:
        pass

    def probe(self) -> None:
        self.put_bytes(_PROBE_KEY, b"ok")
        if self.read_range(_PROBE_KEY, 0, 2) != b"ok":
            raise ServiceUnavailable(f"object store {self.url} returned other bytes than it was given")


def open_object_store(url: str, **storage_options: Any) -> LocalObjects | FsspecObjects:
    """``/path`` or ``file:///path`` is a local folder; anything else goes through fsspec.

    S3-compatible endpoints take their address from fsspec's usual
    configuration, e.g. ``FSSPEC_S3_ENDPOINT_URL``.
    """
    if url.startswith("file://"):
        return LocalObjects(url[len("file://"):])
    if "://" not in url:
        return LocalObjects(url)
    return FsspecObjects(url, **storage_options)
