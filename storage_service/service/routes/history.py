"""Merge, revert, reset, tags and branch protection over HTTP.

Merges record the authenticated caller as the merger. Merge checks are
commands the service runs on its own machine, so setting them (on a
protection or on one merge) takes an admin; bisect has no route: its
command runs on the caller's machine (``Client.bisect``).
"""

from __future__ import annotations

from typing import Any

from datumflow.storage_service.service.auth import ANONYMOUS_ADMIN, Principal
from datumflow.storage_service.service.routes.access import Roles
from datumflow.storage_service.store.store import Store
from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

__all__ = ["build_router"]


class MergeIn(BaseModel):
    source: str
    dest: str
    strategy: str | None = None
    message: str = ""
    author: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    checks: list[str] = Field(default_factory=list)
    dry_run: bool = False
    fast_forward: bool = True


class RevertIn(BaseModel):
    branch: str | None = None
    message: str = ""


class ResetIn(BaseModel):
    to: str
    force: bool = False


class TagIn(BaseModel):
    name: str
    ref: str
    message: str = ""


class ProtectIn(BaseModel):
    checks: list[str] = Field(default_factory=list)


def build_router(store: Store, roles: Roles) -> APIRouter:
    api = APIRouter()

    def caller(who: Principal, claimed: str | None) -> str | None:
        """Who did it: the authenticated caller; only an open (token-less) service takes the claim."""
        return claimed if who is ANONYMOUS_ADMIN else who.name

    @api.post("/repos/{repo}/merge", tags=["merge"], dependencies=[roles.writer])
    def merge(repo: str, body: MergeIn, who: Principal = Depends(roles.principal)) -> dict[str, Any]:
        """Merge ``source`` into the branch ``dest``: 409 MergeConflict (nothing moved) or CheckFailed."""
        if body.checks:
            who.require_admin()
        return store.merge(
            repo, body.source, body.dest, strategy=body.strategy, message=body.message,
            author=caller(who, body.author), metadata=body.metadata, checks=body.checks, dry_run=body.dry_run,
            fast_forward=body.fast_forward,
        ).to_dict()

    @api.get("/repos/{repo}/merge-base", tags=["merge"], dependencies=[roles.reader])
    def merge_base(repo: str, a: str, b: str) -> dict[str, str | None]:
        return {"id": store.merge_base(repo, a, b)}

    @api.post("/repos/{repo}/commits/{ref}/revert", tags=["merge"], dependencies=[roles.writer])
    def revert(repo: str, ref: str, body: RevertIn) -> dict[str, Any]:
        return store.revert(repo, ref, branch=body.branch, message=body.message).to_dict()

    @api.post("/repos/{repo}/branches/{branch}/reset", tags=["branches"], dependencies=[roles.writer])
    def reset_branch(repo: str, branch: str, body: ResetIn) -> dict[str, Any]:
        return store.reset_branch(repo, branch, body.to, force=body.force).to_dict()

    @api.get("/repos/{repo}/tags", tags=["tags"], dependencies=[roles.reader])
    def list_tags(repo: str) -> list[dict[str, Any]]:
        return [t.to_dict() for t in store.list_tags(repo)]

    @api.post("/repos/{repo}/tags", tags=["tags"], status_code=201, dependencies=[roles.writer])
    def create_tag(repo: str, body: TagIn, who: Principal = Depends(roles.principal)) -> dict[str, Any]:
        return store.create_tag(repo, body.name, body.ref, message=body.message, creator=who.name).to_dict()

    @api.get("/repos/{repo}/tags/{name}", tags=["tags"], dependencies=[roles.reader])
    def inspect_tag(repo: str, name: str) -> dict[str, Any]:
        return store.inspect_tag(repo, name).to_dict()

    @api.delete("/repos/{repo}/tags/{name}", tags=["tags"], status_code=204, dependencies=[roles.owner])
    def delete_tag(repo: str, name: str) -> Response:
        store.delete_tag(repo, name)
        return Response(status_code=204)

    @api.get("/repos/{repo}/protections", tags=["branches"], dependencies=[roles.reader])
    def list_protections(repo: str) -> list[dict[str, Any]]:
        return [p.to_dict() for p in store.list_protections(repo)]

    @api.put("/repos/{repo}/branches/{branch}/protection", tags=["branches"], dependencies=[roles.owner])
    def protect_branch(repo: str, branch: str, body: ProtectIn,
                       who: Principal = Depends(roles.principal)) -> dict[str, Any]:
        if body.checks:
            who.require_admin()
        return store.protect_branch(repo, branch, checks=body.checks).to_dict()

    @api.delete("/repos/{repo}/branches/{branch}/protection", tags=["branches"], status_code=204,
                dependencies=[roles.owner])
    def unprotect_branch(repo: str, branch: str) -> Response:
        store.unprotect_branch(repo, branch)
        return Response(status_code=204)

    return api
