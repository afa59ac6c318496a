"""Maintenance and identity over HTTP: ``fsck`` and ``gc`` (admin only), ``whoami``."""

from __future__ import annotations

from typing import Any

from datumflow.storage_service.service.auth import Principal
from datumflow.storage_service.service.routes.access import Roles
from datumflow.storage_service.store.store import Store
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

__all__ = ["FsckIn", "GcIn", "build_router"]


class FsckIn(BaseModel):
    verify_content: bool = True
    repair: bool = False


class GcIn(BaseModel):
    grace_seconds: float = Field(default=3600.0, ge=0)


def build_router(store: Store, roles: Roles) -> APIRouter:
    api = APIRouter()

    @api.post("/fsck", tags=["maintenance"], dependencies=[roles.admin])
    def fsck(body: FsckIn | None = None) -> dict[str, Any]:
        body = body or FsckIn()
        return store.fsck(verify_content=body.verify_content, repair=body.repair)

    @api.post("/gc", tags=["maintenance"], dependencies=[roles.admin])
    def gc(request: Request, body: GcIn | None = None) -> dict[str, int]:
        result = store.gc(grace_seconds=(body or GcIn()).grace_seconds)
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.gc_reclaimed.inc(result.get("bytes_reclaimed", 0))
        return result

    @api.get("/whoami", tags=["service"])
    def whoami(who: Principal = Depends(roles.principal)) -> dict[str, Any]:
        return {"name": who.name, "admin": who.admin, "roles": who.grants}

    return api
