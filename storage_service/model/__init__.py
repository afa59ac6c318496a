"""Value objects: frozen, typed, able to serialize themselves (``to_dict`` / ``from_dict``).

One module per noun: :mod:`.commit` (repos, branches, commits, provenance),
:mod:`.file` (files, chunks, diffs), :mod:`.pipeline`, :mod:`.job`,
:mod:`.datum`, :mod:`.lineage`, :mod:`.spout`. They import nothing above
``errors`` and ``names``, so the client can hold them without the server.
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
from datumflow.storage_service.model.datum import DatumInfo, DatumState
from datumflow.storage_service.model.file import ChunkRef, DiffEntry, FileInfo
from datumflow.storage_service.model.job import JobInfo, JobState
from datumflow.storage_service.model.lineage import LineageNode
from datumflow.storage_service.model.pipeline import PipelineInfo
from datumflow.storage_service.model.spout import Format, Layout, SpoutConfig, SpoutStatus

__all__ = [
    "Branch",
    "BranchRef",
    "ChunkRef",
    "Commit",
    "CommitState",
    "DatumInfo",
    "DatumState",
    "DiffEntry",
    "FileInfo",
    "Format",
    "JobInfo",
    "JobState",
    "Layout",
    "LineageNode",
    "Origin",
    "PipelineInfo",
    "ProvenanceEntry",
    "Repo",
    "SpoutConfig",
    "SpoutStatus",
]
