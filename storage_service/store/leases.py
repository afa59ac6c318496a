"""Owners and leases of open commits: an abandoned commit is failed, never written into.

An explicit open commit (``start_commit``) has a lease that every write into it
renews, and may be tied to the process that opened it (``owner``, see
:func:`~datumflow.storage_service.core.inflight.process_owner`): the commit
lifecycle (:func:`~datumflow.storage_service.model.lifecycle.writing`) ties
the commits it opens to their process, so a writer killed mid-work leaves a
commit that the next start of a store on this host fails at once. A commit
whose lease ran out, or whose owner process is gone, is *abandoned*: a write
naming it fails with ``CommitFinished`` (after failing it), and
:meth:`Leases._reap_abandoned` — run when a store opens, before a commit is
started, and by ``fsck --repair`` — fails every such commit and rolls its
branch back. Pipeline job output commits have no lease: the job owns them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

from datumflow.storage_service.core.inflight import owner_alive
from datumflow.storage_service.core.schema import commit_leases, commits
from datumflow.storage_service.errors import CommitFinished, DatumflowError
from datumflow.storage_service.model.core import CommitState
from datumflow.storage_service.store.base import StoreBase
from sqlalchemy import Connection, delete, insert, select, update

__all__ = ["DEFAULT_LEASE", "Leases"]

log = logging.getLogger(__name__)

DEFAULT_LEASE = float(os.environ.get("DATUMFLOW_COMMIT_LEASE", "3600"))


class _Abandoned(Exception):
    """The open commit's lease expired or its owner process is gone."""


class Leases(StoreBase):
    def _grant_lease(self, conn: Connection, commit_id: str, owner: str | None, lease: float | None) -> None:
        """``lease`` None: the default; 0 or less: no time limit (then only ``owner`` can abandon it)."""
        ttl = DEFAULT_LEASE if lease is None else (lease if lease > 0 else None)
        if owner is None and ttl is None:
            return
        expires = None if ttl is None else time.time() + ttl
        conn.execute(insert(commit_leases), {"commit": commit_id, "owner": owner, "expires": expires, "ttl": ttl})

    def _renew_lease(self, conn: Connection, commit_id: str) -> None:
        """Extend the lease of a commit being written into; raise :class:`_Abandoned` if it lapsed."""
        row = conn.execute(select(commit_leases).where(commit_leases.c.commit == commit_id)).first()
        if row is None:
            return
        reason = _abandoned(row, time.time())
        if reason:
            raise _Abandoned(reason)
        if row.ttl is not None:
            conn.execute(update(commit_leases).where(commit_leases.c.commit == commit_id)
                         .values(expires=time.time() + row.ttl))

    def _drop_lease(self, conn: Connection, commit_id: str) -> None:
        conn.execute(delete(commit_leases).where(commit_leases.c.commit == commit_id))

    def _fail_abandoned(self, repo: str, commit_id: str, reason: str) -> None:
        with contextlib.suppress(CommitFinished):  # someone failed or finished it first
            self.finish_commit(repo, commit_id, error=f"abandoned: {reason}")
            log.warning("failed abandoned commit %s@%s: %s", repo, commit_id, reason)

    def _reap_abandoned(self) -> list[str]:
        """Fail every open commit whose lease expired or whose owner process is gone; their ids."""
        now = time.time()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(commit_leases, commits.c.repo, commits.c.state)
                .join(commits, commits.c.id == commit_leases.c.commit, isouter=True)
            ).all()
        reaped: list[str] = []
        for row in rows:
            if row.state != CommitState.OPEN.value:
                with self.engine.begin() as conn:
                    self._drop_lease(conn, row.commit)
                continue
            reason = _abandoned(row, now)
            if reason:
                try:
                    self._fail_abandoned(row.repo, row.commit, reason)
                except DatumflowError as exc:  # e.g. its repo went meanwhile
                    log.warning("could not fail abandoned commit %s: %s", row.commit, exc)
                    continue
                reaped.append(row.commit)
        return reaped


def _abandoned(row: object, now: float) -> str:
    expires = getattr(row, "expires", None)
    owner = getattr(row, "owner", None)
    if expires is not None and expires < now:
        return f"its lease expired {now - expires:.0f}s ago"
    if not owner_alive(owner):
        return f"its writer {owner} is gone"
    return ""
