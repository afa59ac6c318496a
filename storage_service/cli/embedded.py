"""The embedded store acting like a running cluster, from the command line's side.

With ``file://`` (the default) no service runs pipelines in the background,
so the verbs that would have made a cluster move do the work themselves:
``put`` runs the jobs its commit opened downstream (``--no-run`` or
``DATUMFLOW_NO_RUN=1`` leaves them created), and ``commit wait`` and
``commit-set wait`` run the jobs they wait for. Against a service these do
nothing: the service's own loop runs the jobs.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["NO_RUN_ENV", "drive"]

NO_RUN_ENV = "DATUMFLOW_NO_RUN"


def drive(store: Any, *, no_run: bool = False) -> None:
    """Run every ready job of an embedded store in this process (nothing for a remote one)."""
    if no_run or os.environ.get(NO_RUN_ENV, "").strip().lower() in ("1", "true", "yes"):
        return
    # A process that never imported the store module holds no Store (a client of a service):
    # asking sys.modules keeps a remote ``put`` from importing the store only to learn that.
    module = sys.modules.get("datumflow.storage_service.store.store")
    if module is not None and isinstance(store, module.Store) and _has_pipelines(store):
        from datumflow.storage_service.pipelines.engine import Pipelines

        Pipelines(store).process()


def _has_pipelines(store: Any) -> bool:
    """One indexed query, so a store without pipelines never imports the pipeline engine."""
    from datumflow.storage_service.core.pipeline_schema import pipelines
    from sqlalchemy import select

    with store.engine.connect() as conn:
        return conn.execute(select(pipelines.c.name).limit(1)).first() is not None
