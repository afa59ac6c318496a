"""Counts the metrics endpoint reads from the metadata database: commits, jobs and datums by state,
and the run times of datums that finished since the last look."""

from __future__ import annotations

from datumflow.storage_service.core.pipeline_schema import datums, jobs
from datumflow.storage_service.core.schema import commits
from sqlalchemy import Engine, and_, func, select

__all__ = ["by_state", "datum_durations_since", "waiting_jobs"]

_TABLES = {"commits": commits, "jobs": jobs, "datums": datums}


def by_state(engine: Engine, what: str) -> dict[str, int]:
    """{state: rows} of ``commits``, ``jobs`` or ``datums``."""
    table = _TABLES[what]
    with engine.connect() as conn:
        rows = conn.execute(select(table.c.state, func.count()).group_by(table.c.state)).all()
    return {str(state): int(n) for state, n in rows}


def waiting_jobs(engine: Engine) -> int:
    """Jobs not yet finished: the queue the job loops work through."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(jobs.c.finished.is_(None))).scalar_one())


def datum_durations_since(engine: Engine, mark: float) -> tuple[list[float], float]:
    """Run times (s) of datums that ran (not reused) in jobs finished after ``mark``; and the new mark."""
    with engine.connect() as conn:
        done = conn.execute(select(jobs.c.id, jobs.c.finished).where(jobs.c.finished > mark)).all()
        if not done:
            return [], mark
        ids = [row.id for row in done]
        rows = conn.execute(select(datums.c.started, datums.c.finished).where(and_(
            datums.c.job.in_(ids), datums.c.reused_from.is_(None),
            datums.c.started.is_not(None), datums.c.finished.is_not(None)))).all()
    return [max(0.0, f - s) for s, f in rows], max(row.finished for row in done)
