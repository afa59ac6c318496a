"""The store's value objects, as they were imported before the model was split by noun.

Kept so existing imports work; new code imports from :mod:`.commit` and :mod:`.file`
(or from the package, :mod:`datumflow.storage_service.model`).
"""

from __future__ import annotations

from datumflow.storage_service.model.commit import (
    Branch,
    BranchRef,
    Commit,
    CommitState,
    Origin,
    ProvenanceEntry,
    Repo,
)
from datumflow.storage_service.model.file import ChunkRef, DiffEntry, FileInfo
from datumflow.storage_service.model.value import _Value

__all__ = [
    "Branch",
    "BranchRef",
    "ChunkRef",
    "Commit",
    "CommitState",
    "DiffEntry",
    "FileInfo",
    "Origin",
    "ProvenanceEntry",
    "Repo",
    "_Value",
]
