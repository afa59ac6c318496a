"""Role checks as FastAPI dependencies: ``reader``/``writer``/``owner`` on the path's repo, and admin;
provenance only to readable repos, and provenance listings with unreadable entries hidden; ``force``
on an output branch for owners."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from datumflow.storage_service.core.schema import commits
from datumflow.storage_service.model.core import BranchRef
from datumflow.storage_service.service.auth import Principal
from datumflow.storage_service.store.store import Store
from fastapi import Depends
from sqlalchemy import select

__all__ = ["HIDDEN", "Roles", "hidden_entry", "may_force", "require_provenance"]


class Roles:
    """The dependencies a route module declares: ``dependencies=[roles.reader]``.

    ``principal`` is the app's dependency that authenticates the caller.
    """

    def __init__(self, principal: Callable[..., Principal]) -> None:
        self.principal = principal
        self.reader: Any = _on_repo(principal, "reader")
        self.writer: Any = _on_repo(principal, "writer")
        self.owner: Any = _on_repo(principal, "owner")
        self.admin: Any = Depends(_admin(principal))


def _on_repo(principal: Callable[..., Principal], role: str) -> Any:
    # async: a check of what the principal holds does no I/O, so it runs on the event loop (no thread hop)
    async def check(repo: str, who: Principal = Depends(principal)) -> Principal:
        who.require(repo, role)
        return who

    return Depends(check)


def _admin(principal: Callable[..., Principal]) -> Callable[..., Any]:
    async def admin(who: Principal = Depends(principal)) -> Principal:
        who.require_admin()
        return who

    return admin


def require_provenance(store: Store, who: Principal, provenance: Iterable[str], *, commits: bool) -> None:
    """Provenance links only to what the caller can read: ``reader`` on each commit's or branch's repo.

    A commit id that does not exist is left to the store (it answers 404); one in
    an unreadable repo is refused without saying more.
    """
    if who.admin:
        return
    for item in provenance:
        repo = _commit_repo(store, item) if commits else BranchRef.parse(item).repo
        if repo is not None:
            who.require(repo, "reader")


def may_force(who: Principal, repo: str, force: bool) -> bool:
    """Whether this write may land on a pipeline's output branch of ``repo``: the pipeline's own process
    (a spout, with its token) writes its output; ``force`` (by hand) is a repair, for the repo's owners."""
    if force:
        who.require(repo, "owner")
        return True
    return who.pipeline is not None and who.pipeline == repo


def hidden_entry(entry: dict[str, Any], who: Principal) -> dict[str, Any]:
    """A provenance entry as the caller may see it: in an unreadable repo, only its depth and origin."""
    if who.role_on(entry["repo"]):
        return entry
    return {"repo": HIDDEN, "commit": HIDDEN, "branch": None, "depth": entry["depth"], "origin": entry["origin"],
            "hidden": True}


HIDDEN = "(hidden)"


def _commit_repo(store: Store, commit_id: str) -> str | None:
    with store.engine.connect() as conn:
        found = conn.execute(select(commits.c.repo).where(commits.c.id == commit_id)).scalar()
    return str(found) if found is not None else None
