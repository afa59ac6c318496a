"""Create repos and branches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datumflow.plugin._compat import deprecated_alias

from .base import DatumflowBaseOperator, with_conn_id

__all__ = [
    "CreateBranchOperator",
    "CreateRepoOperator",
    "DatumflowCreateBranchOperator",
    "DatumflowCreateRepoOperator",
]


class DatumflowCreateRepoOperator(DatumflowBaseOperator):
    """Create a repo (``exist_ok`` by default, so a rerun succeeds); returns ``{"repo", "branch", "commit"}``."""

    template_fields: Sequence[str] = with_conn_id("repo", "description")

    def __init__(self, *, repo: str, description: str = "", exist_ok: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.repo, self.description, self.exist_ok = repo, description, exist_ok

    def execute(self, context: Any) -> dict[str, Any]:
        repo = self.hook.get_conn().create_repo(self.repo, self.description, exist_ok=self.exist_ok)
        return {"repo": repo.name, "branch": None, "commit": None}


class DatumflowCreateBranchOperator(DatumflowBaseOperator):
    """Create or move a branch (``head``: a ref), optionally provenant on other branches (``repo@branch``)."""

    template_fields: Sequence[str] = with_conn_id("repo", "branch", "head", "provenance")

    def __init__(self, *, repo: str, branch: str, head: str | None = None, provenance: Sequence[str] = (),
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.repo, self.branch, self.head, self.provenance = repo, branch, head, provenance

    def execute(self, context: Any) -> dict[str, Any]:
        branch = self.hook.get_conn().create_branch(
            self.repo, self.branch, head=self.head or None, provenance=list(self.provenance)
        )
        return {"repo": branch.repo, "branch": branch.name, "commit": branch.head}


CreateRepoOperator = deprecated_alias(DatumflowCreateRepoOperator, "CreateRepoOperator")
CreateBranchOperator = deprecated_alias(DatumflowCreateBranchOperator, "CreateBranchOperator")
