"""The one protocol every executor has: ``run(job_run, pending, on_done)``.

``local`` (:class:`~.local.LocalExecutor`) runs datums as subprocesses on this host;
``kubernetes`` (:class:`~.kubernetes.KubernetesExecutor`) as pods, one per batch. ``Pipelines``
takes any of them; :mod:`.select` builds one from ``datumflow serve --executor …``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from datumflow.storage_service.pipelines.datums import Datum
    from datumflow.storage_service.pipelines.executors.local import JobRun
    from datumflow.storage_service.pipelines.worker import DatumOutcome

__all__ = ["Executor"]


class Executor(Protocol):
    """Runs the pending datums of one job; calls ``on_done`` (in the calling thread) as each one ends."""

    def run(self, run: JobRun, pending: Sequence[Datum], on_done: Callable[[Datum, DatumOutcome], None]) -> None: ...
