"""What the store's mixins (files, maintenance) may use of the store itself.

``Store`` is assembled from mixins so that each module stays about one
thing; this base declares, for the type checker, the state and the few
methods of ``Store`` they call, so no mixin needs to import ``Store``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from datumflow.storage_service.core.chunks import ChunkStore
    from datumflow.storage_service.core.index import NodeStore, Tree
    from datumflow.storage_service.core.objects import FsspecObjects, LocalObjects
    from datumflow.storage_service.model.core import Branch, BranchRef, Commit, Origin
    from datumflow.storage_service.model.history import Protection
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
        on_commit_finished: list[Callable[[Commit], None]]

        def resolve(self, repo: str, ref: str) -> str: ...

        def inspect_commit(self, repo: str, ref: str) -> Commit: ...

        def start_commit(
            self, repo: str, branch: str, *, parent: str | None = None, description: str = "",
            metadata: dict[str, Any] | None = None, origin: Origin | str = ...,
            provenance: Any = (), owner: str | None = None, lease: float | None = None, force: bool = False,
        ) -> Commit: ...

        def finish_commit(
            self, repo: str, ref: str, *, description: str | None = None,
            metadata: dict[str, Any] | None = None, error: str | None = None,
        ) -> Commit: ...

        def _require_repo(self, conn: Connection, name: str) -> None: ...

        def _branch_row(self, conn: Connection, repo: str, name: str) -> Any: ...

        def _write_nodes(self, conn: Connection) -> None: ...

        def _require_branch(self, conn: Connection, repo: str, name: str) -> Any: ...

        def _resolve(self, conn: Connection, repo: str, ref: str) -> str: ...

        def _commit(self, conn: Connection, commit_id: str) -> Commit: ...

        def _commits(self, conn: Connection, ids: Sequence[str]) -> dict[str, tuple[int, Commit]]: ...

        def _root_of(self, commit_id: str) -> str | None: ...

        def inspect_branch(self, repo: str, name: str) -> Branch: ...

        def write_entries(self, repo: str, target: str, edits_for: Any, *, verb: str = ...,
                          description: str = ..., check: Any = ...) -> Commit: ...

        def _upstream_branches(self, conn: Connection, ref: BranchRef) -> list[BranchRef]: ...

        def _open_downstream(self, conn: Connection, ref: BranchRef, commit_set: str) -> None: ...

        def _finish_aliases(self, conn: Connection, commit_set: str) -> None: ...

        def _protection(self, conn: Connection, repo: str, branch: str | None) -> Protection | None: ...

        def _refuse_direct(self, conn: Connection, repo: str, branch: str | None, what: str,
                           origin: Origin = ...) -> None: ...

        def _refuse_write_into(self, repo: str, commit_id: str) -> None: ...

        def _refuse_output(self, conn: Connection, repo: str, branch: str | None, what: str,
                           origin: Origin = ...) -> None: ...

        def _is_ancestor(self, conn: Connection, ancestor: str, of: str) -> bool: ...

        def _tag_row(self, conn: Connection, repo: str, name: str) -> object | None: ...
