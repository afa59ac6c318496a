"""Lookups for code that runs inside the store's process (pipelines, the service), not for a client.

They answer what the Store's client-facing API does not: which repo a bare
commit id belongs to, the open commits of a branch by origin, and a commit's
file index as (path, raw index entry) pairs, which the datum planner and a
job's output writer work on without building a ``FileInfo`` per file.
An index root is an opaque handle: pass it back, never interpret it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from datumflow.storage_service.core.schema import commits
from datumflow.storage_service.errors import CommitNotFound
from datumflow.storage_service.model.core import CommitState, Origin
from sqlalchemy import select

if TYPE_CHECKING:
    from datumflow.storage_service.store.store import Store

__all__ = ["commit_root", "entries_under", "open_commit_ids", "repo_of_commit"]


def repo_of_commit(store: Store, commit_id: str) -> str:
    """The repo that holds ``commit_id`` (a full id); ``CommitNotFound`` if none does."""
    with store.engine.connect() as conn:
        repo = conn.execute(select(commits.c.repo).where(commits.c.id == commit_id)).scalar()
    if repo is None:
        raise CommitNotFound(f"commit {commit_id} not found")
    return str(repo)


def open_commit_ids(store: Store, repo: str, branch: str, origin: Origin) -> list[str]:
    """Ids of the open commits of ``repo@branch`` made by ``origin``, oldest first."""
    with store.engine.connect() as conn:
        return [
            str(c) for c in conn.execute(
                select(commits.c.id).where(
                    commits.c.repo == repo, commits.c.branch == branch,
                    commits.c.state == CommitState.OPEN.value, commits.c.origin == origin.value,
                ).order_by(commits.c.seq)
            ).scalars()
        ]


def commit_root(store: Store, commit_id: str) -> str | None:
    """The index root of a commit (None for an empty one)."""
    return store._root_of(commit_id)


def entries_under(store: Store, root: str | None, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, index entry) of the file ``path`` or of every file under the folder ``path``."""
    return store._entries_under(root, path)
