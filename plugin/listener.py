"""The plugin's listener: it fails a failed run's open commits, and acknowledges the commits a run consumed.

``on_dag_run_failed``: a commit started by one task and meant to be finished
by another would otherwise stay open (and block its branch). Commits made
from Airflow carry ``airflow.dag_id`` / ``airflow.run_id`` in their metadata,
which is how the run's commits are found.

``on_dag_run_running``: an asset-triggered run that consumed a datumflow
commit event writes that commit into the asset's state store
(:data:`CONSUMED_KEY`); the :class:`~.triggers.CommitEventTrigger` waits for
it before emitting the next commit, so a burst of commits gives one run each
instead of one run for all (Airflow folds the events queued between two
scheduler loops into one run).

Both run inside the scheduler (or ``airflow dags test``) while it holds its
session: all their work goes through :func:`.server.off_session` — a thread
and a session of its own, every error caught — and never raises into Airflow.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

try:
    from airflow.listeners import hookimpl
except ImportError:  # pragma: no cover
    from airflow.sdk.listeners import hookimpl  # type: ignore[no-redef]

from .refs import AIRFLOW_KEY
from .server import off_session, server_hook

__all__ = ["CONSUMED_KEY", "abort_open_commits", "on_dag_run_failed", "on_dag_run_running"]

log = logging.getLogger(__name__)

CONSUMED_KEY = "datumflow.consumed"
ABORT_WAIT = 30.0  # seconds the caller waits for the open commits to be failed (``dags test`` exits right after)


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
    try:
        tasks = list(getattr(getattr(dag_run, "dag", None), "tasks", None) or [])
    except Exception:  # the serialized DAG is not at hand: the default connection is tried
        tasks = []
    for task in tasks:
        conn_id = getattr(task, "datumflow_conn_id", None)
        if isinstance(conn_id, str) and conn_id and "{{" not in conn_id:
            ids.add(conn_id)
    return ids


def _abort(dag_id: str, run_id: str, conn_ids: Iterable[str], reason: str) -> None:
    for conn_id in sorted(conn_ids):
        try:
            hook = server_hook(conn_id)
        except LookupError:
            continue  # a connection the run never used
        try:
            aborted = abort_open_commits(hook.get_conn(), dag_id, run_id, reason)
        except Exception as exc:
            log.warning("datumflow: could not abort the open commits of %s via %s: %s", run_id, conn_id, exc)
            continue
        finally:
            hook.close()
        if aborted:
            log.info("datumflow: failed the open commits %s of run %s", ", ".join(aborted), run_id)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    try:
        dag_id, run_id = str(dag_run.dag_id), str(dag_run.run_id)
        conn_ids = _conn_ids(dag_run)
    except Exception as exc:  # a listener must never break the scheduler
        log.warning("datumflow: cannot read the failed run: %s", exc)
        return
    reason = f"Airflow DAG run {dag_id}/{run_id} failed: {msg or 'a task failed'}"
    off_session("abort-open-commits", _abort, dag_id, run_id, conn_ids, reason, wait=ABORT_WAIT)


def consumed_commits(events: Iterable[tuple[int, str, Any]]) -> dict[int, str]:
    """{asset id: the newest datumflow commit} of (asset id, asset URI, event extra) triples, in event order."""
    out: dict[int, str] = {}
    for asset_id, uri, extra in events:
        if not str(uri).startswith("datumflow://") or not isinstance(extra, dict):
            continue
        info = extra.get("payload") if isinstance(extra.get("payload"), dict) else extra
        if isinstance(info, dict) and info.get("commit"):
            out[asset_id] = str(info["commit"])
    return out


def _acknowledge(dag_id: str, run_id: str) -> None:
    from airflow import settings
    from airflow._shared.state import AssetScope
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.dagrun import DagRun
    from airflow.state import get_state_backend
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    if settings.engine is None:
        settings.configure_orm()
    with Session(bind=settings.engine) as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if run is None:
            return
        events = sorted(run.consumed_asset_events, key=lambda e: (e.timestamp, e.id))
        uris = dict(session.execute(select(AssetModel.id, AssetModel.uri).where(
            AssetModel.id.in_({e.asset_id for e in events}))).tuples().all()) if events else {}
        acks = consumed_commits((e.asset_id, uris.get(e.asset_id, ""), e.extra) for e in events
                                if isinstance(e, AssetEvent))
        backend = get_state_backend()
        for asset_id, commit in acks.items():
            backend.set(AssetScope(asset_id=asset_id), CONSUMED_KEY, json.dumps(commit), session=session)
        session.commit()


@hookimpl
def on_dag_run_running(dag_run: Any, msg: str) -> None:
    try:
        run_type = getattr(dag_run, "run_type", None)
        if getattr(run_type, "value", run_type) != "asset_triggered":
            return
        dag_id, run_id = str(dag_run.dag_id), str(dag_run.run_id)
    except Exception as exc:
        log.warning("datumflow: cannot read the started run: %s", exc)
        return
    off_session("acknowledge-commits", _acknowledge, dag_id, run_id, wait=0.0)
