"""Engines for the metadata database: SQLite (WAL) by default, PostgreSQL at scale."""

from __future__ import annotations

import functools
import logging
import os
import threading
import weakref
from collections import namedtuple
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from datumflow.storage_service.core.migrations import ensure_schema
from datumflow.storage_service.errors import DatumflowError, InvalidArgument, ServiceUnavailable
from sqlalchemy import Connection, Engine, Select, create_engine, event, insert, make_url
from sqlalchemy.exc import IntegrityError

__all__ = [
    "Prepared", "connect_engine", "insert_ignore", "is_unique_violation", "open_engine", "retry_on_conflict",
    "select_in", "upsert",
]

log = logging.getLogger(__name__)

# SQLite's write-ahead log is copied back into the database by a checkpoint, which by default the
# connection whose commit takes the log past 1,000 pages runs inside that commit (a write of a few
# megabytes and an fsync, tens of milliseconds). Here a thread of the process does it once the log
# passes the same size, after the commit has returned; the committing connection checkpoints itself
# only past a far larger log, a bound for when that thread falls behind (or a forked child has none).
_CHECKPOINT_BYTES = 4 << 20
_AUTOCHECKPOINT_PAGES = 16384  # 64 MiB of 4 KiB pages


def open_engine(url: str) -> Engine:
    """The engine of the metadata database, its schema created or checked (see :mod:`.migrations`)."""
    engine = connect_engine(url)
    try:
        ensure_schema(engine)
    except DatumflowError:
        engine.dispose()
        raise
    except Exception as exc:  # sqlalchemy.exc.OperationalError and friends
        engine.dispose()
        raise ServiceUnavailable(f"cannot open metadata database {_safe(url)}: {exc}") from exc
    return engine


def connect_engine(url: str) -> Engine:
    """The engine alone, schema untouched (``datumflow db upgrade|current`` start here)."""
    from . import history_schema, pipeline_schema  # noqa: F401  (register their tables on metadata)

    if "://" not in url:
        url = "sqlite:///" + os.path.abspath(url)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
            database = engine.url.database or ""
            file_backed = database not in ("", ":memory:") and not database.startswith("file:")
            _writes_begin_immediate(engine, _Checkpointer(engine, database + "-wal") if file_backed else None)
        else:
            engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    except ImportError as exc:
        raise InvalidArgument(f"no driver for {url.split(':')[0]}: {exc}") from exc
    except Exception as exc:  # a malformed URL
        raise InvalidArgument(f"cannot use metadata database {_safe(url)}: {exc}") from exc
    return engine


def _safe(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True) if "://" in url else url


def _sqlite_begin(conn: Any) -> None:
    # pysqlite's own transaction handling is off (see _sqlite_pragmas); we issue BEGIN.
    # Reads (``engine.connect()``) begin DEFERRED: under WAL they never wait for a
    # writer, and a read made while this process holds the write lock in another
    # connection (editing a tree inside a commit's transaction) cannot deadlock.
    # Writes (``engine.begin()``) begin IMMEDIATE: the write lock is taken up front,
    # so a read-then-update compare-and-swap is serialized instead of failing with
    # SQLITE_BUSY on the lock upgrade.
    immediate = conn.get_execution_options().get("sqlite_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Prepared:
    """One read statement of the request path, compiled once per dialect and run on the driver's connection.

    A lookup made on every request (a token, a branch head, a chunk's place)
    is one SELECT; through a SQLAlchemy ``Connection`` it costs several times
    what the database takes for it (events, the transaction it begins and rolls
    back, result set-up). Here the pooled driver connection runs the compiled
    SQL directly: one SELECT, no transaction (a lone SELECT is its own
    snapshot: pysqlite runs it in autocommit, and on PostgreSQL the driver
    connection is switched to autocommit for it and back). Rows are named tuples with
    the statement's column keys, values as the driver returns them (callers
    convert booleans and binaries themselves). Only for single-statement reads.
    """

    def __init__(self, statement: Select[Any] | Any) -> None:
        self.statement = statement
        self._compiled: dict[str, tuple[str, Any, tuple[str, ...] | None]] = {}
        selected = getattr(statement, "selected_columns", ())
        self._row = namedtuple("_Row", [c.key for c in selected])  # type: ignore[misc]

    def rows(self, engine: Engine, **params: Any) -> list[Any]:
        return [self._row(*r) for r in self._run(engine, params, lambda cursor: cursor.fetchall())]

    def execute(self, engine: Engine, **params: Any) -> int:
        """Run a single-statement write (an UPDATE of plain values) on its own; the rows it changed.

        One statement is atomic by itself, so it runs in the driver's
        autocommit, without the SQLAlchemy transaction around it: for a write
        made once per datum of a job, that transaction cost more than the write.
        """
        return int(self._run(engine, params, lambda cursor: cursor.rowcount))

    def _run(self, engine: Engine, params: dict[str, Any], take: Any) -> Any:
        """The statement run once on a pooled driver connection in autocommit; ``take(cursor)`` after."""
        sql, compiled, order = self._compile(engine)
        values = compiled.construct_params(params)
        args = [values[name] for name in order] if order is not None else values
        raw = engine.raw_connection()
        driver = raw.driver_connection
        autocommit = engine.dialect.name == "postgresql" and driver is not None and not driver.autocommit
        try:
            if autocommit:  # no BEGIN before and no ROLLBACK after: the statement is the only round trip
                driver.autocommit = True  # type: ignore[union-attr]
            cursor = raw.cursor()
            try:
                cursor.execute(sql, args)
                return take(cursor)
            finally:
                cursor.close()
        finally:
            if autocommit:
                driver.autocommit = False  # type: ignore[union-attr]
            raw.close()  # back to the pool (which rolls back whatever the driver began)

    def _compile(self, engine: Engine) -> tuple[str, Any, tuple[str, ...] | None]:
        found = self._compiled.get(engine.dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=engine.dialect)
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            found = self._compiled[engine.dialect.name] = (str(compiled), compiled, order)
        return found


def _writes_begin_immediate(engine: Engine, checkpointer: _Checkpointer | None) -> None:
    """Make ``engine.begin()`` open its transaction with BEGIN IMMEDIATE (SQLite only), and tell the
    checkpointer of each commit."""

    @contextmanager
    def begin() -> Iterator[Connection]:
        with engine.connect() as conn:
            conn.execution_options(sqlite_immediate=True)
            with conn.begin():
                yield conn
        if checkpointer is not None:
            checkpointer.committed()

    engine.begin = begin  # type: ignore[method-assign]
    if checkpointer is not None:
        dispose = engine.dispose

        def disposing(close: bool = True) -> None:
            checkpointer.stop()
            dispose(close)

        engine.dispose = disposing  # type: ignore[method-assign]


class _Checkpointer:
    """Checkpoints an SQLite database's write-ahead log on a thread of its own, after commits.

    Started on the first commit that finds the log past :data:`_CHECKPOINT_BYTES`;
    runs PASSIVE checkpoints (they wait for no reader or writer, and copy back
    what no reader still needs), so a commit never waits for one. Holds the
    engine weakly, and ends when it is disposed or gone.
    """

    def __init__(self, engine: Engine, wal: str) -> None:
        self._engine = weakref.ref(engine)
        self._wal = wal
        self._wake = threading.Event()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def committed(self) -> None:
        try:
            size = os.stat(self._wal).st_size
        except OSError:
            return
        if size < _CHECKPOINT_BYTES or self._stopped:
            return
        with self._lock:
            if self._thread is None or self._pid != os.getpid():  # none yet, or inherited by a fork
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="datumflow-checkpoint", daemon=True)
                self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        self._stopped = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and self._pid == os.getpid():
            thread.join(30)

    def _run(self) -> None:
        while True:
            self._wake.wait(60)
            self._wake.clear()
            engine = self._engine()
            if engine is None or self._stopped:
                return
            try:
                raw = engine.raw_connection()
                try:
                    cursor = raw.cursor()
                    cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    cursor.close()
                finally:
                    raw.close()
            except Exception as exc:  # the next commit's own checkpoint (past the bound) still runs
                log.debug("background checkpoint of %s failed: %s", self._wal, exc)
            del engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see above)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA wal_autocheckpoint={_AUTOCHECKPOINT_PAGES}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.close()


_F = TypeVar("_F", bound=Any)
_CONFLICT_TRIES = 3


def is_unique_violation(exc: BaseException) -> bool:
    """Whether ``exc`` is a database refusing a row whose unique key another transaction wrote."""
    if not isinstance(exc, IntegrityError):
        return False
    orig = exc.orig
    if getattr(orig, "sqlstate", None) == "23505" or getattr(orig, "pgcode", None) == "23505":
        return True
    return "UNIQUE constraint failed" in str(orig) or "Duplicate entry" in str(orig)


def retry_on_conflict(fn: _F) -> _F:
    """Run ``fn`` again when its transaction lost a race to insert a row with the same unique key.

    For a transaction that reads "is it there?" and then inserts: under PostgreSQL's READ COMMITTED
    two of them (two threads of one server, or two replicas) both read "no", and the second insert
    fails. Running it again reads the row the winner committed and takes the path a serial run
    would have (an "already exists" error, ``exist_ok``'s answer, an update). ``fn`` must do nothing
    but that transaction. SQLite's writers begin IMMEDIATE, so there it never loses such a race.
    """
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        for attempt in range(_CONFLICT_TRIES):
            try:
                return fn(*args, **kwargs)
            except IntegrityError as exc:
                if attempt == _CONFLICT_TRIES - 1 or not is_unique_violation(exc):
                    raise
        raise AssertionError("unreachable")

    return run  # type: ignore[return-value]


def _dialect_insert(engine: Engine, table: Any) -> Any:
    """The INSERT of the engine's dialect (PostgreSQL's or SQLite's, which know ON CONFLICT)."""
    # The dialect modules load here, on the first write: importing the PostgreSQL one loads every
    # driver's module of it (asyncpg's too), which a read-only CLI start has no use for.
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    if engine.dialect.name == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    raise NotImplementedError(f"ON CONFLICT on {engine.dialect.name}")


def insert_ignore(engine: Engine, table: Any) -> Any:
    """An INSERT that skips rows whose primary key exists (content-addressed rows)."""
    if engine.dialect.name not in ("postgresql", "sqlite"):
        return insert(table).prefix_with("IGNORE")
    return _dialect_insert(engine, table).on_conflict_do_nothing()


def upsert(engine: Engine, table: Any, row: dict[str, Any]) -> Any:
    """An INSERT of ``row`` that replaces the columns of a row with the same primary key, atomically
    (concurrent writers of one key end with one of their rows, whole; no unique-key error)."""
    keys = [c.name for c in table.primary_key.columns]
    changed = {k: v for k, v in row.items() if k not in keys}
    return _dialect_insert(engine, table).values(**row).on_conflict_do_update(index_elements=keys, set_=changed)


def select_in(conn: Connection, table: Any, columns: Sequence[str], key: str, values: Sequence[Any]) -> list[Any]:
    """Rows (plain tuples in ``columns`` order) whose ``key`` is one of ``values``, in one driver statement.

    Core's expanding ``IN`` renders and binds a parameter per value on every
    call, which for the thousands of hashes a write or a restore looks up at
    once cost several times the lookup itself; here the statement text is
    the same for every batch of a size, and the driver takes the values as
    they are.
    """
    if not values:
        return []
    quote = conn.dialect.identifier_preparer.quote
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    sql = (f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(table.name)} "
           f"WHERE {quote(key)} IN ({', '.join([mark] * len(values))})")
    # On the driver's cursor, all rows at once: a result's rows came one fetch each (100,000 of them for
    # the files of a restore), which cost more than the lookup.
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, tuple(values))
        return list(cursor.fetchall())
    finally:
        cursor.close()


def bulk_insert_ignore(conn: Connection, table: Any, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """:func:`insert_ignore` of many rows (tuples in ``columns`` order) in one driver executemany.

    Core's executemany builds and checks a parameter dict per row, which is
    most of the cost of the thousands of chunk and pin rows a folder of small
    files writes; the driver takes the tuples as they are.
    """
    if not rows:
        return
    quote = conn.dialect.identifier_preparer.quote
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    into = f"{quote(table.name)} ({', '.join(quote(c) for c in columns)}) VALUES ({', '.join([mark] * len(columns))})"
    if conn.dialect.name in ("postgresql", "sqlite"):
        sql = f"INSERT INTO {into} ON CONFLICT DO NOTHING"
    else:
        sql = f"INSERT IGNORE INTO {into}"
    conn.exec_driver_sql(sql, list(rows))
