"""SQLite's write-ahead log is checkpointed by a thread of the process, not inside the commit."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from datumflow.storage_service.core import db
from sqlalchemy import text


def _threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "datumflow-checkpoint"]


def test_a_large_log_is_checkpointed_after_the_commit_by_a_thread(tmp_path: Path) -> None:
    before = len(_threads())
    engine = db.connect_engine(str(tmp_path / "meta.db"))
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x BLOB)"))
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == db._AUTOCHECKPOINT_PAGES
        blob = b"x" * 4096
        for _ in range(3):  # well past the threshold, far below the commits' own bound
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (:b)"), [{"b": blob}] * 600)
        assert len(_threads()) == before + 1
        # Until a checkpoint, the rows live in the log alone; the database file grows when they are
        # copied back. Nothing here asks for a checkpoint, and the commits' own bound is 64 MiB.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (tmp_path / "meta.db").stat().st_size < 7 << 20:
            time.sleep(0.05)
        assert (tmp_path / "meta.db").stat().st_size >= 7 << 20
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 1800
    finally:
        engine.dispose()
    assert len(_threads()) == before  # disposing the engine ends its thread


def test_a_small_log_starts_no_thread(tmp_path: Path) -> None:
    before = len(_threads())
    engine = db.connect_engine(str(tmp_path / "meta.db"))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    assert len(_threads()) == before
    engine.dispose()
