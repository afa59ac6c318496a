"""The store under test, once per backend.

``store`` runs every conformance test three times: SQLite + a local folder,
PostgreSQL metadata + a local folder, SQLite + an S3 object store (moto).
``local_store`` is the SQLite + local folder store alone, for tests that
reach into the object files on disk.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from datumflow.storage_service import Store
from datumflow.storage_service.core.schema import metadata
from sqlalchemy import select

BACKENDS = [
    "sqlite-local",
    pytest.param("postgres-local", marks=pytest.mark.postgres),
    pytest.param("sqlite-s3", marks=pytest.mark.s3),
]


def _spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Remote object stores build packs in a local spool; keep it inside the test.
    spool = tmp_path / "spool"
    spool.mkdir(exist_ok=True)
    monkeypatch.setenv("DATUMFLOW_SPOOL", str(spool))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Keyword arguments of ``Store`` (besides the root) for one backend."""
    _spool(tmp_path, monkeypatch)
    if request.param == "postgres-local":
        return {"db_url": request.getfixturevalue("store_postgres_url")}
    if request.param == "sqlite-s3":
        return {"objects_url": request.getfixturevalue("s3_bucket")}
    return {}


@pytest.fixture(scope="session")
def _store_postgres_db(_postgres_admin: Any) -> Iterator[str]:
    """One database for the whole store suite: creating one per test costs over a second each."""
    conn = _postgres_admin
    name = f"dfstore_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    conn.execute(f'CREATE DATABASE "{name}"')
    try:
        info = conn.info
        yield f"postgresql+psycopg://{info.user}@{info.host}:{info.port}/{name}"
    finally:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def store_postgres_url(_store_postgres_db: str) -> str:
    """The suite's database, emptied: every table truncated before the test."""
    import psycopg

    with psycopg.connect(_store_postgres_db.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")
    return _store_postgres_db


@pytest.fixture
def make_store(tmp_path: Path, backend: dict[str, Any]) -> Iterator[Any]:
    """Factory of Store instances on the same backend (same root, db and objects)."""
    opened: list[Store] = []

    def make() -> Store:
        store = Store(str(tmp_path / "root"), fsync=False, **backend)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: Any) -> Store:
    return make_store()


@pytest.fixture
def local_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    _spool(tmp_path, monkeypatch)
    with Store(str(tmp_path / "local"), fsync=False) as store:
        yield store


def snapshot(store: Store) -> dict[str, Any]:
    """Every metadata row and every object key with its size: 'nothing changed' means equal snapshots."""
    out: dict[str, Any] = {}
    with store.engine.connect() as conn:
        for table in metadata.sorted_tables:
            rows = conn.execute(select(table)).all()
            out[table.name] = sorted(tuple(repr(v) for v in row) for row in rows)
    out["objects"] = sorted(store.objects.list("packs"))
    return out


def pack_bytes(store: Store) -> int:
    return sum(size for _, size in store.objects.list("packs"))


def rewritten_in_the_middle(tmp_path: Path, data: bytes) -> tuple[Store, int, bytes]:
    """Put ``data`` as ``v1`` into a fresh fsynced store, then a copy with ten bytes changed in the middle as
    ``v2``: (the store, still open, the pack bytes the second put added, the edited bytes)."""
    mib = 1024 * 1024
    (tmp_path / "v1").write_bytes(data)
    edited = bytearray(data)
    edited[4 * mib:4 * mib + 10] = b"0123456789"  # a change in the middle: a chunk or two around it change
    (tmp_path / "v2").write_bytes(edited)
    store = Store(str(tmp_path / "store"), fsync=True)
    store.create_repo("r")
    store.put_files("r", "master", [("v1", tmp_path / "v1")])
    before = pack_bytes(store)
    store.put_files("r", "master", [("v2", tmp_path / "v2")])
    return store, pack_bytes(store) - before, bytes(edited)
