"""Protected branches: no direct writes, merges only (the publish step of write-audit-publish).

The refusal lives where every surface's writes meet — opening a commit on a
branch, writing into an open commit, moving or deleting a branch — so the
embedded store, HTTP, the S3 gateway, fsspec and the CLI all refuse alike.
Commits opened by branch provenance or pipelines (origin ``auto``/``pipeline``)
are not direct writes and still land.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from datumflow.storage_service.core.db import retry_on_conflict
from datumflow.storage_service.core.history_schema import branch_protection
from datumflow.storage_service.core.schema import commits
from datumflow.storage_service.errors import InvalidArgument, ProtectedBranch
from datumflow.storage_service.model.core import Origin
from datumflow.storage_service.model.history import Protection
from datumflow.storage_service.store.base import StoreBase
from sqlalchemy import Connection, delete, insert, select, update

__all__ = ["Protecting"]

_NOT_DIRECT = (Origin.AUTO, Origin.PIPELINE)


class Protecting(StoreBase):
    @retry_on_conflict
    def protect_branch(self, repo: str, branch: str, *, checks: Sequence[str] = ()) -> Protection:
        """Refuse direct writes to ``branch``; ``checks`` (commands) must pass on each merge result."""
        if isinstance(checks, str) or not all(isinstance(c, str) and c.strip() for c in checks):
            raise InvalidArgument("checks must be a list of non-empty commands")
        with self.engine.begin() as conn:
            self._require_branch(conn, repo, branch)
            values = {"checks": json.dumps(list(checks))}
            if self._protection(conn, repo, branch) is None:
                row = {"repo": repo, "branch": branch, "created": time.time(), **values}
                conn.execute(insert(branch_protection), row)
            else:
                conn.execute(update(branch_protection).where(
                    branch_protection.c.repo == repo, branch_protection.c.branch == branch).values(**values))
        return Protection(repo, branch, tuple(checks))

    def unprotect_branch(self, repo: str, branch: str) -> None:
        with self.engine.begin() as conn:
            self._require_branch(conn, repo, branch)
            conn.execute(delete(branch_protection).where(
                branch_protection.c.repo == repo, branch_protection.c.branch == branch))

    def list_protections(self, repo: str) -> list[Protection]:
        with self.engine.connect() as conn:
            self._require_repo(conn, repo)
            rows = conn.execute(select(branch_protection).where(branch_protection.c.repo == repo)
                                .order_by(branch_protection.c.branch)).all()
        return [Protection(r.repo, r.branch, tuple(json.loads(r.checks))) for r in rows]

    def _protection(self, conn: Connection, repo: str, branch: str | None) -> Protection | None:
        if branch is None:
            return None
        row = conn.execute(select(branch_protection).where(
            branch_protection.c.repo == repo, branch_protection.c.branch == branch)).first()
        return Protection(repo, branch, tuple(json.loads(row.checks))) if row else None

    def _refuse_write_into(self, repo: str, commit_id: str) -> None:
        """Writes into an open commit of a protected branch are direct writes too."""
        with self.engine.connect() as conn:
            row = conn.execute(select(commits.c.branch, commits.c.origin).where(commits.c.id == commit_id)).first()
            if row is not None:
                self._refuse_direct(conn, repo, row.branch, "writing into its open commit", Origin(row.origin))

    def _refuse_direct(self, conn: Connection, repo: str, branch: str | None, what: str,
                       origin: Origin = Origin.USER) -> None:
        """Raise ProtectedBranch if ``branch`` is protected and this is a direct change."""
        if origin in _NOT_DIRECT or self._protection(conn, repo, branch) is None:
            return
        raise ProtectedBranch(
            f"branch {repo}@{branch} is protected: {what} is refused; write on another branch and merge it"
        )
