"""The pipeline service: specs, output repos, jobs and their output commits.

``Pipelines(store)`` is the one implementation every adapter calls (the HTTP
service, the CLI, Airflow and Kubeflow): create/update/delete pipelines,
``process()`` ready jobs, inspect jobs and datums, ask for lineage.

How a job comes about: a pipeline's output branch is provenant on its input
branches and on the ``spec`` branch of its output repo, and owned by the
pipeline. A commit upstream (new data, or a new spec) opens an AUTO commit on
the output branch, in the same commit set; once every commit it depends on
has finished, ``process()`` turns it into exactly one job, runs the datums
the datum cache does not already know, and finishes the commit with the
union of the datum outputs — or fails it, leaving nothing half-way visible.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datumflow.storage_service.core.pipeline_schema import jobs as jobs_table
from datumflow.storage_service.core.pipeline_schema import lineage as lineage_table
from datumflow.storage_service.core.pipeline_schema import pipelines as pipelines_table
from datumflow.storage_service.core.schema import commits
from datumflow.storage_service.errors import (
    AlreadyExists,
    DatumflowError,
    InvalidArgument,
    NotFound,
    RepoNotFound,
    Timeout,
)
from datumflow.storage_service.model.core import BranchRef, CommitState, Origin, _Value
from datumflow.storage_service.pipelines import worker
from datumflow.storage_service.pipelines.cache import CachedOutput, DatumCache
from datumflow.storage_service.pipelines.cron import next_tick, tick
from datumflow.storage_service.pipelines.datums import Datum, compute_datums, datum_hasher, input_branches
from datumflow.storage_service.pipelines.executors.local import JobRun, LocalExecutor
from datumflow.storage_service.pipelines.jobs import DatumInfo, DatumState, JobInfo, JobState, JobTable
from datumflow.storage_service.pipelines.lineage import LineageNode, file_lineage, record_lineage
from datumflow.storage_service.pipelines.run_local import LocalRun, run_local
from datumflow.storage_service.pipelines.spec import CronInput, PfsInput, PipelineSpec, parse_spec
from datumflow.storage_service.pipelines.worker import DatumOutcome
from datumflow.storage_service.store.store import Store
from sqlalchemy import delete, insert, select, update

__all__ = ["EXTERNAL_WORKER", "PipelineInfo", "PipelineNotFound", "Pipelines", "run_pending"]

SPEC_BRANCH = "spec"
SPEC_FILE = "spec.json"
# A transform env variable: its jobs are driven from outside (plan_job … complete_job, e.g. by an
# Airflow task running a Python callable per datum); the job loop never runs them.
EXTERNAL_WORKER = "DATUMFLOW_EXTERNAL_WORKER"
_POLL = 0.05


class PipelineNotFound(NotFound):
    pass


@dataclass(frozen=True)
class PipelineInfo(_Value):
    name: str
    description: str
    spec: dict[str, Any]
    spec_commit: str
    version: int
    created: float
    updated: float
    output_branch: str
    inputs: list[str]  # "repo@branch" of every input

    @property
    def parsed(self) -> PipelineSpec:
        return parse_spec(self.spec)


def run_pending(store: Store) -> list[JobInfo]:
    """Run every job that is ready, in this process; returns them."""
    return Pipelines(store).process()


class Pipelines:
    def __init__(self, store: Store, *, executor: LocalExecutor | None = None) -> None:
        self.store = store
        self.jobs = JobTable(store.engine)
        self.cache = DatumCache(store.engine)
        self.executor = executor or LocalExecutor(store)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- pipelines ------------------------------------------------------------------

    def create_pipeline(
        self, spec: PipelineSpec | dict[str, Any] | str, *, update: bool = False, reprocess: bool = False
    ) -> PipelineInfo:
        """Create a pipeline (or, with ``update``, update it if it exists)."""
        spec = parse_spec(spec)
        exists = self._row(spec.name) is not None
        if exists and not update:
            raise AlreadyExists(f"pipeline {spec.name} already exists; use update")
        if exists:
            return self.update_pipeline(spec, reprocess=reprocess)
        self._check_inputs(spec)
        if spec.name in {r.name for r in self.store.list_repos()}:
            raise AlreadyExists(f"repo {spec.name} already exists; a pipeline creates its own output repo")
        try:
            self.store.create_repo(spec.name, spec.description or f"output of pipeline {spec.name}")
            self._wire_branches(spec)
            now = time.time()
            with self.store.engine.begin() as conn:
                conn.execute(insert(pipelines_table), {
                    "name": spec.name, "spec": spec.to_json(), "spec_commit": "", "version": 0,
                    "created": now, "updated": now, "last_tick": json.dumps({}),
                })
            self._commit_spec(spec, reprocess=reprocess)
        except BaseException:
            self._remove(spec.name, spec, force=True)
            raise
        return self.inspect_pipeline(spec.name)

    def update_pipeline(self, spec: PipelineSpec | dict[str, Any] | str, *, reprocess: bool = False) -> PipelineInfo:
        """A new spec commit; the next job runs the new code (every datum, if the code changed)."""
        spec = parse_spec(spec)
        old = self.inspect_pipeline(spec.name)
        if old.output_branch != spec.output_branch:
            raise InvalidArgument(
                f"pipeline {spec.name}: output_branch cannot change ({old.output_branch} -> {spec.output_branch})"
            )
        self._check_inputs(spec)
        self._wire_branches(spec)
        self._commit_spec(spec, reprocess=reprocess)
        return self.inspect_pipeline(spec.name)

    def inspect_pipeline(self, name: str) -> PipelineInfo:
        row = self._row(name)
        if row is None:
            raise PipelineNotFound(f"pipeline {name} not found")
        spec = parse_spec(json.loads(row.spec))
        return PipelineInfo(
            name=row.name, description=spec.description, spec=spec.to_dict(), spec_commit=row.spec_commit,
            version=row.version, created=row.created, updated=row.updated, output_branch=spec.output_branch,
            inputs=[f"{r}@{b}" for r, b in input_branches(spec).values()],
        )

    def list_pipelines(self) -> list[PipelineInfo]:
        with self.store.engine.connect() as conn:
            names = conn.execute(select(pipelines_table.c.name).order_by(pipelines_table.c.name)).scalars().all()
        return [self.inspect_pipeline(n) for n in names]

    def delete_pipeline(self, name: str, *, force: bool = False) -> None:
        """Delete a pipeline, its output repo, cron repos, jobs, datum cache and lineage."""
        info = self.inspect_pipeline(name)
        users = [p.name for p in self.list_pipelines() if any(i.split("@")[0] == name for i in p.inputs)]
        if users and not force:
            from datumflow.storage_service.errors import BranchInUse

            raise BranchInUse(f"pipeline {name} is an input of {', '.join(users)}; delete those first or force")
        self._remove(name, info.parsed, force=force)

    def run_pipeline(self, name: str, *, reprocess: bool = False) -> str:
        """Open a new job on the current inputs (all datums with ``reprocess``); returns the output commit."""
        info = self.inspect_pipeline(name)
        commit = self.store.start_commit(
            name, info.output_branch, origin=Origin.AUTO, metadata={"reprocess": reprocess},
            description=f"run of pipeline {name}",
        )
        return commit.id

    # -- jobs -----------------------------------------------------------------------

    def process(self, *, pipeline: str | None = None, max_jobs: int | None = None) -> list[JobInfo]:
        """Run ready jobs until none is left (or ``max_jobs`` ran); returns the jobs run."""
        done: list[JobInfo] = []
        while max_jobs is None or len(done) < max_jobs:
            job = self._next_ready(pipeline)
            if job is None:
                return done
            if self.jobs.claim(job.id):
                done.append(self._run_job(job))
        return done

    def plan_job(self, job_id: str) -> list[DatumInfo]:
        """Claim a created job and record its datums without running them; returns those to run.

        For executors that run datums elsewhere (pods calling ``datumflow worker run-datum``);
        ``complete_job`` then assembles the output commit.
        """
        job = self.inspect_job(job_id)
        if not self.jobs.claim(job.id):
            raise InvalidArgument(f"job {job.id} is {job.state.value}, not created")
        try:
            self._plan(job, self._job_spec(job), compute_datums(self.store, self._job_spec(job), job.inputs))
        except DatumflowError as exc:
            self._fail(job, JobState.FAILURE, f"{type(exc).__name__}: {exc}")
            raise
        return self.jobs.list_datums(job.id, state=DatumState.PENDING)

    def complete_job(self, job_id: str) -> JobInfo:
        """Finish (or fail) a planned job's output commit from its recorded datum outputs."""
        job = self.inspect_job(job_id)
        if job.state is not JobState.RUNNING:
            raise InvalidArgument(f"job {job.id} is {job.state.value}, not running")
        try:
            return self._complete(job)
        except DatumflowError as exc:
            return self._fail(job, JobState.FAILURE, f"{type(exc).__name__}: {exc}")

    def fail_job(self, job_id: str, reason: str) -> JobInfo:
        """Fail a job that is not done (an executor gave up on it); its output commit fails too."""
        job = self.inspect_job(job_id)
        if job.state.done:
            raise InvalidArgument(f"job {job.id} is {job.state.value} already")
        return self._fail(job, JobState.FAILURE, reason)

    def list_jobs(self, pipeline: str | None = None) -> list[JobInfo]:
        if pipeline is not None:
            self.inspect_pipeline(pipeline)
        self._discover(pipeline)
        return self.jobs.list_jobs(pipeline)

    def inspect_job(self, job_id: str) -> JobInfo:
        return self.jobs.get(self._job_id(job_id))

    def job_for_commit(self, output_commit: str) -> JobInfo:
        """The job of an output commit (discovering it if it is not recorded yet)."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(commits.c.repo).where(commits.c.id == output_commit)).first()
        if row is not None:
            self._discover(row.repo)
        with self.store.engine.connect() as conn:
            job_id = conn.execute(select(jobs_table.c.id).where(jobs_table.c.output_commit == output_commit)).scalar()
        if job_id is None:
            raise NotFound(f"no job for commit {output_commit}")
        return self.jobs.get(job_id)

    def wait_job(self, job_id: str, *, timeout: float | None = None, drive: bool = True) -> JobInfo:
        """Block until the job ends; with ``drive``, run ready jobs in this process meanwhile."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job_id = self._job_id(job_id)
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

    def list_datums(self, job_id: str) -> list[DatumInfo]:
        return self.jobs.list_datums(self._job_id(job_id))

    def inspect_datum(self, job_id: str, datum_id: str) -> DatumInfo:
        return self.jobs.datum(self._job_id(job_id), datum_id)

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
        info = self.inspect_datum(job_id, datum_id)
        worker.fetch(self.store, info.datum, Path(pfs))
        return info

    def upload_datum(self, job_id: str, datum_id: str, pfs: str, *, log: str | None = None) -> DatumInfo:
        """Store ``pfs/out`` as the datum's output and mark it succeeded."""
        info = self.inspect_datum(job_id, datum_id)
        outputs = worker.upload(self.store, Path(pfs))
        self.jobs.record_datum(
            info.job, info.id, state=DatumState.SUCCESS, outputs=outputs, tries=info.tries + 1,
            finished=time.time(), log=log if log is not None else info.log, error=None,
        )
        return self.jobs.datum(info.job, info.id)

    def fail_datum(
        self, job_id: str, datum_id: str, error: str, *, log: str | None = None, tries: int = 1
    ) -> DatumInfo:
        """Record that a datum failed (``complete_job`` then fails the job); as the service's ``…/failure``."""
        info = self.inspect_datum(job_id, datum_id)
        self.jobs.record_datum(
            info.job, info.id, state=DatumState.FAILED, outputs=None, error=error,
            log=log if log is not None else info.log, tries=tries, finished=time.time(),
        )
        return self.jobs.datum(info.job, info.id)

    def run_datum(self, job_id: str, datum_id: str, pfs: str) -> DatumInfo:
        """Fetch, run and upload one datum of a job (with its tries and timeout), and record it."""
        info = self.inspect_datum(job_id, datum_id)
        job = self.jobs.get(info.job)
        spec = self._job_spec(job)
        outcome = worker.run_datum(
            self.store, spec.transform, worker.DatumEnv(job.id, info.datum, job.output_commit), Path(pfs),
            tries=spec.datum_tries, timeout=spec.timeout_seconds,
        )
        self._recorder(job)(info.datum, outcome)
        return self.jobs.datum(info.job, info.id)

    # -- cron and the background loop ---------------------------------------------------

    def tick_crons(self, now: float | None = None) -> list[str]:
        """Commit a tick into every cron input that is due; returns the new commit ids."""
        import datetime as dt

        when = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.timezone.utc)
        made = []
        for info in self.list_pipelines():
            spec = info.parsed
            row = self._row(spec.name)
            last = json.loads(row.last_tick or "{}")
            for leaf in spec.leaves():
                if not isinstance(leaf, CronInput):
                    continue
                since = dt.datetime.fromisoformat(last.get(leaf.name) or leaf.start or _iso(info.created))
                if next_tick(leaf.spec, since) <= when:
                    made.append(tick(self.store, spec.cron_repo(leaf), when, overwrite=leaf.overwrite))
                    last[leaf.name] = when.isoformat()
            with self.store.engine.begin() as conn:
                conn.execute(
                    update(pipelines_table).where(pipelines_table.c.name == spec.name)
                    .values(last_tick=json.dumps(last))
                )
        return made

    def start_background(self, interval: float = 1.0) -> None:
        """Tick crons and run ready jobs in a daemon thread until ``stop_background``."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.tick_crons()
                    self.process()
                except DatumflowError:
                    pass  # recorded on the job; the loop keeps serving the others
                self._stop.wait(interval)

        self._thread = threading.Thread(target=loop, name="datumflow-pipelines", daemon=True)
        self._thread.start()

    def stop_background(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # -- creating ---------------------------------------------------------------------

    def _row(self, name: str) -> Any:
        with self.store.engine.connect() as conn:
            return conn.execute(select(pipelines_table).where(pipelines_table.c.name == name)).first()

    def _check_inputs(self, spec: PipelineSpec) -> None:
        for leaf in spec.leaves():
            if isinstance(leaf, PfsInput):
                try:
                    self.store.inspect_repo(leaf.repo)
                except RepoNotFound:
                    raise RepoNotFound(f"pipeline {spec.name}: input repo {leaf.repo} does not exist") from None
        cycle = self._cycle(spec)
        if cycle:
            raise InvalidArgument(f"pipeline {spec.name} would make a cycle: {' -> '.join(cycle)}")

    def _cycle(self, spec: PipelineSpec) -> list[str] | None:
        """The path back to ``spec`` through pipeline inputs, if one exists."""
        graph = {p.name: [i.split("@")[0] for i in p.inputs] for p in self.list_pipelines()}
        graph[spec.name] = [r for r, _ in input_branches(spec).values()]

        def walk(node: str, path: list[str]) -> list[str] | None:
            for up in graph.get(node, []):
                if up == spec.name:
                    return [*path, up]
                if up not in path:
                    found = walk(up, [*path, up])
                    if found:
                        return found
            return None

        found = walk(spec.name, [spec.name])
        return list(reversed(found)) if found else None

    def _wire_branches(self, spec: PipelineSpec) -> None:
        for leaf in spec.leaves():
            if isinstance(leaf, CronInput):
                self.store.create_repo(spec.cron_repo(leaf), f"cron ticks of {spec.name}", exist_ok=True)
        ups = []
        for repo, branch in input_branches(spec).values():
            if branch not in {b.name for b in self.store.list_branches(repo)}:
                self.store.create_branch(repo, branch)
            if BranchRef(repo, branch) not in ups:  # one branch read twice (a self-join) is one provenance
                ups.append(BranchRef(repo, branch))
        names = {b.name for b in self.store.list_branches(spec.name)}
        if SPEC_BRANCH not in names:
            self.store.create_branch(spec.name, SPEC_BRANCH)
        ups.append(BranchRef(spec.name, SPEC_BRANCH))
        self.store.create_branch(spec.name, spec.output_branch, provenance=ups, owner=spec.name)

    def _commit_spec(self, spec: PipelineSpec, *, reprocess: bool) -> None:
        version = (self._row(spec.name).version or 0) + 1
        commit = self.store.start_commit(
            spec.name, SPEC_BRANCH, origin=Origin.SPEC, metadata={"version": version, "reprocess": reprocess},
            description=f"pipeline {spec.name} spec v{version}",
        )
        try:
            self.store.put_file(spec.name, commit.id, SPEC_FILE, spec.to_json().encode())
        except BaseException as exc:
            self.store.finish_commit(spec.name, commit.id, error=f"spec upload failed: {exc}")
            raise
        self.store.finish_commit(spec.name, commit.id)
        with self.store.engine.begin() as conn:
            conn.execute(
                update(pipelines_table).where(pipelines_table.c.name == spec.name)
                .values(spec=spec.to_json(), spec_commit=commit.id, version=version, updated=time.time())
            )

    def _remove(self, name: str, spec: PipelineSpec, *, force: bool) -> None:
        with self.store.engine.begin() as conn:
            job_ids = select(jobs_table.c.id).where(jobs_table.c.pipeline == name)
            conn.execute(delete(lineage_table).where(lineage_table.c.job.in_(job_ids)))
            conn.execute(delete(pipelines_table).where(pipelines_table.c.name == name))
        self.jobs.delete_pipeline(name)
        self.cache.forget(name)
        repos = {r.name for r in self.store.list_repos()}
        if name in repos:
            self.store.delete_repo(name, force=True)
        for leaf in spec.leaves():
            if isinstance(leaf, CronInput) and spec.cron_repo(leaf) in repos:
                self.store.delete_repo(spec.cron_repo(leaf), force=force)

    # -- finding jobs -----------------------------------------------------------------

    def _job_id(self, job_id: str) -> str:
        if len(job_id) == 32:
            return job_id
        with self.store.engine.connect() as conn:
            found = conn.execute(select(jobs_table.c.id).where(jobs_table.c.id.like(job_id + "%")).limit(2)).all()
        if len(found) == 1 and len(job_id) >= 6:
            return str(found[0].id)
        return job_id  # not found / ambiguous: the lookup reports it

    def _discover(self, pipeline: str | None = None) -> None:
        """Record a job for every open AUTO commit of a pipeline's output branch."""
        with self.store.engine.connect() as conn:
            query = select(pipelines_table.c.name, pipelines_table.c.spec)
            if pipeline is not None:
                query = query.where(pipelines_table.c.name == pipeline)
            rows = conn.execute(query).all()
            known = set(conn.execute(select(jobs_table.c.output_commit)).scalars())
            pending = []
            for name, spec_json in rows:
                branch = json.loads(spec_json).get("output_branch", "master")
                pending += [
                    (name, c) for c in conn.execute(
                        select(commits.c.id).where(
                            commits.c.repo == name, commits.c.branch == branch,
                            commits.c.state == CommitState.OPEN.value, commits.c.origin == Origin.AUTO.value,
                        ).order_by(commits.c.seq)
                    ).scalars() if c not in known
                ]
        for name, commit_id in pending:
            self._open_job(name, commit_id)

    def _open_job(self, name: str, commit_id: str) -> None:
        out = self.store.inspect_commit(name, commit_id)
        spec_commit, inputs = None, {}
        by_branch = {}
        for cid in out.provenance:
            up = self.store.inspect_commit(self._repo_of(cid), cid)
            by_branch[(up.repo, up.branch)] = up
            if up.repo == name and up.branch == SPEC_BRANCH:
                spec_commit = up
        spec = parse_spec(json.loads(self.store.get_file(name, spec_commit.id, SPEC_FILE))) if spec_commit else None
        if spec is not None:
            inputs = {n: (c.id if (c := by_branch.get(rb)) else None) for n, rb in input_branches(spec).items()}
        same_set = spec_commit is not None and spec_commit.commit_set == out.commit_set
        reprocess = bool(out.metadata.get("reprocess")) or bool(
            same_set and spec_commit is not None and spec_commit.metadata.get("reprocess")
        )
        self.jobs.create(
            name, commit_id, out.commit_set, spec_commit.id if spec_commit else None, inputs, reprocess=reprocess
        )

    def _repo_of(self, commit_id: str) -> str:
        with self.store.engine.connect() as conn:
            return str(conn.execute(select(commits.c.repo).where(commits.c.id == commit_id)).scalar())

    def _next_ready(self, pipeline: str | None) -> JobInfo | None:
        """The oldest created job whose upstream commits have all finished."""
        self._discover(pipeline)
        for job in reversed(self.jobs.list_jobs(pipeline, states=[JobState.CREATED])):
            if EXTERNAL_WORKER in self._job_spec(job).transform.env:  # planned and completed from outside
                continue
            out = self.store.inspect_commit(job.pipeline, job.output_commit)
            states = [self.store.inspect_commit(self._repo_of(c), c).state for c in out.provenance]
            if all(s is not CommitState.OPEN for s in states):
                return job
        return None

    # -- running ----------------------------------------------------------------------

    def _run_job(self, job: JobInfo) -> JobInfo:
        try:
            failed_up = self._failed_upstream(job)
            if failed_up:
                return self._fail(job, JobState.KILLED, f"input commit {failed_up} failed; nothing ran")
            if job.spec_commit is None:
                return self._fail(job, JobState.KILLED, "the pipeline has no spec commit")
            spec = self._job_spec(job)
            datums = compute_datums(self.store, spec, job.inputs)
            pending = self._plan(job, spec, datums)
            self.executor.run(JobRun(job.id, spec, job.output_commit), pending, self._recorder(job))
            return self._complete(job)
        except DatumflowError as exc:
            return self._fail(job, JobState.FAILURE, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            self._fail(job, JobState.FAILURE, f"internal error: {type(exc).__name__}: {exc}")
            raise

    def _job_spec(self, job: JobInfo) -> PipelineSpec:
        if job.spec_commit is None:
            raise InvalidArgument(f"job {job.id} has no spec commit")
        return parse_spec(json.loads(self.store.get_file(job.pipeline, job.spec_commit, SPEC_FILE)))

    def _failed_upstream(self, job: JobInfo) -> str | None:
        out = self.store.inspect_commit(job.pipeline, job.output_commit)
        for cid in out.provenance:
            up = self.store.inspect_commit(self._repo_of(cid), cid)
            if up.state is CommitState.FAILED:
                return str(up)
        return None

    def _plan(self, job: JobInfo, spec: PipelineSpec, datums: Sequence[Datum]) -> list[Datum]:
        """Record every datum; those the cache knows are skipped. Returns the ones to run."""
        hasher = datum_hasher(spec.transform, spec.salt)
        hashes = [hasher(d) for d in datums]
        force = job.reprocess or spec.reprocess_spec == "every_job"
        # A hit's outputs are copied as the cache's JSON text (compact, as the cache stores it): never decoded.
        cached = {} if force else self.cache.lookup_stored(job.pipeline, hashes)
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
        self.jobs.add_datums(job.id, rows)
        return pending

    def _recorder(self, job: JobInfo) -> Any:
        def on_done(datum: Datum, outcome: DatumOutcome) -> None:
            self.jobs.record_datum(
                job.id, datum.id, state=DatumState.SUCCESS if outcome.ok else DatumState.FAILED,
                outputs=outcome.outputs if outcome.ok else None, log=outcome.log, error=outcome.error,
                tries=outcome.tries, started=outcome.started, finished=outcome.finished,
            )

        return on_done

    def _complete(self, job: JobInfo) -> JobInfo:
        results = self.jobs.datum_outputs(job.id)
        failed = [d for d, state, _ in results if state in (DatumState.FAILED.value, DatumState.PENDING.value)]
        if failed:
            return self._fail(job, JobState.FAILURE, self._failure_reason(job, failed))
        union: dict[str, Any] = {}
        writers: dict[str, str] = {}
        for datum_id, _, outputs in results:
            for path, entry in outputs.items():
                if path in writers:
                    raise InvalidArgument(
                        f"output file {path} was written by two datums: {self._describe(job, writers[path])} "
                        f"and {self._describe(job, datum_id)}"
                    )
                union[path], writers[path] = entry, datum_id
        self._write_output(job, union)
        record_lineage(self.store.engine, job.output_commit, job.id, writers)
        counters = self.jobs.counters(job.id)
        self.store.finish_commit(
            job.pipeline, job.output_commit,
            metadata={"job": job.id, "pipeline": job.pipeline, "datums": counters},
        )
        ran = [(d, o) for d, state, o in results if state == DatumState.SUCCESS.value]
        hashes = self.jobs.datum_hashes(job.id) if ran else {}
        self.cache.store(job.pipeline, [CachedOutput(hashes[d], o, job.id, d) for d, o in ran])
        return self.jobs.finish(job.id, JobState.SUCCESS, counters=counters)  # no datum changed since

    def _write_output(self, job: JobInfo, union: dict[str, Any]) -> None:
        root = self.store._root_of(job.output_commit)
        current = dict(self.store._entries_under(root, ""))
        edits: dict[str, Any] = {p: e for p, e in union.items() if current.get(p) != e}
        edits.update({p: None for p in current if p not in union})
        if edits:
            self.store.write_entries(job.pipeline, job.output_commit, lambda _: edits, verb="job output")

    def _failure_reason(self, job: JobInfo, failed: list[str]) -> str:
        first = self.jobs.datum(job.id, failed[0])
        log = (first.log or "").strip()[-2000:]
        more = f" (and {len(failed) - 1} more datum(s))" if len(failed) > 1 else ""
        return f"datum {self._describe(job, failed[0])} failed: {first.error}{more}\n--- datum log ---\n{log}"

    def _describe(self, job: JobInfo, datum_id: str) -> str:
        info = self.jobs.datum(job.id, datum_id)
        where = ", ".join(f"{i['name']}:/{i['path']}" for i in info.inputs)
        return f"{datum_id[:12]} ({where})"

    def _fail(self, job: JobInfo, state: JobState, reason: str) -> JobInfo:
        commit = self.store.inspect_commit(job.pipeline, job.output_commit)
        if commit.state is CommitState.OPEN:
            first_line = reason.splitlines()[0] if reason else "job failed"
            self.store.finish_commit(
                job.pipeline, job.output_commit, error=f"job {job.id} {state.value}: {first_line}",
                metadata={"job": job.id, "pipeline": job.pipeline},
            )
        return self.jobs.finish(job.id, state, reason=reason)


def _iso(ts: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat()
