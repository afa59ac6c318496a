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

if TYPE_CHECKING:  # for type checkers: the names of _MODULES, each re-exported (`as` itself)
    from datumflow.storage_service.model.commit import Branch as Branch
    from datumflow.storage_service.model.commit import BranchRef as BranchRef
    from datumflow.storage_service.model.commit import Commit as Commit
    from datumflow.storage_service.model.commit import CommitState as CommitState
    from datumflow.storage_service.model.commit import Origin as Origin
    from datumflow.storage_service.model.commit import ProvenanceEntry as ProvenanceEntry
    from datumflow.storage_service.model.commit import Repo as Repo
    from datumflow.storage_service.model.datum import DatumInfo as DatumInfo
    from datumflow.storage_service.model.datum import DatumState as DatumState
    from datumflow.storage_service.model.file import ChunkRef as ChunkRef
    from datumflow.storage_service.model.file import DiffEntry as DiffEntry
    from datumflow.storage_service.model.file import FileInfo as FileInfo
    from datumflow.storage_service.model.job import JobInfo as JobInfo
    from datumflow.storage_service.model.job import JobState as JobState
    from datumflow.storage_service.model.lineage import LineageNode as LineageNode
    from datumflow.storage_service.model.pipeline import PipelineInfo as PipelineInfo
    from datumflow.storage_service.model.spout import Format as Format
    from datumflow.storage_service.model.spout import Layout as Layout
    from datumflow.storage_service.model.spout import SpoutConfig as SpoutConfig
    from datumflow.storage_service.model.spout import SpoutStatus as SpoutStatus

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
__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
