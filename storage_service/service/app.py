"""The store over HTTP: ``create_app(store) -> FastAPI``, every Store operation under ``/api/v1``.

The app factory and the error handlers live here; the routes live in
:mod:`.routes`, one module per thing served (repos, branches, commits,
files, maintenance, pipelines, spouts), each a ``build_router(...)``.
Routes are thin: check the caller's role (:class:`.routes.access.Roles`),
make one Store call, serialize the value object. Errors leave through one
handler (:func:`_datumflow_error`), which maps the exception tree to status
codes with :func:`errors.status_for` and answers
``{"error": {"type": ClassName, "message": ...}}``; the client rebuilds the
same class from that body.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from datumflow.storage_service.core.db import is_unique_violation
from datumflow.storage_service.errors import CONCURRENT_WRITE, DatumflowError, status_for
from datumflow.storage_service.pipelines.tokens import PREFIX as PIPELINE_TOKEN
from datumflow.storage_service.service import observability
from datumflow.storage_service.service.auth import ANONYMOUS_ADMIN, Auth, Principal, pipeline_principal
from datumflow.storage_service.service.bodies import error_body
from datumflow.storage_service.service.guard import OpenModeGuard
from datumflow.storage_service.service.limits import BodyLimits
from datumflow.storage_service.service.long_poll import LONG_POLL_MAX
from datumflow.storage_service.service.routes import branches, commits, files, history, maintenance, repos, s3_keys
from datumflow.storage_service.service.routes.access import Roles
from datumflow.storage_service.store.store import Store
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["API_PREFIX", "LONG_POLL_MAX", "create_app"]

API_PREFIX = "/api/v1"

log = logging.getLogger("datumflow.service")


# -- errors: the one place exceptions become HTTP answers ------------------------------------


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
    if is_unique_violation(exc):  # a race no retry settled: the caller may try again
        log.warning("a concurrent request wrote the same record: %s", exc)
        return JSONResponse(error_body("ConcurrentUpdate", CONCURRENT_WRITE), status_code=409)
    log.exception("unexpected error", exc_info=exc)
    return JSONResponse(error_body("DatumflowError", f"internal error: {type(exc).__name__}"), status_code=500)


# -- the app -------------------------------------------------------------------------------


def create_app(
    store: Store, *, auth: Auth | None = None, s3_domain: str | None = None, pipeline_tokens_only: bool = False
) -> FastAPI:
    """The HTTP service over ``store``.

    ``auth=None`` serves without tokens, always (an embedded, loopback-only app);
    with ``auth``, requests need tokens as soon as its database has users —
    until then the service is open, and guarded as an open one (:mod:`.guard`).
    A pipeline's token (a spout's process holds one) is its pipeline's principal in
    every case; ``pipeline_tokens_only`` refuses any other caller (the loopback app an
    embedded spout writes through).
    """
    app = FastAPI(
        title="datumflow",
        version="0.1.0",
        description="Versioned data with provenance: repos, branches, commits, files.",
    )
    app.add_exception_handler(DatumflowError, _datumflow_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
    principal = _principal_dependency(auth, store, pipeline_tokens_only=pipeline_tokens_only)
    _mount_store(app, store, Roles(principal))
    caller = _caller(auth, store, pipeline_tokens_only=pipeline_tokens_only)
    app.router.routes[0:0] = files.fast_routes(API_PREFIX, store, lambda request: caller(
        bearer_token(request.headers.get("authorization"))))
    _mount_pipelines(app, store, principal)
    app.include_router(s3_keys.build_router(store, principal), prefix=API_PREFIX)

    def is_open() -> bool:
        return auth is None or auth.open_mode()

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "auth": not is_open()}

    app.add_middleware(BodyLimits)  # inside the host-style rewrite: limits see /s3/… paths
    _mount_optional(app, store, s3_domain, auth)
    app.add_middleware(OpenModeGuard, is_open=is_open)
    observability.install(app, store)
    return app


def _principal_dependency(
    auth: Auth | None, store: Store, *, pipeline_tokens_only: bool = False
) -> Callable[..., Principal]:
    bearer = HTTPBearer(auto_error=False, description="a datumflow token (`datumflow auth token create`)")
    caller = _caller(auth, store, pipeline_tokens_only=pipeline_tokens_only)

    def principal(credentials: HTTPAuthorizationCredentials | None = Depends(bearer)) -> Principal:
        return caller(credentials.credentials if credentials else None)

    return principal


def _caller(
    auth: Auth | None, store: Store, *, pipeline_tokens_only: bool = False
) -> Callable[[str | None], Principal]:
    """token (or None) -> the caller's principal: what the principal dependency and the fast routes ask."""

    def caller(token: str | None) -> Principal:
        if (token and token.startswith(PIPELINE_TOKEN)) or pipeline_tokens_only:
            return pipeline_principal(store.engine, token)
        if auth is None or auth.open_mode():
            return ANONYMOUS_ADMIN
        return auth.authenticate(token)

    return caller


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header, parsed as HTTPBearer parses it; None otherwise."""
    scheme, credentials = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
        return None
    return credentials


def _mount_store(app: FastAPI, store: Store, roles: Roles) -> None:
    """Repos, branches, commits and provenance, files, maintenance."""
    for routes in (repos, branches, commits, files, history, maintenance):
        app.include_router(routes.build_router(store, roles), prefix=API_PREFIX)


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

    app.router.routes[0:0] = s3_gateway.build_routes(lambda: store, auth=auth, prefix="/s3")  # first: see there
    if s3_domain:
        app.add_middleware(s3_gateway.HostStyleBuckets, domain=s3_domain)
    app.include_router(console.build_router(lambda: store, auth=auth), prefix="/console")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/console/")


