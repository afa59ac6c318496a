"""Job and datum records: states, counters, timings and per-datum logs, in SQL."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from datumflow.storage_service.core.pipeline_schema import bulk_insert, datums, jobs, placeholder
from datumflow.storage_service.errors import InvalidArgument, JobLost, JobNotFound
from datumflow.storage_service.model.datum import DatumInfo, DatumState
from datumflow.storage_service.model.job import JobInfo, JobState
from datumflow.storage_service.pipelines.datums import Datum, DatumInput
from sqlalchemy import Engine, func, insert, select, update

__all__ = ["DatumInfo", "DatumState", "JobInfo", "JobNotFound", "JobState", "JobTable", "datum_of"]


# The columns add_datums writes (tries 0; log, error and timings NULL until the datum runs).
_DATUM_COLUMNS = ("job", "id", "hash", "state", "inputs", "outputs", "reused_from", "tries")


def datum_of(info: DatumInfo) -> Datum:
    """The datum a datum record describes (its id and inputs)."""
    return Datum(info.id, tuple(DatumInput.from_dict(d) for d in info.inputs))


class JobTable:
    """Reads and writes the job and datum rows."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- jobs -----------------------------------------------------------------------

    def create(
        self, pipeline: str, output_commit: str, commit_set: str, spec_commit: str | None,
        inputs: dict[str, str | None], *, reprocess: bool,
    ) -> JobInfo | None:
        """A new job for an output commit, or None if that commit already has one."""
        with self.engine.begin() as conn:
            if conn.execute(select(jobs.c.id).where(jobs.c.output_commit == output_commit)).first():
                return None
            job_id = uuid.uuid4().hex
            seq = (conn.execute(select(func.max(jobs.c.seq))).scalar() or 0) + 1
            conn.execute(insert(jobs), {
                "id": job_id, "seq": seq, "pipeline": pipeline, "output_commit": output_commit,
                "commit_set": commit_set, "spec_commit": spec_commit, "state": JobState.CREATED.value,
                "reprocess": int(reprocess), "inputs": json.dumps(inputs), "created": time.time(),
            })
        return self.get(job_id)

    def get(self, job_id: str) -> JobInfo:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise JobNotFound(f"job {job_id} not found")
        return _job(row)

    def list_jobs(self, pipeline: str | None = None, *, states: Sequence[JobState] = ()) -> list[JobInfo]:
        """Newest first."""
        query = select(jobs).order_by(jobs.c.seq.desc())
        if pipeline is not None:
            query = query.where(jobs.c.pipeline == pipeline)
        if states:
            query = query.where(jobs.c.state.in_([s.value for s in states]))
        with self.engine.connect() as conn:
            return [_job(r) for r in conn.execute(query)]

    def claim(self, job_id: str) -> bool:
        """Move a created job to running; False if another worker took it first."""
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(jobs).where(jobs.c.id == job_id, jobs.c.state == JobState.CREATED.value)
                .values(state=JobState.RUNNING.value, started=time.time())
            ).rowcount
        return moved == 1

    def finish(
        self, job_id: str, state: JobState, *, reason: str | None = None, counters: dict[str, int] | None = None
    ) -> JobInfo:
        """End a job with its datum counters (``counters`` if the caller just took them)."""
        if counters is None:
            counters = self.counters(job_id)
        with self.engine.begin() as conn:
            conn.execute(
                update(jobs).where(jobs.c.id == job_id)
                .values(state=state.value, reason=reason, finished=time.time(), **counters)
            )
        return self.get(job_id)

    def id_for_output(self, output_commit: str) -> str | None:
        """The job whose output commit is ``output_commit``, if one is recorded."""
        with self.engine.connect() as conn:
            found = conn.execute(select(jobs.c.id).where(jobs.c.output_commit == output_commit)).scalar()
        return None if found is None else str(found)

    def output_commits(self) -> set[str]:
        """The output commit of every recorded job."""
        with self.engine.connect() as conn:
            return {str(c) for c in conn.execute(select(jobs.c.output_commit)).scalars()}

    def expand_id(self, job_id: str) -> str:
        """A full job id from a unique prefix of at least 6 characters; anything else as given."""
        if len(job_id) == 32:
            return job_id
        with self.engine.connect() as conn:
            found = conn.execute(select(jobs.c.id).where(jobs.c.id.like(job_id + "%")).limit(2)).all()
        if len(found) == 1 and len(job_id) >= 6:
            return str(found[0].id)
        return job_id  # not found / ambiguous: the lookup reports it

    def delete_pipeline(self, pipeline: str) -> None:
        with self.engine.begin() as conn:
            ids = select(jobs.c.id).where(jobs.c.pipeline == pipeline)
            conn.execute(datums.delete().where(datums.c.job.in_(ids)))
            conn.execute(jobs.delete().where(jobs.c.pipeline == pipeline))

    # -- datums ---------------------------------------------------------------------

    def add_datums(
        self, job_id: str, rows: Iterable[tuple[str, str, str, str, str | None, str | None]],
        *, pool_from: str | None = None,
    ) -> None:
        """Record a job's datums: (id, hash, state, inputs JSON, outputs JSON or None, reused_from or None).

        ``pool_from``: the planning claim this worker holds; in the same transaction the job passes to
        the pool (its datums claimable by any worker), or nothing is written if the claim was lost.
        """
        batch = [(job_id, *r, 0) for r in rows]
        with self.engine.begin() as conn:
            query = update(jobs).where(jobs.c.id == job_id)
            values: dict[str, Any] = {"total": len(batch)}
            if pool_from is not None:
                query = query.where(jobs.c.owner == pool_from)
                values.update(owner="pool", lease_until=None)
            if conn.execute(query.values(**values)).rowcount != 1:
                raise JobLost(f"job {job_id} was taken over by another worker while it was planned here")
            bulk_insert(conn, datums, _DATUM_COLUMNS, batch)

    def datums_by_id(self, job_id: str, ids: Sequence[str]) -> list[DatumInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(datums).where(datums.c.job == job_id, datums.c.id.in_(list(ids)))
                                .order_by(datums.c.id))
            return [_datum(r) for r in rows]

    def record_datum(self, job_id: str, datum_id: str, **values: Any) -> None:
        if "outputs" in values and values["outputs"] is not None:
            values["outputs"] = json.dumps(values["outputs"], separators=(",", ":"))
        if "state" in values:
            values["state"] = DatumState(values["state"]).value
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(datums).where(datums.c.job == job_id, datums.c.id == datum_id).values(**values)
            ).rowcount
        if moved != 1:
            raise JobNotFound(f"datum {datum_id} of job {job_id} not found")

    def datum(self, job_id: str, datum_id: str) -> DatumInfo:
        with self.engine.connect() as conn:
            row = conn.execute(select(datums).where(datums.c.job == job_id, datums.c.id == datum_id)).first()
            if row is None:
                row = self._by_prefix(conn, job_id, datum_id)
        return _datum(row)

    def _by_prefix(self, conn: Any, job_id: str, prefix: str) -> Any:
        if len(prefix) < 6:
            raise JobNotFound(f"datum {prefix} of job {job_id} not found")
        rows = conn.execute(
            select(datums).where(datums.c.job == job_id, datums.c.id.like(prefix + "%")).limit(2)
        ).all()
        if len(rows) != 1:
            raise (JobNotFound if not rows else InvalidArgument)(
                f"datum {prefix} of job {job_id} " + ("not found" if not rows else "is ambiguous; give more digits")
            )
        return rows[0]

    def list_datums(self, job_id: str, *, state: DatumState | None = None) -> list[DatumInfo]:
        self.get(job_id)
        query = select(datums).where(datums.c.job == job_id).order_by(datums.c.id)
        if state is not None:
            query = query.where(datums.c.state == state.value)
        with self.engine.connect() as conn:
            return [_datum(r) for r in conn.execute(query)]

    def datum_outputs(self, job_id: str) -> list[tuple[str, str, dict[str, Any]]]:
        """(datum id, state, {path: entry}) of every datum of a job."""
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(_select_datums(conn, "id", "state", "outputs"), (job_id,)).fetchall()
        # One decode of the stored texts spliced into a JSON array, not one json.loads per datum.
        decoded = json.loads("[" + ",".join([outputs or "{}" for _, _, outputs in rows]) + "]")
        return [(i, state, out) for (i, state, _), out in zip(rows, decoded, strict=True)]

    def datum_hashes(self, job_id: str) -> dict[str, str]:
        """{datum id: datum hash} of every datum of a job."""
        with self.engine.connect() as conn:
            return dict(conn.exec_driver_sql(_select_datums(conn, "id", "hash"), (job_id,)).fetchall())

    def counters(self, job_id: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(datums.c.state, datums.c.tries, func.count())
                .where(datums.c.job == job_id).group_by(datums.c.state, datums.c.tries)
            ).all()
        out = dict.fromkeys(("total", "processed", "skipped", "failed", "recovered"), 0)
        for state, tries, n in rows:
            out["total"] += n
            if state == DatumState.SUCCESS.value:
                out["processed"] += n
                out["recovered"] += n if tries > 1 else 0
            elif state == DatumState.SKIPPED.value:
                out["skipped"] += n
            elif state == DatumState.FAILED.value:
                out["failed"] += n
        return out


def _select_datums(conn: Any, *columns: str) -> str:
    """Driver SQL for ``columns`` of one job's datums (parameter: the job id), in datum id order."""
    quote = conn.dialect.identifier_preparer.quote
    return (
        f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(datums.name)} "
        f"WHERE {quote('job')} = {placeholder(conn)} ORDER BY {quote('id')}"
    )


def _job(row: Any) -> JobInfo:
    return JobInfo(
        id=row.id, pipeline=row.pipeline, state=JobState(row.state), output_commit=row.output_commit,
        commit_set=row.commit_set, spec_commit=row.spec_commit, inputs=json.loads(row.inputs),
        reason=row.reason, reprocess=bool(row.reprocess), created=row.created, started=row.started,
        finished=row.finished, total=row.total, processed=row.processed, skipped=row.skipped,
        failed=row.failed, recovered=row.recovered,
    )


def _datum(row: Any) -> DatumInfo:
    return DatumInfo(
        job=row.job, id=row.id, hash=row.hash, state=DatumState(row.state), inputs=json.loads(row.inputs),
        outputs=sorted(json.loads(row.outputs)) if row.outputs else [], reused_from=row.reused_from,
        tries=row.tries, log=row.log, error=row.error, started=row.started, finished=row.finished,
    )
