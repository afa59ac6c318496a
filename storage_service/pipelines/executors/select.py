"""Choosing where jobs run: ``local`` (subprocesses on this host) or ``kubernetes`` (a pod per batch).

Every executor has one call, :class:`.base.Executor` ``run(job_run, pending, on_done)``;
:func:`build_executor` makes one from :class:`ExecutorConfig`, which ``datumflow serve``
fills from ``--executor`` and its options or from ``--executor-config FILE`` (YAML)::

    executor: kubernetes
    kubernetes:
      namespace: datumflow
      worker_image: registry.example.com/datumflow/worker:0.2
      service_account: datumflow-worker
      node_selector: {pool: batch}
      tolerations: [{key: dedicated, operator: Equal, value: batch, effect: NoSchedule}]
      batch_size: 100        # datums per pod (default: parallelism pods per job)
      concurrency: 4         # pods at once (default: the pipeline's parallelism)
      worker_secret: datumflow-worker
      image_pull_policy: IfNotPresent

The pod runner is the one part that touches a cluster; ``build_executor``
takes it as an argument (default: :class:`~.kubernetes.KubeApiRunner`,
created on first use), so tests run the rendered pods as local processes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from datumflow.storage_service.core.safe_yaml import load_all
from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.pipelines.executors.base import Executor
from datumflow.storage_service.pipelines.executors.kubernetes import KubeApiRunner, KubernetesExecutor, PodRunner
from datumflow.storage_service.pipelines.executors.local import LocalExecutor
from datumflow.storage_service.pipelines.executors.pod import PodSettings

if TYPE_CHECKING:
    from datumflow.storage_service.store.store import Store

__all__ = ["EXECUTORS", "Executor", "ExecutorConfig", "KubernetesConfig", "build_executor", "load_config"]

EXECUTORS = ("local", "kubernetes")


@dataclass(frozen=True)
class KubernetesConfig:
    namespace: str = "default"
    worker_image: str = PodSettings.worker_image
    worker_secret: str = PodSettings.worker_secret
    service_account: str | None = None
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    image_pull_policy: str | None = None
    batch_size: int | None = None
    concurrency: int | None = None
    poll_seconds: float = PodSettings.poll_seconds

    def __post_init__(self) -> None:
        for name in ("batch_size", "concurrency"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InvalidArgument(f"kubernetes.{name} must be a whole number of at least 1, not {value!r}")
        if not isinstance(self.node_selector, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.node_selector.items()
        ):
            raise InvalidArgument("kubernetes.node_selector must map label names to values")
        if isinstance(self.tolerations, (str, bytes)) or not all(isinstance(t, Mapping) for t in self.tolerations):
            raise InvalidArgument("kubernetes.tolerations must be a list of toleration objects")
        if not str(self.namespace).strip():
            raise InvalidArgument("kubernetes.namespace is empty")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KubernetesConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidArgument(f"unknown kubernetes executor setting(s): {', '.join(unknown)}; "
                                  f"known: {', '.join(sorted(known))}")
        return cls(**dict(data))

    def pod_settings(self) -> PodSettings:
        return PodSettings(
            worker_image=self.worker_image, worker_secret=self.worker_secret, node_selector=dict(self.node_selector),
            tolerations=tuple(dict(t) for t in self.tolerations), image_pull_policy=self.image_pull_policy,
            poll_seconds=self.poll_seconds, service_account=self.service_account,
        )


@dataclass(frozen=True)
class ExecutorConfig:
    executor: str = "local"
    kubernetes: KubernetesConfig = field(default_factory=KubernetesConfig)

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise InvalidArgument(f"unknown executor {self.executor!r}: use one of {', '.join(EXECUTORS)}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExecutorConfig:
        unknown = sorted(set(data) - {"executor", "kubernetes"})
        if unknown:
            raise InvalidArgument(f"unknown executor setting(s): {', '.join(unknown)}; known: executor, kubernetes")
        k8s = data.get("kubernetes") or {}
        if not isinstance(k8s, Mapping):
            raise InvalidArgument("kubernetes: must be a mapping of settings")
        return cls(str(data.get("executor", "local")), KubernetesConfig.from_dict(k8s))


def load_config(path: str | Path) -> ExecutorConfig:
    """An :class:`ExecutorConfig` from a YAML file."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the executor config {path}: {exc.strerror or exc}") from None
    try:
        docs = load_all(text)
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"{path} is not valid YAML: {exc}") from None
    data = docs[0] if len(docs) == 1 else ({} if not docs else None)
    if not isinstance(data, Mapping):
        raise InvalidArgument(f"{path}: the executor config must be a YAML mapping")
    return ExecutorConfig.from_dict(data)


def build_executor(store: Store, config: ExecutorConfig, *, runner: PodRunner | None = None) -> Executor:
    """The executor ``config`` names, over ``store``; ``runner`` replaces the cluster for kubernetes."""
    if config.executor == "local":
        return LocalExecutor(store)
    k8s = config.kubernetes
    return KubernetesExecutor(
        store, k8s.pod_settings(), runner or _LazyKubeApiRunner(), batch_size=k8s.batch_size,
        namespace=k8s.namespace, concurrency=k8s.concurrency,
    )


class _LazyKubeApiRunner:
    """A :class:`KubeApiRunner` made when the first pod runs (the service starts without a cluster)."""

    def __init__(self) -> None:
        self._runner: KubeApiRunner | None = None

    def __call__(self, pod: dict[str, Any]) -> Any:
        if self._runner is None:
            self._runner = KubeApiRunner()
        return self._runner(pod)
