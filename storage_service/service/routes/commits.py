"""Commits over HTTP: resolve a ref, start/list/inspect/finish/wait/delete, provenance and commit sets."""

from __future__ import annotations

from typing import Any

from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.model.core import Commit, Origin
from datumflow.storage_service.service.auth import Principal
from datumflow.storage_service.service.long_poll import long_poll
from datumflow.storage_service.service.routes.access import Roles, hidden_entry, may_force, require_provenance
from datumflow.storage_service.store.store import Store
from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

__all__ = ["CommitIn", "FinishIn", "build_router"]


class CommitIn(BaseModel):
    branch: str
    parent: str | None = None
    description: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    origin: str = "user"
    provenance: list[str] = Field(default_factory=list)
    owner: str | None = Field(None, max_length=256)  # a process identity: the commit is abandoned when it exits
    lease: float | None = None  # seconds without a write before it is abandoned (None: the default, 0: none)
    force: bool = False  # on a pipeline's output branch: an owner's repair


class FinishIn(BaseModel):
    description: str | None = None
    metadata: dict[str, Any] | None = None
    error: str | None = None


def build_router(store: Store, roles: Roles) -> APIRouter:
    api = APIRouter()
    _commit_routes(api, store, roles)
    _provenance_routes(api, store, roles)
    return api


def _commit_routes(api: APIRouter, store: Store, roles: Roles) -> None:
    @api.get("/repos/{repo}/resolve/{ref}", tags=["commits"], dependencies=[roles.reader])
    def resolve(repo: str, ref: str) -> dict[str, str]:
        return {"id": store.resolve(repo, ref)}

    @api.post("/repos/{repo}/commits", tags=["commits"], status_code=201, dependencies=[roles.writer])
    def start_commit(repo: str, body: CommitIn, who: Principal = Depends(roles.principal)) -> dict[str, Any]:
        require_provenance(store, who, body.provenance, commits=True)
        force = may_force(who, repo, body.force)
        return store.start_commit(
            repo, body.branch, parent=body.parent, description=body.description,
            metadata=body.metadata, origin=_origin(body.origin), provenance=body.provenance,
            owner=body.owner, lease=body.lease, force=force,
        ).to_dict()

    @api.get("/repos/{repo}/commits", tags=["commits"], dependencies=[roles.reader])
    def list_commits(
        repo: str, branch: str | None = None, limit: int | None = Query(None, ge=1), state: str | None = None,
        first_parent: bool = False, until: str | None = None,
    ) -> list[dict[str, Any]]:
        """All commits, or a ref's history through both parents of merges (or ``first_parent`` only)."""
        found = store.list_commits(repo, branch, limit=limit, state=state, first_parent=first_parent, until=until)
        return [c.to_dict() for c in found]

    @api.get("/repos/{repo}/commits/{ref}", tags=["commits"], dependencies=[roles.reader])
    def inspect_commit(repo: str, ref: str) -> dict[str, Any]:
        return store.inspect_commit(repo, ref).to_dict()

    @api.post("/repos/{repo}/commits/{ref}/finish", tags=["commits"], dependencies=[roles.writer])
    def finish_commit(repo: str, ref: str, body: FinishIn) -> dict[str, Any]:
        return store.finish_commit(
            repo, ref, description=body.description, metadata=body.metadata, error=body.error
        ).to_dict()

    @api.get("/repos/{repo}/commits/{ref}/wait", tags=["commits"], dependencies=[roles.reader])
    async def wait_commit(repo: str, ref: str, timeout: float | None = Query(None, ge=0)) -> dict[str, Any]:
        """Long poll: answers when the commit is finished, or 504 after ``timeout`` (at most 20 s)."""
        commit_id = await run_in_threadpool(store.resolve, repo, ref)

        def finished() -> Commit | None:
            commit = store.inspect_commit(repo, commit_id)
            return commit if commit.is_finished else None

        commit = await long_poll(finished, timeout, f"commit {repo}@{commit_id}")
        return commit.to_dict()

    @api.delete("/repos/{repo}/commits/{ref}", tags=["commits"], status_code=204, dependencies=[roles.writer])
    def delete_commit(repo: str, ref: str) -> Response:
        store.delete_commit(repo, ref)
        return Response(status_code=204)


def _provenance_routes(api: APIRouter, store: Store, roles: Roles) -> None:
    principal = roles.principal

    @api.get("/repos/{repo}/commits/{ref}/provenance", tags=["provenance"], dependencies=[roles.reader])
    def provenance(
        repo: str, ref: str, depth: int | None = Query(None, ge=0), who: Principal = Depends(principal)
    ) -> list[dict[str, Any]]:
        """Every commit this one came from; those in repos the caller cannot read are shown hidden."""
        return [hidden_entry(e.to_dict(), who) for e in store.provenance(repo, ref, depth=depth)]

    @api.get("/repos/{repo}/commits/{ref}/subvenance", tags=["provenance"], dependencies=[roles.reader])
    def subvenance(
        repo: str, ref: str, depth: int | None = Query(None, ge=0), who: Principal = Depends(principal)
    ) -> list[dict[str, Any]]:
        return [hidden_entry(e.to_dict(), who) for e in store.subvenance(repo, ref, depth=depth)]

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


def _origin(value: str) -> Origin:
    try:
        return Origin(value)
    except ValueError as exc:
        raise InvalidArgument(f"unknown origin {value!r}: use one of {', '.join(o.value for o in Origin)}") from exc
