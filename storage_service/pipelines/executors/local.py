"""The local executor: a job's datums as subprocesses on this host, ``parallelism`` at a time.

Each datum gets its own temporary pfs folder; the worker's ``run_datum``
does the fetch, run (with ``datum_tries`` and ``datum_timeout``) and upload.
The command runs in the datum's own filesystem view (:mod:`..sandbox`):
that folder is its ``/pfs``, its ``/tmp`` is private, and the store's root,
database and the service's environment do not exist for it. The
transform's image is recorded with the job but not pulled: the host's
system folders stand in for it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from datumflow.storage_service.pipelines.datums import Datum
from datumflow.storage_service.pipelines.sandbox import Sandbox, sandbox_from_env
from datumflow.storage_service.pipelines.spec import PipelineSpec
from datumflow.storage_service.pipelines.worker import DatumOutcome, datum_env, run_datum

if TYPE_CHECKING:
    from datumflow.storage_service.store.store import Store

__all__ = ["JobRun", "LocalExecutor", "datum_env"]


@dataclass(frozen=True)
class JobRun:
    """What an executor needs to run the datums of one job."""

    job_id: str
    spec: PipelineSpec
    output_commit: str = ""


class LocalExecutor:
    def __init__(
        self, store: Store, *, workdir: str | None = None, keep: bool = False, sandbox: Sandbox | None = None
    ) -> None:
        self.store = store
        self.workdir = workdir
        self.keep = keep  # keep each datum's pfs folder (for debugging)
        self.sandbox = sandbox or sandbox_from_env(hidden=[store.root])

    def run(
        self, run: JobRun, pending: Sequence[Datum], on_done: Callable[[Datum, DatumOutcome], None]
    ) -> None:
        """Run every datum; ``on_done`` is called (in this thread) as each one ends."""
        if not pending:
            return
        base = Path(tempfile.mkdtemp(prefix=f"datumflow-{run.job_id[:8]}-", dir=self.workdir))
        try:
            with ThreadPoolExecutor(max_workers=run.spec.parallelism) as pool:
                futures = {pool.submit(self._one, run, d, base / d.id[:16]): d for d in pending}
                for fut in as_completed(futures):
                    on_done(futures[fut], fut.result())
        finally:
            if not self.keep:
                shutil.rmtree(base, ignore_errors=True)

    def _one(self, run: JobRun, datum: Datum, folder: Path) -> DatumOutcome:
        env = datum_env(run.spec, run.job_id, datum, run.output_commit)
        try:
            return run_datum(
                self.store, run.spec.transform, env, folder / "pfs",
                tries=run.spec.datum_tries, timeout=run.spec.timeout_seconds, sandbox=self.sandbox,
            )
        finally:
            if not self.keep:
                shutil.rmtree(folder, ignore_errors=True)

