"""Object operations: Get/Head/Put/Copy/Delete(s) and the multipart calls, on a store.

A key is stored as the file path it spells, byte for byte, or refused: a key
that is not a canonical datumflow path (an empty, ``.`` or ``..`` segment, a
leading ``/``, a ``\\``, a NUL) would otherwise alias another key, so a write
of it is ``400 InvalidArgument`` and a read ``404 NoSuchKey``. A zero-byte
``dir/`` is a folder marker: accepted, nothing stored (folders are implied by
the keys under them); ``dir/`` with a body is refused.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.model.core import Commit, FileInfo
from datumflow.storage_service.names import normalize_path
from datumflow.storage_service.service.auth import Principal
from datumflow.storage_service.service.bodies import _with_body, parse_range
from datumflow.storage_service.service.s3.buckets import Bucket, open_bucket, parse_bucket
from datumflow.storage_service.service.s3.checksums import checked_body
from datumflow.storage_service.service.s3.errors import S3Error
from datumflow.storage_service.service.s3.headers import (
    check_copy_source,
    check_read,
    check_write,
    etag_of,
    metadata_from,
    modified_of,
    object_headers,
    refuse_unsupported,
    stamped,
)
from datumflow.storage_service.service.s3.multipart import Multipart, Upload
from datumflow.storage_service.service.s3.xml import element, iso_date, leaves, parse_complete, parse_delete
from datumflow.storage_service.service.s3.xml import xml_response as xml
from datumflow.storage_service.store.listing import file_info
from datumflow.storage_service.store.store import Store
from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

__all__ = ["MAX_KEY_BYTES", "Call", "stored_key"]

MAX_KEY_BYTES = 1024
EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"
_SYSTEM_META = ("etag", "modified")


@dataclass(frozen=True)
class Call:
    """One object request: who, on which bucket and key, with which query."""

    store: Store
    uploads: Multipart
    who: Principal
    request: Request
    bucket: Bucket
    key: str
    query: dict[str, str]

    @property
    def headers(self) -> Any:
        return self.request.headers


# -- keys -------------------------------------------------------------------------------------


def stored_key(key: str) -> str | None:
    """The file path of an S3 key when it is stored as given; None when no object can have it."""
    if len(key.encode()) > MAX_KEY_BYTES:
        return None
    try:
        path = normalize_path(key)
    except InvalidArgument:
        return None
    return path if path == key else None


def writable_key(key: str) -> str:
    if len(key.encode()) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", f"keys are limited to {MAX_KEY_BYTES} bytes", 400, key)
    path = stored_key(key)
    if path is None:
        raise S3Error("InvalidArgument", f"key {key!r} cannot be stored as given: keys with an empty, '.' or '..' "
                      "segment, a leading '/', a '\\' or a NUL are refused (see docs/s3.md)", 400, key)
    return path


# -- reading --------------------------------------------------------------------------------


def _version(store: Store, who: Principal, b: Bucket, key: str, version_id: str | None) -> tuple[FileInfo, Commit]:
    if version_id:  # a version is a commit of the bucket's branch
        if b.commit not in (None, version_id):
            raise S3Error("NoSuchVersion", f"version {version_id} is not this bucket's commit", 404, key)
        b = Bucket(b.repo, b.branch, version_id)
    commit = open_bucket(store, who, b)
    path = stored_key(key)
    if commit is None or path is None:
        raise S3Error("NoSuchKey", f"no object {key!r} in {b.name}", 404, key)
    entry = store.tree.get(commit.root, path)
    if entry is None:
        raise S3Error("NoSuchKey", f"no object {key!r} in {b.name}", 404, key)
    return file_info(path, entry), commit


def get_object(call: Call, head: bool) -> Response:
    info, commit = _version(call.store, call.who, call.bucket, call.key, call.query.get("versionId"))
    headers = object_headers(info, commit, call.query)
    if not check_read(call.headers, etag_of(info), modified_of(info, commit)):
        keep = ("ETag", "Last-Modified", "x-amz-version-id")
        return Response(status_code=304, headers={k: v for k, v in headers.items() if k in keep})
    media = None  # Content-Type is in the headers as stored (no charset added)
    wanted = call.headers.get("range")
    span = parse_range(wanted, info.size) if wanted else None
    if wanted and span is None:
        raise S3Error("InvalidRange", f"range {wanted} is outside the object ({info.size} bytes)", 416, call.key)
    if head:
        headers["Content-Length"] = str(info.size)
        return Response(status_code=200, headers=headers, media_type=media)
    if span is not None:
        start, length = span
        data = b"".join(call.store.read_content(info, start, length))
        headers["Content-Range"] = f"bytes {start}-{start + len(data) - 1}/{info.size}"
        return Response(data, status_code=206, headers=headers, media_type=media)
    headers["Content-Length"] = str(info.size)
    if info.size <= 64 * 1024:  # small objects in one piece: no streaming machinery per request
        return Response(b"".join(call.store.read_content(info)), headers=headers, media_type=media)
    return StreamingResponse(call.store.read_content(info), headers=headers, media_type=media)


# -- writing -------------------------------------------------------------------------------


def _declared_empty(headers: Any) -> bool:
    size = headers.get("x-amz-decoded-content-length") or headers.get("content-length") or "0"
    return size.strip() == "0" and "chunked" not in headers.get("transfer-encoding", "")


async def put_object(call: Call) -> Response:
    refuse_unsupported(call.headers)
    meta = metadata_from(call.headers)
    precondition = check_write(call.headers, call.key)
    if call.key.endswith("/") and stored_key(call.key[:-1]) is not None:
        if not _declared_empty(call.headers):
            raise S3Error("InvalidArgument", f"{call.key!r} ends with '/': a folder marker may not have a body "
                          "(folders are implied by the keys under them)", 400, call.key)
        # a folder marker: nothing to store
        return Response(status_code=200, headers={"ETag": f'"{EMPTY_MD5}"'})
    path = writable_key(call.key)
    await run_in_threadpool(open_bucket, call.store, call.who, call.bucket, "writer")
    b = call.bucket

    def write(body: io.BufferedReader) -> tuple[Commit, FileInfo]:
        checked = checked_body(body, call.headers)
        return call.store.write_file(b.repo, b.branch, path, io.BufferedReader(checked, 1024 * 1024),
                                     meta=lambda: stamped(meta, checked.etag), precondition=precondition)

    commit, info = await _with_body(call.request, write)
    return Response(status_code=200, headers={"ETag": f'"{etag_of(info)}"', "x-amz-version-id": commit.id})


def _copy_source(header: str) -> tuple[Bucket, str, str | None]:
    source, _, query = header.partition("?")
    src_bucket, sep, src_key = unquote(source).lstrip("/").partition("/")
    if not sep or not src_key:
        raise S3Error("InvalidArgument", "x-amz-copy-source must be BUCKET/KEY", 400)
    version = None
    for item in query.split("&"):
        name, _, value = item.partition("=")
        if name == "versionId" and value not in ("", "null"):
            version = unquote(value)
    return parse_bucket(src_bucket), src_key, version


def copy_object(call: Call) -> Response:
    refuse_unsupported(call.headers)
    src, src_key, version = _copy_source(call.headers["x-amz-copy-source"])
    info, src_commit = _version(call.store, call.who, src, src_key, version)
    etag = etag_of(info)
    check_copy_source(call.headers, etag, modified_of(info, src_commit))
    directive = call.headers.get("x-amz-metadata-directive", "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "x-amz-metadata-directive must be COPY or REPLACE", 400)
    path = writable_key(call.key)
    b = call.bucket
    if (src.repo, src.ref, info.path) == (b.repo, b.ref, path) and directive == "COPY":
        raise S3Error("InvalidRequest", "This copy request is illegal because it is trying to copy an object to "
                      "itself without changing the object's metadata", 400, call.key)
    open_bucket(call.store, call.who, b, "writer")
    kept = {k: v for k, v in info.meta.items() if k not in _SYSTEM_META}
    meta = stamped(metadata_from(call.headers) if directive == "REPLACE" else kept, etag)
    commit, copied = call.store.copy_version(info, b.repo, b.branch, path, meta=meta,
                                             precondition=check_write(call.headers, call.key))
    result = element("CopyObjectResult", *leaves(ETag=f'"{etag}"', LastModified=iso_date(modified_of(copied, commit))))
    return xml(result, headers={"x-amz-version-id": commit.id, "x-amz-copy-source-version-id": src_commit.id})


def delete_object(call: Call) -> Response:
    open_bucket(call.store, call.who, call.bucket, "writer")
    path = stored_key(call.key)
    commit = call.store.remove_files(call.bucket.repo, call.bucket.branch, [path]) if path else None
    return Response(status_code=204, headers={"x-amz-version-id": commit.id} if commit else {})


def delete_objects(call: Call, body: bytes) -> Response:
    open_bucket(call.store, call.who, call.bucket, "writer")
    keys, quiet = parse_delete(body)
    paths = [p for p in (stored_key(k) for k in keys) if p is not None]
    if paths:
        call.store.remove_files(call.bucket.repo, call.bucket.branch, paths)  # one commit, or none
    done = [] if quiet else [element("Deleted", *leaves(Key=k)) for k in keys]
    return xml(element("DeleteResult", *done))


# -- multipart ---------------------------------------------------------------------------------


def create_upload(call: Call) -> Response:
    refuse_unsupported(call.headers)
    open_bucket(call.store, call.who, call.bucket, "writer")
    upload = call.uploads.create(call.bucket.repo, call.bucket.branch, writable_key(call.key),
                                 metadata_from(call.headers))
    ids = leaves(Bucket=call.bucket.name, Key=call.key, UploadId=upload.id)
    return xml(element("InitiateMultipartUploadResult", *ids))


def _upload(call: Call) -> Upload:
    return call.uploads.get(call.query["uploadId"], call.bucket.repo, call.bucket.branch, call.key)


async def upload_part(call: Call) -> Response:
    try:
        number = int(call.query.get("partNumber", ""))
    except ValueError as exc:
        raise S3Error("InvalidArgument", "partNumber must be an integer", 400, call.key) from exc
    await run_in_threadpool(open_bucket, call.store, call.who, call.bucket, "writer")
    upload = await run_in_threadpool(_upload, call)

    def write(body: io.BufferedReader) -> Any:
        return call.uploads.put_part(upload, number, io.BufferedReader(checked_body(body, call.headers)))

    part = await _with_body(call.request, write)
    return Response(status_code=200, headers={"ETag": f'"{part.etag}"'})


def complete_upload(call: Call, body: bytes) -> Response:
    open_bucket(call.store, call.who, call.bucket, "writer")
    wanted = parse_complete(body)
    upload_id = call.query["uploadId"]
    done = call.uploads.completed(upload_id, wanted)  # a repeated Complete answers the same
    if done is None:
        done = call.uploads.complete(_upload(call), wanted, stamped)
    b = call.bucket
    result = element("CompleteMultipartUploadResult",
                     *leaves(Location=f"/{b.name}/{call.key}", Bucket=b.name, Key=call.key, ETag=f'"{done.etag}"'))
    return xml(result, headers={"x-amz-version-id": done.commit})


def abort_upload(call: Call) -> Response:
    open_bucket(call.store, call.who, call.bucket, "writer")
    call.uploads.abort(_upload(call))
    return Response(status_code=204)


def list_parts(call: Call) -> Response:
    open_bucket(call.store, call.who, call.bucket)
    upload = _upload(call)
    rows = [
        element("Part", *leaves(PartNumber=p.number, LastModified=iso_date(p.created), ETag=f'"{p.etag}"',
                                Size=p.size))
        for p in call.uploads.list_parts(upload)
    ]
    head = leaves(Bucket=call.bucket.name, Key=call.key, UploadId=upload.id, IsTruncated="false",
                  StorageClass="STANDARD")
    return xml(element("ListPartsResult", *head, *rows))
