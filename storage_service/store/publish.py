"""Writing to a branch: each writer's change becomes its own finished commit.

A put, delete or copy aimed at a *branch* never enters a commit somebody else
opened. Its content is stored first (chunks pinned, see
:mod:`~datumflow.storage_service.core.inflight`); then one transaction locks
the branch, reads its head, applies the writer's index edit to it and moves the
head by compare-and-swap. A writer that loses the race re-reads the head and
applies its edit again — an index edit, cheap: the bytes are stored already —
so every acknowledged write is in the history, in acknowledgement order, and
of two writes to one path the later one wins.

Open commits at the top of a branch (an explicit ``start_commit``, a pipeline
job's output commit) stay on top: a published commit is spliced in *beneath*
them — its parent is the newest finished commit, and each open commit above it
is rebased onto it by re-applying its own changes. An explicit commit started
while another is open on the branch is *detached*: its parent is fixed when it
starts, nobody else's work is in it, and finishing it publishes its changes the
same way. So open commits never block, reject or absorb another writer's write.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from datumflow.storage_service.core.db import insert_ignore
from datumflow.storage_service.core.inflight import gc_lock
from datumflow.storage_service.core.schema import branches, commit_provenance, commits
from datumflow.storage_service.errors import ConcurrentUpdate, ProtectedBranch
from datumflow.storage_service.model.core import BranchRef, Commit, CommitState, Origin
from datumflow.storage_service.store.base import StoreBase
from datumflow.storage_service.store.clash import refuse_file_folder_clash
from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import DBAPIError

__all__ = ["EDIT_LOCK", "Edits", "Publishing"]

# One index edit at a time per process: the node store's pending nodes are shared.
EDIT_LOCK = threading.RLock()
_ATTEMPTS = 100

Edits = Callable[[str | None], dict[str, Any]]  # base root -> {path: entry or None}


class _OutsideWork(Exception):
    """Raised by an edit that first needs work of its own transactions (storing bytes):
    the transaction is dropped, ``work`` runs, and the edit is tried again."""

    def __init__(self, work: Callable[[], None]) -> None:
        super().__init__("work outside the write transaction")
        self.work = work


class Publishing(StoreBase):
    """Branch writes and the finish of detached commits (a mixin of :class:`Store`)."""

    def _publish_edits(
        self, repo: str, branch: str, edits_for: Edits, *, description: str = "",
        metadata: dict[str, Any] | None = None, origin: Origin = Origin.USER,
        check: Callable[[str | None], None] | None = None,
    ) -> Commit:
        """One new finished commit on ``branch``: ``edits_for(head root)`` applied to the head.

        ``check(root)`` runs first on the root the edit applies to (a precondition).
        """
        commit_id = uuid.uuid4().hex

        def once(conn: Connection) -> None:
            self._refuse_direct(conn, repo, branch, "a direct write", origin)
            self._refuse_output(conn, repo, branch, "write", origin)
            base_id, base_root, chain = self._claim_branch(conn, repo, branch)
            if check is not None:
                check(base_root)
            edits = edits_for(base_root)
            inserted: set[str] = set()
            root = self.tree.edit(base_root, edits, inserted)
            refuse_file_folder_clash(self.tree, base_root, root, edits, inserted)
            self._insert_finished(conn, repo, branch, commit_id, base_id, root, description, metadata or {}, origin)
            self._land(conn, repo, branch, commit_id, base_id, base_root, root, chain)
            self._open_downstream(conn, BranchRef(repo, branch), commit_id)
            self._finish_aliases(conn, commit_id)

        return self._transact(repo, commit_id, once)

    def _publish_detached(self, repo: str, row: Any, values: dict[str, Any]) -> Commit:
        """Finish a detached open commit: its own changes, rebased onto the branch head."""

        def once(conn: Connection) -> None:
            base_id, base_root, chain = self._claim_branch(conn, repo, row.branch)
            current = conn.execute(select(commits).where(commits.c.id == row.id)).one()
            if current.state != CommitState.OPEN.value:
                raise ConcurrentUpdate(f"commit {repo}@{row.id} was finished meanwhile")
            started = self._root_of_commit(conn, current.parent)
            root = self._rebased(started, current.root, base_root)
            files, size = self.tree.stats(root)
            conn.execute(
                update(commits).where(commits.c.id == row.id, commits.c.state == CommitState.OPEN.value)
                .values(parent=base_id, root=root, file_count=files, size_bytes=size,
                        state=CommitState.FINISHED.value, **values)
            )
            self._land(conn, repo, row.branch, row.id, base_id, base_root, root, chain)
            self._finish_aliases(conn, row.commit_set)

        return self._transact(repo, row.id, once)

    def _is_detached(self, conn: Connection, row: Any) -> bool:
        """Whether an open commit is off its branch (neither the head nor under it among open commits)."""
        if not row.branch:
            return False
        branch = self._branch_row(conn, row.repo, row.branch)
        if branch is None:
            return False
        cur = branch.head
        while cur:
            if cur == row.id:
                return False
            found = conn.execute(select(commits.c.state, commits.c.parent).where(commits.c.id == cur)).first()
            if found is None or found.state != CommitState.OPEN.value:
                return True
            cur = found.parent
        return True

    # -- the transaction ------------------------------------------------------------

    def _transact(
        self, repo: str, commit_id: str, once: Callable[[Connection], None], *, finished: bool = True
    ) -> Commit:
        """Run ``once`` in a write transaction, again from the start if another writer got in first."""
        for attempt in range(_ATTEMPTS):
            try:
                with EDIT_LOCK, self.engine.begin() as conn:
                    try:
                        once(conn)
                        self._write_nodes(conn)
                    except BaseException:
                        self.nodes.discard()
                        raise
                break
            except _OutsideWork as pending:
                pending.work()
            except (ConcurrentUpdate, DBAPIError) as exc:
                if attempt == _ATTEMPTS - 1 or not _retryable(exc):
                    raise
                time.sleep(min(0.001 * (attempt + 1), 0.05))
        else:
            raise ConcurrentUpdate(f"{repo}: the write could not land after {_ATTEMPTS} attempts")
        commit = self.inspect_commit(repo, commit_id)
        for callback in self.on_commit_finished if finished else ():
            callback(commit)
        return commit

    def _claim_branch(self, conn: Connection, repo: str, branch: str) -> tuple[str | None, str | None, list[Any]]:
        """Lock the branch (created if missing): (newest finished commit, its root, open commits above it)."""
        gc_lock(conn, exclusive=False)
        self._require_repo(conn, repo)
        query = select(branches).where(branches.c.repo == repo, branches.c.name == branch)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            if self._tag_row(conn, repo, branch) is not None:
                raise ProtectedBranch(f"{repo}@{branch} is a tag: tags are read-only")
            conn.execute(insert_ignore(self.engine, branches),
                         {"repo": repo, "name": branch, "head": None, "created": time.time()})
            row = conn.execute(query).one()
        chain: list[Any] = []
        cur = row.head
        while cur:
            found = conn.execute(select(commits).where(commits.c.id == cur)).one()
            if found.state != CommitState.OPEN.value:
                return found.id, found.root, chain
            chain.append(found)
            cur = found.parent
        return None, None, chain

    def _land(
        self, conn: Connection, repo: str, branch: str, commit_id: str, base_id: str | None,
        base_root: str | None, root: str | None, chain: list[Any],
    ) -> None:
        """Put the new commit on the branch: the head, or beneath the open commits on top."""
        if not chain:
            moved = conn.execute(
                update(branches)
                .where(branches.c.repo == repo, branches.c.name == branch,
                       branches.c.head.is_(None) if base_id is None else branches.c.head == base_id)
                .values(head=commit_id)
            ).rowcount
            if moved != 1:
                raise ConcurrentUpdate(f"branch {repo}@{branch} moved; retrying")
            return
        parent, old_root, new_root = commit_id, base_root, root
        for above in reversed(chain):  # bottom first
            rebased = self._rebased(old_root, above.root, new_root)
            files, size = self.tree.stats(rebased)
            values: dict[str, Any] = {"root": rebased, "file_count": files, "size_bytes": size}
            if parent == commit_id:
                values["parent"] = commit_id
            moved = conn.execute(
                update(commits)
                .where(commits.c.id == above.id, commits.c.state == CommitState.OPEN.value,
                       commits.c.root.is_(None) if above.root is None else commits.c.root == above.root)
                .values(**values)
            ).rowcount
            if moved != 1:
                raise ConcurrentUpdate(f"open commit {repo}@{above.id} changed; retrying")
            parent, old_root, new_root = above.id, above.root, rebased

    def _rebased(self, old_base: str | None, tip: str | None, new_base: str | None) -> str | None:
        """``tip``'s changes since ``old_base``, applied to ``new_base``."""
        if old_base == new_base:
            return tip
        changes = {key: after for key, _, after in self.tree.diff(old_base, tip)}
        return self.tree.edit(new_base, changes)

    def _root_of_commit(self, conn: Connection, commit_id: str | None) -> str | None:
        if commit_id is None:
            return None
        root: str | None = conn.execute(select(commits.c.root).where(commits.c.id == commit_id)).scalar()
        return root

    def _insert_finished(
        self, conn: Connection, repo: str, branch: str, commit_id: str, parent: str | None, root: str | None,
        description: str, metadata: dict[str, Any], origin: Origin,
    ) -> None:
        files, size = self.tree.stats(root)
        now = time.time()
        seq = (conn.execute(select(func.max(commits.c.seq))).scalar() or 0) + 1
        conn.execute(insert(commits), {
            "id": commit_id, "seq": seq, "repo": repo, "branch": branch, "parent": parent,
            "origin": origin.value, "state": CommitState.FINISHED.value, "description": description,
            "meta": json.dumps(metadata, sort_keys=True), "started": now, "finished": now,
            "commit_set": commit_id, "root": root, "size_bytes": size, "file_count": files, "error": None,
        })
        ups = sorted({head for up in self._upstream_branches(conn, BranchRef(repo, branch))
                      if (head := self._branch_row(conn, up.repo, up.branch).head)})
        for up_id in ups:
            conn.execute(insert(commit_provenance), {"commit": commit_id, "upstream": up_id})


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, ConcurrentUpdate):
        return True
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    # PostgreSQL: serialization failure, deadlock, unique violation of a racing insert
    return code in ("40001", "40P01", "23505") or "database is locked" in str(exc)
