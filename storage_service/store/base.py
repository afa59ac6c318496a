"""What the store's mixins (files, maintenance) may use of the store itself.

``Store`` is assembled from mixins so that each module stays about one
thing; this base declares, for the type checker, the state and the few
methods of ``Store`` they call, so no mixin needs to import ``Store``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datumflow.storage_service.core.chunks import ChunkStore
    from datumflow.storage_service.core.index import NodeStore, Tree
    from datumflow.storage_service.core.objects import FsspecObjects, LocalObjects
    from datumflow.storage_service.model.core import Commit, Origin
    from sqlalchemy import Connection, Engine

__all__ = ["StoreBase"]


class StoreBase:
    if TYPE_CHECKING:
        root: str
        engine: Engine
        objects: LocalObjects | FsspecObjects
        chunks: ChunkStore
        nodes: NodeStore
        tree: Tree

        def resolve(self, repo: str, ref: str) -> str: ...

        def inspect_commit(self, repo: str, ref: str) -> Commit: ...

        def start_commit(
            self, repo: str, branch: str, *, parent: str | None = None, description: str = "",
            metadata: dict[str, Any] | None = None, origin: Origin | str = ...,
            provenance: Any = (),
        ) -> Commit: ...

        def finish_commit(
            self, repo: str, ref: str, *, description: str | None = None,
            metadata: dict[str, Any] | None = None, error: str | None = None,
        ) -> Commit: ...

        def _require_repo(self, conn: Connection, name: str) -> None: ...

        def _branch_row(self, conn: Connection, repo: str, name: str) -> Any: ...

        def _write_nodes(self, conn: Connection) -> None: ...
