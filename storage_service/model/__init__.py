"""Value objects: frozen, typed, able to serialize themselves (``to_dict`` / ``from_dict``).

One module per noun: :mod:`.commit` (repos, branches, commits, provenance),
:mod:`.file` (files, chunks, diffs), :mod:`.pipeline`, :mod:`.job`,
:mod:`.datum`, :mod:`.lineage`, :mod:`.spout`. They import nothing above
``errors`` and ``names``, so the client can hold them without the server.

Each name loads its module on first use (a module ``__getattr__``), so importing one noun's module,
or the package for one name, does not load every other noun's: a command-line start pays only
for the value objects its verb uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_MODULES = {
    "commit": ("Branch", "BranchRef", "Commit", "CommitState", "Origin", "ProvenanceEntry", "Repo"),
    "datum": ("DatumInfo", "DatumState"),
    "file": ("ChunkRef", "DiffEntry", "FileInfo"),
    "job": ("JobInfo", "JobState"),
    "lineage": ("LineageNode",),
    "pipeline": ("PipelineInfo",),
    "spout": ("Format", "Layout", "SpoutConfig", "SpoutStatus"),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
