"""Reads on a request's path, one prebuilt query each: a branch's head commit, the index root a ref names.

A small GetObject or file download asks the database what a branch points at
for every request; built the general way (repo check, branch row, commit row,
its provenance, its merge parent) that is seven queries, each compiled anew.
Here each read is one statement, built once with bind parameters, so it costs
one round trip and no compilation. A query that finds nothing answers
``None`` and the caller takes the general path, which says precisely why
(no repo, no branch, a tag, an ancestry form, an empty branch).
"""

from __future__ import annotations

from typing import Any

from datumflow.storage_service.core.db import Prepared
from datumflow.storage_service.core.history_schema import commit_parents
from datumflow.storage_service.core.schema import branches, commit_provenance, commits
from datumflow.storage_service.names import is_commit_id
from sqlalchemy import Engine, and_, bindparam, select

__all__ = ["head_rows", "root_of"]

_HEAD = Prepared(
    select(commits, commit_provenance.c.upstream.label("lookup_upstream"),
           commit_parents.c.parent.label("lookup_merge_parent"))
    .select_from(
        branches.join(commits, commits.c.id == branches.c.head)
        .outerjoin(commit_provenance, commit_provenance.c.commit == commits.c.id)
        .outerjoin(commit_parents, and_(commit_parents.c.commit == commits.c.id, commit_parents.c.position == 1))
    )
    .where(branches.c.repo == bindparam("repo"), branches.c.name == bindparam("branch"))
)
_BRANCH_ROOT = Prepared(
    select(commits.c.root)
    .select_from(branches.join(commits, commits.c.id == branches.c.head))
    .where(branches.c.repo == bindparam("repo"), branches.c.name == bindparam("branch"))
)
_COMMIT_ROOT = Prepared(
    select(commits.c.root).where(commits.c.id == bindparam("id"), commits.c.repo == bindparam("repo")))
_PLAIN = set("^~")


def head_rows(engine: Engine, repo: str, branch: str) -> list[Any]:
    """The rows of a branch's head commit, one per upstream commit (at least one); [] if none."""
    return _HEAD.rows(engine, repo=repo, branch=branch)


def root_of(engine: Engine, repo: str, ref: str) -> tuple[str | None] | None:
    """``(root,)`` of the commit a branch name or commit id names; None if this query cannot tell.

    An ancestry form (``master^``), a tag, a missing repo, branch or commit and
    an empty branch all answer None: the caller resolves those the general way.
    """
    if not isinstance(ref, str) or not ref or not _PLAIN.isdisjoint(ref):
        return None
    if is_commit_id(ref):
        rows = _COMMIT_ROOT.rows(engine, id=ref, repo=repo)
    else:
        rows = _BRANCH_ROOT.rows(engine, repo=repo, branch=ref)
    return (rows[0].root,) if rows else None
