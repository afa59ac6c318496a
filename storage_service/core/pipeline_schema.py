"""Tables of pipelines, jobs, datums, the datum cache and per-file lineage.

They live on the store's :data:`~.schema.metadata`, so the one
``create_all`` in :func:`~.db.open_engine` builds them with the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datumflow.storage_service.core.schema import metadata
from sqlalchemy import BigInteger, Column, Connection, Float, Index, Integer, String, Table, Text

__all__ = [
    "bulk_insert", "datum_cache", "datums", "jobs", "lineage", "pipeline_repos", "pipeline_tokens", "pipelines",
    "placeholder", "spout_runs",
]

pipelines = Table(
    "df_pipelines",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("spec", Text, nullable=False),  # the current spec, JSON
    Column("spec_commit", String(32), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
    Column("last_tick", Text, nullable=True),  # JSON {cron input name: ISO time} of the last tick
    # ``pipeline stop``: no jobs for new commits, no cron ticks, no spout process, until ``start``.
    Column("stopped", Integer, nullable=False, default=0, server_default="0"),
)

# Tokens a pipeline's own process holds (a spout writing its output repo): only their SHA-256.
pipeline_tokens = Table(
    "df_pipeline_tokens",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("pipeline", String(64), nullable=False),
    Column("created", Float, nullable=False),
    Index("ix_df_pipeline_tokens_pipeline", "pipeline"),
)

# The process of a spout pipeline: which worker runs it (a lease, so one replica does), and how it went.
spout_runs = Table(
    "df_spout_runs",
    metadata,
    Column("pipeline", String(64), primary_key=True),
    Column("owner", String(80), nullable=True),  # the supervisor running it
    Column("lease_until", Float, nullable=True),
    Column("state", String(16), nullable=False),  # running | backoff | stopped | failed
    Column("spec_commit", String(32), nullable=True),  # the spec its process runs
    Column("pid", Integer, nullable=True),
    Column("started", Float, nullable=True),
    Column("restarts", Integer, nullable=False, default=0),
    Column("last_exit", Integer, nullable=True),
    Column("log", Text, nullable=True),  # the tail of its output
)

# The repos a pipeline made (its output repo, its cron repos): the only ones deleting it deletes.
pipeline_repos = Table(
    "df_pipeline_repos",
    metadata,
    Column("pipeline", String(64), primary_key=True),
    Column("repo", String(64), primary_key=True),
)

jobs = Table(
    "df_jobs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("pipeline", String(64), nullable=False),
    Column("output_commit", String(32), nullable=False, unique=True),
    Column("commit_set", String(32), nullable=False),
    Column("spec_commit", String(32), nullable=True),
    Column("state", String(16), nullable=False),
    Column("reason", Text, nullable=True),
    Column("reprocess", Integer, nullable=False, default=0),
    Column("inputs", Text, nullable=False, default="{}"),  # JSON {input name: commit id}
    Column("created", Float, nullable=False),
    Column("started", Float, nullable=True),
    Column("finished", Float, nullable=True),
    Column("total", Integer, nullable=False, default=0),
    Column("processed", Integer, nullable=False, default=0),
    Column("skipped", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("recovered", Integer, nullable=False, default=0),
    # Who works on the job (see pipelines/leases.py): "planning:<worker>", "pool" (its datums are
    # claimed in batches by any worker), "completing:<worker>", "external" (a driver outside the
    # job loops: pods, Airflow, KFP); lease_until is when a worker's claim lapses.
    Column("owner", String(80), nullable=True),
    Column("lease_until", Float, nullable=True),
    # The job whose datum rows this job inherits by reference (pipelines/inherit.py): its own rows
    # are then only the datums that differ (state "removed" for those it no longer has).
    Column("base_job", String(32), nullable=True),
    Index("ix_df_jobs_pipeline_seq", "pipeline", "seq"),
    Index("ix_df_jobs_base_job", "base_job"),
    Index("ix_df_jobs_commit_set", "commit_set"),
)

datums = Table(
    "df_datums",
    metadata,
    Column("job", String(32), primary_key=True),
    Column("id", String(64), primary_key=True),  # hash of the input files alone
    Column("hash", String(64), nullable=False),  # id + transform + salt: the cache key
    Column("state", String(16), nullable=False),
    Column("inputs", Text, nullable=False),  # JSON list of DatumInput
    Column("outputs", Text, nullable=True),  # JSON {path: file entry}
    Column("reused_from", String(32), nullable=True),  # job whose run is reused
    Column("tries", Integer, nullable=False, default=0),
    Column("log", Text, nullable=True),
    Column("error", Text, nullable=True),
    Column("started", Float, nullable=True),
    Column("finished", Float, nullable=True),
    Column("owner", String(80), nullable=True),  # the worker running it (state running)
    Column("lease_until", Float, nullable=True),
    Index("ix_df_datums_job_state", "job", "state"),
)

datum_cache = Table(
    "df_datum_cache",
    metadata,
    Column("pipeline", String(64), primary_key=True),
    Column("hash", String(64), primary_key=True),
    Column("outputs", Text, nullable=False),  # JSON {path: file entry}
    Column("job", String(32), nullable=False),
    Column("datum", String(64), nullable=False),
    Column("created", Float, nullable=False),
)

# Which datum wrote each file of an output commit: one indexed lookup per hop.
lineage = Table(
    "df_lineage",
    metadata,
    Column("commit", String(32), primary_key=True),
    Column("path", Text, primary_key=True),
    Column("job", String(32), nullable=False),
    Column("datum", String(64), nullable=False),
)


# -- bulk statements straight through the DB-API cursor ------------------------------------
# Job planning writes one datum row, and job completion one lineage row, per datum: tens of
# thousands per job. Core's executemany builds and checks a parameter dict per row; these
# helpers hand tuples to the driver's executemany instead (same transaction, same rows).


def bulk_insert(conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
    """INSERT ``rows`` (tuples in ``columns`` order) into ``table`` with one driver executemany."""
    if not rows:
        return
    quote = conn.dialect.identifier_preparer.quote
    mark = placeholder(conn)
    sql = (
        f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
        f"VALUES ({', '.join([mark] * len(columns))})"
    )
    conn.exec_driver_sql(sql, list(rows))


def placeholder(conn: Connection) -> str:
    """The driver's positional parameter marker (for SQL run with ``exec_driver_sql``)."""
    style = conn.dialect.paramstyle
    if style == "qmark":
        return "?"
    if style in ("format", "pyformat"):
        return "%s"
    raise NotImplementedError(f"driver paramstyle {style}")
