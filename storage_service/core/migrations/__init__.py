"""Schema migrations: the metadata tables move from release to release by numbered Alembic revisions.

    ensure_schema(engine)  on every open: an empty database gets every table at the newest
                           revision; one at an older or newer revision is refused with
                           :class:`~datumflow.storage_service.errors.SchemaMismatch`, whose one
                           line names the command to run
    upgrade(engine)        ``datumflow db upgrade``: apply the revisions the database lacks
    current(engine)        ``datumflow db current``: the revision it is at (None when empty)
    head()                 the newest revision this release knows

A store made by release 0.1 (before migrations) has the tables of revision
``0001`` and no ``alembic_version`` table; it reads as ``0001``.

Replicas that start together on one empty PostgreSQL database serialize on an
advisory lock held by the transaction that checks and creates the schema; on
SQLite the write transaction (BEGIN IMMEDIATE) does the same.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datumflow.storage_service.core.revision import HEAD  # a store at it is checked with one SELECT
from datumflow.storage_service.core.schema import metadata
from datumflow.storage_service.errors import SchemaMismatch
from sqlalchemy import Connection, Engine, Table, inspect, text

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

__all__ = ["HEAD", "LEGACY_REVISION", "current", "ensure_schema", "ensure_tables", "head", "upgrade"]

LEGACY_REVISION = "0001"  # what a 0.1 store without an alembic_version table is at
_LOCK_KEY = 0x6466_7363_6865_6D61  # "dfschema": the advisory lock of schema changes (PostgreSQL)
_HERE = Path(__file__).parent


@functools.cache
def _scripts() -> ScriptDirectory:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(_HERE))
    return ScriptDirectory.from_config(config)


def head() -> str:
    """The newest revision of this release."""
    revision = _scripts().get_current_head()
    assert revision is not None, "no migration revisions are shipped"
    return revision


def current(engine: Engine) -> str | None:
    """The revision the database is at; None for an empty database."""
    with engine.connect() as conn:
        return _current(conn)


def ensure_schema(engine: Engine) -> None:
    """Create the schema of an empty database; refuse one this release cannot use as it is."""
    if _at_head(engine):
        return
    with engine.begin() as conn:
        _lock(conn)
        revision = _current(conn)
        if revision is None:
            metadata.create_all(conn)
            _stamp(conn, head())
            return
        if revision != head():
            raise SchemaMismatch(_mismatch(revision))
        if not _has_version_table(conn):  # a 0.1 store already at the newest revision
            _stamp(conn, revision)
        metadata.create_all(conn)  # tables of optional parts (created on first use) stay idempotent


def ensure_tables(engine: Engine, tables: Sequence[Table]) -> None:
    """Create the missing tables among ``tables`` (of parts that make theirs on first use), under
    the same lock, so replicas that get there together do not race on ``CREATE TABLE``."""
    with engine.begin() as conn:
        _lock(conn)
        metadata.create_all(conn, tables=list(tables))


def upgrade(engine: Engine, target: str = "head") -> tuple[str | None, str]:
    """Apply the missing revisions up to ``target``; returns (from, to)."""
    with engine.begin() as conn:
        _lock(conn)
        before = _current(conn)
        if before is not None and not _has_version_table(conn):
            _stamp(conn, before)
        if before is not None and _known(before) is False:
            raise SchemaMismatch(_mismatch(before))
        _run(conn, target)
        return before, _current(conn) or target


def _run(conn: Connection, target: str) -> None:
    from alembic.config import Config
    from alembic.runtime.environment import EnvironmentContext

    scripts = _scripts()

    def steps(revision: Any, _context: Any) -> Any:
        return scripts._upgrade_revs(target, revision)

    config = Config()
    config.set_main_option("script_location", str(_HERE))
    with EnvironmentContext(config, scripts, fn=steps, destination_rev=target) as env:
        env.configure(connection=conn, target_metadata=metadata)
        env.run_migrations()


def _at_head(engine: Engine) -> bool:
    try:
        with engine.connect() as conn:
            return bool(conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD)
    except Exception:  # no such table (a new or a 0.1 database): the full check decides
        return False


def _stamp(conn: Connection, revision: str) -> None:
    from alembic.runtime.migration import MigrationContext

    MigrationContext.configure(conn).stamp(_scripts(), revision)


def _current(conn: Connection) -> str | None:
    if _has_version_table(conn):
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(conn).get_current_revision()
    if inspect(conn).has_table("df_repos"):
        return LEGACY_REVISION
    return None


def _has_version_table(conn: Connection) -> bool:
    return inspect(conn).has_table("alembic_version")


def _known(revision: str) -> bool:
    try:
        return _scripts().get_revision(revision) is not None
    except Exception:  # alembic's ResolutionError and CommandError for an unknown id
        return False


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY - (1 << 63)})


def _mismatch(revision: str) -> str:
    if _known(revision):
        return (f"the metadata database is at schema revision {revision}, this datumflow needs {head()}: "
                "back it up, then run 'datumflow db upgrade'")
    return (f"the metadata database is at schema revision {revision}, which this datumflow does not know "
            f"(its newest is {head()}): the store was written by a newer datumflow, upgrade datumflow")
