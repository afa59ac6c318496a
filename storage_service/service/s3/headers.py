"""Object metadata and conditional requests: S3 headers <-> a file version's metadata.

A version's metadata (``FileInfo.meta``) holds what S3 returns about an
object: ``etag`` (MD5 of a single-part body, ``md5-of-md5s-N`` of a
multipart one), ``modified`` (the write time, seconds since the epoch), the
system headers (Content-Type, Content-Encoding, Cache-Control,
Content-Disposition, Content-Language, Expires) and ``x-amz-meta-*``. A file
written outside S3 has none of it: its ETag is its content hash and its
Last-Modified the commit's time.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

from datumflow.storage_service.model.core import Commit, FileInfo
from datumflow.storage_service.service.s3.errors import S3Error
from datumflow.storage_service.service.s3.xml import http_date
from datumflow.storage_service.store.files import Precondition

__all__ = [
    "check_copy_source",
    "check_read",
    "check_write",
    "etag_of",
    "metadata_from",
    "modified_of",
    "object_headers",
]

SYSTEM_HEADERS = ("content-type", "content-encoding", "cache-control", "content-disposition",
                  "content-language", "expires")
USER_PREFIX = "x-amz-meta-"
MAX_USER_META = 2048  # bytes of x-amz-meta-* names and values, as S3
_OVERRIDES = {f"response-{h}": h for h in SYSTEM_HEADERS}
_ACCEPTED_ACLS = ("private", "bucket-owner-full-control")
_REFUSED = {
    "x-amz-tagging": "object tagging",
    "x-amz-server-side-encryption": "server-side encryption",
    "x-amz-server-side-encryption-customer-algorithm": "server-side encryption",
    "x-amz-object-lock-mode": "object lock",
    "x-amz-object-lock-legal-hold": "object lock",
    "x-amz-grant-read": "ACL grants",
    "x-amz-grant-write": "ACL grants",
    "x-amz-grant-full-control": "ACL grants",
    "x-amz-website-redirect-location": "website redirects",
}


def refuse_unsupported(headers: Mapping[str, str]) -> None:
    """A write asking for a feature the gateway lacks is refused, not silently stored without it."""
    for name, feature in _REFUSED.items():
        if name in headers:
            raise S3Error("NotImplemented", f"{feature} ({name}) is not implemented by this gateway", 501)
    acl = headers.get("x-amz-acl")
    if acl is not None and acl not in _ACCEPTED_ACLS:
        raise S3Error("NotImplemented", f"canned ACL {acl!r} is not implemented (objects are private)", 501)


def metadata_from(headers: Mapping[str, str]) -> dict[str, str]:
    """The metadata a PUT, copy (REPLACE) or CreateMultipartUpload sends."""
    out: dict[str, str] = {}
    for name in SYSTEM_HEADERS:
        value = headers.get(name)
        if name == "content-encoding" and value and "aws-chunked" in value:
            value = ", ".join(v.strip() for v in value.split(",") if v.strip() != "aws-chunked")
        if value:
            out[name] = value
    user = {k.lower(): v for k, v in headers.items() if k.lower().startswith(USER_PREFIX)}
    if sum(len(k) - len(USER_PREFIX) + len(v.encode()) for k, v in user.items()) > MAX_USER_META:
        raise S3Error("MetadataTooLarge", f"x-amz-meta-* headers are limited to {MAX_USER_META} bytes", 400)
    out.update(user)
    return out


def stamped(meta: Mapping[str, str], etag: str) -> dict[str, str]:
    """``meta`` with the version's ETag and write time."""
    return {**meta, "etag": etag, "modified": f"{time.time():.6f}"}


def etag_of(info: FileInfo) -> str:
    return info.meta.get("etag") or info.hash or ""


def modified_of(info: FileInfo, commit: Commit) -> float:
    try:
        return float(info.meta["modified"])
    except (KeyError, ValueError):
        return float(commit.finished or commit.started)


def object_headers(info: FileInfo, commit: Commit, query: Mapping[str, str]) -> dict[str, str]:
    """The headers of GetObject/HeadObject: ETag, Last-Modified, stored metadata, response-* overrides."""
    out = {
        "ETag": f'"{etag_of(info)}"', "Last-Modified": http_date(modified_of(info, commit)),
        "Accept-Ranges": "bytes", "x-amz-version-id": commit.id,
        "Content-Type": "application/octet-stream",
    }
    for name, value in info.meta.items():
        if name in SYSTEM_HEADERS or name.startswith(USER_PREFIX):
            out[_title(name)] = value
    for param, name in _OVERRIDES.items():
        if param in query:
            out[_title(name)] = query[param]
    return out


def _title(name: str) -> str:
    return name if name.startswith("x-amz-") else "-".join(p.capitalize() for p in name.split("-"))


# -- conditional requests -------------------------------------------------------------------


def _etags(value: str) -> list[str]:
    return [v.strip().removeprefix("W/").strip('"') for v in value.split(",") if v.strip()]


def _matches(value: str, etag: str | None) -> bool:
    if etag is None:
        return False
    wanted = _etags(value)
    return "*" in wanted or etag in wanted


def _date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None  # S3 ignores a date it cannot read


def check_read(headers: Mapping[str, str], etag: str, modified: float) -> bool:
    """GET/HEAD preconditions: raises 412 PreconditionFailed; False means 304 Not Modified."""
    seconds = int(modified)
    if_match, if_none = headers.get("if-match"), headers.get("if-none-match")
    if if_match is not None:
        if not _matches(if_match, etag):
            raise S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", 412)
    else:
        since = _date(headers.get("if-unmodified-since"))
        if since is not None and seconds > since:
            raise S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", 412)
    if if_none is not None:
        return not _matches(if_none, etag)
    since = _date(headers.get("if-modified-since"))
    return not (since is not None and seconds <= since)


def check_copy_source(headers: Mapping[str, str], etag: str, modified: float) -> None:
    """x-amz-copy-source-if-*: any that fails is 412, as S3."""
    seconds = int(modified)
    failed = False
    if_match = headers.get("x-amz-copy-source-if-match")
    if_none = headers.get("x-amz-copy-source-if-none-match")
    unmodified = _date(headers.get("x-amz-copy-source-if-unmodified-since"))
    modified_since = _date(headers.get("x-amz-copy-source-if-modified-since"))
    if if_match is not None:
        failed = not _matches(if_match, etag)
    elif unmodified is not None:
        failed = seconds > unmodified
    if if_none is not None:
        failed = failed or _matches(if_none, etag)
    elif modified_since is not None:
        failed = failed or seconds <= modified_since
    if failed:
        raise S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", 412)


def check_write(headers: Mapping[str, str], key: str) -> Precondition | None:
    """The precondition of a PUT (If-None-Match: *, If-Match), for the store to check atomically; or None."""
    if_none, if_match = headers.get("if-none-match"), headers.get("if-match")
    if if_none is None and if_match is None:
        return None

    def precondition(current: FileInfo | None) -> None:
        if if_none is not None and current is not None and _matches(if_none, etag_of(current)):
            raise S3Error("PreconditionFailed", f"{key} exists with that ETag (If-None-Match)", 412, key)
        if if_match is not None:
            if current is None:
                raise S3Error("NoSuchKey", f"{key} does not exist (If-Match)", 404, key)
            if not _matches(if_match, etag_of(current)):
                raise S3Error("PreconditionFailed", f"{key} has another ETag (If-Match)", 412, key)

    return precondition
