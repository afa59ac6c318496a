"""Repos over HTTP: list (those the caller has a role on), create, inspect, delete.

A repo's creator becomes its owner; grants die with the repo (the store deletes them with it).
"""

from __future__ import annotations

from typing import Any

from datumflow.storage_service.errors import AlreadyExists
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
        """Create a repo, its creator its owner; ``exist_ok`` answers an existing one the caller can read.

        ``exist_ok`` never grants anything: on a repo someone else made, the caller needs a role already.
        """
        who.require_person("create repos")
        try:
            repo = store.create_repo(body.name, body.description)
        except AlreadyExists:
            if not body.exist_ok:
                raise
            who.require(body.name, "reader")
            return store.inspect_repo(body.name).to_dict()
        if not who.admin and who is not ANONYMOUS_ADMIN:
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
