"""The plugin's listener: when a DAG run fails, finish its open commits with an error.

A commit started by one task and meant to be finished by another would
otherwise stay open (and block its branch). Commits made from Airflow carry
``airflow.dag_id`` / ``airflow.run_id`` in their metadata, which is how the
run's commits are found.
"""

from __future__ import annotations

import logging
from typing import Any

try:
    from airflow.listeners import hookimpl
except ImportError:  # pragma: no cover
    from airflow.sdk.listeners import hookimpl  # type: ignore[no-redef]

from .refs import AIRFLOW_KEY

__all__ = ["abort_open_commits", "on_dag_run_failed"]

log = logging.getLogger(__name__)


def abort_open_commits(client: Any, dag_id: str, run_id: str, reason: str) -> list[str]:
    """Fail every open commit made by ``dag_id``/``run_id``; returns them as ``repo@id``."""
    aborted = []
    for repo in client.list_repos():
        for commit in client.list_commits(repo.name, state="open"):
            stamp = commit.metadata.get(AIRFLOW_KEY) or {}
            if stamp.get("dag_id") == dag_id and stamp.get("run_id") == run_id:
                client.finish_commit(repo.name, commit.id, error=reason)
                aborted.append(str(commit))
    return aborted


def _conn_ids(dag_run: Any) -> set[str]:
    from .hooks import DatumflowHook

    ids = {DatumflowHook.default_conn_name}
    dag = getattr(dag_run, "dag", None)
    for task in getattr(dag, "tasks", None) or []:
        conn_id = getattr(task, "datumflow_conn_id", None)
        if isinstance(conn_id, str) and "{{" not in conn_id:
            ids.add(conn_id)
    return ids


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    from .hooks import DatumflowHook

    reason = f"Airflow DAG run {dag_run.dag_id}/{dag_run.run_id} failed: {msg or 'a task failed'}"
    for conn_id in sorted(_conn_ids(dag_run)):
        hook = DatumflowHook(datumflow_conn_id=conn_id)
        try:
            aborted = abort_open_commits(hook.get_conn(), dag_run.dag_id, dag_run.run_id, reason)
        except Exception as exc:  # a listener must never break the scheduler
            log.warning("datumflow: could not abort the open commits of %s via %s: %s", dag_run.run_id, conn_id, exc)
            continue
        finally:
            hook.close()
        if aborted:
            log.info("datumflow: failed the open commits %s of run %s", ", ".join(aborted), dag_run.run_id)
