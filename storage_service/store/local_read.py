"""The CLI's read-only path into a local store: the standard library's ``sqlite3``, no SQLAlchemy.

Opening a :class:`~datumflow.storage_service.store.store.Store` costs a command
about 0.3-0.5 s of imports (SQLAlchemy alone 0.15-0.27 s) before it reads
anything, while ``datumflow ls REPO@BRANCH[:PATH]`` needs two reads: the index
root of the commit a branch or commit id names (one indexed query), and the
index nodes on the way to the folder (one query each, by hash). A
:class:`LocalReader` makes those reads itself, inside one read transaction
(one snapshot of the database, which a concurrent writer does not block), and
lists with the store's own code (:mod:`.listing` on a
:class:`~datumflow.storage_service.core.index.Tree`), so the answer, its order,
its folder totals and its ``PathNotFound`` are the store's.

It answers only what it can answer as the store would, and says ``None``
otherwise; the caller then opens the store, which explains precisely (no such
repo, branch or commit, an empty branch) or resolves the general way (a tag,
``master~2``). ``open`` says ``None`` too for a store it must not read behind
the store's back: no ``metadata.db`` yet (the store creates one), a schema at
another revision (the store upgrades or refuses it), a file SQLite cannot
read, or an open commit with a lease: the store, when it opens, fails the
commits of writers that died and rolls their branches back
(:mod:`.leases`), and a listing must show the branch as the store would
after that. Nothing here writes.

``datumflow get REPO@REF:PATH`` reads the same way: the file's entry from the
index, the locations of all its chunks (one query per few thousand, made
before a byte is written out), then the chunks themselves from the packs in
``root/objects`` through the store's own read path (:mod:`..core.reads`:
read ahead on a pool, every chunk checked against its hash).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from datumflow.storage_service.core.index import NodeStore, Tree
from datumflow.storage_service.core.objects import LocalObjects
from datumflow.storage_service.core.reads import Located, in_order, read_located
from datumflow.storage_service.core.revision import HEAD
from datumflow.storage_service.errors import InvalidArgument, ObjectNotFound
from datumflow.storage_service.model.core import ChunkRef, FileInfo
from datumflow.storage_service.names import is_commit_id, normalize_path
from datumflow.storage_service.store.listing import inspect_entry, list_entries

__all__ = ["LocalReader"]

# The same reads as the store's (lookup.root_of and Store._load_node), on the same tables.
_BRANCH_ROOT = ("SELECT df_commits.root FROM df_branches JOIN df_commits ON df_commits.id = df_branches.head "
                "WHERE df_branches.repo = ? AND df_branches.name = ?")
_COMMIT_ROOT = "SELECT root FROM df_commits WHERE id = ? AND repo = ?"
_NODE = "SELECT data FROM df_nodes WHERE hash = ?"
_REVISION = "SELECT version_num FROM alembic_version"
_LEASED = "SELECT 1 FROM df_commit_leases LIMIT 1"
_LOCATE = 'SELECT hash, pack, "offset", length FROM df_chunks WHERE hash IN ({})'
# Hashes per lookup (the store's batch; SQLite before 3.32 takes at most 999 parameters).
_LOOKUP_BATCH = 8000 if sqlite3.sqlite_version_info >= (3, 32, 0) else 900
_PLAIN = set("^~")


class LocalReader:
    """Read-only views of the store whose metadata database is ``root/metadata.db``."""

    def __init__(self, conn: sqlite3.Connection, root: str) -> None:
        self._conn = conn
        self.root = root
        self.tree = Tree(NodeStore(self._load_node, _no_saving))
        self._objects: LocalObjects | None = None

    @classmethod
    def open(cls, root: str) -> LocalReader | None:
        """A reader of the store at ``root``, or None when only the store itself may open it."""
        path = os.path.join(os.path.abspath(root), "metadata.db")
        if not os.path.isfile(path):
            return None
        try:  # mode=rw: never creates a database (that is the store's business)
            conn = sqlite3.connect(f"file:{quote(path)}?mode=rw", uri=True, timeout=60, isolation_level=None)
        except sqlite3.Error:
            return None
        try:
            conn.execute("BEGIN")  # deferred: the first read takes the snapshot every later read sees
            revision = conn.execute(_REVISION).fetchone()
            leased = revision is not None and revision[0] == HEAD and conn.execute(_LEASED).fetchone() is not None
        except sqlite3.Error:  # not a database, no version table (a 0.1 store), locked past the timeout…
            conn.close()
            return None
        if revision is None or revision[0] != HEAD or leased:
            conn.close()
            return None
        return cls(conn, os.path.abspath(root))

    def close(self) -> None:
        if self._objects is not None:
            self._objects.close()
        self._conn.close()

    def __enter__(self) -> LocalReader:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def root_of(self, repo: str, ref: str) -> tuple[str | None] | None:
        """``(root,)`` of the commit a branch name or commit id names; None when this cannot tell."""
        if not isinstance(ref, str) or not ref or not _PLAIN.isdisjoint(ref):
            return None
        if is_commit_id(ref):
            row = self._conn.execute(_COMMIT_ROOT, (ref, repo)).fetchone()
        else:
            row = self._conn.execute(_BRANCH_ROOT, (repo, ref)).fetchone()
        return (row[0],) if row is not None else None

    def list_files(
        self, repo: str, ref: str, path: str = "", *,
        start_after: str | None = None, limit: int | None = None,
    ) -> list[FileInfo] | None:
        """What ``Store.list_files`` answers, or None when the store must answer."""
        path = normalize_path(path, allow_root=True)  # the store, too, refuses a bad path first
        try:
            found = self.root_of(repo, ref)
            if found is None:
                return None
            return list_entries(self.tree, found[0], path, f"{repo}@{ref}", start_after=start_after, limit=limit)
        except sqlite3.Error:  # locked past the timeout, a disk error: the store says what it is
            return None

    def open_file(self, repo: str, ref: str, path: str) -> Iterator[bytes] | None:
        """What ``Store.open_file`` streams (chunks checked), or None when the store must answer.

        Everything the database says (the entry, every chunk's location) is read
        before this returns, from the one snapshot; the iterator then reads only
        the packs, whose bytes never change once published.
        """
        path = normalize_path(path, allow_root=True)
        try:
            found = self.root_of(repo, ref)
            if found is None:
                return None
            info = inspect_entry(self.tree, found[0], path, f"{repo}@{ref}")
            if info.is_dir:
                raise InvalidArgument(f"{repo}@{ref}:{info.path} is a folder, not a file")
            refs = list(info.chunks)
            located = self._locate(refs)
        except sqlite3.Error:
            return None
        if self._objects is None:
            self._objects = LocalObjects(os.path.join(self.root, "objects"), writable=False)
        return read_located(self._objects, refs, located)

    def _locate(self, refs: list[ChunkRef]) -> list[tuple[ChunkRef, Located]]:
        """Each ref with its pack, offset and length (the store's ``ChunkStore.locate``, in batches)."""
        wanted = list(dict.fromkeys(r.hash for r in refs))
        where: dict[str, Located] = {}
        for i in range(0, len(wanted), _LOOKUP_BATCH):
            batch = wanted[i:i + _LOOKUP_BATCH]
            for h, pack, offset, length in self._conn.execute(_LOCATE.format(",".join("?" * len(batch))), batch):
                where[h] = (pack, offset, length)
        return list(in_order(refs, where))

    def _load_node(self, h: str) -> bytes:
        row = self._conn.execute(_NODE, (h,)).fetchone()
        if row is None:
            raise ObjectNotFound(f"index node {h} is missing")
        return bytes(row[0])


def _no_saving(rows: list[tuple[str, bytes]]) -> None:
    raise AssertionError("a LocalReader never writes index nodes")
