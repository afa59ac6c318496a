"""The ``kubernetes`` executor: a job's datums as pods, one per batch, for pipelines the service runs itself.

``KubernetesExecutor(store, settings, runner)`` has the local executor's
``run(job_run, pending, on_done)``. It splits the pending datums into
batches (``parallelism`` of them, or ``batch_size`` datums each), builds
every pod first with :mod:`.pod_spec` (so a bad image, resource or
``pod_patch`` fails the job before any pod exists), then hands each pod to
``runner`` — ``parallelism`` at a time — and waits.

The pods record their own datums: the uploader container sends each
datum's output to the service, which marks it succeeded. What is left
unrecorded after a pod ends failed with that pod, and goes to ``on_done``.

``runner`` is the one place that touches a cluster: :class:`KubeApiRunner`
creates the pod through the ``kubernetes`` client's ``CoreV1Api``, polls it
until it ends, reads the uploader's log and deletes it. Anything with the
same call (``runner(pod_dict) -> PodResult``) can stand in for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from datumflow.storage_service.pipelines.datums import Datum
from datumflow.storage_service.pipelines.executors.local import JobRun
from datumflow.storage_service.pipelines.executors.pod import (
    UPLOADER,
    Batch,
    PodSettings,
    build_pod,
    make_batches,
    to_v1pod,
)
from datumflow.storage_service.pipelines.jobs import DatumState, JobTable
from datumflow.storage_service.pipelines.worker import DatumOutcome

if TYPE_CHECKING:
    from datumflow.storage_service.store.store import Store

__all__ = ["KubeApiRunner", "KubernetesExecutor", "PodResult", "PodRunner"]


@dataclass(frozen=True)
class PodResult:
    phase: str  # Succeeded | Failed
    log: str = ""
    exit_codes: Mapping[str, int | None] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.phase == "Succeeded"


class PodRunner(Protocol):
    def __call__(self, pod: dict[str, Any]) -> PodResult: ...


class KubernetesExecutor:
    def __init__(
        self, store: Store, settings: PodSettings, runner: PodRunner, *, batch_size: int | None = None,
        namespace: str = "default", concurrency: int | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.runner = runner
        self.batch_size = batch_size
        self.namespace = namespace
        self.concurrency = concurrency  # pods of one job at once (default: the pipeline's parallelism)

    def pods(self, run: JobRun, pending: Sequence[Datum]) -> list[tuple[Batch, dict[str, Any]]]:
        """Every pod of the job, built (and so checked) before any runs."""
        ids = [d.id for d in pending]
        size = self.batch_size
        batches = make_batches(run.job_id, run.spec.name, ids, size=size, count=None if size else run.spec.parallelism)
        return [(b, build_pod(run.spec, b, self.settings, base=self._base(b))) for b in batches]

    def run(self, run: JobRun, pending: Sequence[Datum], on_done: Callable[[Datum, DatumOutcome], None]) -> None:
        if not pending:
            return
        pods = self.pods(run, pending)
        by_id = {d.id: d for d in pending}
        with ThreadPoolExecutor(max_workers=self.concurrency or max(1, run.spec.parallelism)) as pool:
            results = list(pool.map(self._run_one, [p for _, p in pods]))
        jobs = JobTable(self.store.engine)
        for (batch, _), (result, started, finished) in zip(pods, results, strict=True):
            for datum_id in batch.datums:
                if jobs.datum(batch.job, datum_id).state is DatumState.SUCCESS:
                    continue
                error = f"pod of batch {batch.index} ended {result.phase}" + _codes(result)
                on_done(by_id[datum_id], DatumOutcome(False, {}, result.log, error, 1, started, finished))

    def _run_one(self, pod: dict[str, Any]) -> tuple[PodResult, float, float]:
        started = time.time()
        result = self.runner(pod)
        return result, started, time.time()

    def _base(self, batch: Batch) -> dict[str, Any]:
        name = f"datumflow-{batch.pipeline}-{batch.job[:8]}-{batch.index}".lower().replace("_", "-")[:63]
        return {"metadata": {"name": name, "namespace": self.namespace}}


def _codes(result: PodResult) -> str:
    codes = ", ".join(f"{k}={v}" for k, v in result.exit_codes.items())
    return f" ({codes})" if codes else ""


class KubeApiRunner:
    """Create the pod in a cluster, wait for it to end, read the uploader's log, delete it."""

    def __init__(self, api: Any = None, *, poll: float = 2.0, timeout: float | None = None, keep: bool = False) -> None:
        if api is None:
            from kubernetes import client, config

            try:
                config.load_incluster_config()
            except config.ConfigException:
                config.load_kube_config()
            api = client.CoreV1Api()
        self.api = api
        self.poll = poll
        self.timeout = timeout
        self.keep = keep

    def __call__(self, pod: dict[str, Any]) -> PodResult:
        namespace = pod["metadata"].get("namespace", "default")
        name = pod["metadata"]["name"]
        self.api.create_namespaced_pod(namespace=namespace, body=to_v1pod(pod))
        try:
            phase = self._wait(name, namespace)
            remote = self.api.read_namespaced_pod(name=name, namespace=namespace)
            log = self.api.read_namespaced_pod_log(name=name, namespace=namespace, container=UPLOADER)
            return PodResult(phase, str(log or ""), _exit_codes(remote))
        finally:
            if not self.keep:
                self.api.delete_namespaced_pod(name=name, namespace=namespace)

    def _wait(self, name: str, namespace: str) -> str:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            phase = str(self.api.read_namespaced_pod(name=name, namespace=namespace).status.phase)
            if phase in ("Succeeded", "Failed"):
                return phase
            if deadline is not None and time.monotonic() > deadline:
                return "Failed"
            time.sleep(self.poll)


def _exit_codes(pod: Any) -> dict[str, int | None]:
    statuses = [*(pod.status.init_container_statuses or []), *(pod.status.container_statuses or [])]
    return {
        s.name: (s.state.terminated.exit_code if s.state and s.state.terminated else None) for s in statuses
    }
