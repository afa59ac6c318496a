"""The metadata tables (SQLAlchemy Core): SQLite by default, PostgreSQL at scale.

Later layers (pipelines, jobs, datums, auth, spouts) add their tables to the
same :data:`metadata` object, so one ``create_all`` builds everything.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

__all__ = [
    "branch_provenance",
    "branches",
    "chunks",
    "commit_leases",
    "commit_provenance",
    "commits",
    "metadata",
    "nodes",
    "packs",
    "pins",
    "repos",
    "roles",
    "writes",
]

metadata = MetaData()

repos = Table(
    "df_repos",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("description", Text, nullable=False, default=""),
    Column("created", Float, nullable=False),
)

branches = Table(
    "df_branches",
    metadata,
    Column("repo", String(64), ForeignKey("df_repos.name", ondelete="CASCADE"), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("head", String(32), nullable=True),
    Column("owner", String(64), nullable=True),
    Column("created", Float, nullable=False),
)

branch_provenance = Table(
    "df_branch_provenance",
    metadata,
    Column("repo", String(64), primary_key=True),
    Column("branch", String(128), primary_key=True),
    Column("up_repo", String(64), primary_key=True),
    Column("up_branch", String(128), primary_key=True),
    Index("ix_df_branch_prov_up", "up_repo", "up_branch"),
)

commits = Table(
    "df_commits",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("seq", BigInteger, nullable=False),  # creation order within the store
    Column("repo", String(64), nullable=False),
    Column("branch", String(128), nullable=True),
    Column("parent", String(32), nullable=True),
    Column("origin", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("meta", Text, nullable=False, default="{}"),
    Column("started", Float, nullable=False),
    Column("finished", Float, nullable=True),
    Column("commit_set", String(32), nullable=False),
    Column("root", String(64), nullable=True),
    Column("size_bytes", BigInteger, nullable=False, default=0),
    Column("file_count", BigInteger, nullable=False, default=0),
    Column("error", Text, nullable=True),
    Index("ix_df_commits_repo_seq", "repo", "seq"),
    Index("ix_df_commits_set", "commit_set"),
    Index("ix_df_commits_parent", "parent"),
)

commit_provenance = Table(
    "df_commit_provenance",
    metadata,
    Column("commit", String(32), primary_key=True),
    Column("upstream", String(32), primary_key=True),
    Index("ix_df_commit_prov_up", "upstream"),
)

packs = Table(
    "df_packs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("created", Float, nullable=False),
)

chunks = Table(
    "df_chunks",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("pack", String(32), nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("length", Integer, nullable=False),
    Index("ix_df_chunks_pack", "pack"),
)

# File-index nodes: small, hot, and transactional with the commits that use them.
nodes = Table(
    "df_nodes",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("data", LargeBinary, nullable=False),
    Column("created", Float, nullable=False),
)


# Users' roles per repo (the users and tokens tables live with the service's auth). Kept here so that
# the store deletes a repo's grants in the transaction that deletes the repo: grants die with it.
roles = Table(
    "df_roles",
    metadata,
    Column("user", String(64), primary_key=True),
    Column("repo", String(64), primary_key=True),
    Column("role", String(16), nullable=False),
)

# Who holds an open commit: a lease renewed by every write into it, and/or the process
# that opened it ("host:pid:start"). An abandoned commit is failed, never written into.
commit_leases = Table(
    "df_commit_leases",
    metadata,
    Column("commit", String(32), primary_key=True),
    Column("owner", String(256), nullable=True),  # a process identity, or None for lease only
    Column("expires", Float, nullable=True),  # None: no time limit (tied to the owner alone)
    Column("ttl", Float, nullable=True),  # each write into the commit renews it for this long
    Index("ix_df_commit_leases_expires", "expires"),
)

# Writes in flight and the chunks (and packs) they count on: gc spares every pinned key.
writes = Table(
    "df_writes",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner", String(256), nullable=False),
    Column("started", Float, nullable=False),
    Column("expires", Float, nullable=False),
)

pins = Table(
    "df_pins",
    metadata,
    Column("write", String(32), primary_key=True),
    Column("key", String(64), primary_key=True),  # a chunk hash, or "pack:" + pack id
    Index("ix_df_pins_key", "key"),
)
