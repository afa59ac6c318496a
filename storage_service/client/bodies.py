"""Request bodies for uploads: byte strings, open files and local paths, streamed in pieces or as one tar."""

from __future__ import annotations

import os
import tarfile
import time
from collections.abc import Callable, Iterator
from typing import IO, Any
from urllib.parse import quote

from datumflow.storage_service.errors import InvalidArgument, PathNotFound
from datumflow.storage_service.names import TAR_DELETE_RECORD

PIECE = 1024 * 1024
_PIECE = PIECE

Source = Any  # bytes | bytearray | memoryview | BinaryIO | os.PathLike[str] | str (a local path)


def _q(segment: str) -> str:
    return quote(str(segment), safe="")


def _body_of(source: Source) -> Callable[[], Any]:
    """A factory of the request body (called again on a retry)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return lambda: data
    if isinstance(source, (str, os.PathLike)):
        local = os.fspath(source)
        if not os.path.isfile(local):
            raise PathNotFound(f"local path {local} does not exist")
        return lambda: _read_pieces(open(local, "rb"), close=True)
    if hasattr(source, "read"):
        start = source.tell() if _seekable(source) else None

        def rewind() -> Iterator[bytes]:
            if start is not None:
                source.seek(start)
            return _read_pieces(source, close=False)

        return rewind
    raise InvalidArgument(f"cannot store a {type(source).__name__}: give bytes, a file object or a path")


def _seekable(fh: Any) -> bool:
    try:
        return bool(fh.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _read_pieces(fh: IO[bytes], *, close: bool) -> Iterator[bytes]:
    try:
        while piece := fh.read(_PIECE):
            yield piece
    finally:
        if close:
            fh.close()


def _members(dest: str, source: Source) -> Iterator[tuple[str, int, Callable[[], Iterator[bytes]] | None]]:
    """(path in the commit, size, body factory) for each file a source stands for."""
    dest = dest.strip("/")
    if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
        folder = os.fspath(source)
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            rel = os.path.relpath(dirpath, folder)
            for name in sorted(filenames):
                local = os.path.join(dirpath, name)
                if os.path.isfile(local):
                    path = "/".join(p for p in (dest, "" if rel == "." else rel.replace(os.sep, "/"), name) if p)
                    yield path, os.path.getsize(local), _body_of(local)
        return
    if not dest:
        raise InvalidArgument("a destination file path is required")
    if source is None:  # a removal: a member flagged TAR_DELETE_RECORD, without content
        yield dest, 0, None
    elif isinstance(source, (bytes, bytearray, memoryview)):
        yield dest, len(source), _body_of(source)
    elif isinstance(source, (str, os.PathLike)):
        body = _body_of(source)
        yield dest, os.path.getsize(source), body
    elif hasattr(source, "read") and _seekable(source):
        here = source.tell()
        size = source.seek(0, os.SEEK_END) - here
        source.seek(here)
        yield dest, size, _body_of(source)
    elif hasattr(source, "read"):  # unknown length: a tar header needs it, so read it here
        data = source.read()
        yield dest, len(data), _body_of(data)
    else:
        raise InvalidArgument(f"cannot store a {type(source).__name__}: give bytes, a file object or a path")


def _tar_stream(
    members: list[tuple[str, int, Callable[[], Iterator[bytes]] | None]], progress: Any
) -> Iterator[bytes]:
    """A POSIX tar of the members, produced piece by piece (nothing is held whole).

    A member without a body is a removal of its path: an empty file carrying
    the PAX record ``TAR_DELETE_RECORD`` (the service's tar upload reads it so).
    """
    for path, size, body in members:
        info = tarfile.TarInfo(path)
        info.size = size
        info.mtime = int(time.time())
        if body is None:
            info.pax_headers = {TAR_DELETE_RECORD: "1"}
            yield info.tobuf(format=tarfile.PAX_FORMAT)
            continue
        yield info.tobuf(format=tarfile.PAX_FORMAT)
        sent = 0
        content = body()
        for piece in [content] if isinstance(content, bytes) else content:
            sent += len(piece)
            if sent > size:
                raise InvalidArgument(f"{path} grew while it was being sent")
            if progress is not None:
                progress(len(piece))
            yield piece
        if sent != size:
            raise InvalidArgument(f"{path} shrank while it was being sent ({sent} of {size} bytes)")
        if size % tarfile.BLOCKSIZE:
            yield b"\0" * (tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)
