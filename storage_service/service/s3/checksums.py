"""Upload bodies checked as they stream: MD5 (the ETag), Content-MD5, x-amz-content-sha256, x-amz-checksum-*.

:class:`CheckedBody` reads the payload through every digest a client asked
for and compares them when the payload ends: a mismatch raises (``BadDigest``,
``XAmzContentSHA256Mismatch``, …) inside the store's write, so the write is
refused and nothing lands. ``aws-chunked`` bodies (streaming signatures,
trailing checksums) are unwrapped first; a trailing ``x-amz-checksum-*`` is
checked the same way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import zlib
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

from datumflow.storage_service.service.s3.errors import S3Error

__all__ = ["CheckedBody", "checked_body"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# algorithm -> (a fresh hasher); CRC32 as a 4-byte big-endian digest, as S3 encodes it.
_ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
_SUPPORTED = ("crc32", "sha1", "sha256")


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: Any) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


def _hasher(algorithm: str) -> Any:
    if algorithm == "crc32":
        return _Crc32()
    return hashlib.new(algorithm)


class CheckedBody(io.RawIOBase):
    """A payload read through its digests; ``expected`` is checked at the end (raises S3Error)."""

    def __init__(self, raw: Any, *, content_md5: str | None, sha256: str | None,
                 checksums: dict[str, str], trailer: str | None = None,
                 trailers: Callable[[], Mapping[str, str]] | None = None) -> None:
        self.raw = raw
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.content_md5 = content_md5
        self.sha256 = hashlib.sha256() if sha256 else None
        self.sha256_expected = sha256
        self.checksums = {a: (_hasher(a), v) for a, v in checksums.items()}
        self.trailer = trailer  # an x-amz-checksum-* sent after the payload
        self.trailer_hasher = _hasher(trailer[len("x-amz-checksum-"):]) if trailer else None
        self.trailers = trailers
        self.size = 0
        self.checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n: int = self.raw.readinto(buffer)
        if n:
            piece = memoryview(buffer)[:n]
            self.size += n
            self.md5.update(piece)
            for hasher, _ in self.checksums.values():
                hasher.update(piece)
            if self.sha256 is not None:
                self.sha256.update(piece)
            if self.trailer_hasher is not None:
                self.trailer_hasher.update(piece)
        elif not self.checked:
            self.checked = True
            self._verify()
        return n

    @property
    def etag(self) -> str:
        return self.md5.hexdigest()

    def _verify(self) -> None:
        if self.content_md5 is not None and _b64(self.md5.digest()) != self.content_md5:
            raise S3Error("BadDigest", "the Content-MD5 you specified did not match what was received", 400)
        if self.sha256 is not None and self.sha256.hexdigest() != self.sha256_expected:
            raise S3Error("XAmzContentSHA256Mismatch",
                          "the provided x-amz-content-sha256 header does not match what was computed", 400)
        for algorithm, (hasher, wanted) in self.checksums.items():
            if _b64(hasher.digest()) != wanted:
                raise S3Error("BadDigest", f"the {algorithm.upper()} you specified did not match the "
                              "calculated checksum", 400)
        if self.trailer is not None and self.trailer_hasher is not None:
            sent = (self.trailers() if self.trailers else {}).get(self.trailer)
            if sent is None:
                raise S3Error("MalformedTrailerError", f"the trailing {self.trailer} was not sent", 400)
            if _b64(self.trailer_hasher.digest()) != sent:
                raise S3Error("BadDigest", f"the trailing {self.trailer} did not match the calculated checksum",
                              400)


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def checked_body(body: BinaryIO, headers: Mapping[str, str]) -> CheckedBody:
    """The payload of an upload (``aws-chunked`` unwrapped), with every digest the headers promise."""
    encoding = headers.get("content-encoding", "")
    declared = headers.get("x-amz-content-sha256", "")
    chunked = "aws-chunked" in encoding or declared.startswith("STREAMING-")
    raw: Any = AwsChunked(body) if chunked else body
    trailer = headers.get("x-amz-trailer", "").strip().lower() or None
    if trailer is not None and not chunked:
        raise S3Error("InvalidRequest", "x-amz-trailer needs an aws-chunked body", 400)
    if trailer is not None and trailer[len("x-amz-checksum-"):] not in _SUPPORTED:
        raise S3Error("InvalidRequest", f"trailer {trailer} is not supported: send CRC32, SHA1 or SHA256", 400)
    return CheckedBody(
        raw,
        content_md5=_content_md5(headers.get("content-md5")),
        sha256=declared if _HEX64.match(declared) else None,
        checksums=_checksums(headers),
        trailer=trailer,
        trailers=raw.trailers.copy if chunked else None,
    )


def _content_md5(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        if len(base64.b64decode(value, validate=True)) != 16:
            raise ValueError("not 16 bytes")
    except (ValueError, binascii.Error) as exc:
        raise S3Error("InvalidDigest", "the Content-MD5 you specified is not valid", 400) from exc
    return value.strip()


def _checksums(headers: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for algorithm in _ALGORITHMS:
        value = headers.get(f"x-amz-checksum-{algorithm}")
        if value is None:
            continue
        if algorithm not in _SUPPORTED:
            raise S3Error("InvalidRequest", f"checksum {algorithm.upper()} is not supported by this gateway: "
                          "send CRC32, SHA1 or SHA256", 400)
        out[algorithm] = value.strip()
    return out


class AwsChunked(io.RawIOBase):
    """``<hex size>[;chunk-signature=…]\\r\\n<bytes>\\r\\n … 0\\r\\n<trailers>\\r\\n\\r\\n`` -> the bytes."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.left = 0
        self.done = False
        self.trailers: dict[str, str] = {}

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.done:
            return 0
        if self.left == 0:
            line = self.raw.readline(4096)
            try:
                self.left = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise S3Error("IncompleteBody", "malformed aws-chunked body", 400) from exc
            if self.left == 0:
                self.done = True
                self._read_trailers()
                return 0
        n = self.raw.readinto(memoryview(buffer)[: min(len(buffer), self.left)])  # type: ignore[attr-defined]
        if not n:
            raise S3Error("IncompleteBody", "the aws-chunked body ended early", 400)
        self.left -= n
        if self.left == 0:
            self.raw.readline(16)  # the CRLF after each chunk
        return int(n)

    def _read_trailers(self) -> None:
        for _ in range(64):
            line = self.raw.readline(8192).strip()
            if not line:
                return
            name, sep, value = line.decode("latin-1").partition(":")
            if sep:
                self.trailers[name.strip().lower()] = value.strip()
