"""Datums on Kubernetes from Airflow: a plan task, one mapped pod per batch, an assemble task.

::

    with DAG(...):
        datum_kubernetes_pods("edges", pipeline="edges", worker_image="registry/datumflow-worker:0.1")

makes a task group of three::

    plan ──► pods[0..n] (DatumKubernetesPodOperator, .expand over the batches) ──► assemble

- ``plan`` (:class:`DatumPlanOperator`) finds the pipeline's next job (or opens one on the
  current inputs), lets the service record its datums — the datum cache decides which ones are
  already done — checks the pod would be valid, and returns the batches still to run.
- ``pods`` (:class:`DatumKubernetesPodOperator`, a ``KubernetesPodOperator``) runs one pod per
  batch, built by :mod:`datumflow.storage_service.pipelines.executors.pod`; each batch is its own task
  instance, retried alone. No batches (every datum cached): the mapped task is skipped.
- ``assemble`` (:class:`DatumAssembleOperator`) runs whatever happened upstream: it completes
  the job (the output commit with provenance and per-file lineage) or, if a batch failed, fails
  the job and its commit — nothing half-done becomes visible — and fails the task.
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
    """Plan the next job of ``pipeline`` (created or updated from ``spec`` when given); returns batch dicts."""

    template_fields: Sequence[str] = with_conn_id("pipeline")

    def __init__(
        self, *, pipeline: str | None = None, spec: Mapping[str, Any] | None = None, worker_image: str,
        batch_size: int | None = None, max_batches: int | None = None, reprocess: bool = False,
        resources: Mapping[str, Any] | None = None, **kwargs: Any,
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

    def execute(self, context: Any) -> list[dict[str, Any]]:
        svc = pipelines_of(self.hook)
        try:
            name = self._pipeline(svc)
            spec = parse_spec(_spec_dict(svc.inspect_pipeline(name)))
            validate(spec, PodSettings(worker_image=self.worker_image), self.resources)
            job = self._next_job(svc, name)
            pending = [d.id for d in svc.plan_job(job.id)]
            total = len(svc.list_datums(job.id))
            if total == 0:
                svc.fail_job(job.id, "the input has no datums: no file matches the glob pattern")
                raise self.fail(f"pipeline {name}: the input commit(s) {job.inputs} have no datums")
        except DatumflowError as exc:
            raise self.fail(f"{type(exc).__name__}: {exc}") from exc
        batches = make_batches(job.id, name, pending, size=self.batch_size,
                               count=self.max_batches or spec.parallelism, spec=spec.to_dict())
        summary = {"job": job.id, "pipeline": name, "output_commit": job.output_commit, "inputs": job.inputs,
                   "datums": total, "to_run": len(pending), "batches": len(batches)}
        self.log.info("job %s: %d datum(s), %d cached, %d to run in %d pod(s)", job.id, total,
                      total - len(pending), len(pending), len(batches))
        context["ti"].xcom_push(key="job", value=summary)
        return [b.to_dict() for b in batches]

    def _pipeline(self, svc: Any) -> str:
        if self.spec is None:
            return str(self.pipeline)
        from datumflow.storage_service.pipelines.driver import ensure_pipeline

        info = ensure_pipeline(svc, self.spec)  # an unchanged spec makes no new spec commit (and no new job)
        return str(info["name"] if isinstance(info, Mapping) else info.name)

    def _next_job(self, svc: Any, name: str) -> Any:
        """The oldest job not started yet; without one, a new job on the inputs' current heads."""
        created = [j for j in svc.list_jobs(name) if j.state.value == "created"]
        if created and not self.reprocess:
            return created[-1]
        commit = svc.run_pipeline(name, reprocess=self.reprocess)
        return next(j for j in svc.list_jobs(name) if j.output_commit == commit)


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
        job = svc.complete_job(plan["job"])
        if job.state.value != "success":
            raise self.fail(f"job {job.id} {job.state.value}; its output commit failed: {job.reason}")
        commit = self.hook.get_conn().inspect_commit(job.pipeline, job.output_commit)
        self.lineage_inputs += [{"repo": "", "commit": c} for c in job.inputs.values() if c]
        return {**self.done(context, commit), "job": job.id, "datums": job.counters,
                "provenance": list(commit.provenance)}


def datum_kubernetes_pods(
    group_id: str, *, worker_image: str, pipeline: str | None = None, spec: Mapping[str, Any] | None = None,
    datumflow_conn_id: str = DatumflowHook.default_conn_name, batch_size: int | None = None,
    max_batches: int | None = None, reprocess: bool = False, resources: Mapping[str, Any] | None = None,
    worker_secret: str = DEFAULT_WORKER_SECRET, **pod_kwargs: Any,
) -> Any:
    """The plan → mapped pods → assemble task group; ``pod_kwargs`` go to every pod task."""
    from airflow.sdk import TaskGroup

    with TaskGroup(group_id) as group:
        plan = DatumflowDatumPlanOperator(
            task_id="plan", pipeline=pipeline, spec=spec, worker_image=worker_image, batch_size=batch_size,
            max_batches=max_batches, reprocess=reprocess, resources=resources, datumflow_conn_id=datumflow_conn_id,
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
