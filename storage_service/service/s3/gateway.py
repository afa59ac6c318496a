"""An S3 gateway on the service: ``build_router(get_store, auth=...)``, mounted at ``/s3``.

Buckets name branches: ``branch.repo`` reads the branch head and takes
writes (each PutObject, CopyObject, DeleteObject(s) or completed multipart
upload is one commit, or lands in the branch's open commit);
``commit.branch.repo`` reads one commit and refuses writes (AccessDenied).
Addressing is path-style, ``http://host:port/s3/<bucket>/<key>``, or
virtual-hosted with ``serve --s3-domain`` (:class:`HostStyleBuckets`).

Every request is authenticated (AWS Signature V4, :mod:`.auth`), then named
by :func:`.dispatch.operation` — an operation the gateway does not implement
is ``501 NotImplemented`` and touches nothing. Every error leaves as an S3
``<Error>`` document (:mod:`.errors`), never as the JSON of the rest of the
API; an error answered before the request body was read closes the
connection, so unread body bytes are never taken for the next request.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from datumflow.storage_service.core.db import is_unique_violation
from datumflow.storage_service.errors import CONCURRENT_WRITE, DatumflowError
from datumflow.storage_service.service.auth import Auth, Principal
from datumflow.storage_service.service.s3 import buckets, objects
from datumflow.storage_service.service.s3.auth import S3Authenticator, raw_query_pairs
from datumflow.storage_service.service.s3.buckets import Bucket, parse_bucket
from datumflow.storage_service.service.s3.dispatch import operation
from datumflow.storage_service.service.s3.errors import S3Error, error_response, s3_error_for
from datumflow.storage_service.service.s3.multipart import Multipart
from datumflow.storage_service.service.s3.objects import Call
from datumflow.storage_service.service.s3.xml import element, xml_response
from datumflow.storage_service.store.store import Store
from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["Bucket", "HostStyleBuckets", "build_routes", "parse_bucket"]

_METHODS = ["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH"]
_READS = ("GetObject", "HeadObject")
# The path a virtual-hosted request was signed with, kept by HostStyleBuckets.
SIGNED_PATH = "datumflow.s3.signed_path"
_QUERY = "datumflow.s3.query"
log = logging.getLogger(__name__)


def build_routes(get_store: Callable[[], Store], *, auth: Auth | None = None, prefix: str = "/s3") -> list[Route]:
    """The gateway's routes under ``prefix``: plain Starlette routes (no dependency solving per request),
    meant to be placed first in the app's routes, so an S3 request is not matched against the whole API first."""
    gateway = _Gateway(get_store, auth)

    async def service(request: Request) -> Response:
        return await gateway.service(request)

    async def bucket(request: Request) -> Response:
        return await gateway.bucket(request, request.path_params["bucket"])

    async def obj(request: Request) -> Response:
        return await gateway.object(request, request.path_params["bucket"], request.path_params["key"])

    return [
        _Route(prefix, service, methods=_METHODS, include_in_schema=False),
        _Route(prefix + "/", service, methods=_METHODS, include_in_schema=False),
        _Route(prefix + "/{bucket}", bucket, methods=_METHODS, include_in_schema=False),
        _Route(prefix + "/{bucket}/", bucket, methods=_METHODS, include_in_schema=False),
        _Route(prefix + "/{bucket}/{key:path}", obj, methods=_METHODS, include_in_schema=False),
    ]


class _Route(Route):
    """A plain route that names itself in the scope, as FastAPI's do (the metrics label it by its template)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        return match, ({**child, "route": self} if match is not Match.NONE else child)


class HostStyleBuckets:
    """``Host: master.sales.<domain>`` -> ``/s3/master.sales/<path>`` (virtual-hosted buckets).

    The path the client signed (``/<path>``) is kept in the scope, so the
    signature is checked against what was signed, not the rewritten path.
    """

    def __init__(self, app: ASGIApp, domain: str) -> None:
        self.app = app
        self.suffix = "." + domain.lower().split(":")[0]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").split(":")[0].lower()
            if host.endswith(self.suffix) and len(host) > len(self.suffix):
                bucket = host[: -len(self.suffix)]
                signed = scope.get("raw_path") or quote(scope["path"]).encode()
                scope = {**scope, "path": f"/s3/{bucket}{scope['path']}", "raw_path": None, SIGNED_PATH: signed}
        await self.app(scope, receive, send)


class _Gateway:
    def __init__(self, get_store: Callable[[], Store], auth: Auth | None) -> None:
        self.get_store = get_store
        self.auth = auth
        self.signers = S3Authenticator(get_store, auth)
        self._uploads: Multipart | None = None

    @property
    def store(self) -> Store:
        return self.get_store()

    @property
    def uploads(self) -> Multipart:
        if self._uploads is None or self._uploads.store is not self.store:
            self._uploads = Multipart(self.store)
        return self._uploads

    # -- entry points: authenticate, name the operation, run it; every error as S3 XML --------

    async def service(self, request: Request) -> Response:
        async def work(who: Principal, op: str) -> Response:
            return await run_in_threadpool(buckets.list_buckets, self.store, who)

        return await self._guard(request, "service", "/", work)

    async def bucket(self, request: Request, bucket: str) -> Response:
        async def work(who: Principal, op: str) -> Response:
            return await self._bucket_op(op, who, _bucket(bucket, op), request)

        return await self._guard(request, "bucket", bucket, work)

    async def object(self, request: Request, bucket: str, key: str) -> Response:
        def call_of(who: Principal, op: str) -> Call:
            return Call(self.store, self.uploads, who, request, _bucket(bucket, op), key, _query(request))

        async def work(who: Principal, op: str) -> Response:
            return await self._object_op(op, call_of(who, op))

        def read(who: Principal, op: str) -> Response:
            return objects.get_object(call_of(who, op), op == "HeadObject")

        return await self._guard(request, "object", f"{bucket}/{key}", work, read)

    async def _bucket_op(self, op: str, who: Principal, b: Bucket, request: Request) -> Response:
        store = self.store
        if op == "DeleteObjects":
            body = await request.body()
            call = Call(store, self.uploads, who, request, b, "", _query(request))
            return await run_in_threadpool(objects.delete_objects, call, body)
        if op == "CreateBucket":
            return await run_in_threadpool(buckets.create_bucket, store, self.auth, who, b)
        if op == "DeleteBucket":
            return await run_in_threadpool(buckets.delete_bucket, store, self.uploads, who, b)
        commit = await run_in_threadpool(buckets.open_bucket, store, who, b)
        if op == "HeadBucket":
            return Response(status_code=200)
        if op == "GetBucketLocation":
            return xml_response(element("LocationConstraint"))
        if op == "GetBucketVersioning":
            return xml_response(element("VersioningConfiguration"))
        if op == "ListMultipartUploads":
            return await run_in_threadpool(buckets.list_uploads, self.uploads, b)
        if op == "ListObjectVersions":
            return await run_in_threadpool(buckets.list_versions, store, b, commit, _query(request))
        return await run_in_threadpool(buckets.list_objects, store, b, commit, _query(request))

    async def _object_op(self, op: str, call: Call) -> Response:
        if op == "PutObject":
            return await objects.put_object(call)
        if op == "UploadPart":
            return await objects.upload_part(call)
        if op == "CompleteMultipartUpload":
            body = await call.request.body()
            return await run_in_threadpool(objects.complete_upload, call, body)
        handler: Callable[[Call], Response] = {
            "CopyObject": objects.copy_object,
            "DeleteObject": objects.delete_object,
            "CreateMultipartUpload": objects.create_upload,
            "AbortMultipartUpload": objects.abort_upload,
            "ListParts": objects.list_parts,
        }.get(op) or (lambda c: objects.get_object(c, op == "HeadObject"))
        return await run_in_threadpool(handler, call)

    async def _guard(
        self, request: Request, level: str, resource: str, work: Callable[[Principal, str], Awaitable[Response]],
        read: Callable[[Principal, str], Response] | None = None,
    ) -> Response:
        """Authenticate, name the operation and run it; a GetObject or HeadObject (``read``) runs in the
        same worker thread as the authentication, so a small read costs one hop off the event loop."""
        request_id = uuid.uuid4().hex[:16].upper()

        def authenticated() -> tuple[Principal, str, Response | None]:
            who = self._authenticate(request)
            op = operation(level, request.method, _query(request), request.headers)
            return who, op, read(who, op) if read is not None and op in _READS else None

        try:
            who, op, answered = await run_in_threadpool(authenticated)
            response = answered if answered is not None else await work(who, op)
        except DatumflowError as exc:
            response = error_response(s3_error_for(exc, resource), request_id)
        except Exception as exc:  # a bug: still an S3 answer, and the log says where
            if is_unique_violation(exc):  # a race no retry settled: S3's "try again"
                log.warning("S3 %s %s raced a concurrent request: %s", request.method, request.url.path, exc)
                response = error_response(S3Error("OperationAborted", CONCURRENT_WRITE, 409, resource), request_id)
            else:
                log.exception("S3 %s %s failed", request.method, request.url.path)
                response = error_response(S3Error("InternalError", f"internal error: {type(exc).__name__}", 500,
                                                  resource), request_id)
        if response.status_code >= 400 and _body_unread(request):
            response.headers["Connection"] = "close"  # the unread body must not become the next request
        response.headers["x-amz-request-id"] = request_id
        return response

    def _authenticate(self, request: Request) -> Principal:
        query = _pairs(request)
        path = request.scope.get(SIGNED_PATH) or request.scope.get("raw_path") or quote(request.url.path).encode()
        return self.signers.principal(request.method, path.decode("latin-1"), query, request.headers)


def _bucket(name: str, op: str) -> Bucket:
    """The bucket a request names; a name no bucket can have is NoSuchBucket, except to CreateBucket."""
    try:
        return parse_bucket(name)
    except S3Error as exc:
        if op == "CreateBucket":
            raise
        raise S3Error("NoSuchBucket", f"no bucket {name!r}: buckets are BRANCH.REPO or COMMIT.BRANCH.REPO",
                      404, name) from exc


def _pairs(request: Request) -> list[tuple[str, str]]:
    """The request's query pairs, parsed once per request (signature check, dispatch and handler share them)."""
    found: list[tuple[str, str]] | None = request.scope.get(_QUERY)
    if found is None:
        found = request.scope[_QUERY] = raw_query_pairs(request.scope.get("query_string", b""))
    return found


def _query(request: Request) -> dict[str, str]:
    return dict(_pairs(request))


def _body_unread(request: Request) -> bool:
    """Whether the request announced a body that was not read to its end."""
    headers = request.headers
    announced = headers.get("content-length", "0").strip() not in ("", "0") or "transfer-encoding" in headers
    consumed = getattr(request, "_stream_consumed", False) or hasattr(request, "_body")
    return announced and not consumed
