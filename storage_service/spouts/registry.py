"""The registry of long-running spouts: one SQL row per named spout.

A ``spout run --name N`` process claims its row (``claim``), beats a
heartbeat and records its last commit (``heartbeat``), asks for the stop flag
between batches (``stop_requested``) and leaves a final status (``release``).
``spout list`` and ``spout stop`` read and flag rows. The functions take an
SQLAlchemy engine so that the HTTP service can wrap them unchanged.

States: ``running`` → ``stopped`` (asked to stop, or a limit reached) or
``failed`` (with its error). A ``running`` row whose heartbeat is older than
``STALE_SECONDS`` belongs to a process that died; ``SpoutStatus.state``
reports it as ``lost`` and a new run may claim it.
"""

from __future__ import annotations

import json
import os
import socket
import time
import weakref
from typing import Any

from datumflow.storage_service.core.db import retry_on_conflict
from datumflow.storage_service.core.migrations import ensure_tables
from datumflow.storage_service.core.schema import metadata
from datumflow.storage_service.errors import AlreadyExists, InvalidArgument, SpoutNotFound
from datumflow.storage_service.model.spout import SpoutConfig, SpoutStatus
from datumflow.storage_service.names import check_repo_name
from sqlalchemy import Boolean, Column, Engine, Float, Integer, String, Table, Text, insert, select, update

__all__ = [
    "STALE_SECONDS",
    "SpoutNotFound",
    "SpoutStatus",
    "claim",
    "get_spout",
    "heartbeat",
    "list_spouts",
    "release",
    "request_stop",
    "spouts",
    "stop_requested",
]

STALE_SECONDS = 60.0

spouts = Table(
    "df_spouts",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("config", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("stop_requested", Boolean, nullable=False, default=False),
    Column("host", String(255), nullable=False, default=""),
    Column("pid", Integer, nullable=True),
    Column("started", Float, nullable=False),
    Column("heartbeat", Float, nullable=False),
    Column("last_commit", String(32), nullable=True),
    Column("messages", Integer, nullable=False, default=0),
    Column("commits", Integer, nullable=False, default=0),
    Column("error", Text, nullable=True),
)


_CREATED: weakref.WeakSet[Engine] = weakref.WeakSet()


def _ready(engine: Engine) -> Engine:
    # This module may be imported after the store ran ``create_all``: make the table on first use.
    if engine not in _CREATED:
        ensure_tables(engine, [spouts])
        _CREATED.add(engine)
    return engine


@retry_on_conflict
def claim(engine: Engine, name: str, config: SpoutConfig, *, now: float | None = None) -> SpoutStatus:
    """Register ``name`` as running in this process; refuse if a live process has it."""
    check_repo_name(name)  # same rules as a repo name: it shows up in paths and URLs
    now = time.time() if now is None else now
    row = {
        "name": name, "config": json.dumps(config.to_dict(), sort_keys=True), "state": "running",
        "stop_requested": False, "host": socket.gethostname(), "pid": os.getpid(), "started": now,
        "heartbeat": now, "last_commit": None, "messages": 0, "commits": 0, "error": None,
    }
    with _ready(engine).begin() as conn:
        old = conn.execute(select(spouts).where(spouts.c.name == name)).first()
        if old is None:
            conn.execute(insert(spouts), row)
        elif old.state == "running" and now - old.heartbeat < STALE_SECONDS:
            raise AlreadyExists(f"spout {name} is already running (pid {old.pid} on {old.host})")
        else:
            row["last_commit"] = old.last_commit
            conn.execute(update(spouts).where(spouts.c.name == name).values(**row))
    return get_spout(engine, name)


def heartbeat(engine: Engine, name: str, *, commit: str | None = None, messages: int = 0) -> None:
    """Record that the spout is alive; with ``commit``, that it made that commit of ``messages``."""
    values: dict[str, Any] = {"heartbeat": time.time()}
    if commit is not None:
        values.update(
            last_commit=commit, messages=spouts.c.messages + messages, commits=spouts.c.commits + 1
        )
    with _ready(engine).begin() as conn:
        conn.execute(update(spouts).where(spouts.c.name == name).values(**values))


def stop_requested(engine: Engine, name: str) -> bool:
    with _ready(engine).connect() as conn:
        flag = conn.execute(select(spouts.c.stop_requested).where(spouts.c.name == name)).scalar()
    return bool(flag)


def request_stop(engine: Engine, name: str) -> SpoutStatus:
    """Ask a running spout to stop after its current batch."""
    with _ready(engine).begin() as conn:
        if conn.execute(update(spouts).where(spouts.c.name == name).values(stop_requested=True)).rowcount != 1:
            raise SpoutNotFound(f"spout {name} not found")
    return get_spout(engine, name)


def release(engine: Engine, name: str, *, error: str | None = None) -> None:
    """The process is done: ``stopped``, or ``failed`` with the error."""
    state = "stopped" if error is None else "failed"
    with _ready(engine).begin() as conn:
        conn.execute(
            update(spouts).where(spouts.c.name == name).values(state=state, error=error, heartbeat=time.time())
        )


def get_spout(engine: Engine, name: str) -> SpoutStatus:
    with _ready(engine).connect() as conn:
        row = conn.execute(select(spouts).where(spouts.c.name == name)).first()
    if row is None:
        raise SpoutNotFound(f"spout {name} not found")
    return _status(row)


def list_spouts(engine: Engine) -> list[SpoutStatus]:
    with _ready(engine).connect() as conn:
        rows = conn.execute(select(spouts).order_by(spouts.c.name)).all()
    return [_status(r) for r in rows]


def _status(row: Any, now: float | None = None) -> SpoutStatus:
    now = time.time() if now is None else now
    state = row.state
    if state == "running" and now - row.heartbeat >= STALE_SECONDS:
        state = "lost"
    try:
        config = SpoutConfig.from_dict(json.loads(row.config))
    except (ValueError, TypeError) as exc:
        raise InvalidArgument(f"spout {row.name} has an unreadable config: {exc}") from exc
    return SpoutStatus(
        name=row.name, config=config, state=state, stop_requested=bool(row.stop_requested), host=row.host,
        pid=row.pid, started=row.started, heartbeat=row.heartbeat, last_commit=row.last_commit,
        messages=row.messages, commits=row.commits, error=row.error,
    )
