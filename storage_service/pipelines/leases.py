"""Work shared by several job loops (service replicas on one database), claimed with leases.

A job moves through owners, each claim a compare-and-swap on its row:

    created ──claim_plan──▶ running, owner "planning:<worker>"  (the claim lapses at lease_until)
        ──planned──▶ running, owner "pool"       its pending datums are claimed in batches by any worker
        ──claim_completion──▶ running, owner "completing:<worker>"   once no datum is pending or running
        ──▶ success | failure | killed

A datum claimed by a worker is ``running`` with that worker as owner until its
outcome is recorded (only by the owner still holding the claim). A worker
renews the claims it holds while it works; a worker that dies (SIGKILL, lost
node) stops renewing, its claims lapse, and any other worker takes the work
over: a planning job is planned again, running datums run again, a
completion is redone. A datum's outcome is recorded once, by one owner, and
a job's output commit is assembled once, from those outcomes.

Jobs planned by a driver outside the loops (``plan_job``: pods, Airflow, KFP)
have the owner "external" and are never claimed here.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from datumflow.storage_service.core.db import Prepared
from datumflow.storage_service.core.pipeline_schema import datums, jobs
from sqlalchemy import Engine, and_, bindparam, or_, select, update

__all__ = ["EXTERNAL", "PLANNING_PREFIX", "POOL", "Leases", "worker_name"]

POOL = "pool"
EXTERNAL = "external"
PLANNING_PREFIX = _PLANNING = "planning:"
_COMPLETING = "completing:"
_CREATED, _RUNNING, _PENDING = "created", "running", "pending"
_RECORDED = ("state", "outputs", "log", "error", "tries", "started", "finished")
_RECORDED_SET = set(_RECORDED)
_RECORD = Prepared(
    update(datums)
    .where(datums.c.job == bindparam("job_id"), datums.c.id == bindparam("datum_id"),
           datums.c.state == bindparam("running"), datums.c.owner == bindparam("claimant"))
    .values(**{k: bindparam(f"v_{k}") for k in _RECORDED}, owner=None, lease_until=None)
)


def worker_name() -> str:
    """This process's name as a claim owner: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Leases:
    """Claims of jobs and datum batches by one worker, each good for ``seconds`` unless renewed."""

    def __init__(self, engine: Engine, *, owner: str | None = None, seconds: float = 30.0) -> None:
        self.engine = engine
        self.owner = owner or worker_name()
        self.seconds = seconds

    # -- jobs -----------------------------------------------------------------------------

    def claim_plan(self, job_id: str) -> bool:
        """Take a created job (or one whose planner's claim lapsed) to plan its datums."""
        now = time.time()
        lapsed = and_(jobs.c.state == _RUNNING, jobs.c.owner.like(_PLANNING + "%"), jobs.c.lease_until < now)
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(jobs).where(jobs.c.id == job_id, or_(jobs.c.state == _CREATED, lapsed))
                .values(state=_RUNNING, started=now, owner=_PLANNING + self.owner, lease_until=now + self.seconds)
            ).rowcount
            if moved:  # a lapsed planner may have recorded nothing, or everything (one transaction)
                conn.execute(datums.delete().where(datums.c.job == job_id))
        return moved == 1

    def claim_external(self, job_id: str) -> bool:
        """Take a created job for a driver outside the loops (no lease: it never lapses)."""
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(jobs).where(jobs.c.id == job_id, jobs.c.state == _CREATED)
                .values(state=_RUNNING, started=time.time(), owner=EXTERNAL, lease_until=None)
            ).rowcount
        return moved == 1

    def planned_jobs(self, job_ids: Sequence[str] | None = None) -> list[str]:
        """Ids of running pool jobs (oldest first)."""
        query = select(jobs.c.id).where(jobs.c.state == _RUNNING, jobs.c.owner == POOL).order_by(jobs.c.seq)
        if job_ids is not None:
            query = query.where(jobs.c.id.in_(list(job_ids)))
        with self.engine.connect() as conn:
            return [row.id for row in conn.execute(query)]

    def lapsed_plans(self) -> list[str]:
        """Running jobs whose planner's claim lapsed (oldest first)."""
        query = select(jobs.c.id).where(
            jobs.c.state == _RUNNING, jobs.c.owner.like(_PLANNING + "%"), jobs.c.lease_until < time.time()
        ).order_by(jobs.c.seq)
        with self.engine.connect() as conn:
            return [row.id for row in conn.execute(query)]

    def claim_completion(self, job_id: str) -> bool:
        """Take a pool job none of whose datums is pending or running, to assemble its output."""
        now = time.time()
        open_datums = select(datums.c.id).where(datums.c.job == job_id, datums.c.state.in_([_PENDING, _RUNNING]))
        lapsed = and_(jobs.c.owner.like(_COMPLETING + "%"), jobs.c.lease_until < now)
        with self.engine.begin() as conn:
            if conn.execute(open_datums.limit(1)).first() is not None:
                return False
            moved = conn.execute(
                update(jobs).where(jobs.c.id == job_id, jobs.c.state == _RUNNING, or_(jobs.c.owner == POOL, lapsed))
                .values(owner=_COMPLETING + self.owner, lease_until=now + self.seconds)
            ).rowcount
        return moved == 1

    def holds_job(self, job_id: str) -> bool:
        """This worker still holds its planning or completion claim on the job."""
        with self.engine.connect() as conn:
            owner = conn.execute(select(jobs.c.owner).where(jobs.c.id == job_id)).scalar()
        return owner in (_PLANNING + self.owner, _COMPLETING + self.owner)

    # -- datums ---------------------------------------------------------------------------

    def claim_datums(self, job_id: str, limit: int) -> list[str]:
        """Ids of up to ``limit`` datums of a pool job now claimed by this worker: pending ones,
        and running ones whose worker's claim lapsed."""
        now = time.time()
        claimable = and_(datums.c.job == job_id, or_(
            datums.c.state == _PENDING, and_(datums.c.state == _RUNNING, datums.c.lease_until < now)))
        with self.engine.begin() as conn:
            query = select(datums.c.id).where(claimable).order_by(datums.c.id).limit(limit)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            ids = [row.id for row in conn.execute(query)]
            if not ids:
                return []
            conn.execute(
                update(datums).where(datums.c.job == job_id, datums.c.id.in_(ids), claimable)
                .values(state=_RUNNING, owner=self.owner, lease_until=now + self.seconds)
            )
        return ids

    def record(self, job_id: str, datum_id: str, values: dict[str, Any]) -> bool:
        """Record a claimed datum's outcome; False (nothing written) if the claim was lost.

        ``values``: columns of the datum. An executor's (``state``, ``outputs`` as JSON text or None,
        ``log``, ``error``, ``tries``, ``started``, ``finished``: once per datum) go through one
        prebuilt UPDATE; any other set through SQLAlchemy.
        """
        if values.keys() == _RECORDED_SET:
            return _RECORD.execute(self.engine, job_id=job_id, datum_id=datum_id, running=_RUNNING,
                                   claimant=self.owner, **{f"v_{k}": values[k] for k in _RECORDED}) == 1
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(datums).where(datums.c.job == job_id, datums.c.id == datum_id, datums.c.state == _RUNNING,
                                     datums.c.owner == self.owner)
                .values(**values, owner=None, lease_until=None)
            ).rowcount
        return moved == 1

    def release_datums(self, job_id: str, datum_ids: Sequence[str]) -> None:
        """Give back claimed datums that did not run (stopping): pending again, for anyone."""
        with self.engine.begin() as conn:
            conn.execute(
                update(datums).where(datums.c.job == job_id, datums.c.id.in_(list(datum_ids)),
                                     datums.c.state == _RUNNING, datums.c.owner == self.owner)
                .values(state=_PENDING, owner=None, lease_until=None)
            )

    # -- renewal --------------------------------------------------------------------------

    def renew(self, job_id: str) -> None:
        """Extend every claim this worker holds on the job and its datums."""
        until = time.time() + self.seconds
        with self.engine.begin() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id, jobs.c.owner.in_(
                [_PLANNING + self.owner, _COMPLETING + self.owner])).values(lease_until=until))
            conn.execute(update(datums).where(datums.c.job == job_id, datums.c.state == _RUNNING,
                                              datums.c.owner == self.owner).values(lease_until=until))

    @contextmanager
    def renewing(self, job_id: str, on_error: Callable[[BaseException], None] | None = None) -> Iterator[None]:
        """Renew this worker's claims on the job every third of a lease while the block runs."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.seconds / 3):
                try:
                    self.renew(job_id)
                except Exception as exc:  # the database is away: the claim may lapse; report, keep trying
                    if on_error is not None:
                        on_error(exc)

        thread = threading.Thread(target=beat, name=f"datumflow-lease-{job_id[:8]}", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
