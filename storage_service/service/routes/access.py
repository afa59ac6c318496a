"""Role checks as FastAPI dependencies: ``reader``/``writer``/``owner`` on the path's repo, and admin."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from datumflow.storage_service.service.auth import Principal
from fastapi import Depends

__all__ = ["Roles"]


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
    def check(repo: str, who: Principal = Depends(principal)) -> Principal:
        who.require(repo, role)
        return who

    return Depends(check)


def _admin(principal: Callable[..., Principal]) -> Callable[..., Principal]:
    def admin(who: Principal = Depends(principal)) -> Principal:
        who.require_admin()
        return who

    return admin
