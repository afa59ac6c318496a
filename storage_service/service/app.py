"""The store over HTTP: ``create_app(store) -> FastAPI``, every Store operation under ``/api/v1``.

Routes are thin: check the caller's role, make one Store call, serialize the
value object. Errors leave through one handler (:func:`_datumflow_error`),
which maps the exception tree to status codes with :func:`errors.status_for`
and answers ``{"error": {"type": ClassName, "message": ...}}``; the client
rebuilds the same class from that body.

Uploads are streamed: the request body is fed, piece by piece, to the store
through a file-like reader running in a worker thread, so a file never sits
whole in memory. If the body ends early the reader raises, the store's write
fails before the commit is updated, and a commit the write opened is failed.
"""

from __future__ import annotations

import io
import json
import logging
import posixpath
import tarfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from datumflow.storage_service.errors import DatumflowError, InvalidArgument, status_for
from datumflow.storage_service.model.core import Commit
from datumflow.storage_service.service.auth import ANONYMOUS_ADMIN, Auth, Principal
from datumflow.storage_service.service.bodies import _with_body, parse_range
from datumflow.storage_service.service.long_poll import LONG_POLL_MAX, long_poll
from datumflow.storage_service.store.store import Store
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["API_PREFIX", "LONG_POLL_MAX", "create_app"]

API_PREFIX = "/api/v1"
_LIST_PAGE = 1000

log = logging.getLogger("datumflow.service")
T = TypeVar("T")


# -- request bodies ------------------------------------------------------------------


class RepoIn(BaseModel):
    name: str
    description: str = ""
    exist_ok: bool = False


class BranchIn(BaseModel):
    head: str | None = None
    provenance: list[str] = Field(default_factory=list)
    owner: str | None = None


class CommitIn(BaseModel):
    branch: str
    parent: str | None = None
    description: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    origin: str = "user"
    provenance: list[str] = Field(default_factory=list)


class FinishIn(BaseModel):
    description: str | None = None
    metadata: dict[str, Any] | None = None
    error: str | None = None


class CopyIn(BaseModel):
    src_repo: str
    src_ref: str
    src_path: str
    dst_path: str


class FsckIn(BaseModel):
    verify_content: bool = True


class GcIn(BaseModel):
    grace_seconds: float = Field(default=3600.0, ge=0)


# -- errors: the one place exceptions become HTTP answers ------------------------------------


def error_body(type_name: str, message: str) -> dict[str, Any]:
    return {"error": {"type": type_name, "message": message}}


async def _datumflow_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DatumflowError)
    status = status_for(exc)
    if status >= 500:
        log.error("request failed: %s: %s", type(exc).__name__, exc)
    return JSONResponse(error_body(type(exc).__name__, str(exc)), status_code=status)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return JSONResponse(error_body("InvalidArgument", "; ".join(parts) or "invalid request"), status_code=422)


_HTTP_TYPES = {401: "Unauthenticated", 403: "Forbidden", 404: "NotFound", 409: "Conflict"}


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = _HTTP_TYPES.get(exc.status_code, "InvalidArgument" if exc.status_code < 500 else "DatumflowError")
    return JSONResponse(
        error_body(kind, str(exc.detail)), status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )


async def _unexpected_error(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    return JSONResponse(error_body("DatumflowError", f"internal error: {type(exc).__name__}"), status_code=500)


# -- uploads of many files --------------------------------------------------------------


def _tar_members(body: io.BufferedReader, dest: str) -> Iterator[tuple[str, Any]]:
    """(path, file) for each regular file of a streamed tar; each is read before the next."""
    try:
        with tarfile.open(fileobj=body, mode="r|*") as tar:
            for member in tar:
                if member.isdir():
                    continue
                if not member.isfile():
                    raise InvalidArgument(f"tar member {member.name!r} is not a regular file")
                yield posixpath.join(dest, member.name) if dest else member.name, tar.extractfile(member)
    except tarfile.TarError as exc:
        raise InvalidArgument(f"the body is not a valid tar stream: {exc}") from exc


# -- the app -------------------------------------------------------------------------------


def create_app(store: Store, *, auth: Auth | None = None, s3_domain: str | None = None) -> FastAPI:
    """The HTTP service over ``store``; ``auth=None`` serves without tokens (loopback only)."""
    app = FastAPI(
        title="datumflow",
        version="0.1.0",
        description="Versioned data with provenance: repos, branches, commits, files.",
    )
    app.add_exception_handler(DatumflowError, _datumflow_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    principal = _principal_dependency(auth)
    app.include_router(_api(store, principal), prefix=API_PREFIX)
    _mount_pipelines(app, store, principal)

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "auth": auth is not None}

    _mount_optional(app, store, s3_domain, auth)
    return app


def _principal_dependency(auth: Auth | None) -> Callable[..., Principal]:
    bearer = HTTPBearer(auto_error=False, description="a datumflow token (`datumflow auth token create`)")

    def principal(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
        if auth is None:
            return ANONYMOUS_ADMIN
        return auth.authenticate(credentials.credentials if credentials else None)

    return principal


def _mount_pipelines(app: FastAPI, store: Store, principal: Callable[..., Principal]) -> None:
    """Pipelines, jobs, datums, lineage, worker steps; and the spout registry."""
    from datumflow.storage_service.pipelines.engine import Pipelines
    from datumflow.storage_service.service.routes import pipelines as api_pipelines
    from datumflow.storage_service.service.routes import spouts as api_spouts

    app.include_router(api_pipelines.build_router(Pipelines(store), principal), prefix=API_PREFIX)
    app.include_router(api_spouts.build_router(store, principal), prefix=API_PREFIX)


def _mount_optional(app: FastAPI, store: Store, s3_domain: str | None, auth: Auth | None) -> None:
    """Include the S3 gateway (``/s3``) and the web console (``/console``, where ``/`` leads)."""
    from datumflow.storage_service.service.console import pages as console
    from datumflow.storage_service.service.s3 import gateway as s3_gateway

    app.include_router(s3_gateway.build_router(lambda: store, auth=auth), prefix="/s3")
    if s3_domain:
        app.add_middleware(_HostStyleBuckets, domain=s3_domain)
    app.include_router(console.build_router(lambda: store, auth=auth), prefix="/console")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/console/")


class _HostStyleBuckets:
    """``Host: master.sales.<domain>`` → ``/s3/master.sales/<path>`` (virtual-hosted S3 buckets)."""

    def __init__(self, app: ASGIApp, domain: str) -> None:
        self.app = app
        self.suffix = "." + domain.lower().split(":")[0]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = dict(scope["headers"]).get(b"host", b"").decode("latin-1").split(":")[0].lower()
            if host.endswith(self.suffix) and len(host) > len(self.suffix):
                bucket = host[: -len(self.suffix)]
                scope = {**scope, "path": f"/s3/{bucket}{scope['path']}", "raw_path": None}
        await self.app(scope, receive, send)


def _api(store: Store, principal: Callable[..., Principal]) -> APIRouter:
    api = APIRouter()

    def role(name: str) -> Any:
        def check(repo: str, who: Principal = Depends(principal)) -> Principal:
            who.require(repo, name)
            return who

        return Depends(check)

    reader, writer, owner = role("reader"), role("writer"), role("owner")

    def admin(who: Principal = Depends(principal)) -> Principal:
        who.require_admin()
        return who

    # -- repos --------------------------------------------------------------------

    @api.get("/repos", tags=["repos"])
    def list_repos(who: Principal = Depends(principal)) -> list[dict[str, Any]]:
        return [r.to_dict() for r in store.list_repos() if who.role_on(r.name)]

    @api.post("/repos", tags=["repos"], status_code=201)
    def create_repo(body: RepoIn, who: Principal = Depends(principal)) -> dict[str, Any]:
        repo = store.create_repo(body.name, body.description, exist_ok=body.exist_ok)
        if not who.admin and who is not ANONYMOUS_ADMIN and not who.role_on(repo.name):
            _grant_owner(store, who, repo.name)
        return repo.to_dict()

    @api.get("/repos/{repo}", tags=["repos"], dependencies=[reader])
    def inspect_repo(repo: str) -> dict[str, Any]:
        return store.inspect_repo(repo).to_dict()

    @api.delete("/repos/{repo}", tags=["repos"], status_code=204, dependencies=[owner])
    def delete_repo(repo: str, force: bool = False) -> Response:
        store.delete_repo(repo, force=force)
        return Response(status_code=204)

    # -- branches ---------------------------------------------------------------------

    @api.get("/repos/{repo}/branches", tags=["branches"], dependencies=[reader])
    def list_branches(repo: str) -> list[dict[str, Any]]:
        return [b.to_dict() for b in store.list_branches(repo)]

    @api.put("/repos/{repo}/branches/{branch}", tags=["branches"], dependencies=[writer])
    def create_branch(repo: str, branch: str, body: BranchIn) -> dict[str, Any]:
        return store.create_branch(
            repo, branch, head=body.head, provenance=body.provenance, owner=body.owner
        ).to_dict()

    @api.get("/repos/{repo}/branches/{branch}", tags=["branches"], dependencies=[reader])
    def inspect_branch(repo: str, branch: str) -> dict[str, Any]:
        return store.inspect_branch(repo, branch).to_dict()

    @api.delete("/repos/{repo}/branches/{branch}", tags=["branches"], status_code=204, dependencies=[writer])
    def delete_branch(repo: str, branch: str, force: bool = False) -> Response:
        store.delete_branch(repo, branch, force=force)
        return Response(status_code=204)

    # -- commits ----------------------------------------------------------------------

    @api.get("/repos/{repo}/resolve/{ref}", tags=["commits"], dependencies=[reader])
    def resolve(repo: str, ref: str) -> dict[str, str]:
        return {"id": store.resolve(repo, ref)}

    @api.post("/repos/{repo}/commits", tags=["commits"], status_code=201, dependencies=[writer])
    def start_commit(repo: str, body: CommitIn) -> dict[str, Any]:
        return store.start_commit(
            repo, body.branch, parent=body.parent, description=body.description,
            metadata=body.metadata, origin=_origin(body.origin), provenance=body.provenance,
        ).to_dict()

    @api.get("/repos/{repo}/commits", tags=["commits"], dependencies=[reader])
    def list_commits(
        repo: str, branch: str | None = None, limit: int | None = Query(None, ge=1), state: str | None = None
    ) -> list[dict[str, Any]]:
        return [c.to_dict() for c in store.list_commits(repo, branch, limit=limit, state=state)]

    @api.get("/repos/{repo}/commits/{ref}", tags=["commits"], dependencies=[reader])
    def inspect_commit(repo: str, ref: str) -> dict[str, Any]:
        return store.inspect_commit(repo, ref).to_dict()

    @api.post("/repos/{repo}/commits/{ref}/finish", tags=["commits"], dependencies=[writer])
    def finish_commit(repo: str, ref: str, body: FinishIn) -> dict[str, Any]:
        return store.finish_commit(
            repo, ref, description=body.description, metadata=body.metadata, error=body.error
        ).to_dict()

    @api.get("/repos/{repo}/commits/{ref}/wait", tags=["commits"], dependencies=[reader])
    async def wait_commit(repo: str, ref: str, timeout: float | None = Query(None, ge=0)) -> dict[str, Any]:
        """Long poll: answers when the commit is finished, or 504 after ``timeout`` (at most 20 s)."""
        commit_id = await run_in_threadpool(store.resolve, repo, ref)

        def finished() -> Commit | None:
            commit = store.inspect_commit(repo, commit_id)
            return commit if commit.is_finished else None

        commit = await long_poll(finished, timeout, f"commit {repo}@{commit_id}")
        return commit.to_dict()

    @api.delete("/repos/{repo}/commits/{ref}", tags=["commits"], status_code=204, dependencies=[writer])
    def delete_commit(repo: str, ref: str) -> Response:
        store.delete_commit(repo, ref)
        return Response(status_code=204)

    @api.get("/repos/{repo}/commits/{ref}/provenance", tags=["provenance"], dependencies=[reader])
    def provenance(repo: str, ref: str, depth: int | None = Query(None, ge=0)) -> list[dict[str, Any]]:
        return [e.to_dict() for e in store.provenance(repo, ref, depth=depth)]

    @api.get("/repos/{repo}/commits/{ref}/subvenance", tags=["provenance"], dependencies=[reader])
    def subvenance(repo: str, ref: str, depth: int | None = Query(None, ge=0)) -> list[dict[str, Any]]:
        return [e.to_dict() for e in store.subvenance(repo, ref, depth=depth)]

    @api.get("/commit-sets/{set_id}", tags=["provenance"])
    def commit_set(set_id: str, who: Principal = Depends(principal)) -> list[dict[str, Any]]:
        return [c.to_dict() for c in store.commit_set(set_id) if who.role_on(c.repo)]

    @api.get("/commit-sets/{set_id}/wait", tags=["provenance"])
    async def wait_commit_set(
        set_id: str, timeout: float | None = Query(None, ge=0), who: Principal = Depends(principal)
    ) -> list[dict[str, Any]]:
        def finished() -> list[Commit] | None:
            found = store.commit_set(set_id)
            return found if all(c.is_finished for c in found) else None

        found = await long_poll(finished, timeout, f"commit set {set_id}")
        return [c.to_dict() for c in found if who.role_on(c.repo)]

    # -- files ------------------------------------------------------------------------

    @api.put("/repos/{repo}/commits/{ref}/content", tags=["files"], dependencies=[writer],
             openapi_extra=_BINARY_BODY)
    async def put_file(
        repo: str, ref: str, request: Request, path: str, append: bool = False, description: str = ""
    ) -> dict[str, Any]:
        """Upload one file (the raw request body) into a branch or an open commit."""
        commit = await _with_body(
            request, lambda body: store.put_file(repo, ref, path, body, append=append, description=description)
        )
        return commit.to_dict()

    @api.post("/repos/{repo}/commits/{ref}/tar", tags=["files"], dependencies=[writer], openapi_extra=_TAR_BODY)
    async def put_tar(
        repo: str, ref: str, request: Request, path: str = "", append: bool = False, description: str = ""
    ) -> dict[str, Any]:
        """Upload the files of a tar stream under ``path``, as one change (one commit unless one is open)."""
        commit = await _with_body(
            request,
            lambda body: store.put_files(
                repo, ref, _tar_members(body, path.strip("/")), append=append, description=description
            ),
        )
        return commit.to_dict()

    @api.get("/repos/{repo}/commits/{ref}/content", tags=["files"], dependencies=[reader],
             responses={200: {"content": {"application/octet-stream": {}}}, 206: {"description": "a range"}})
    def get_file(repo: str, ref: str, path: str, request: Request) -> Response:
        """Download a file, streamed; one ``Range: bytes=…`` is honoured."""
        info = store.inspect_file(repo, ref, path)
        if info.is_dir:
            raise InvalidArgument(f"{repo}@{ref}:{info.path} is a folder, not a file")
        headers = {"Accept-Ranges": "bytes", "ETag": f'"{info.hash}"'}
        wanted = request.headers.get("range")
        if wanted:
            span = parse_range(wanted, info.size)
            if span is None:
                return JSONResponse(
                    error_body("InvalidArgument", f"range {wanted} is outside the file ({info.size} bytes)"),
                    status_code=416, headers={"Content-Range": f"bytes */{info.size}"},
                )
            start, length = span
            data = b"".join(store.read_content(info, start, length))
            headers["Content-Range"] = f"bytes {start}-{start + len(data) - 1}/{info.size}"
            return Response(data, status_code=206, headers=headers, media_type="application/octet-stream")
        headers["Content-Length"] = str(info.size)
        return StreamingResponse(
            store.read_content(info), headers=headers, media_type="application/octet-stream"
        )

    @api.delete("/repos/{repo}/commits/{ref}/content", tags=["files"], dependencies=[writer])
    def delete_file(repo: str, ref: str, path: str) -> dict[str, Any]:
        return store.delete_file(repo, ref, path).to_dict()

    @api.post("/repos/{repo}/commits/{ref}/copy", tags=["files"], dependencies=[writer])
    def copy_file(repo: str, ref: str, body: CopyIn, who: Principal = Depends(principal)) -> dict[str, Any]:
        who.require(body.src_repo, "reader")
        return store.copy_file(body.src_repo, body.src_ref, body.src_path, repo, ref, body.dst_path).to_dict()

    @api.get("/repos/{repo}/commits/{ref}/info", tags=["files"], dependencies=[reader])
    def inspect_file(repo: str, ref: str, path: str = "") -> dict[str, Any]:
        return store.inspect_file(repo, ref, path).to_dict()

    @api.get("/repos/{repo}/commits/{ref}/files", tags=["files"], dependencies=[reader])
    def list_files(
        repo: str, ref: str, path: str = "", start_after: str | None = None,
        limit: int = Query(_LIST_PAGE, ge=1, le=10 * _LIST_PAGE),
    ) -> dict[str, Any]:
        """One page of a folder; pass ``next_start_after`` back as ``start_after`` for the next."""
        files = store.list_files(repo, ref, path, start_after=start_after, limit=limit)
        more = posixpath.basename(files[-1].path) if len(files) == limit else None
        return {"files": [f.to_dict() for f in files], "next_start_after": more}

    @api.get("/repos/{repo}/commits/{ref}/walk", tags=["files"], dependencies=[reader],
             responses={200: {"content": {"application/x-ndjson": {}}}})
    def walk_files(repo: str, ref: str, path: str = "") -> StreamingResponse:
        """Every file under ``path``, one JSON object per line."""
        found = store.walk_files(repo, ref, path)
        first = next(found, None)  # raises now (404…) rather than mid-stream
        lines = (json.dumps(f.to_dict()) + "\n" for f in _chain(first, found))
        return StreamingResponse(lines, media_type="application/x-ndjson")

    @api.get("/repos/{repo}/commits/{ref}/glob", tags=["files"], dependencies=[reader])
    def glob_files(repo: str, ref: str, pattern: str) -> list[dict[str, Any]]:
        return [f.to_dict() for f in store.glob_files(repo, ref, pattern)]

    @api.get("/repos/{repo}/commits/{ref}/diff", tags=["files"], dependencies=[reader])
    def diff(
        repo: str, ref: str, old: str | None = None, old_repo: str | None = None,
        who: Principal = Depends(principal),
    ) -> list[dict[str, Any]]:
        if old_repo:
            who.require(old_repo, "reader")
        return [d.to_dict() for d in store.diff(repo, old, ref, old_repo=old_repo)]

    # -- maintenance --------------------------------------------------------------------

    @api.post("/fsck", tags=["maintenance"], dependencies=[Depends(admin)])
    def fsck(body: FsckIn | None = None) -> dict[str, Any]:
        return store.fsck(verify_content=(body or FsckIn()).verify_content)

    @api.post("/gc", tags=["maintenance"], dependencies=[Depends(admin)])
    def gc(body: GcIn | None = None) -> dict[str, int]:
        return store.gc(grace_seconds=(body or GcIn()).grace_seconds)

    @api.get("/whoami", tags=["service"])
    def whoami(who: Principal = Depends(principal)) -> dict[str, Any]:
        return {"name": who.name, "admin": who.admin, "roles": who.grants}

    return api


_BINARY_BODY: dict[str, Any] = {
    "requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
}
_TAR_BODY: dict[str, Any] = {
    "requestBody": {"content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}}}
}


def _origin(value: str) -> Any:
    from datumflow.storage_service.model.core import Origin

    try:
        return Origin(value)
    except ValueError as exc:
        raise InvalidArgument(f"unknown origin {value!r}: use one of {', '.join(o.value for o in Origin)}") from exc


def _grant_owner(store: Store, who: Principal, repo: str) -> None:
    Auth(store.engine).grant(who.name, repo, "owner")


def _chain(first: T | None, rest: Iterator[T]) -> Iterable[T]:
    if first is not None:
        yield first
        yield from rest



