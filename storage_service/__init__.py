"""The versioned store: repos, branches, commits, files and provenance.

Nothing here imports Airflow or Kubeflow; every adapter builds on this.
"""

from __future__ import annotations

from .errors import DatumflowError
from .model import (
    Branch,
    BranchRef,
    Commit,
    CommitState,
    DiffEntry,
    FileInfo,
    Origin,
    ProvenanceEntry,
    Repo,
)
from .store import Store

__all__ = [
    "Branch",
    "BranchRef",
    "Commit",
    "CommitState",
    "DatumflowError",
    "DiffEntry",
    "FileInfo",
    "Origin",
    "ProvenanceEntry",
    "Repo",
    "Store",
]
