"""Branches over HTTP: list, create or move (with provenance), inspect, delete."""

from __future__ import annotations

from typing import Any

from datumflow.storage_service.service.auth import Principal
from datumflow.storage_service.service.routes.access import Roles, require_provenance
from datumflow.storage_service.store.store import Store
from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

__all__ = ["BranchIn", "build_router"]


class BranchIn(BaseModel):
    head: str | None = None
    provenance: list[str] = Field(default_factory=list)
    owner: str | None = None


def build_router(store: Store, roles: Roles) -> APIRouter:
    api = APIRouter(tags=["branches"])

    @api.get("/repos/{repo}/branches", dependencies=[roles.reader])
    def list_branches(repo: str) -> list[dict[str, Any]]:
        return [b.to_dict() for b in store.list_branches(repo)]

    @api.put("/repos/{repo}/branches/{branch}", dependencies=[roles.writer])
    def create_branch(
        repo: str, branch: str, body: BranchIn, who: Principal = Depends(roles.principal)
    ) -> dict[str, Any]:
        require_provenance(store, who, body.provenance, commits=False)
        return store.create_branch(
            repo, branch, head=body.head, provenance=body.provenance, owner=body.owner
        ).to_dict()

    @api.get("/repos/{repo}/branches/{branch}", dependencies=[roles.reader])
    def inspect_branch(repo: str, branch: str) -> dict[str, Any]:
        return store.inspect_branch(repo, branch).to_dict()

    @api.delete("/repos/{repo}/branches/{branch}", status_code=204, dependencies=[roles.writer])
    def delete_branch(repo: str, branch: str, force: bool = False) -> Response:
        store.delete_branch(repo, branch, force=force)
        return Response(status_code=204)

    return api
