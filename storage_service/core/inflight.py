"""Writes in flight: who is writing, what they count on, and the lock gc shares with them.

A write that stores content first registers itself (``df_writes``) and pins
every chunk it will reference — found already stored (deduplicated) or newly
written — and every pack it builds (``df_pins``). Garbage collection spares
whatever a live write pinned. Pinning a batch and looking it up happen in one
transaction that holds the *write side* of the gc lock; gc decides what to
delete while holding the *exclusive side*. So either gc saw the pin (and keeps
the chunk) or the write looks up after gc's deletion (and stores the chunk
again): a write never counts on a chunk that gc is removing.

SQLite serializes write transactions (``BEGIN IMMEDIATE``), which is that lock
already; PostgreSQL takes a transaction-scoped advisory lock.

A writer's identity is ``host:pid:start`` (the process start time, so a reused
pid is not mistaken for the writer): a write or open commit whose owner process
is gone on this host is abandoned at once; elsewhere its time limit decides.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterable

from datumflow.storage_service.core.db import bulk_insert_ignore
from datumflow.storage_service.core.schema import pins, writes
from datumflow.storage_service.model.lifecycle import _start_ticks, process_owner
from sqlalchemy import Connection, Engine, delete, insert, select, text

__all__ = ["Pins", "gc_lock", "owner_alive", "process_owner"]

_GC_LOCK_KEY = 0x64666763  # "dfgc"
PACK_PREFIX = "pack:"


def gc_lock(conn: Connection, *, exclusive: bool) -> None:
    """Take the gc lock for this transaction: writers share it, gc holds it alone."""
    if conn.dialect.name == "postgresql":
        fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        conn.execute(text(f"SELECT {fn}(:k)"), {"k": _GC_LOCK_KEY})


def owner_alive(owner: str | None) -> bool:
    """False only when ``owner`` is a process of this host that has exited."""
    if not owner or owner.count(":") < 2:
        return True
    host, pid, ticks = owner.rsplit(":", 2)
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not ticks or _start_ticks(int(pid)) in ("", ticks)


class Pins:
    """Registration of writes in flight and the keys they pin."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def begin(self, ttl: float, write_id: str | None = None, owner: str | None = None) -> str:
        """Register a write; its pins last until released, ``ttl`` passes, or its owner process exits.

        ``owner`` defaults to this process; a write that outlives its process (an S3
        multipart upload) names something else.
        """
        write_id = write_id or uuid.uuid4().hex
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(insert(writes), {"id": write_id, "owner": owner or process_owner(), "started": now,
                                          "expires": now + ttl})
        return write_id

    def pin(self, conn: Connection, write_id: str, keys: Iterable[str]) -> None:
        bulk_insert_ignore(conn, pins, ("write", "key"), [(write_id, k) for k in dict.fromkeys(keys)])

    def pin_now(self, write_id: str, keys: Iterable[str]) -> None:
        with self.engine.begin() as conn:
            gc_lock(conn, exclusive=False)
            self.pin(conn, write_id, keys)

    def release(self, write_id: str, conn: Connection | None = None) -> None:
        if conn is None:
            with self.engine.begin() as own:
                self.release(write_id, own)
            return
        conn.execute(delete(pins).where(pins.c.write == write_id))
        conn.execute(delete(writes).where(writes.c.id == write_id))

    def held(self, conn: Connection) -> set[str]:
        """Keys pinned by live writes; the pins of expired or dead writers are dropped."""
        now = time.time()
        dead = [r.id for r in conn.execute(select(writes.c.id, writes.c.owner, writes.c.expires))
                if r.expires < now or not owner_alive(r.owner)]
        for i in range(0, len(dead), 500):
            batch = dead[i:i + 500]
            conn.execute(delete(pins).where(pins.c.write.in_(batch)))
            conn.execute(delete(writes).where(writes.c.id.in_(batch)))
        conn.execute(delete(pins).where(pins.c.write.not_in(select(writes.c.id))))  # e.g. a part after its abort
        return set(conn.execute(select(pins.c.key).distinct()).scalars())

    def count(self) -> int:
        with self.engine.connect() as conn:
            return len(conn.execute(select(writes.c.id)).all())
