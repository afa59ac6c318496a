"""Datum planning: record a job's datums, skipping those whose output the datum cache knows,
and record each datum's outcome as it ends."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from datumflow.storage_service.pipelines.cache import DatumCache
from datumflow.storage_service.pipelines.datums import Datum, datum_hasher
from datumflow.storage_service.pipelines.jobs import DatumState, JobInfo, JobTable
from datumflow.storage_service.pipelines.leases import Leases
from datumflow.storage_service.pipelines.spec import PipelineSpec
from datumflow.storage_service.pipelines.worker import DatumOutcome

__all__ = ["leased_recorder", "plan_datums", "recorder"]


def plan_datums(
    jobs: JobTable, cache: DatumCache, job: JobInfo, spec: PipelineSpec, datums: Sequence[Datum],
    *, pool_from: str | None = None,
) -> list[Datum]:
    """Record every datum; those the cache knows are skipped. Returns the ones to run.

    ``pool_from``: the planning claim held (see :mod:`.leases`); the job then passes to the pool.
    """
    hasher = datum_hasher(spec.transform, spec.salt)
    hashes = [hasher(d) for d in datums]
    force = job.reprocess or spec.reprocess_spec == "every_job"
    # A hit's outputs are copied as the cache's JSON text (compact, as the cache stores it): never decoded.
    cached = {} if force else cache.lookup_stored(job.pipeline, hashes)
    rows: list[tuple[str, str, str, str, str | None, str | None]] = []
    pending: list[Datum] = []
    skipped, waiting = DatumState.SKIPPED.value, DatumState.PENDING.value
    for d, h in zip(datums, hashes, strict=True):
        inputs = d.inputs_json()
        hit = cached.get(h)
        if hit is not None:
            rows.append((d.id, h, skipped, inputs, hit[0], hit[1]))
        else:
            rows.append((d.id, h, waiting, inputs, None, None))
            pending.append(d)
    jobs.add_datums(job.id, rows, pool_from=pool_from)
    return pending


def recorder(jobs: JobTable, job: JobInfo) -> Callable[[Datum, DatumOutcome], None]:
    """What an executor calls as each datum of ``job`` ends."""

    def on_done(datum: Datum, outcome: DatumOutcome) -> None:
        jobs.record_datum(
            job.id, datum.id, state=DatumState.SUCCESS if outcome.ok else DatumState.FAILED,
            outputs=outcome.outputs if outcome.ok else None, log=outcome.log, error=outcome.error,
            tries=outcome.tries, started=outcome.started, finished=outcome.finished,
        )

    return on_done


def leased_recorder(leases: Leases, job: JobInfo) -> Callable[[Datum, DatumOutcome], None]:
    """As :func:`recorder`, for datums claimed from the pool: written only while the claim is held."""

    def on_done(datum: Datum, outcome: DatumOutcome) -> None:
        leases.record(job.id, datum.id, {
            "state": (DatumState.SUCCESS if outcome.ok else DatumState.FAILED).value,
            "outputs": json.dumps(outcome.outputs, separators=(",", ":")) if outcome.ok else None,
            "log": outcome.log, "error": outcome.error, "tries": outcome.tries,
            "started": outcome.started, "finished": outcome.finished,
        })

    return on_done
