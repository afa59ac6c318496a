"""Job and datum records: states, counters, timings and per-datum logs, in SQL."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from datumflow.storage_service.core.pipeline_schema import bulk_insert, datums, jobs, placeholder
from datumflow.storage_service.errors import InvalidArgument, JobLost, JobNotFound
from datumflow.storage_service.model.datum import DatumInfo, DatumState
from datumflow.storage_service.model.job import JobInfo, JobState
from datumflow.storage_service.pipelines.datums import Datum, DatumInput
from datumflow.storage_service.pipelines.leases import EXTERNAL
from sqlalchemy import Engine, func, insert, select, text, update

__all__ = [
    "REMOVED", "DatumInfo", "DatumState", "JobInfo", "JobNotFound", "JobState", "JobTable", "commit_map", "datum_of",
    "inherited_inputs",
]


# The columns add_datums writes (tries 0; log, error and timings NULL until the datum runs).
_BATCH = 500
REMOVED = "removed"  # the state of a row saying "this job no longer has its base job's datum"
_DATUM_COLUMNS = ("job", "id", "hash", "state", "inputs", "outputs", "reused_from", "tries")
_CREATE_LOCK_KEY = 0x64666A6F62  # "dfjob": replicas that discover the same open commit take turns


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
        # Every replica's job loop (and any request that lists jobs) discovers open commits, so two
        # may find the same one at once. PostgreSQL serialises them on an advisory lock held by the
        # transaction (SQLite's writers take turns already), which also keeps ``seq`` unique.
        job_id = uuid.uuid4().hex
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CREATE_LOCK_KEY})
            if conn.execute(select(jobs.c.id).where(jobs.c.output_commit == output_commit)).first():
                return None
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

    def list_jobs(
        self, pipeline: str | None = None, *, states: Sequence[JobState] = (), limit: int | None = None
    ) -> list[JobInfo]:
        """Newest first (the ``limit`` newest)."""
        query = select(jobs).order_by(jobs.c.seq.desc()).limit(limit)
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
    # A job with a base job (see :mod:`.inherit`) holds rows only for the datums that differ from
    # its base's; every other datum of the base is its own too, read through the base's rows and
    # shown as this job's: skipped (its output reused), inputs at this job's input commits.

    def add_datums(
        self, job_id: str, rows: Iterable[tuple[str, str, str, str, str | None, str | None]],
        *, pool_from: str | None = None, base_job: str | None = None, total: int | None = None,
    ) -> None:
        """Record a job's datums: (id, hash, state, inputs JSON, outputs JSON or None, reused_from or None).

        ``pool_from``: the planning claim this worker holds; in the same transaction the job passes to
        the pool (its datums claimable by any worker), or nothing is written if the claim was lost.
        ``base_job``: the job whose other datums this one inherits (``rows`` are then the datums that
        differ, state :data:`REMOVED` for those it does not have), and ``total`` its datum count.
        """
        batch = [(job_id, *r, 0) for r in rows]
        with self.engine.begin() as conn:
            query = update(jobs).where(jobs.c.id == job_id)
            values: dict[str, Any] = {"total": len(batch) if total is None else total, "base_job": base_job}
            if pool_from is not None:
                query = query.where(jobs.c.owner == pool_from)
                values.update(owner="pool", lease_until=None)
            if conn.execute(query.values(**values)).rowcount != 1:
                raise JobLost(f"job {job_id} was taken over by another worker while it was planned here")
            bulk_insert(conn, datums, _DATUM_COLUMNS, batch)

    def datums_by_id(self, job_id: str, ids: Sequence[str]) -> list[DatumInfo]:
        with self.engine.connect() as conn:
            base = _base_of(conn, job_id)
            own = {r.id: r for r in _rows(conn, job_id, ids)}
            out = [_datum(r) for r in own.values() if r.state != REMOVED]
            if base is not None:
                out += [_inherited(r, job_id, base) for r in _rows(conn, base.job, [i for i in ids if i not in own])]
        return sorted(out, key=lambda d: d.id)

    def record_datum(self, job_id: str, datum_id: str, **values: Any) -> None:
        if "outputs" in values and values["outputs"] is not None:
            values["outputs"] = json.dumps(values["outputs"], separators=(",", ":"))
        if "state" in values:
            values["state"] = DatumState(values["state"]).value
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(datums).where(datums.c.job == job_id, datums.c.id == datum_id, datums.c.state != REMOVED)
                .values(**values)
            ).rowcount
        if moved != 1:
            raise JobNotFound(f"datum {datum_id} of job {job_id} not found")

    def datum(self, job_id: str, datum_id: str) -> DatumInfo:
        found = self.datums_by_id(job_id, [datum_id])
        if found:
            return found[0]
        with self.engine.connect() as conn:
            return self._by_prefix(conn, job_id, datum_id)

    def _by_prefix(self, conn: Any, job_id: str, prefix: str) -> DatumInfo:
        if len(prefix) < 6:
            raise JobNotFound(f"datum {prefix} of job {job_id} not found")

        def like(job: str) -> list[Any]:
            return list(conn.execute(select(datums).where(datums.c.job == job, datums.c.id.like(prefix + "%"))
                                     .order_by(datums.c.id).limit(3)))

        own = {r.id: r for r in like(job_id)}
        found = [_datum(r) for r in own.values() if r.state != REMOVED]
        base = _base_of(conn, job_id)
        if base is not None:
            found += [_inherited(r, job_id, base) for r in like(base.job) if r.id not in own]
        if len(found) != 1:
            raise (JobNotFound if not found else InvalidArgument)(
                f"datum {prefix} of job {job_id} " + ("not found" if not found else "is ambiguous; give more digits")
            )
        return found[0]

    def list_datums(self, job_id: str, *, state: DatumState | None = None) -> list[DatumInfo]:
        self.get(job_id)
        query = select(datums).where(datums.c.job == job_id, datums.c.state != REMOVED).order_by(datums.c.id)
        if state is not None:
            query = query.where(datums.c.state == state.value)
        with self.engine.connect() as conn:
            own = [_datum(r) for r in conn.execute(query)]
            base = _base_of(conn, job_id)
            if base is None or state not in (None, DatumState.SKIPPED):
                return own
            mine = set(conn.execute(select(datums.c.id).where(datums.c.job == job_id)).scalars())
            rows = conn.execute(select(datums).where(datums.c.job == base.job).order_by(datums.c.id))
            inherited = [_inherited(r, job_id, base) for r in rows if r.id not in mine]
        return sorted(own + inherited, key=lambda d: d.id)

    def datum_outputs(self, job_id: str) -> list[tuple[str, str, dict[str, Any]]]:
        """(datum id, state, {path: entry}) of every datum row of a job (of a job with a base job: the
        datums that differ from its base's, state :data:`REMOVED` for those it dropped)."""
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(_select_datums(conn, "id", "state", "outputs"), (job_id,)).fetchall()
        # One decode of the stored texts spliced into a JSON array, not one json.loads per datum.
        decoded = json.loads("[" + ",".join([outputs or "{}" for _, _, outputs in rows]) + "]")
        return [(i, state, out) for (i, state, _), out in zip(rows, decoded, strict=True)]

    def outputs_of(self, job_id: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """{datum id: {path: entry}} of the given datum rows of a job (its own rows, not inherited ones)."""
        with self.engine.connect() as conn:
            return {r.id: json.loads(r.outputs) if r.outputs else {} for r in _rows(conn, job_id, list(ids))}

    def own_rows(self, job_id: str) -> list[tuple[str, str, str, str, str | None, str | None]]:
        """(id, hash, state, inputs, outputs, reused_from) of a job's own datum rows, as stored."""
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                _select_datums(conn, "id", "hash", "state", "inputs", "outputs", "reused_from"), (job_id,))
            return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows]

    def effective_hashes(self, job_id: str, ids: Sequence[str] | None = None) -> dict[str, str]:
        """{datum id: hash} of the job's datums (inherited ones included), of ``ids`` only if given."""
        with self.engine.connect() as conn:
            base = _base_of(conn, job_id)
            own: list[tuple[str, str, str]]
            if ids is None:
                own = [(r[0], r[1], r[2]) for r in conn.exec_driver_sql(
                    _select_datums(conn, "id", "hash", "state"), (job_id,))]
                out = {} if base is None else dict(
                    conn.exec_driver_sql(_select_datums(conn, "id", "hash"), (base.job,)).fetchall())
            else:
                own = [(r.id, r.hash, r.state) for r in _rows(conn, job_id, ids)]
                seen = {i for i, _, _ in own}
                out = {} if base is None else {
                    r.id: r.hash for r in _rows(conn, base.job, [i for i in ids if i not in seen])}
        for i, h, state in own:
            if state == REMOVED:
                out.pop(i, None)
            else:
                out[i] = h
        return out

    def datum_hashes(self, job_id: str) -> dict[str, str]:
        """{datum id: datum hash} of every datum row of a job (its own rows)."""
        with self.engine.connect() as conn:
            return dict(conn.exec_driver_sql(_select_datums(conn, "id", "hash"), (job_id,)).fetchall())

    def counters(self, job_id: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(datums.c.state, datums.c.tries, func.count())
                .where(datums.c.job == job_id, datums.c.state != REMOVED).group_by(datums.c.state, datums.c.tries)
            ).all()
            job = conn.execute(select(jobs.c.base_job, jobs.c.total).where(jobs.c.id == job_id)).first()
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
        if job is not None and job.base_job is not None:  # the datums inherited unchanged are skipped here
            out["skipped"] += job.total - out["total"]
            out["total"] = job.total
        return out


def inherited_inputs(conn: Any, job_id: str, ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """{datum id: inputs} of datums of a job, inherited ones included (at this job's input commits)."""
    base = _base_of(conn, job_id)
    own = {r.id: r for r in _rows(conn, job_id, ids)}
    out = {i: json.loads(r.inputs) for i, r in own.items() if r.state != REMOVED}
    if base is not None:
        for r in _rows(conn, base.job, [i for i in ids if i not in own]):
            out[r.id] = _inherited(r, job_id, base).inputs
    return out


def commit_map(old: Mapping[str, str | None], new: Mapping[str, str | None]) -> dict[str, str] | None:
    """{input commit of ``old``: the same input's commit in ``new``}; None if one commit would map to two."""
    out: dict[str, str] = {}
    for key, before in old.items():
        after = new.get(key)
        if before is None or after is None:
            continue
        if out.setdefault(before, after) != after:
            return None
    return out


@dataclass(frozen=True)
class _Base:
    job: str  # the base job's id
    commits: dict[str, str]  # its input commits -> this job's


def _base_of(conn: Any, job_id: str) -> _Base | None:
    row = conn.execute(select(jobs.c.base_job, jobs.c.inputs).where(jobs.c.id == job_id)).first()
    if row is None or row.base_job is None:
        return None
    base_inputs = conn.execute(select(jobs.c.inputs).where(jobs.c.id == row.base_job)).scalar()
    commits = commit_map(json.loads(base_inputs or "{}"), json.loads(row.inputs)) or {}
    return _Base(str(row.base_job), commits)


def _rows(conn: Any, job_id: str, ids: Sequence[str]) -> list[Any]:
    out: list[Any] = []
    for i in range(0, len(ids), _BATCH):
        out += conn.execute(select(datums).where(datums.c.job == job_id, datums.c.id.in_(list(ids[i:i + _BATCH]))))
    return out


def _inherited(row: Any, job_id: str, base: _Base) -> DatumInfo:
    """A base job's datum row as a datum of the job inheriting it: skipped, at that job's input commits."""
    inputs = json.loads(row.inputs)
    for one in inputs:
        one["commit"] = base.commits.get(one["commit"], one["commit"])
    return DatumInfo(
        job=job_id, id=row.id, hash=row.hash, state=DatumState.SKIPPED, inputs=inputs,
        outputs=sorted(json.loads(row.outputs)) if row.outputs else [],
        reused_from=row.job if row.state == DatumState.SUCCESS.value else row.reused_from,
    )


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
        failed=row.failed, recovered=row.recovered, base_job=row.base_job, external=row.owner == EXTERNAL,
    )


def _datum(row: Any) -> DatumInfo:
    return DatumInfo(
        job=row.job, id=row.id, hash=row.hash, state=DatumState(row.state), inputs=json.loads(row.inputs),
        outputs=sorted(json.loads(row.outputs)) if row.outputs else [], reused_from=row.reused_from,
        tries=row.tries, log=row.log, error=row.error, started=row.started, finished=row.finished,
    )
