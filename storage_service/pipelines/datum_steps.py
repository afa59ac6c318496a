"""The worker steps of one datum, for executors outside the job loop (a pod, an Airflow task):
fetch its inputs, run it, upload its output, or record that it failed. The local executor runs
the same worker code in-process."""

from __future__ import annotations

import time
from pathlib import Path

from datumflow.storage_service.pipelines import worker
from datumflow.storage_service.pipelines.jobs import DatumInfo, DatumState, JobTable, datum_of
from datumflow.storage_service.pipelines.planning import recorder
from datumflow.storage_service.pipelines.registry import PipelineRegistry
from datumflow.storage_service.pipelines.sandbox import sandbox_from_env
from datumflow.storage_service.store.store import Store

__all__ = ["DatumSteps"]


class DatumSteps:
    def __init__(self, store: Store, registry: PipelineRegistry, jobs: JobTable) -> None:
        self.store = store
        self.registry = registry
        self.jobs = jobs

    def fetch(self, info: DatumInfo, pfs: str) -> DatumInfo:
        """Write a datum's inputs under ``pfs`` (and an empty ``pfs/out``)."""
        job = self.jobs.get(info.job)
        env = worker.datum_env(self.registry.job_spec(job), job.id, datum_of(info), job.output_commit)
        worker.fetch(self.store, datum_of(info), Path(pfs), empty=env.empty_inputs)
        worker.write_env_file(env, Path(pfs))
        return info

    def upload(self, info: DatumInfo, pfs: str, *, log: str | None = None) -> DatumInfo:
        """Store ``pfs/out`` as the datum's output and mark it succeeded."""
        outputs = worker.upload(self.store, Path(pfs), datum_of(info))
        self.jobs.record_datum(
            info.job, info.id, state=DatumState.SUCCESS, outputs=outputs, tries=info.tries + 1,
            finished=time.time(), log=log if log is not None else info.log, error=None,
        )
        return self.jobs.datum(info.job, info.id)

    def fail(self, info: DatumInfo, error: str, *, log: str | None = None, tries: int = 1) -> DatumInfo:
        """Record that a datum failed (completing the job then fails it)."""
        self.jobs.record_datum(
            info.job, info.id, state=DatumState.FAILED, outputs=None, error=error,
            log=log if log is not None else info.log, tries=tries, finished=time.time(),
        )
        return self.jobs.datum(info.job, info.id)

    def run(self, info: DatumInfo, pfs: str) -> DatumInfo:
        """Fetch, run and upload one datum of a job (with its tries and timeout), and record it."""
        job = self.jobs.get(info.job)
        spec = self.registry.job_spec(job)
        outcome = worker.run_datum(
            self.store, spec.transform, worker.datum_env(spec, job.id, datum_of(info), job.output_commit), Path(pfs),
            tries=spec.datum_tries, timeout=spec.timeout_seconds, sandbox=sandbox_from_env(hidden=[self.store.root]),
        )
        recorder(self.jobs, job)(datum_of(info), outcome)
        return self.jobs.datum(info.job, info.id)
