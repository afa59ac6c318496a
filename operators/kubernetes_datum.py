"""Datums on Kubernetes from Airflow: a plan task, one mapped pod per batch, an assemble task.

::

    with DAG(...):
        datum_kubernetes_pods("edges", pipeline="edges", worker_image="registry/datumflow-worker:0.1")

makes a task group of three::

    plan ──► pods[0..n] (DatumKubernetesPodOperator, .expand over the batches) ──► assemble

- ``plan`` (:class:`DatumPlanOperator`) drives the job as every adapter does
  (:mod:`datumflow.storage_service.pipelines.driver`): it declares the pipeline (when given a spec),
  finds the job of the inputs' current heads (``inputs=`` names other commits) — a successful one is
  reused, an open one (opened by the input commit, or by an earlier try) is joined, otherwise one is
  opened — lets the service record its datums (the datum cache decides which ones are already done),
  checks the pod would be valid, and returns the batches still to run. A job a service's job loop
  claimed first is waited for: no pods, its counters are the job's.
- ``pods`` (:class:`DatumKubernetesPodOperator`, a ``KubernetesPodOperator``) runs one pod per
  batch, built by :mod:`datumflow.storage_service.pipelines.executors.pod`; each batch is its own task
  instance, retried alone. No batches (every datum cached): the mapped task is skipped.
- ``assemble`` (:class:`DatumAssembleOperator`) runs whatever happened upstream: it completes
  the job (the output commit with provenance, per-file lineage and the task's run) or, if a batch
  failed, fails the job and its commit — nothing half-done becomes visible — and fails the task.
  A job reused or run by someone else is reported as it is.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from datumflow.operators.base import DatumflowBaseOperator, with_conn_id
from datumflow.plugin._compat import deprecated_alias
from datumflow.plugin.hooks import DatumflowHook
from datumflow.storage_service.errors import DatumflowError
from datumflow.storage_service.pipelines.executors.pod import (
    UPLOADER,
    Batch,
    PodSettings,
    build_pod,
    make_batches,
    to_v1pod,
    validate,
)
from datumflow.storage_service.pipelines.spec import parse_spec

__all__ = [
    "DatumAssembleOperator",
    "DatumKubernetesPodOperator",
    "DatumPlanOperator",
    "DatumflowDatumAssembleOperator",
    "DatumflowDatumPlanOperator",
    "DatumflowKubernetesPodOperator",
    "datum_kubernetes_pods",
]

DEFAULT_WORKER_SECRET = "datumflow-worker"


def pipelines_of(hook: DatumflowHook) -> Any:
    """The pipelines engine: in-process for an embedded store, the service's over HTTP otherwise."""
    return hook.pipelines()


def _spec_dict(info: Any) -> dict[str, Any]:
    return dict(info["spec"] if isinstance(info, Mapping) else info.spec)


class DatumflowDatumPlanOperator(DatumflowBaseOperator):
    """Plan the job of ``pipeline`` (created or updated from ``spec`` when given) on its inputs; returns
    batch dicts.

    ``inputs`` ({input name: commit id}, templated) picks the job of those commits (they must be the
    heads if no job of them exists yet); by default, the inputs' current heads.
    """

    template_fields: Sequence[str] = with_conn_id("pipeline", "inputs")

    def __init__(
        self, *, pipeline: str | None = None, spec: Mapping[str, Any] | None = None, worker_image: str,
        batch_size: int | None = None, max_batches: int | None = None, reprocess: bool = False,
        resources: Mapping[str, Any] | None = None, inputs: Mapping[str, str] | None = None, **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (pipeline is None) == (spec is None):
            raise ValueError("give either pipeline (a name) or spec (an inline pipeline spec)")
        self.pipeline = pipeline
        self.spec = dict(spec) if spec is not None else None
        self.worker_image = worker_image
        self.batch_size = batch_size
        self.max_batches = max_batches
        self.reprocess = reprocess
        self.resources = dict(resources) if resources is not None else None
        self.inputs = dict(inputs) if inputs is not None else None

    def execute(self, context: Any) -> list[dict[str, Any]]:
        from datumflow.storage_service.pipelines.driver import claim_datums, find_or_open_job

        svc = pipelines_of(self.hook)
        try:
            info = self._pipeline(svc)
            spec = parse_spec(_spec_dict(info))
            validate(spec, PodSettings(worker_image=self.worker_image), self.resources)
            job = find_or_open_job(svc, info, self.inputs or _heads(svc, spec), reprocess=self.reprocess,
                                   metadata=self.metadata(context), description=f"run by {self.task_id}")
            reused = job.state.value == "success"
            pending = claim_datums(svc, job)
            if pending is None:  # a job loop (or another worker) claimed it first: its result is the job's
                self.log.info("job %s is run by someone else: waiting for it", job.id)
                job, pending = svc.wait_job(job.id, drive=False), []
            total = len(svc.list_datums(job.id))
            if total == 0 and not job.state.done:
                svc.fail_job(job.id, "the input has no datums: no file matches the glob pattern")
                raise self.fail(f"pipeline {spec.name}: the input commit(s) {job.inputs} have no datums")
        except DatumflowError as exc:
            raise self.fail(f"{type(exc).__name__}: {exc}") from exc
        batches = make_batches(job.id, spec.name, [d.id for d in pending], size=self.batch_size,
                               count=self.max_batches or spec.parallelism, spec=spec.to_dict())
        summary = {"job": job.id, "pipeline": spec.name, "output_commit": job.output_commit, "inputs": job.inputs,
                   "datums": total, "to_run": len(pending), "batches": len(batches), "reused": reused}
        self.log.info("job %s: %d datum(s), %d cached, %d to run in %d pod(s)%s", job.id, total,
                      total - len(pending), len(pending), len(batches), " (reused)" if reused else "")
        context["ti"].xcom_push(key="job", value=summary)
        return [b.to_dict() for b in batches]

    def _pipeline(self, svc: Any) -> Any:
        if self.spec is None:
            return svc.inspect_pipeline(str(self.pipeline))
        from datumflow.storage_service.pipelines.driver import ensure_pipeline

        return ensure_pipeline(svc, self.spec)  # an unchanged spec makes no new spec commit (and no new job)


def _heads(svc: Any, spec: Any) -> dict[str, str]:
    """{input name: the head of its branch}: what a job opened now would read."""
    from datumflow.storage_service.pipelines.datums import input_branches

    return {name: str(svc.store.resolve(repo, branch)) for name, (repo, branch) in input_branches(spec).items()}


class DatumflowKubernetesPodOperator(KubernetesPodOperator):
    """One pod for one batch of datums (``batch``: a dict from :class:`DatumPlanOperator`).

    Every argument of ``KubernetesPodOperator`` applies (namespace, node_selector, tolerations,
    service_account_name, …); the containers, volumes and ``pod_patch`` come from the pipeline
    spec through :func:`~datumflow.storage_service.pipelines.executors.pod.build_pod`. The uploader container is
    the one followed: its exit status is the batch's.
    """

    def __init__(
        self, *, batch: Mapping[str, Any], worker_image: str, worker_secret: str = DEFAULT_WORKER_SECRET,
        resources: Mapping[str, Any] | None = None, poll_seconds: float = 1.0, **kwargs: Any,
    ) -> None:
        kwargs.setdefault("name", "datumflow-batch")
        kwargs.setdefault("do_xcom_push", False)
        super().__init__(image=worker_image, base_container_name=UPLOADER, **kwargs)
        self.batch = batch
        self.worker_image = worker_image
        self.worker_secret = worker_secret
        self.datum_resources = resources
        self.poll_seconds = poll_seconds

    def build_pod_request_obj(self, context: Any = None, *, dry_run: bool = False) -> Any:
        from kubernetes.client import ApiClient

        base = ApiClient().sanitize_for_serialization(super().build_pod_request_obj(context, dry_run=dry_run))
        batch = Batch.from_dict(dict(self.batch))
        settings = PodSettings(worker_image=self.worker_image, worker_secret=self.worker_secret,
                               image_pull_policy=self.image_pull_policy, poll_seconds=self.poll_seconds)
        pod = build_pod(parse_spec(batch.spec), batch, settings, base=base, resources=self.datum_resources)
        return to_v1pod(pod)


class DatumflowDatumAssembleOperator(DatumflowBaseOperator):
    """Complete the planned job (or fail it, if a batch failed); returns the output commit's reference."""

    def __init__(self, *, plan_task_id: str, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done")
        super().__init__(**kwargs)
        self.plan_task_id = plan_task_id

    def execute(self, context: Any) -> dict[str, Any]:
        plan = context["ti"].xcom_pull(task_ids=self.plan_task_id, key="job")
        if not plan:
            raise self.fail(f"task {self.plan_task_id} planned no job; nothing to assemble")
        svc = pipelines_of(self.hook)
        job = svc.inspect_job(plan["job"])
        if not job.state.done:  # planned here: this task assembles it
            job = svc.complete_job(job.id, metadata=self.metadata(context))
        if job.state.value != "success":
            raise self.fail(f"job {job.id} {job.state.value}; its output commit failed: {job.reason}")
        commit = self.hook.get_conn().inspect_commit(job.pipeline, job.output_commit)
        self.lineage_inputs += [{"repo": "", "commit": c} for c in job.inputs.values() if c]
        reused = bool(plan.get("reused"))
        counters = {**job.counters, "processed": 0, "skipped": job.total} if reused else job.counters
        return {**self.done(context, commit), "job": job.id, "datums": counters, "reused": reused,
                "provenance": list(commit.provenance)}


def datum_kubernetes_pods(
    group_id: str, *, worker_image: str, pipeline: str | None = None, spec: Mapping[str, Any] | None = None,
    datumflow_conn_id: str = DatumflowHook.default_conn_name, batch_size: int | None = None,
    max_batches: int | None = None, reprocess: bool = False, resources: Mapping[str, Any] | None = None,
    worker_secret: str = DEFAULT_WORKER_SECRET, inputs: Mapping[str, str] | None = None, **pod_kwargs: Any,
) -> Any:
    """The plan → mapped pods → assemble task group; ``pod_kwargs`` go to every pod task."""
    from airflow.sdk import TaskGroup

    with TaskGroup(group_id) as group:
        plan = DatumflowDatumPlanOperator(
            task_id="plan", pipeline=pipeline, spec=spec, worker_image=worker_image, batch_size=batch_size,
            max_batches=max_batches, reprocess=reprocess, resources=resources, datumflow_conn_id=datumflow_conn_id,
            inputs=inputs,
        )
        pods = DatumflowKubernetesPodOperator.partial(
            task_id="pods", worker_image=worker_image, worker_secret=worker_secret, resources=resources, **pod_kwargs,
        ).expand(batch=plan.output)
        assemble = DatumflowDatumAssembleOperator(
            task_id="assemble", plan_task_id=plan.task_id, datumflow_conn_id=datumflow_conn_id,
        )
        plan >> pods >> assemble
    return group


DatumPlanOperator = deprecated_alias(DatumflowDatumPlanOperator, "DatumPlanOperator")
DatumAssembleOperator = deprecated_alias(DatumflowDatumAssembleOperator, "DatumAssembleOperator")
DatumKubernetesPodOperator = deprecated_alias(DatumflowKubernetesPodOperator, "DatumKubernetesPodOperator")
