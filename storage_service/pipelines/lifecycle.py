"""A job's life: created → running (claimed, datums planned and run) → success, failure or killed.

``process`` runs ready jobs in this process through the executor; executors
that run datums elsewhere (pods, Airflow tasks) use ``plan`` … ``complete``
(or ``fail``) instead, with the worker steps of :mod:`.datum_steps` between.
"""

from __future__ import annotations

import time

from datumflow.storage_service.errors import DatumflowError, InvalidArgument, Timeout
from datumflow.storage_service.pipelines.cache import DatumCache
from datumflow.storage_service.pipelines.completion import JobCompletion
from datumflow.storage_service.pipelines.datums import compute_datums
from datumflow.storage_service.pipelines.discovery import JobDiscovery
from datumflow.storage_service.pipelines.executors.local import JobRun, LocalExecutor
from datumflow.storage_service.pipelines.jobs import DatumInfo, DatumState, JobInfo, JobState, JobTable
from datumflow.storage_service.pipelines.planning import plan_datums, recorder
from datumflow.storage_service.pipelines.registry import PipelineRegistry
from datumflow.storage_service.store.store import Store

__all__ = ["JobRunner"]

_POLL = 0.05


class JobRunner:
    def __init__(
        self, store: Store, registry: PipelineRegistry, jobs: JobTable, cache: DatumCache, executor: LocalExecutor
    ) -> None:
        self.store = store
        self.registry = registry
        self.jobs = jobs
        self.cache = cache
        self.executor = executor
        self.discovery = JobDiscovery(store, registry, jobs)
        self.completion = JobCompletion(store, jobs, cache)

    def process(self, *, pipeline: str | None = None, max_jobs: int | None = None) -> list[JobInfo]:
        """Run ready jobs until none is left (or ``max_jobs`` ran); returns the jobs run."""
        done: list[JobInfo] = []
        while max_jobs is None or len(done) < max_jobs:
            job = self.discovery.next_ready(pipeline)
            if job is None:
                return done
            if self.jobs.claim(job.id):
                done.append(self._run(job))
        return done

    def plan(self, job: JobInfo) -> list[DatumInfo]:
        """Claim a created job and record its datums without running them; returns those to run."""
        if not self.jobs.claim(job.id):
            raise InvalidArgument(f"job {job.id} is {job.state.value}, not created")
        try:
            spec = self.registry.job_spec(job)
            plan_datums(self.jobs, self.cache, job, spec, compute_datums(self.store, spec, job.inputs))
        except DatumflowError as exc:
            self.completion.fail(job, JobState.FAILURE, f"{type(exc).__name__}: {exc}")
            raise
        return self.jobs.list_datums(job.id, state=DatumState.PENDING)

    def complete(self, job: JobInfo) -> JobInfo:
        """Finish (or fail) a planned job's output commit from its recorded datum outputs."""
        if job.state is not JobState.RUNNING:
            raise InvalidArgument(f"job {job.id} is {job.state.value}, not running")
        try:
            return self.completion.complete(job)
        except DatumflowError as exc:
            return self.completion.fail(job, JobState.FAILURE, f"{type(exc).__name__}: {exc}")

    def fail(self, job: JobInfo, reason: str) -> JobInfo:
        """Fail a job that is not done (an executor gave up on it); its output commit fails too."""
        if job.state.done:
            raise InvalidArgument(f"job {job.id} is {job.state.value} already")
        return self.completion.fail(job, JobState.FAILURE, reason)

    def wait(self, job_id: str, *, timeout: float | None = None, drive: bool = True) -> JobInfo:
        """Block until the job ends; with ``drive``, run ready jobs in this process meanwhile."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.jobs.get(job_id)
            if job.state.done:
                return job
            if drive:
                self.process(max_jobs=1)
                continue
            if deadline is not None and time.monotonic() > deadline:
                raise Timeout(f"job {job_id} did not finish within {timeout}s")
            time.sleep(_POLL)

    def _run(self, job: JobInfo) -> JobInfo:
        fail = self.completion.fail
        try:
            failed_up = self.discovery.failed_upstream(job)
            if failed_up:
                return fail(job, JobState.KILLED, f"input commit {failed_up} failed; nothing ran")
            if job.spec_commit is None:
                return fail(job, JobState.KILLED, "the pipeline has no spec commit")
            spec = self.registry.job_spec(job)
            pending = plan_datums(self.jobs, self.cache, job, spec, compute_datums(self.store, spec, job.inputs))
            self.executor.run(JobRun(job.id, spec, job.output_commit), pending, recorder(self.jobs, job))
            return self.completion.complete(job)
        except DatumflowError as exc:
            return fail(job, JobState.FAILURE, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            fail(job, JobState.FAILURE, f"internal error: {type(exc).__name__}: {exc}")
            raise
