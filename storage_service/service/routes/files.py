"""Files over HTTP: streamed uploads (one file or a tar), ranged downloads, delete, copy, inspect,
paged listing, a streamed walk, glob and diff.

Uploads are streamed: the request body is fed, piece by piece, to the store
through a file-like reader running in a worker thread (:mod:`..bodies`), so
a file never sits whole in memory. If the body ends early the reader raises,
the store's write fails before the commit is updated, and a commit the write
opened is failed.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.service.auth import Principal
from datumflow.storage_service.service.bodies import _with_body, error_body, parse_range
from datumflow.storage_service.service.routes.access import Roles, may_force
from datumflow.storage_service.service.tar_upload import tar_members
from datumflow.storage_service.store.store import Store
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

__all__ = ["LIST_PAGE", "CopyIn", "build_router", "fast_routes"]

LIST_PAGE = 1000
CONTENTS_BATCH = 1000  # files per read_contents request
SMALL_BODY = 64 * 1024  # files up to this size are answered from memory, not streamed
T = TypeVar("T")

_BINARY_BODY: dict[str, Any] = {
    "requestBody": {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
}
_TAR_BODY: dict[str, Any] = {
    "requestBody": {"content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}}}
}


class ContentsIn(BaseModel):
    paths: list[str] = Field(max_length=CONTENTS_BATCH)


class CopyIn(BaseModel):
    src_repo: str
    src_ref: str
    src_path: str
    dst_path: str


def build_router(store: Store, roles: Roles) -> APIRouter:
    api = APIRouter(tags=["files"])
    _write_routes(api, store, roles)
    _read_routes(api, store, roles)
    return api


def _write_routes(api: APIRouter, store: Store, roles: Roles) -> None:
    principal = roles.principal

    @api.put("/repos/{repo}/commits/{ref}/content", dependencies=[roles.writer], openapi_extra=_BINARY_BODY)
    async def put_file(
        repo: str, ref: str, request: Request, path: str, append: bool = False, description: str = "",
        force: bool = False, who: Principal = Depends(principal),
    ) -> dict[str, Any]:
        """Upload one file (the raw request body) into a branch or an open commit."""
        force = may_force(who, repo, force)
        commit = await _with_body(
            request,
            lambda body: store.put_file(repo, ref, path, body, append=append, description=description, force=force),
        )
        return commit.to_dict()

    @api.post("/repos/{repo}/commits/{ref}/tar", dependencies=[roles.writer], openapi_extra=_TAR_BODY)
    async def put_tar(
        repo: str, ref: str, request: Request, path: str = "", append: bool = False, description: str = "",
        force: bool = False, who: Principal = Depends(principal),
    ) -> dict[str, Any]:
        """Upload the files of a tar stream under ``path``, as one change (one commit unless one is open)."""
        force = may_force(who, repo, force)
        commit = await _with_body(
            request,
            lambda body: store.put_files(
                repo, ref, tar_members(body, path.strip("/")), append=append, description=description, force=force,
            ),
        )
        return commit.to_dict()

    @api.delete("/repos/{repo}/commits/{ref}/content", dependencies=[roles.writer])
    def delete_file(
        repo: str, ref: str, path: str, force: bool = False, who: Principal = Depends(principal)
    ) -> dict[str, Any]:
        force = may_force(who, repo, force)
        return store.delete_file(repo, ref, path, force=force).to_dict()

    @api.post("/repos/{repo}/commits/{ref}/copy", dependencies=[roles.writer])
    def copy_file(
        repo: str, ref: str, body: CopyIn, force: bool = False, who: Principal = Depends(principal)
    ) -> dict[str, Any]:
        who.require(body.src_repo, "reader")
        force = may_force(who, repo, force)
        return store.copy_file(body.src_repo, body.src_ref, body.src_path, repo, ref, body.dst_path,
                               force=force).to_dict()


def _read_routes(api: APIRouter, store: Store, roles: Roles) -> None:
    @api.get("/repos/{repo}/commits/{ref}/content", dependencies=[roles.reader],
             responses={200: {"content": {"application/octet-stream": {}}}, 206: {"description": "a range"}})
    def get_file(repo: str, ref: str, path: str, request: Request) -> Response:
        """Download a file, streamed; one ``Range: bytes=…`` is honoured."""
        return _download(store, repo, ref, path, request.headers.get("range"))

    @api.get("/repos/{repo}/commits/{ref}/info", dependencies=[roles.reader])
    def inspect_file(repo: str, ref: str, path: str = "") -> dict[str, Any]:
        return store.inspect_file(repo, ref, path).to_dict()

    @api.get("/repos/{repo}/commits/{ref}/files", dependencies=[roles.reader])
    def list_files(
        repo: str, ref: str, path: str = "", start_after: str | None = None,
        limit: int = Query(LIST_PAGE, ge=1, le=10 * LIST_PAGE),
    ) -> dict[str, Any]:
        """One page of a folder; pass ``next_start_after`` back as ``start_after`` for the next."""
        files = store.list_files(repo, ref, path, start_after=start_after, limit=limit)
        more = posixpath.basename(files[-1].path) if len(files) == limit else None
        return {"files": [f.to_dict() for f in files], "next_start_after": more}

    @api.get("/repos/{repo}/commits/{ref}/walk", dependencies=[roles.reader],
             responses={200: {"content": {"application/x-ndjson": {}}}})
    def walk_files(repo: str, ref: str, path: str = "") -> StreamingResponse:
        """Every file under ``path``, one JSON object per line."""
        found = store.walk_files(repo, ref, path)
        first = next(found, None)  # raises now (404…) rather than mid-stream
        lines = (json.dumps(f.to_dict()) + "\n" for f in _chain(first, found))
        return StreamingResponse(lines, media_type="application/x-ndjson")

    @api.post("/repos/{repo}/commits/{ref}/contents", dependencies=[roles.reader],
              responses={200: {"content": {"application/octet-stream": {}}}})
    def read_contents(repo: str, ref: str, body: ContentsIn) -> StreamingResponse:
        """The bytes of several files of one commit, concatenated in the order asked (a restore's batch).

        Every path is looked up before the first byte is sent (a missing one or a folder is a 4xx);
        sizes come from the caller's walk, so the reader splits the stream itself.
        """
        commit = store.resolve(repo, ref)
        infos = [store.inspect_file(repo, commit, p) for p in body.paths]
        for info in infos:
            if info.is_dir:
                raise InvalidArgument(f"{repo}@{ref}:{info.path} is a folder, not a file")
        pieces = (piece for content in store.read_contents(infos) for piece in content)
        return StreamingResponse(pieces, media_type="application/octet-stream")

    @api.get("/repos/{repo}/commits/{ref}/glob", dependencies=[roles.reader])
    def glob_files(repo: str, ref: str, pattern: str) -> list[dict[str, Any]]:
        return [f.to_dict() for f in store.glob_files(repo, ref, pattern)]

    @api.get("/repos/{repo}/commits/{ref}/diff", dependencies=[roles.reader])
    def diff(
        repo: str, ref: str, old: str | None = None, old_repo: str | None = None,
        who: Principal = Depends(roles.principal),
    ) -> list[dict[str, Any]]:
        if old_repo:
            who.require(old_repo, "reader")
        return [d.to_dict() for d in store.diff(repo, old, ref, old_repo=old_repo)]


def fast_routes(prefix: str, store: Store, caller: Callable[[Request], Principal]) -> list[BaseRoute]:
    """A file download (``GET …/content?path=…``) as a plain route, meant to come first in the app's routes.

    The same answer as :func:`get_file` with its dependencies (``caller`` is
    what the principal dependency asks: the token's principal, or the open
    service's), without FastAPI's dependency solving and with authentication
    and the read in one worker thread: for small files those were most of the
    request's time. A request it does not take (no ``path``, another method)
    falls through to the routes of :func:`build_router`.
    """

    async def download(request: Request) -> Response:
        repo, ref = request.path_params["repo"], request.path_params["ref"]
        path, wanted = request.query_params["path"], request.headers.get("range")

        def read() -> Response:
            caller(request).require(repo, "reader")
            return _download(store, repo, ref, path, wanted)

        return await run_in_threadpool(read)

    return [_Download(f"{prefix}/repos/{{repo}}/commits/{{ref}}/content", download, methods=["GET"],
                      include_in_schema=False)]


class _Download(Route):
    """Matches a GET with a ``path`` query parameter and nothing else (other requests go on to the API routes)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.FULL or scope.get("method") not in ("GET", "HEAD"):
            return Match.NONE, {}
        names = {k for k, _ in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)}
        return (Match.FULL, {**child, "route": self}) if names == {"path"} else (Match.NONE, {})


def _download(store: Store, repo: str, ref: str, path: str, wanted: str | None) -> Response:
    info = store.inspect_file(repo, ref, path)
    if info.is_dir:
        raise InvalidArgument(f"{repo}@{ref}:{info.path} is a folder, not a file")
    headers = {"Accept-Ranges": "bytes", "ETag": f'"{info.hash}"'}
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
    if info.size <= SMALL_BODY:  # in one piece: no streaming machinery (a thread hop per chunk) per request
        return Response(b"".join(store.read_content(info)), headers=headers, media_type="application/octet-stream")
    return StreamingResponse(store.read_content(info), headers=headers, media_type="application/octet-stream")


def _chain(first: T | None, rest: Iterator[T]) -> Iterable[T]:
    if first is not None:
        yield first
        yield from rest
