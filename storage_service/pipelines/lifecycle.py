"""A job's life: created → running (claimed, datums planned and run) → success, failure or killed.

``process`` runs ready jobs through the executor, sharing each job's datums in
batches with the other job loops on the same database (claims with leases,
:mod:`.leases`); executors
that run datums elsewhere (pods, Airflow tasks) use ``plan`` … ``complete``
(or ``fail``) instead, with the worker steps of :mod:`.datum_steps` between.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from datumflow.storage_service.errors import DatumflowError, InvalidArgument, JobLost, Timeout
from datumflow.storage_service.pipelines.cache import DatumCache
from datumflow.storage_service.pipelines.completion import JobCompletion
from datumflow.storage_service.pipelines.discovery import JobDiscovery
from datumflow.storage_service.pipelines.egress import egress
from datumflow.storage_service.pipelines.executors.base import Executor
from datumflow.storage_service.pipelines.executors.local import JobRun
from datumflow.storage_service.pipelines.inherit import plan_job
from datumflow.storage_service.pipelines.jobs import DatumInfo, DatumState, JobInfo, JobState, JobTable, datum_of
from datumflow.storage_service.pipelines.leases import PLANNING_PREFIX, Leases
from datumflow.storage_service.pipelines.planning import leased_recorder
from datumflow.storage_service.pipelines.registry import PipelineRegistry
from datumflow.storage_service.store.store import Store

__all__ = ["JobRunner"]

_POLL = 0.05


class JobRunner:
    def __init__(
        self, store: Store, registry: PipelineRegistry, jobs: JobTable, cache: DatumCache, executor: Executor,
        *, leases: Leases | None = None, batch_size: int = 32,
    ) -> None:
        self.store = store
        self.leases = leases or Leases(store.engine)
        self.batch_size = batch_size
        self.registry = registry
        self.jobs = jobs
        self.cache = cache
        self.executor = executor
        self.discovery = JobDiscovery(store, registry, jobs)
        self.completion = JobCompletion(store, jobs, cache)

    def process(self, *, pipeline: str | None = None, max_jobs: int | None = None) -> list[JobInfo]:
        """Work until nothing is left that this worker can take (or ``max_jobs`` ended); returns the jobs ended.

        Each round plans one ready job, runs batches of datums of every planned job (other workers on
        the same database run batches of the same jobs) and assembles the jobs none of whose datums is
        left; claims lapse when their worker dies, and the work is taken over (see :mod:`.leases`).
        """
        done: list[JobInfo] = []
        while max_jobs is None or len(done) < max_jobs:
            progressed = False
            job = self._lapsed_plan(pipeline) or self.discovery.next_ready(pipeline)
            if job is not None and self.leases.claim_plan(job.id):
                progressed = True
                ended = self._start(job)
                if ended is not None:
                    done.append(ended)
                    continue
            for job_id in self.leases.planned_jobs():
                if pipeline is not None and self.jobs.get(job_id).pipeline != pipeline:
                    continue
                ran, ended = self._run_batches(job_id)
                progressed = progressed or ran
                if ended is None:
                    ended = self._try_complete(job_id)
                if ended is not None:
                    done.append(ended)
                    progressed = True
                    if max_jobs is not None and len(done) >= max_jobs:
                        break
            if not progressed:
                return done
        return done

    def plan(self, job: JobInfo) -> list[DatumInfo]:
        """Claim a created job and record its datums without running them; returns those to run."""
        if not self.leases.claim_external(job.id):
            raise InvalidArgument(f"job {job.id} is {job.state.value}, not created")
        try:
            spec = self.registry.job_spec(job)
            plan_job(self.store, self.jobs, self.cache, job, spec, self.registry.job_spec)
        except DatumflowError as exc:
            self.completion.fail(job, JobState.FAILURE, f"{type(exc).__name__}: {exc}")
            raise
        return self.jobs.list_datums(job.id, state=DatumState.PENDING)

    def complete(self, job: JobInfo, *, metadata: Mapping[str, Any] | None = None) -> JobInfo:
        """Finish (or fail) a planned job's output commit from its recorded datum outputs (``metadata`` joins
        the commit's: the driver that ran the datums, e.g. the KFP run)."""
        if job.state is not JobState.RUNNING:
            raise InvalidArgument(f"job {job.id} is {job.state.value}, not running")
        try:
            return self._egress(self.completion.complete(job, metadata=metadata))
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

    def _egress(self, job: JobInfo) -> JobInfo:
        """Copy a successful job's output to ``egress.URL``; a failed copy fails the job, not its commit."""
        spec = self.registry.job_spec(job) if job.state is JobState.SUCCESS and job.spec_commit else None
        if spec is None or spec.egress is None:
            return job
        try:
            egress(self.store, job.pipeline, job.output_commit, spec.egress.URL)
        except (OSError, DatumflowError) as exc:
            return self.jobs.finish(job.id, JobState.FAILURE, reason=f"egress to {spec.egress.URL} failed: {exc}")
        return job

    def _lapsed_plan(self, pipeline: str | None) -> JobInfo | None:
        """A job whose planner's claim lapsed (it died while planning)."""
        for job_id in self.leases.lapsed_plans():
            job = self.jobs.get(job_id)
            if pipeline is None or job.pipeline == pipeline:
                return job
        return None

    def _start(self, job: JobInfo) -> JobInfo | None:
        """Plan a claimed job's datums for the pool; the job if it ended already (nothing to run)."""
        fail = self.completion.fail
        try:
            failed_up = self.discovery.failed_upstream(job)
            if failed_up:
                return fail(job, JobState.KILLED, f"input commit {failed_up} failed; nothing ran")
            if job.spec_commit is None:
                return fail(job, JobState.KILLED, "the pipeline has no spec commit")
            spec = self.registry.job_spec(job)
            with self.leases.renewing(job.id):
                plan_job(self.store, self.jobs, self.cache, job, spec, self.registry.job_spec,
                         pool_from=PLANNING_PREFIX + self.leases.owner)
            return None
        except JobLost:
            return None  # another worker took the job over; it plans it
        except DatumflowError as exc:
            return fail(job, JobState.FAILURE, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            fail(job, JobState.FAILURE, f"internal error: {type(exc).__name__}: {exc}")
            raise

    def _run_batches(self, job_id: str) -> tuple[bool, JobInfo | None]:
        """Claim and run batches of the job's datums until none is left to claim.

        Returns whether any ran, and the job if it ended here (the executor refused it).
        """
        job = self.jobs.get(job_id)
        ran = False
        try:
            run = JobRun(job.id, self.registry.job_spec(job), job.output_commit)
            with self.leases.renewing(job.id):
                while ids := self.leases.claim_datums(job.id, self.batch_size):
                    ran = True
                    claimed = self.jobs.datums_by_id(job.id, ids)
                    self.executor.run(run, [datum_of(d) for d in claimed], leased_recorder(self.leases, job))
        except DatumflowError as exc:
            return True, self.completion.fail(job, JobState.FAILURE, f"{type(exc).__name__}: {exc}")
        return ran, None

    def _try_complete(self, job_id: str) -> JobInfo | None:
        """Assemble the output of a job none of whose datums is left, if this worker wins the claim."""
        if not self.leases.claim_completion(job_id):
            return None
        job = self.jobs.get(job_id)
        try:
            with self.leases.renewing(job.id):
                return self._egress(self.completion.complete(job))
        except DatumflowError as exc:
            return self.completion.fail(job, JobState.FAILURE, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            self.completion.fail(job, JobState.FAILURE, f"internal error: {type(exc).__name__}: {exc}")
            raise
