"""The versioned store, its pipelines, service, client and command line.

Layers, each a subpackage, imports pointing down only (``tests/test_layers.py``
checks it)::

    errors, names        one exception tree; names, refs, paths
    model/               frozen value objects
    core/                chunking, packs, object store, file index, database, schema
    store/               Store: repos, branches, commits, files, maintenance
    pipelines/ spouts/   specs, datums, jobs, lineage, executors; Kafka spouts
    service/             HTTP API, auth, S3 gateway, console, serve
    client/              HTTP clients and the fsspec filesystem (no server module)
    cli/                 the ``datumflow`` command

Nothing here imports Airflow or Kubeflow. The names below load on first use,
so importing the package (as the CLI does) costs nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import DatumflowError
    from .model.core import Branch, BranchRef, Commit, CommitState, DiffEntry, FileInfo, Origin, ProvenanceEntry, Repo
    from .store.store import Store

_LAZY = {
    "DatumflowError": ".errors",
    "Store": ".store.store",
    **{name: ".model.core" for name in (
        "Branch", "BranchRef", "Commit", "CommitState", "DiffEntry", "FileInfo", "Origin", "ProvenanceEntry", "Repo",
    )},
}

__all__ = [
    "Branch", "BranchRef", "Commit", "CommitState", "DatumflowError", "DiffEntry", "FileInfo", "Origin",
    "ProvenanceEntry", "Repo", "Store",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name], __name__), name)
