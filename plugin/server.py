"""Datumflow work inside Airflow's own processes (scheduler, API server, ``airflow dags test``).

Listeners and plugin views run in the middle of Airflow's work: the scheduler
calls a listener while it holds a session on the DAG run it is updating.
Airflow's connection lookup in such a process goes through its metastore
secrets backend, which opens and *closes* the thread's scoped session — the
caller's session — so the scheduler's next touch of the run raises
``DetachedInstanceError`` and its loop exits. And under ``airflow dags test``
the lookup does not consult the metastore at all.

So the plugin never resolves a connection on the caller's thread. Work is
handed to :func:`off_session`: a thread of its own (its own scoped session,
if any), every exception caught and logged, the caller waiting at most a
bound. The connection is read by :func:`server_connection`: the
``AIRFLOW_CONN_*`` variable and secrets backends first, then the metadata
database through a session of its own that nobody else holds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ConnectionFields", "off_session", "server_connection", "server_hook"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionFields:
    """The parts of an Airflow connection the hook reads (a plain copy, bound to no session)."""

    conn_id: str
    schema: str | None = None
    host: str | None = None
    port: int | None = None
    password: str | None = None
    extra: str | None = None
    extra_dejson: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, conn: Any) -> ConnectionFields:
        extra = getattr(conn, "extra", None) or None
        try:
            dejson = dict(conn.extra_dejson) if extra else {}
        except Exception:  # an extra that is not JSON: the hook reads none of it
            dejson = {}
        port = getattr(conn, "port", None)
        return cls(conn_id=str(conn.conn_id), schema=conn.schema or None, host=conn.host or None,
                   port=int(port) if port else None, password=conn.password or None, extra=extra,
                   extra_dejson=dejson)


def _from_secrets(conn_id: str) -> ConnectionFields | None:
    """Environment variables and configured secrets backends, never the metastore."""
    try:
        from airflow.secrets.environment_variables import EnvironmentVariablesBackend
    except ImportError:  # pragma: no cover - every supported Airflow has it
        return None
    conn = EnvironmentVariablesBackend().get_connection(conn_id)
    return ConnectionFields.of(conn) if conn is not None else None


def _from_metastore(conn_id: str) -> ConnectionFields | None:
    """The ``connection`` table, read through a session this function opens and closes itself."""
    from airflow import settings
    from airflow.models.connection import Connection
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    if settings.engine is None:
        settings.configure_orm()
    with Session(bind=settings.engine, expire_on_commit=False) as session:
        conn = session.scalar(select(Connection).where(Connection.conn_id == conn_id))
        return ConnectionFields.of(conn) if conn is not None else None


def server_connection(conn_id: str) -> ConnectionFields:
    """The connection ``conn_id`` as seen from a server process; raises ``LookupError`` if it is nowhere."""
    for source in (_from_secrets, _from_metastore):
        try:
            found = source(conn_id)
        except Exception as exc:  # a broken backend must not hide the next one
            log.debug("datumflow: %s could not read connection %s: %s", source.__name__, conn_id, exc)
            continue
        if found is not None:
            return found
    raise LookupError(f"datumflow connection {conn_id!r} is defined neither in the environment nor in Airflow's "
                      "metadata database")


def server_hook(conn_id: str) -> Any:
    """A :class:`DatumflowHook` whose connection was read off the caller's session (call it off-session)."""
    from .hooks import DatumflowHook

    hook = DatumflowHook(datumflow_conn_id=conn_id)
    hook.use_connection(server_connection(conn_id))
    return hook


def off_session(name: str, work: Callable[..., Any], *args: Any, wait: float = 30.0) -> threading.Thread:
    """Run ``work(*args)`` in a thread of its own; never raises; waits at most ``wait`` seconds for it."""

    def guarded() -> None:
        try:
            work(*args)
        except BaseException as exc:  # nothing may reach Airflow from here
            log.warning("datumflow: %s failed: %s: %s", name, type(exc).__name__, exc)

    thread = threading.Thread(target=guarded, name=f"datumflow-{name}", daemon=True)
    thread.start()
    thread.join(wait)
    if thread.is_alive():
        log.warning("datumflow: %s still running after %.0fs; left to finish in the background", name, wait)
    return thread
