"""The files of a streamed tar upload, checked member by member.

Refused with :class:`InvalidArgument` (400), before the store writes
anything the member names: an absolute name (it would escape ``?path=``),
a NUL inside a name (tar's fixed fields end at the first NUL, which would
silently cut ``evil\\0.txt`` to ``evil``), a member that is neither a
regular file nor a folder, and a stream that ends early or is not a tar
(the member being read raises, so the store fails the write).
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Iterator
from typing import IO, Any, BinaryIO, Self, cast

from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.names import TAR_DELETE_RECORD

__all__ = ["tar_members"]

_NAME_FIELD = slice(0, 100)
_PREFIX_FIELD = slice(345, 500)  # ustar only


class _StrictTarInfo(tarfile.TarInfo):
    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        fields = [buf[_NAME_FIELD]]
        if buf[257:263] == b"ustar\x00":
            fields.append(buf[_PREFIX_FIELD])
        for field in fields:
            head, _, rest = field.partition(b"\x00")
            if rest.strip(b"\x00"):
                shown = head + b"<NUL>" + rest.rstrip(bytes(1))
                raise InvalidArgument(f"tar member name {shown!r} contains a NUL byte")
        return super().frombuf(buf, encoding, errors)


class _Member(io.RawIOBase):
    """A member's bytes; a stream that ends inside them is an InvalidArgument, not an internal error."""

    def __init__(self, name: str, raw: IO[bytes]) -> None:
        self.name = name
        self.raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self.raw.read(len(buffer))
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise InvalidArgument(f"the tar stream ended inside member {self.name!r}: {exc}") from exc
        buffer[: len(data)] = data
        return len(data)


def tar_members(body: IO[bytes], dest: str) -> Iterator[tuple[str, BinaryIO | None]]:
    """(path under ``dest``, file) for each regular file of a streamed tar; each is read before the next.

    A member carrying the PAX record ``TAR_DELETE_RECORD`` (and no content) removes its path: (path, None).
    """
    try:
        with tarfile.open(fileobj=body, mode="r|*", tarinfo=_StrictTarInfo) as tar:
            for member in tar:
                name = member.name
                if "\x00" in name:
                    raise InvalidArgument(f"tar member name {name!r} contains a NUL byte")
                if name.startswith("/"):
                    raise InvalidArgument(f"tar member {name!r} has an absolute name; use names relative to ?path=")
                if member.isdir():
                    continue
                if not member.isfile():
                    raise InvalidArgument(f"tar member {name!r} is not a regular file")
                if member.pax_headers.get(TAR_DELETE_RECORD) == "1":  # a removal, in the same change
                    if member.size:
                        raise InvalidArgument(f"tar member {name!r} removes its path but has content")
                    yield (posixpath.join(dest, name) if dest else name), None
                    continue
                handle = tar.extractfile(member)
                assert handle is not None
                reader = cast(BinaryIO, io.BufferedReader(_Member(name, handle)))
                yield (posixpath.join(dest, name) if dest else name), reader
    except tarfile.TarError as exc:
        raise InvalidArgument(f"the body is not a valid tar stream: {exc}") from exc
