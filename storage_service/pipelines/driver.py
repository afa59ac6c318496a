"""Driving a pipeline's job from outside the service's job loop: what every adapter does, once.

An Airflow task (``@task.datum``, the Kubernetes plan task) or a Kubeflow
step declares a pipeline, finds the job of the input commit it was given
(or opens one), runs the datums the cache does not know, and completes the
job. The three steps are here, over ``engine`` — an in-process
:class:`~.engine.Pipelines` or the service's ``Client.pipelines``, which have
the same methods — so the adapters only map their arguments:

- :func:`ensure_pipeline` — create the pipeline, or update it when its spec changed;
- :func:`find_or_open_job` — a finished job of the same inputs and spec to
  reuse, a job still open to join, or a new job (its output commit carrying
  the caller's metadata: the Airflow task, the KFP run);
- :func:`run_datums` — plan (claim) the job, run each pending datum with
  the caller's function, complete it; if someone else claimed the job
  first, wait for it. Its counters are the job's, whoever ran it.
  :func:`claim_datums` is its first step alone, for drivers that run the
  datums elsewhere (the Kubernetes plan task: one pod per batch, then an
  assemble task that completes the job).

A spec driven this way sets :data:`~.engine.EXTERNAL_WORKER` in its
transform env, so the service's loop never runs the job itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from datumflow.storage_service.errors import InvalidArgument, NotFound
from datumflow.storage_service.model.core import Origin
from datumflow.storage_service.pipelines.jobs import DatumInfo, DatumState, JobInfo, JobState
from datumflow.storage_service.pipelines.spec import parse_spec

__all__ = ["Driven", "claim_datums", "ensure_pipeline", "find_or_open_job", "run_datums"]

# What runs one datum: (job id, datum) -> an error message, or None once its output is uploaded.
RunOne = Callable[[str, DatumInfo], "str | None"]


@dataclass(frozen=True)
class Driven:
    """A job driven to its end: the job, the datums that failed here, and whether an earlier run was reused."""

    job: JobInfo
    failures: tuple[str, ...] = ()
    reused: bool = False

    @property
    def counters(self) -> dict[str, int]:
        job = self.job
        if self.reused:
            return {"total": job.total, "processed": 0, "skipped": job.total}
        return {"total": job.total, "processed": job.processed, "skipped": job.skipped}


def ensure_pipeline(engine: Any, spec: Mapping[str, Any]) -> Any:
    """The pipeline of ``spec``: created, updated if its spec differs, or as it is."""
    parsed = parse_spec(dict(spec))
    try:
        current = engine.inspect_pipeline(parsed.name)
    except NotFound:
        return engine.create_pipeline(dict(spec))
    if current.spec != parsed.to_dict():
        return engine.update_pipeline(dict(spec))
    return current


def find_or_open_job(
    engine: Any, pipeline: Any, inputs: Mapping[str, str], *, reprocess: bool = False,
    metadata: Mapping[str, Any] | None = None, description: str = "", head_only: bool = True,
) -> JobInfo:
    """The job of ``pipeline`` on ``inputs`` ({input name: commit id}) under its current spec.

    A successful one is reused (unless ``reprocess``); a created or running
    one is joined; otherwise a new job is opened on the inputs' branch heads
    (with ``head_only``, the inputs must be those heads).
    """
    mine: list[JobInfo] = [j for j in engine.list_jobs(pipeline.name)
            if j.inputs == dict(inputs) and j.spec_commit == pipeline.spec_commit]
    if not reprocess:
        for job in mine:
            if job.state is JobState.SUCCESS and not job.reprocess:
                return job
    for job in mine:
        if job.state in (JobState.CREATED, JobState.RUNNING) and job.reprocess == reprocess:
            return job
    if head_only:
        _check_heads(engine, pipeline, inputs)
    opened = engine.store.start_commit(
        pipeline.name, pipeline.output_branch, origin=Origin.AUTO,
        metadata={**(metadata or {}), "reprocess": reprocess}, description=description,
    )
    return engine.job_for_commit(opened.id)  # type: ignore[no-any-return]


def _check_heads(engine: Any, pipeline: Any, inputs: Mapping[str, str]) -> None:
    heads = {}
    for ref in pipeline.inputs:
        repo, _, branch = ref.partition("@")
        heads[repo] = engine.store.resolve(repo, branch or "master")
    for name, commit in inputs.items():
        if commit not in heads.values():
            raise InvalidArgument(
                f"input {name} at commit {commit} has no job and is no longer the head of its branch "
                f"({', '.join(f'{r}: {c}' for r, c in heads.items())}); run on the head"
            )


def claim_datums(engine: Any, job: JobInfo) -> list[DatumInfo] | None:
    """The datums of ``job`` this driver is to run: all pending ones once it plans (claims) a created
    job, what is left of one a driver planned before (a retried task); ``[]`` for a job that
    succeeded; None when a job loop or another worker claimed it first (its result is the job's:
    wait for it)."""
    if job.state is JobState.SUCCESS:
        return []
    if job.state is JobState.CREATED:
        try:
            return list(engine.plan_job(job.id))
        except InvalidArgument:  # claimed meanwhile by another worker
            return None
    if job.state is JobState.RUNNING and not job.external:  # a service's job loop runs it
        return None
    if job.state is JobState.RUNNING:
        return [d for d in engine.list_datums(job.id) if d.state in (DatumState.PENDING, DatumState.FAILED)]
    raise InvalidArgument(f"job {job.id} is {job.state.value}; open a new one")


def run_datums(engine: Any, job: JobInfo, run_one: RunOne, *, metadata: Mapping[str, Any] | None = None) -> Driven:
    """Plan the job, run its pending datums with ``run_one``, complete it (or wait for whoever claimed it);
    ``metadata`` (the caller's run) joins the output commit when this call completes the job."""
    if job.state is JobState.SUCCESS:
        return Driven(job, reused=True)
    pending = claim_datums(engine, job)
    if pending is None:
        return Driven(engine.wait_job(job.id, drive=False))
    failures = tuple(f for f in (run_one(job.id, d) for d in pending) if f)
    return Driven(engine.complete_job(job.id, metadata=dict(metadata) if metadata else None), failures)
