"""An S3 gateway on the service: ``build_router(get_store, auth=...)``, mounted at ``/s3``.

Buckets name branches: ``branch.repo`` reads the branch head and takes
writes (each PutObject, CopyObject, DeleteObject(s) or completed multipart
upload is one commit, or lands in the branch's open commit);
``commit.branch.repo`` reads one commit and refuses writes (AccessDenied).
Addressing is path-style: ``http://host:port/s3/<bucket>/<key>``.

Requests are signed with AWS Signature V4 (:mod:`.s3_auth`); without auth
the service accepts any signature. Every error leaves as an S3 ``<Error>``
document (:mod:`.s3_errors`), never as the JSON of the rest of the API.
"""

from __future__ import annotations

import base64
import io
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import quote, unquote

from datumflow.storage_service.core.index import MAX_KEY
from datumflow.storage_service.errors import DatumflowError, InvalidArgument, Unauthenticated
from datumflow.storage_service.model.core import Commit, FileInfo
from datumflow.storage_service.names import check_branch_name, check_repo_name, is_commit_id, normalize_path
from datumflow.storage_service.service.auth import ANONYMOUS_ADMIN, Auth, Principal
from datumflow.storage_service.service.bodies import _with_body, parse_range
from datumflow.storage_service.service.s3.auth import parse_signature, raw_query_pairs, signature_matches
from datumflow.storage_service.service.s3.errors import S3Error, error_response, s3_error_for
from datumflow.storage_service.service.s3.multipart import Multipart, Upload
from datumflow.storage_service.service.s3.xml import (
    element,
    encode_key,
    http_date,
    iso_date,
    leaves,
    parse_complete,
    parse_delete,
    xml_response,
)
from datumflow.storage_service.store.files import file_info
from datumflow.storage_service.store.store import Store
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

__all__ = ["Bucket", "build_router", "parse_bucket"]

DEFAULT_MAX_KEYS = 1000
_METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE"]


# -- buckets ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    repo: str
    branch: str
    commit: str | None = None  # set: a read-only bucket pinned to one commit

    @property
    def ref(self) -> str:
        return self.commit or self.branch

    @property
    def name(self) -> str:
        return ".".join(p for p in (self.commit, self.branch, self.repo) if p)


def parse_bucket(name: str) -> Bucket:
    """``branch.repo`` or ``commit.branch.repo``; anything else is InvalidBucketName."""
    parts = name.split(".")
    try:
        if len(parts) == 2:
            return Bucket(check_repo_name(parts[1]), check_branch_name(parts[0]))
        if len(parts) == 3 and is_commit_id(parts[0]):
            return Bucket(check_repo_name(parts[2]), check_branch_name(parts[1]), parts[0])
    except InvalidArgument:
        pass
    raise S3Error("InvalidBucketName", f"bucket {name!r} is not BRANCH.REPO or COMMIT.BRANCH.REPO", 400, name)


# -- the router ---------------------------------------------------------------------------


def build_router(get_store: Callable[[], Store], *, auth: Auth | None = None) -> APIRouter:
    gateway = _Gateway(get_store, auth)
    router = APIRouter(include_in_schema=False)
    router.add_api_route("", gateway.service, methods=["GET"])
    router.add_api_route("/", gateway.service, methods=["GET"])
    router.add_api_route("/{bucket}", gateway.bucket, methods=_METHODS)
    router.add_api_route("/{bucket}/", gateway.bucket, methods=_METHODS)
    router.add_api_route("/{bucket}/{key:path}", gateway.object, methods=_METHODS)
    return router


class _Gateway:
    def __init__(self, get_store: Callable[[], Store], auth: Auth | None) -> None:
        self.get_store = get_store
        self.auth = auth
        self._multipart: Multipart | None = None

    @property
    def store(self) -> Store:
        return self.get_store()

    @property
    def multipart(self) -> Multipart:
        if self._multipart is None or self._multipart.store is not self.store:
            self._multipart = Multipart(self.store)
        return self._multipart

    # -- entry points: authenticate, dispatch, turn every error into S3 XML ----------

    async def service(self, request: Request) -> Response:
        return await self._guard(request, "/", lambda who: run_in_threadpool(self._list_buckets, who))

    async def bucket(self, request: Request, bucket: str) -> Response:
        q = _query(request)

        async def work(who: Principal) -> Response:
            b = parse_bucket(bucket)
            method = request.method
            if method == "POST" and "delete" in q:
                body = await request.body()
                return await run_in_threadpool(self._delete_objects, who, b, body)
            if method == "PUT":
                return await run_in_threadpool(self._create_bucket, who, b)
            if method == "DELETE":
                return await run_in_threadpool(self._delete_bucket, who, b)
            if method in ("GET", "HEAD"):
                return await run_in_threadpool(self._read_bucket, who, b, q, method == "HEAD")
            raise S3Error("NotImplemented", f"{method} on a bucket is not supported", 501, bucket)

        return await self._guard(request, bucket, work)

    async def object(self, request: Request, bucket: str, key: str) -> Response:
        q = _query(request)

        async def work(who: Principal) -> Response:
            b = parse_bucket(bucket)
            method = request.method
            if method in ("GET", "HEAD"):
                if "uploadId" in q:
                    return await run_in_threadpool(self._list_parts, who, b, key, q)
                return await run_in_threadpool(self._get_object, who, b, key, request, method == "HEAD")
            await run_in_threadpool(self._check_writable, who, b)
            if method == "PUT" and "uploadId" in q:
                return await self._upload_part(request, b, key, q)
            if method == "PUT" and "x-amz-copy-source" in request.headers:
                return await run_in_threadpool(self._copy_object, who, b, key, request.headers["x-amz-copy-source"])
            if method == "PUT":
                return await self._put_object(request, b, key)
            if method == "POST" and "uploads" in q:
                return await run_in_threadpool(self._create_upload, b, key)
            if method == "POST" and "uploadId" in q:
                body = await request.body()
                return await run_in_threadpool(self._complete_upload, b, key, q["uploadId"], body)
            if method == "DELETE" and "uploadId" in q:
                return await run_in_threadpool(self._abort_upload, b, key, q["uploadId"])
            if method == "DELETE":
                return await run_in_threadpool(self._delete_object, b, key)
            raise S3Error("NotImplemented", f"{method} on an object is not supported", 501, key)

        return await self._guard(request, f"{bucket}/{key}", work)

    async def _guard(
        self, request: Request, resource: str, work: Callable[[Principal], Awaitable[Response]]
    ) -> Response:
        request_id = uuid.uuid4().hex[:16].upper()
        try:
            who = await run_in_threadpool(self._authenticate, request)
            response = await work(who)
        except DatumflowError as exc:
            return error_response(s3_error_for(exc, resource), request_id)
        response.headers["x-amz-request-id"] = request_id
        return response

    def _authenticate(self, request: Request) -> Principal:
        query = raw_query_pairs(request.scope.get("query_string", b""))
        signed = parse_signature(request.headers, query)
        if self.auth is None:
            return ANONYMOUS_ADMIN
        if signed is None:
            raise S3Error("AccessDenied", "sign requests with a datumflow token as access key and secret", 403)
        try:
            who = self.auth.authenticate(signed.access_key)
        except Unauthenticated as exc:
            raise S3Error("InvalidAccessKeyId", "the access key id is not a token this service knows", 403) from exc
        path = request.scope.get("raw_path") or quote(request.url.path).encode()
        if not signature_matches(signed, signed.access_key, method=request.method, path=path.decode("latin-1"),
                                 query=query, headers=request.headers):
            raise S3Error("SignatureDoesNotMatch", "the signature does not match (is the secret the token?)", 403)
        return who

    # -- service and buckets ---------------------------------------------------------

    def _list_buckets(self, who: Principal) -> Response:
        found = []
        for repo in self.store.list_repos():
            if who.role_on(repo.name):
                for branch in repo.branches:
                    made = iso_date(repo.created)
                    found.append(element("Bucket", *leaves(Name=f"{branch}.{repo.name}", CreationDate=made)))
        owner = element("Owner", *leaves(ID=who.name, DisplayName=who.name))
        return xml_response(element("ListAllMyBucketsResult", owner, element("Buckets", *found)))

    def _open_bucket(self, who: Principal, b: Bucket, role: str = "reader") -> Commit | None:
        """Check access and existence; the commit the bucket reads (None: an empty branch)."""
        who.require(b.repo, role)
        branch = self.store.inspect_branch(b.repo, b.branch)
        if b.commit is None:
            return self.store.inspect_commit(b.repo, branch.head) if branch.head else None
        commit = self.store.inspect_commit(b.repo, b.commit)
        if commit.branch != b.branch:
            raise S3Error("NoSuchBucket", f"commit {b.commit} is not on branch {b.branch}", 404, b.name)
        return commit

    def _check_writable(self, who: Principal, b: Bucket) -> None:
        if b.commit is not None:
            raise S3Error("AccessDenied", f"bucket {b.name} names a commit and is read-only", 403, b.name)
        self._open_bucket(who, b, "writer")

    def _create_bucket(self, who: Principal, b: Bucket) -> Response:
        if b.commit is not None:
            raise S3Error("AccessDenied", "a commit bucket cannot be created", 403, b.name)
        store = self.store
        if b.repo not in {r.name for r in store.list_repos()}:
            store.create_repo(b.repo, exist_ok=True)
            if self.auth is not None and not who.admin:
                self.auth.grant(who.name, b.repo, "owner")
                who = Principal(who.name, who.admin, {**who.grants, b.repo: "owner"})
        who.require(b.repo, "writer")
        if b.branch in store.inspect_repo(b.repo).branches:
            raise S3Error("BucketAlreadyOwnedByYou", f"bucket {b.name} exists", 409, b.name)
        store.create_branch(b.repo, b.branch)
        return Response(status_code=200, headers={"Location": f"/{b.name}"})

    def _delete_bucket(self, who: Principal, b: Bucket) -> Response:
        self._check_writable(who, b)
        head = self._open_bucket(who, b)
        if head is not None and head.file_count:
            raise S3Error("BucketNotEmpty", f"branch {b.branch} of {b.repo} still has files", 409, b.name)
        self.store.delete_branch(b.repo, b.branch)
        return Response(status_code=204)

    def _read_bucket(self, who: Principal, b: Bucket, q: dict[str, str], head: bool) -> Response:
        commit = self._open_bucket(who, b)
        if head:
            return Response(status_code=200)
        if "uploads" in q:
            return self._list_uploads(b)
        if "location" in q:
            return xml_response(element("LocationConstraint"))
        if "versioning" in q:
            return xml_response(element("VersioningConfiguration"))
        return self._list_objects(b, commit, q)

    # -- listing ---------------------------------------------------------------------

    def _list_objects(self, b: Bucket, commit: Commit | None, q: dict[str, str]) -> Response:
        v2 = q.get("list-type") == "2"
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        url = q.get("encoding-type") == "url"
        try:
            max_keys = min(int(q.get("max-keys", DEFAULT_MAX_KEYS)), DEFAULT_MAX_KEYS)
        except ValueError as exc:
            raise S3Error("InvalidArgument", "max-keys must be an integer", 400) from exc
        if max_keys < 0:
            raise S3Error("InvalidArgument", "max-keys must not be negative", 400)
        if v2 and q.get("continuation-token"):
            start = _untoken(q["continuation-token"])
        else:
            start = _after(q.get("start-after" if v2 else "marker", ""), delimiter)
        page = _list_page(self.store, commit, prefix, delimiter, max(start, prefix), max_keys)
        when = iso_date(_commit_time(commit)) if commit else ""
        contents = [
            element("Contents", *leaves(Key=encode_key(f.path, url), LastModified=when, ETag=f'"{f.hash}"',
                                        Size=f.size, StorageClass="STANDARD"))
            for f in page.files
        ]
        prefixes = [element("CommonPrefixes", *leaves(Prefix=encode_key(p, url))) for p in page.prefixes]
        head = leaves(Name=b.name, Prefix=encode_key(prefix, url), Delimiter=encode_key(delimiter, url) or None,
                      MaxKeys=max_keys, EncodingType="url" if url else None,
                      IsTruncated=str(page.truncated).lower())
        if v2:
            head += leaves(KeyCount=len(contents) + len(prefixes), ContinuationToken=q.get("continuation-token"),
                           NextContinuationToken=_token(page.resume) if page.truncated else None,
                           StartAfter=q.get("start-after"))
            return xml_response(element("ListBucketResult", *head, *contents, *prefixes))
        last = page.last if page.truncated and delimiter else None
        head += leaves(Marker=q.get("marker", ""), NextMarker=encode_key(last, url) if last else None)
        return xml_response(element("ListBucketResult", *head, *contents, *prefixes))

    def _list_uploads(self, b: Bucket) -> Response:
        rows = [
            element("Upload", *leaves(Key=u.key, UploadId=u.id, Initiated=iso_date(u.created)))
            for u in self.multipart.list_uploads(b.repo, b.branch)
        ]
        head = leaves(Bucket=b.name, IsTruncated="false")
        return xml_response(element("ListMultipartUploadsResult", *head, *rows))

    # -- objects ------------------------------------------------------------------------

    def _file(self, who: Principal, b: Bucket, key: str) -> tuple[FileInfo, Commit]:
        commit = self._open_bucket(who, b)
        if commit is None:
            raise S3Error("NoSuchKey", f"branch {b.branch} of {b.repo} has no commits yet", 404, key)
        try:
            info = self.store.inspect_file(b.repo, commit.id, key)
        except InvalidArgument as exc:
            raise S3Error("NoSuchKey", str(exc), 404, key) from exc
        if info.is_dir:
            raise S3Error("NoSuchKey", f"{key} is a folder, not an object", 404, key)
        return info, commit

    def _get_object(self, who: Principal, b: Bucket, key: str, request: Request, head: bool) -> Response:
        info, commit = self._file(who, b, key)
        headers = {
            "ETag": f'"{info.hash}"', "Last-Modified": http_date(_commit_time(commit)), "Accept-Ranges": "bytes",
            "x-amz-version-id": commit.id,
        }
        wanted = request.headers.get("range")
        span = None
        if wanted:
            span = parse_range(wanted, info.size)
            if span is None:
                raise S3Error("InvalidRange", f"range {wanted} is outside the object ({info.size} bytes)", 416, key)
        if head:
            headers["Content-Length"] = str(info.size)
            return Response(status_code=200, headers=headers, media_type="application/octet-stream")
        if span is not None:
            start, length = span
            data = b"".join(self.store.read_content(info, start, length))
            headers["Content-Range"] = f"bytes {start}-{start + len(data) - 1}/{info.size}"
            return Response(data, status_code=206, headers=headers, media_type="application/octet-stream")
        headers["Content-Length"] = str(info.size)
        return StreamingResponse(self.store.read_content(info), headers=headers,
                                 media_type="application/octet-stream")

    async def _put_object(self, request: Request, b: Bucket, key: str) -> Response:
        if key.endswith("/") and request.headers.get("content-length", "0") == "0":
            # folders are implied by the keys under them: nothing to store
            return Response(status_code=200, headers={"ETag": '"d41d8cd98f00b204e9800998ecf8427e"'})
        path = normalize_path(key)
        commit = await _with_body(
            request, lambda body: self.store.put_file(b.repo, b.branch, path, _decoded(body, request))
        )
        info = await run_in_threadpool(self.store.inspect_file, b.repo, commit.id, path)
        return Response(status_code=200, headers={"ETag": f'"{info.hash}"', "x-amz-version-id": commit.id})

    def _copy_object(self, who: Principal, b: Bucket, key: str, source: str) -> Response:
        src_bucket, _, src_key = unquote(source.split("?", 1)[0]).lstrip("/").partition("/")
        src = parse_bucket(src_bucket)
        info, src_commit = self._file(who, src, src_key)
        commit = self.store.copy_file(src.repo, src_commit.id, info.path, b.repo, b.branch, normalize_path(key))
        made = iso_date(_commit_time(commit))
        result = element("CopyObjectResult", *leaves(ETag=f'"{info.hash}"', LastModified=made))
        return xml_response(result, headers={"x-amz-version-id": commit.id})

    def _delete_object(self, b: Bucket, key: str) -> Response:
        try:
            commit = self.store.delete_file(b.repo, b.branch, normalize_path(key))
        except (FileNotFoundError, InvalidArgument):
            return Response(status_code=204)  # S3 deletes are idempotent
        return Response(status_code=204, headers={"x-amz-version-id": commit.id})

    def _delete_objects(self, who: Principal, b: Bucket, body: bytes) -> Response:
        self._check_writable(who, b)
        keys, quiet = parse_delete(body)
        store = self.store
        head = store.inspect_branch(b.repo, b.branch).head
        opened = not (head and not store.inspect_commit(b.repo, head).is_finished)
        commit_id = store.start_commit(b.repo, b.branch, description="S3 DeleteObjects").id if opened else head
        assert commit_id is not None
        changed = False
        try:
            for key in keys:
                try:
                    store.delete_file(b.repo, commit_id, normalize_path(key))
                    changed = True
                except (FileNotFoundError, InvalidArgument):
                    pass  # S3 reports a missing key as deleted
        except BaseException as exc:
            if opened:
                store.finish_commit(b.repo, commit_id, error=f"DeleteObjects failed: {exc}")
            raise
        if opened and changed:
            store.finish_commit(b.repo, commit_id)
        elif opened:
            store.delete_commit(b.repo, commit_id)  # nothing was there: no empty commit
        done = [] if quiet else [element("Deleted", *leaves(Key=k)) for k in keys]
        return xml_response(element("DeleteResult", *done))

    # -- multipart ----------------------------------------------------------------------

    def _create_upload(self, b: Bucket, key: str) -> Response:
        upload = self.multipart.create(b.repo, b.branch, key)
        ids = leaves(Bucket=b.name, Key=key, UploadId=upload.id)
        return xml_response(element("InitiateMultipartUploadResult", *ids))

    def _upload(self, b: Bucket, key: str, upload_id: str) -> Upload:
        return self.multipart.get(upload_id, b.repo, b.branch, key)

    async def _upload_part(self, request: Request, b: Bucket, key: str, q: dict[str, str]) -> Response:
        if "x-amz-copy-source" in request.headers:
            raise S3Error("NotImplemented", "UploadPartCopy is not supported; use CopyObject", 501, key)
        try:
            number = int(q.get("partNumber", ""))
        except ValueError as exc:
            raise S3Error("InvalidArgument", "partNumber must be an integer", 400, key) from exc
        upload = await run_in_threadpool(self._upload, b, key, q["uploadId"])
        part = await _with_body(request, lambda body: self.multipart.put_part(upload, number, _decoded(body, request)))
        return Response(status_code=200, headers={"ETag": f'"{part.etag}"'})

    def _complete_upload(self, b: Bucket, key: str, upload_id: str, body: bytes) -> Response:
        upload = self._upload(b, key, upload_id)
        commit, etag = self.multipart.complete(upload, parse_complete(body))
        result = element("CompleteMultipartUploadResult",
                         *leaves(Location=f"/{b.name}/{key}", Bucket=b.name, Key=key, ETag=f'"{etag}"'))
        return xml_response(result, headers={"x-amz-version-id": commit.id})

    def _abort_upload(self, b: Bucket, key: str, upload_id: str) -> Response:
        self.multipart.abort(self._upload(b, key, upload_id))
        return Response(status_code=204)

    def _list_parts(self, who: Principal, b: Bucket, key: str, q: dict[str, str]) -> Response:
        self._open_bucket(who, b)
        upload = self._upload(b, key, q["uploadId"])
        rows = [
            element("Part", *leaves(PartNumber=p.number, LastModified=iso_date(p.created), ETag=f'"{p.etag}"',
                                    Size=p.size))
            for p in self.multipart.list_parts(upload)
        ]
        head = leaves(Bucket=b.name, Key=key, UploadId=upload.id, IsTruncated="false", StorageClass="STANDARD")
        return xml_response(element("ListPartsResult", *head, *rows))


# -- listing pages ------------------------------------------------------------------------


@dataclass
class _Page:
    files: list[FileInfo]
    prefixes: list[str]
    truncated: bool = False
    resume: str = ""  # where the next page starts
    last: str = ""  # the last key or common prefix returned


def _list_page(store: Store, commit: Commit | None, prefix: str, delimiter: str, start: str, max_keys: int) -> _Page:
    """One page of keys >= ``start`` under ``prefix``, rolled up at ``delimiter``; range scans of the index."""
    page = _Page([], [])
    if commit is None:
        return page
    stop = prefix + MAX_KEY
    pos = start
    while True:
        jumped = False
        for key, entry in store.tree.items(commit.root, pos, stop):
            if len(page.files) + len(page.prefixes) >= max_keys:
                page.truncated = True
                return page
            rest = key[len(prefix):]
            cut = rest.find(delimiter) if delimiter else -1
            if cut >= 0:
                common = prefix + rest[: cut + len(delimiter)]
                page.prefixes.append(common)
                page.last, page.resume = common, common + MAX_KEY
                pos, jumped = page.resume, True
                break
            page.files.append(file_info(key, entry))
            page.last, page.resume = key, key + "\x00"
        if not jumped:
            return page


def _after(marker: str, delimiter: str) -> str:
    if not marker:
        return ""
    return marker + (MAX_KEY if delimiter and marker.endswith(delimiter) else "\x00")


def _token(resume: str) -> str:
    return base64.urlsafe_b64encode(resume.encode()).decode()


def _untoken(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise S3Error("InvalidArgument", "the continuation token is not valid", 400) from exc


# -- helpers ---------------------------------------------------------------------------------


def _query(request: Request) -> dict[str, str]:
    return dict(raw_query_pairs(request.scope.get("query_string", b"")))


def _commit_time(commit: Commit) -> float:
    return commit.finished or commit.started


def _decoded(body: io.BufferedReader, request: Request) -> BinaryIO:
    """The payload of a body, unwrapping ``aws-chunked`` encoding (streaming signatures, trailers)."""
    encoding = request.headers.get("content-encoding", "")
    declared = request.headers.get("x-amz-content-sha256", "")
    if "aws-chunked" in encoding or declared.startswith("STREAMING-"):
        return io.BufferedReader(_AwsChunked(body))
    return body


class _AwsChunked(io.RawIOBase):
    """``<hex size>[;chunk-signature=…]\\r\\n<bytes>\\r\\n … 0\\r\\n<trailers>\\r\\n\\r\\n`` -> the bytes."""

    def __init__(self, raw: io.BufferedReader) -> None:
        self.raw = raw
        self.left = 0
        self.done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.done:
            return 0
        if self.left == 0:
            line = self.raw.readline()
            try:
                self.left = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise InvalidArgument("malformed aws-chunked body") from exc
            if self.left == 0:
                self.done = True
                return 0
        n = self.raw.readinto(memoryview(buffer)[: min(len(buffer), self.left)])
        if not n:
            raise InvalidArgument("the aws-chunked body ended early")
        self.left -= n
        if self.left == 0:
            self.raw.readline()  # the CRLF after each chunk
        return n
