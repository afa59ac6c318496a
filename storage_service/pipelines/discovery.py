"""Finding jobs: every open AUTO commit of a pipeline's output branch is (exactly) one job.

A commit upstream (new data, or a new spec) opens an AUTO commit on the
output branch in the same commit set; discovery records a job for it, with
the input commits and the spec commit from its provenance. A job is ready
once every commit it depends on has finished.
"""

from __future__ import annotations

import contextlib

from datumflow.storage_service.errors import CommitNotFound, InvalidArgument, NotFound
from datumflow.storage_service.model.core import Commit, CommitState, Origin
from datumflow.storage_service.pipelines.datums import input_branches
from datumflow.storage_service.pipelines.jobs import JobInfo, JobState, JobTable
from datumflow.storage_service.pipelines.registry import SPEC_BRANCH, PipelineRegistry
from datumflow.storage_service.store import queries
from datumflow.storage_service.store.store import Store

__all__ = ["EXTERNAL_WORKER", "JobDiscovery"]

# A transform env variable: its jobs are driven from outside (plan_job … complete_job, e.g. by an
# Airflow task running a Python callable per datum); the job loop never runs them.
EXTERNAL_WORKER = "DATUMFLOW_EXTERNAL_WORKER"


class JobDiscovery:
    def __init__(self, store: Store, registry: PipelineRegistry, jobs: JobTable) -> None:
        self.store = store
        self.registry = registry
        self.jobs = jobs

    def discover(self, pipeline: str | None = None) -> None:
        """Record a job for every open AUTO commit of a running pipeline's output branch.

        A stopped pipeline gets none (its open commits wait for ``start``). A spout pipeline has
        no jobs: the AUTO commit a new spec opened is finished as it is (the spout's process
        writes the repo), so the spec commit stays in the output's provenance.
        """
        known = self.jobs.output_commits()
        for name, branch, spout in self.registry.output_branches(pipeline, running=True):
            for commit_id in queries.open_commit_ids(self.store, name, branch, Origin.AUTO):
                if spout:
                    self._pass_through(name, commit_id)
                elif commit_id not in known:
                    self._open_job(name, commit_id)

    def _pass_through(self, name: str, commit_id: str) -> None:
        with contextlib.suppress(CommitNotFound, InvalidArgument):  # finished or gone meanwhile
            self.store.finish_commit(name, commit_id)

    def next_ready(self, pipeline: str | None) -> JobInfo | None:
        """The oldest created job whose upstream commits have all finished."""
        self.discover(pipeline)
        stopped: dict[str, bool] = {}
        for job in reversed(self.jobs.list_jobs(pipeline, states=[JobState.CREATED])):
            if stopped.setdefault(job.pipeline, self._stopped(job.pipeline)):
                continue  # waits for ``pipeline start``
            if EXTERNAL_WORKER in self.registry.job_spec(job).transform.env:  # planned and completed from outside
                continue
            if all(up.state is not CommitState.OPEN for up in self.upstream(job)):
                return job
        return None

    def _stopped(self, name: str) -> bool:
        row = self.registry.row(name)
        return bool(row is not None and row.stopped)

    def failed_upstream(self, job: JobInfo) -> str | None:
        """An upstream commit of the job that failed, as text, if there is one."""
        for up in self.upstream(job):
            if up.state is CommitState.FAILED:
                return str(up)
        return None

    def upstream(self, job: JobInfo) -> list[Commit]:
        out = self.store.inspect_commit(job.pipeline, job.output_commit)
        return [self._commit(cid) for cid in out.provenance]

    def job_for_commit(self, output_commit: str) -> JobInfo:
        """The job of an output commit (discovering it if it is not recorded yet)."""
        try:
            repo = queries.repo_of_commit(self.store, output_commit)
        except CommitNotFound:
            repo = None
        if repo is not None:
            self.discover(repo)
        job_id = self.jobs.id_for_output(output_commit)
        if job_id is None:
            raise NotFound(f"no job for commit {output_commit}")
        return self.jobs.get(job_id)

    def _commit(self, commit_id: str) -> Commit:
        return self.store.inspect_commit(queries.repo_of_commit(self.store, commit_id), commit_id)

    def _open_job(self, name: str, commit_id: str) -> None:
        out = self.store.inspect_commit(name, commit_id)
        spec_commit, inputs = None, {}
        by_branch = {}
        for cid in out.provenance:
            up = self._commit(cid)
            by_branch[(up.repo, up.branch)] = up
            if up.repo == name and up.branch == SPEC_BRANCH:
                spec_commit = up
        spec = self.registry.spec_at(name, spec_commit.id) if spec_commit else None
        if spec is not None:
            inputs = {n: (c.id if (c := by_branch.get(rb)) else None) for n, rb in input_branches(spec).items()}
        same_set = spec_commit is not None and spec_commit.commit_set == out.commit_set
        reprocess = bool(out.metadata.get("reprocess")) or bool(
            same_set and spec_commit is not None and spec_commit.metadata.get("reprocess")
        )
        self.jobs.create(
            name, commit_id, out.commit_set, spec_commit.id if spec_commit else None, inputs, reprocess=reprocess
        )
