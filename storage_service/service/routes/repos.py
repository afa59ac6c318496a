"""Repos over HTTP: list (those the caller has a role on), create, inspect, delete."""

from __future__ import annotations

from typing import Any

from datumflow.storage_service.service.auth import ANONYMOUS_ADMIN, Auth, Principal
from datumflow.storage_service.service.routes.access import Roles
from datumflow.storage_service.store.store import Store
from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel

__all__ = ["RepoIn", "build_router"]


class RepoIn(BaseModel):
    name: str
    description: str = ""
    exist_ok: bool = False


def build_router(store: Store, roles: Roles) -> APIRouter:
    api = APIRouter(tags=["repos"])
    principal = roles.principal

    @api.get("/repos")
    def list_repos(who: Principal = Depends(principal)) -> list[dict[str, Any]]:
        return [r.to_dict() for r in store.list_repos() if who.role_on(r.name)]

    @api.post("/repos", status_code=201)
    def create_repo(body: RepoIn, who: Principal = Depends(principal)) -> dict[str, Any]:
        repo = store.create_repo(body.name, body.description, exist_ok=body.exist_ok)
        if not who.admin and who is not ANONYMOUS_ADMIN and not who.role_on(repo.name):
            Auth(store.engine).grant(who.name, repo.name, "owner")
        return repo.to_dict()

    @api.get("/repos/{repo}", dependencies=[roles.reader])
    def inspect_repo(repo: str) -> dict[str, Any]:
        return store.inspect_repo(repo).to_dict()

    @api.delete("/repos/{repo}", status_code=204, dependencies=[roles.owner])
    def delete_repo(repo: str, force: bool = False) -> Response:
        store.delete_repo(repo, force=force)
        return Response(status_code=204)

    return api
