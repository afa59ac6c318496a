"""The pipeline service: ``Pipelines(store)``, the one API every adapter calls (the HTTP service,
the CLI, Airflow and Kubeflow).

A thin facade over the parts that do the work:

- :mod:`.registry` — pipeline specs, output repos and branches, spec commits;
- :mod:`.discovery` — every open AUTO commit of an output branch becomes one job;
- :mod:`.lifecycle` — running ready jobs; plan / complete / fail for outside executors;
- :mod:`.planning` and :mod:`.completion` — datums recorded (cache hits skipped), and the
  output commit finished with the union of the datum outputs, or failed;
- :mod:`.datum_steps` — the worker steps of one datum (what a pod runs);
- :mod:`.schedule` — cron ticks and the background loop;
- :mod:`.lineage` — where an output file came from.

How a job comes about: a commit upstream (new data, or a new spec) opens an
AUTO commit on the output branch, in the same commit set; once every commit
it depends on has finished, ``process()`` turns it into exactly one job, runs
the datums the datum cache does not already know, and finishes the commit
with the union of the datum outputs — or fails it, leaving nothing half-way
visible.
"""

from __future__ import annotations

import os
from typing import Any

from datumflow.storage_service.pipelines.cache import DatumCache
from datumflow.storage_service.pipelines.datum_steps import DatumSteps
from datumflow.storage_service.pipelines.discovery import EXTERNAL_WORKER
from datumflow.storage_service.pipelines.executors.base import Executor
from datumflow.storage_service.pipelines.executors.local import LocalExecutor
from datumflow.storage_service.pipelines.jobs import DatumInfo, JobInfo, JobTable
from datumflow.storage_service.pipelines.leases import Leases
from datumflow.storage_service.pipelines.lifecycle import JobRunner
from datumflow.storage_service.pipelines.lineage import LineageNode, file_lineage
from datumflow.storage_service.pipelines.registry import (
    SPEC_BRANCH,
    SPEC_FILE,
    PipelineInfo,
    PipelineNotFound,
    PipelineRegistry,
)
from datumflow.storage_service.pipelines.run_local import LocalRun, run_local
from datumflow.storage_service.pipelines.schedule import BackgroundLoop, run_cron, tick_crons
from datumflow.storage_service.pipelines.spec import PipelineSpec
from datumflow.storage_service.store.store import Store

__all__ = [
    "EXTERNAL_WORKER", "SPEC_BRANCH", "SPEC_FILE", "PipelineInfo", "PipelineNotFound", "Pipelines", "run_pending",
]


def run_pending(store: Store) -> list[JobInfo]:
    """Run every job that is ready, in this process; returns them."""
    return Pipelines(store).process()


class Pipelines:
    def __init__(
        self, store: Store, *, executor: Executor | None = None, lease_seconds: float | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.store = store
        # Claims of jobs and datum batches, shared with every other job loop on this database.
        self.leases = Leases(store.engine, seconds=lease_seconds or float(os.environ.get("DATUMFLOW_JOB_LEASE", 30)))
        self.jobs = JobTable(store.engine)
        self.cache = DatumCache(store.engine)
        self.executor = executor or LocalExecutor(store)
        self.registry = PipelineRegistry(store, self.jobs, self.cache)
        self.runner = JobRunner(store, self.registry, self.jobs, self.cache, self.executor, leases=self.leases,
                                batch_size=batch_size or int(os.environ.get("DATUMFLOW_DATUM_BATCH", 32)))
        self.steps = DatumSteps(store, self.registry, self.jobs)
        self._background = BackgroundLoop(self._tick_and_process)

    # -- pipelines ------------------------------------------------------------------

    def create_pipeline(
        self, spec: PipelineSpec | dict[str, Any] | str, *, update: bool = False, reprocess: bool = False
    ) -> PipelineInfo:
        """Create a pipeline (or, with ``update``, update it if it exists)."""
        return self.registry.create(spec, update=update, reprocess=reprocess)

    def update_pipeline(self, spec: PipelineSpec | dict[str, Any] | str, *, reprocess: bool = False) -> PipelineInfo:
        """A new spec commit; the next job runs the new code (every datum, if the code changed)."""
        return self.registry.update(spec, reprocess=reprocess)

    def inspect_pipeline(self, name: str) -> PipelineInfo:
        return self.registry.inspect(name)

    def list_pipelines(self) -> list[PipelineInfo]:
        return self.registry.list_all()

    def delete_pipeline(self, name: str, *, force: bool = False) -> None:
        """Delete a pipeline, its output repo, cron repos, jobs, datum cache and lineage."""
        self.registry.delete(name, force=force)

    def exists(self, name: str) -> bool:
        return self.registry.row(name) is not None

    def repos_made(self, name: str) -> set[str]:
        """The repos pipeline ``name`` made (output and own cron repos): the only ones deleting it deletes."""
        return self.registry.repos_made(name)

    def run_pipeline(self, name: str, *, reprocess: bool = False) -> str:
        """Open a new job on the current inputs (all datums with ``reprocess``); returns the output commit."""
        return self.registry.run(name, reprocess=reprocess)

    def stop_pipeline(self, name: str) -> PipelineInfo:
        """``pachctl stop pipeline``: no jobs for new commits, no cron ticks, its spout ends; until started."""
        return self.registry.set_stopped(name, True)

    def start_pipeline(self, name: str) -> PipelineInfo:
        """Resume a stopped pipeline: the commits that arrived meanwhile become jobs (a spout restarts)."""
        return self.registry.set_stopped(name, False)

    def run_cron(self, name: str) -> str:
        """Tick the pipeline's cron inputs now (``pachctl run cron``); returns the output commit of its job."""
        return run_cron(self.store, self.registry, name)

    # -- jobs -----------------------------------------------------------------------

    def process(self, *, pipeline: str | None = None, max_jobs: int | None = None) -> list[JobInfo]:
        """Run ready jobs until none is left (or ``max_jobs`` ran); returns the jobs run."""
        return self.runner.process(pipeline=pipeline, max_jobs=max_jobs)

    def plan_job(self, job_id: str) -> list[DatumInfo]:
        """Claim a created job and record its datums without running them; returns those to run.

        For executors that run datums elsewhere (pods calling ``datumflow worker run-datum``);
        ``complete_job`` then assembles the output commit.
        """
        return self.runner.plan(self.inspect_job(job_id))

    def complete_job(self, job_id: str, *, metadata: dict[str, Any] | None = None) -> JobInfo:
        """Finish (or fail) a planned job's output commit from its recorded datum outputs; ``metadata``
        joins the output commit's (the Airflow task or KFP run that drove the job)."""
        return self.runner.complete(self.inspect_job(job_id), metadata=metadata)

    def fail_job(self, job_id: str, reason: str) -> JobInfo:
        """Fail a job that is not done (an executor gave up on it); its output commit fails too."""
        return self.runner.fail(self.inspect_job(job_id), reason)

    def list_jobs(self, pipeline: str | None = None) -> list[JobInfo]:
        if pipeline is not None:
            self.inspect_pipeline(pipeline)
        self.runner.discovery.discover(pipeline)
        return self.jobs.list_jobs(pipeline)

    def inspect_job(self, job_id: str) -> JobInfo:
        return self.jobs.get(self.jobs.expand_id(job_id))

    def job_for_commit(self, output_commit: str) -> JobInfo:
        """The job of an output commit (discovering it if it is not recorded yet)."""
        return self.runner.discovery.job_for_commit(output_commit)

    def wait_job(self, job_id: str, *, timeout: float | None = None, drive: bool = True) -> JobInfo:
        """Block until the job ends; with ``drive``, run ready jobs in this process meanwhile."""
        return self.runner.wait(self.jobs.expand_id(job_id), timeout=timeout, drive=drive)

    def list_datums(self, job_id: str) -> list[DatumInfo]:
        return self.jobs.list_datums(self.jobs.expand_id(job_id))

    def inspect_datum(self, job_id: str, datum_id: str) -> DatumInfo:
        return self.jobs.datum(self.jobs.expand_id(job_id), datum_id)

    def lineage(self, repo: str, ref: str, path: str, *, depth: int | None = None) -> LineageNode:
        return file_lineage(self.store, repo, ref, path, depth=depth)

    def run_local(
        self, spec: PipelineSpec | dict[str, Any] | str, *, sample: int | None = None, out_dir: str | None = None
    ) -> LocalRun:
        """Run a spec's datums on the inputs' current heads without committing anything."""
        return run_local(self.store, spec, sample=sample, out_dir=out_dir)

    # -- worker steps (what a pod runs; the local executor does the same in-process) ----------

    def fetch_datum(self, job_id: str, datum_id: str, pfs: str) -> DatumInfo:
        """Write a datum's inputs under ``pfs`` (and an empty ``pfs/out``)."""
        return self.steps.fetch(self.inspect_datum(job_id, datum_id), pfs)

    def upload_datum(self, job_id: str, datum_id: str, pfs: str, *, log: str | None = None) -> DatumInfo:
        """Store ``pfs/out`` as the datum's output and mark it succeeded."""
        return self.steps.upload(self.inspect_datum(job_id, datum_id), pfs, log=log)

    def fail_datum(
        self, job_id: str, datum_id: str, error: str, *, log: str | None = None, tries: int = 1
    ) -> DatumInfo:
        """Record that a datum failed (``complete_job`` then fails the job); as the service's ``…/failure``."""
        return self.steps.fail(self.inspect_datum(job_id, datum_id), error, log=log, tries=tries)

    def run_datum(self, job_id: str, datum_id: str, pfs: str) -> DatumInfo:
        """Fetch, run and upload one datum of a job (with its tries and timeout), and record it."""
        return self.steps.run(self.inspect_datum(job_id, datum_id), pfs)

    # -- cron and the background loop ---------------------------------------------------

    def tick_crons(self, now: float | None = None) -> list[str]:
        """Commit a tick into every cron input that is due; returns the new commit ids."""
        return tick_crons(self.store, self.registry, now)

    def start_background(self, interval: float = 1.0) -> None:
        """Tick crons and run ready jobs in a daemon thread until ``stop_background``."""
        self._background.start(interval)

    def stop_background(self) -> None:
        self._background.stop()

    def _tick_and_process(self) -> None:
        self.tick_crons()
        self.process()
