"""Tables of the history beyond first parents: merge parents, tags, branch protection.

New tables rather than new columns of ``df_commits`` (migration ``0002`` creates them).
"""

from __future__ import annotations

from datumflow.storage_service.core.schema import metadata
from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

__all__ = ["branch_protection", "commit_parents", "tags"]

# Parents after the first (``df_commits.parent``): position 1 is a merge's second parent.
commit_parents = Table(
    "df_commit_parents",
    metadata,
    Column("commit", String(32), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("parent", String(32), nullable=False),
    Index("ix_df_commit_parents_parent", "parent"),
)

# Immutable names of commits, usable wherever a ref is (``repo@v1``).
tags = Table(
    "df_tags",
    metadata,
    Column("repo", String(64), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("commit", String(32), nullable=False),
    Column("message", Text, nullable=False, default=""),
    Column("creator", String(128), nullable=True),
    Column("created", Float, nullable=False),
    Index("ix_df_tags_commit", "commit"),
)

# A protected branch takes merges only; ``checks`` is a JSON list of commands run on a merge result.
branch_protection = Table(
    "df_branch_protection",
    metadata,
    Column("repo", String(64), primary_key=True),
    Column("branch", String(128), primary_key=True),
    Column("checks", Text, nullable=False, default="[]"),
    Column("created", Float, nullable=False),
)
