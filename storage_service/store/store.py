"""The embedded store: repos, branches, commits and provenance.

This is the one implementation of the store's semantics; the HTTP service
wraps it and the client mirrors its methods. File operations live in
:mod:`.files`, integrity and space in :mod:`.maintenance`.

Concurrency: every state change is one database transaction. Branch heads
and the root of an open commit move by compare-and-swap (``UPDATE … WHERE
head = :old``), so two writers never lose each other's work: the loser
re-reads and retries.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from datumflow.storage_service.core.chunks import ChunkStore
from datumflow.storage_service.core.db import Prepared, insert_ignore, open_engine, retry_on_conflict
from datumflow.storage_service.core.history_schema import branch_protection, commit_parents, tags
from datumflow.storage_service.core.index import NodeStore, Tree
from datumflow.storage_service.core.objects import open_object_store
from datumflow.storage_service.core.pipeline_schema import pipeline_repos
from datumflow.storage_service.core.schema import (
    branch_provenance,
    branches,
    commit_provenance,
    commits,
    nodes,
    repos,
    roles,
)
from datumflow.storage_service.errors import (
    AlreadyExists,
    BranchInUse,
    BranchNotFound,
    CommitFinished,
    CommitNotFound,
    Conflict,
    InvalidArgument,
    ProtectedBranch,
    RepoNotFound,
    Timeout,
)
from datumflow.storage_service.model.core import Branch, BranchRef, Commit, CommitState, Origin, ProvenanceEntry, Repo
from datumflow.storage_service.model.lifecycle import OpenCommit, writing
from datumflow.storage_service.names import check_branch_name, check_repo_name, is_commit_id, parse_ancestry
from datumflow.storage_service.store import lookup
from datumflow.storage_service.store.bisect import Bisecting
from datumflow.storage_service.store.files import FileOps
from datumflow.storage_service.store.maintenance import Maintenance
from datumflow.storage_service.store.merge import Merging
from datumflow.storage_service.store.protect import Protecting
from datumflow.storage_service.store.syncing import SyncOps
from datumflow.storage_service.store.tags import Tagging
from sqlalchemy import Connection, Engine, and_, bindparam, delete, func, insert, select, update

__all__ = ["Store"]

_WAIT_POLL = 0.05
_BATCH = 500  # ids per IN (...) of a batched read
_LOAD_NODE = Prepared(select(nodes.c.data).where(nodes.c.hash == bindparam("hash")))


class Store(FileOps, SyncOps, Maintenance, Merging, Protecting, Tagging, Bisecting):
    """A datumflow store in this process: ``Store("/path/to/.datumflow")``.

    ``db_url`` defaults to SQLite inside the root; ``objects_url`` to the
    ``objects`` folder inside it (any fsspec URL works, e.g. ``s3://bucket/x``).
    ``fsync`` defaults to ``DATUMFLOW_FSYNC`` (on unless ``0``), ``direct_io``
    (large files of durable writes to local packs by direct I/O) to
    ``DATUMFLOW_DIRECT_IO`` (off unless ``1``); see docs/benchmarks.md.
    """

    def __init__(
        self,
        root: str = ".datumflow",
        *,
        db_url: str | None = None,
        objects_url: str | None = None,
        fsync: bool | None = None,
        direct_io: bool | None = None,
    ) -> None:
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)
        self.db_url = db_url or "sqlite:///" + os.path.join(self.root, "metadata.db")
        self.engine: Engine = open_engine(self.db_url)
        self.objects = open_object_store(objects_url or os.path.join(self.root, "objects"))
        if fsync is None:
            fsync = os.environ.get("DATUMFLOW_FSYNC", "1") != "0"
        self.chunks = ChunkStore(self.engine, self.objects, fsync=fsync, direct_io=direct_io)
        self.nodes = NodeStore(self._load_node, self._save_nodes)
        self.tree = Tree(self.nodes)
        # Called with each commit finish_commit finishes (e.g. airflow_push); errors are not caught.
        self.on_commit_finished: list[Callable[[Commit], None]] = []
        self._reap_abandoned()  # commits of writers that died since the last start

    def close(self) -> None:
        self.engine.dispose()
        close = getattr(self.objects, "close", None)
        if close:
            close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    # -- index nodes ------------------------------------------------------------------

    def _load_node(self, h: str) -> bytes:
        found = _LOAD_NODE.rows(self.engine, hash=h)  # one prebuilt SELECT: an edit loads a node per leaf it rewrites
        data = found[0][0] if found else None
        if data is None:
            from datumflow.storage_service.errors import ObjectNotFound

            raise ObjectNotFound(f"index node {h} is missing")
        return bytes(data)

    def _save_nodes(self, rows: list[tuple[str, bytes]]) -> None:
        # Saved in the caller's transaction (see _set_root); this hook is unused.
        raise AssertionError("nodes are saved through _set_root")

    def _write_nodes(self, conn: Connection) -> None:
        from datumflow.storage_service.core.db import bulk_insert_ignore

        rows = list(self.nodes._pending.items())
        if rows:  # an edit spread over a large index writes hundreds of nodes: one driver executemany
            now = time.time()
            bulk_insert_ignore(conn, nodes, ("hash", "data", "created"), [(h, d, now) for h, d in rows])
        self.nodes._pending.clear()

    # -- repos --------------------------------------------------------------------

    @retry_on_conflict
    def create_repo(self, name: str, description: str = "", *, exist_ok: bool = False) -> Repo:
        check_repo_name(name)
        with self.engine.begin() as conn:
            if conn.execute(select(repos.c.name).where(repos.c.name == name)).first():
                if not exist_ok:
                    raise AlreadyExists(f"repo {name} already exists")
            else:
                # grants (and a pipeline's claim) left by an older repo of this name do not carry over
                conn.execute(delete(roles).where(roles.c.repo == name))
                conn.execute(delete(pipeline_repos).where(pipeline_repos.c.repo == name))
                conn.execute(insert(repos), {"name": name, "description": description, "created": time.time()})
        return self.inspect_repo(name)

    def inspect_repo(self, name: str) -> Repo:
        check_repo_name(name)
        with self.engine.connect() as conn:
            row = conn.execute(select(repos).where(repos.c.name == name)).first()
            if row is None:
                raise RepoNotFound(f"repo {name} not found")
            names = conn.execute(
                select(branches.c.name).where(branches.c.repo == name).order_by(branches.c.name)
            ).scalars().all()
            size = conn.execute(
                select(commits.c.size_bytes)
                .select_from(branches.join(commits, commits.c.id == branches.c.head))
                .where(branches.c.repo == name, branches.c.name == "master")
            ).scalar()
        return Repo(row.name, row.description, row.created, tuple(names), size or 0)

    def list_repos(self) -> list[Repo]:
        with self.engine.connect() as conn:
            names = conn.execute(select(repos.c.name).order_by(repos.c.name)).scalars().all()
        return [self.inspect_repo(n) for n in names]

    def delete_repo(self, name: str, *, force: bool = False) -> None:
        """Delete a repo, its branches and commits; ``gc`` reclaims the bytes."""
        self.inspect_repo(name)
        with self.engine.begin() as conn:
            users = conn.execute(
                select(branch_provenance.c.repo, branch_provenance.c.branch).where(
                    branch_provenance.c.up_repo == name, branch_provenance.c.repo != name
                )
            ).all()
            if users and not force:
                names = ", ".join(f"{r}@{b}" for r, b in users)
                raise BranchInUse(f"repo {name} is provenance of {names}; delete those first or force")
            ids = select(commits.c.id).where(commits.c.repo == name)
            conn.execute(delete(commit_provenance).where(commit_provenance.c.commit.in_(ids)))
            conn.execute(delete(commit_parents).where(commit_parents.c.commit.in_(ids)))
            conn.execute(delete(tags).where(tags.c.repo == name))
            conn.execute(delete(branch_protection).where(branch_protection.c.repo == name))
            conn.execute(delete(commits).where(commits.c.repo == name))
            conn.execute(
                delete(branch_provenance).where(
                    (branch_provenance.c.repo == name) | (branch_provenance.c.up_repo == name)
                )
            )
            conn.execute(delete(branches).where(branches.c.repo == name))
            conn.execute(delete(roles).where(roles.c.repo == name))  # grants die with their repo
            conn.execute(delete(pipeline_repos).where(pipeline_repos.c.repo == name))
            conn.execute(delete(repos).where(repos.c.name == name))

    def _require_repo(self, conn: Connection, name: str) -> None:
        check_repo_name(name)
        if conn.execute(select(repos.c.name).where(repos.c.name == name)).first() is None:
            raise RepoNotFound(f"repo {name} not found")

    # -- branches --------------------------------------------------------------------

    @retry_on_conflict
    def create_branch(
        self,
        repo: str,
        name: str,
        *,
        head: str | None = None,
        provenance: Sequence[BranchRef | str] = (),
        owner: str | None = None,
    ) -> Branch:
        """Create a branch, or update an existing one's head / provenance."""
        check_branch_name(name)
        provs = [p if isinstance(p, BranchRef) else BranchRef.parse(p) for p in provenance]
        with self.engine.begin() as conn:
            self._require_repo(conn, repo)
            head_id = self._resolve(conn, repo, head) if head else None
            for up in provs:
                self._require_branch(conn, up.repo, up.branch)
                if (up.repo, up.branch) == (repo, name) or self._reaches(conn, BranchRef(repo, name), up):
                    raise InvalidArgument(f"branch provenance {up} -> {repo}@{name} would make a cycle")
            row = self._branch_row(conn, repo, name)
            if row is None and self._tag_row(conn, repo, name) is not None:
                raise AlreadyExists(f"{repo}@{name} is a tag; a branch needs a name of its own")
            if row is not None and head_id is not None and head_id != row.head:
                self._check_head_move(conn, repo, name, row.head, head_id)
            if row is None:
                conn.execute(
                    insert(branches),
                    {"repo": repo, "name": name, "head": head_id, "owner": owner, "created": time.time()},
                )
            else:
                values: dict[str, Any] = {}
                if head is not None:
                    values["head"] = head_id
                if owner is not None:
                    values["owner"] = owner
                if values:
                    conn.execute(
                        update(branches).where(branches.c.repo == repo, branches.c.name == name).values(**values)
                    )
            if provenance or row is None:
                conn.execute(
                    delete(branch_provenance).where(
                        branch_provenance.c.repo == repo, branch_provenance.c.branch == name
                    )
                )
                for up in provs:
                    conn.execute(
                        insert(branch_provenance),
                        {"repo": repo, "branch": name, "up_repo": up.repo, "up_branch": up.branch},
                    )
        return self.inspect_branch(repo, name)

    def _check_head_move(self, conn: Connection, repo: str, name: str, old: str | None, new: str) -> None:
        """Moving an existing branch may only go forward: a move that drops commits needs a reset."""
        self._refuse_direct(conn, repo, name, "moving its head")
        if old is not None and not self._is_ancestor(conn, old, new):
            raise Conflict(
                f"moving {repo}@{name} to {new} would drop commits from the branch (its head {old} is not an "
                "ancestor of it); merge instead, or reset the branch with force"
            )

    def inspect_branch(self, repo: str, name: str) -> Branch:
        with self.engine.connect() as conn:
            row = self._require_branch(conn, repo, name)
            return self._branch(conn, row)

    def list_branches(self, repo: str) -> list[Branch]:
        with self.engine.connect() as conn:
            self._require_repo(conn, repo)
            rows = conn.execute(select(branches).where(branches.c.repo == repo).order_by(branches.c.name)).all()
            return [self._branch(conn, r) for r in rows]

    def branch_names(self, repos: Iterable[str] | None = None) -> list[tuple[str, str, float]]:
        """(repo, branch, created) of every branch, or of the branches of ``repos``; one query.

        For listings that must cost what they return (S3 ListBuckets), not one
        lookup per repo in the store.
        """
        query = select(branches.c.repo, branches.c.name, branches.c.created).order_by(
            branches.c.repo, branches.c.name)
        if repos is not None:
            wanted = sorted(set(repos))
            if not wanted:
                return []
            query = query.where(branches.c.repo.in_(wanted))
        with self.engine.connect() as conn:
            return [(r.repo, r.name, r.created) for r in conn.execute(query)]

    def delete_branch(self, repo: str, name: str, *, force: bool = False) -> None:
        with self.engine.begin() as conn:
            self._require_branch(conn, repo, name)
            self._refuse_direct(conn, repo, name, "deleting it")
            users = self._downstream_branches(conn, BranchRef(repo, name), direct=True)
            if users and not force:
                raise BranchInUse(
                    f"branch {repo}@{name} is provenance of {', '.join(map(str, users))}; "
                    "delete those first or force"
                )
            conn.execute(
                delete(branch_provenance).where(
                    ((branch_provenance.c.repo == repo) & (branch_provenance.c.branch == name))
                    | ((branch_provenance.c.up_repo == repo) & (branch_provenance.c.up_branch == name))
                )
            )
            conn.execute(delete(branches).where(branches.c.repo == repo, branches.c.name == name))

    def _branch_row(self, conn: Connection, repo: str, name: str) -> Any:
        return conn.execute(select(branches).where(branches.c.repo == repo, branches.c.name == name)).first()

    def _require_branch(self, conn: Connection, repo: str, name: str) -> Any:
        self._require_repo(conn, repo)
        check_branch_name(name)
        row = self._branch_row(conn, repo, name)
        if row is None:
            raise BranchNotFound(f"branch {name} not found in repo {repo}")
        return row

    def _branch(self, conn: Connection, row: Any) -> Branch:
        up = conn.execute(
            select(branch_provenance.c.up_repo, branch_provenance.c.up_branch).where(
                branch_provenance.c.repo == row.repo, branch_provenance.c.branch == row.name
            )
        ).all()
        down = self._downstream_branches(conn, BranchRef(row.repo, row.name), direct=True)
        return Branch(
            repo=row.repo,
            name=row.name,
            head=row.head,
            provenance=tuple(BranchRef(r, b) for r, b in sorted(up)),
            subvenance=tuple(down),
            owner=row.owner,
        )

    def _upstream_branches(self, conn: Connection, ref: BranchRef) -> list[BranchRef]:
        rows = conn.execute(
            select(branch_provenance.c.up_repo, branch_provenance.c.up_branch).where(
                branch_provenance.c.repo == ref.repo, branch_provenance.c.branch == ref.branch
            )
        ).all()
        return [BranchRef(r, b) for r, b in sorted(rows)]

    def _downstream_branches(self, conn: Connection, ref: BranchRef, *, direct: bool) -> list[BranchRef]:
        """Branches provenant on ``ref`` (all of them, breadth-first, unless direct)."""
        out: list[BranchRef] = []
        frontier = [ref]
        while frontier:
            nxt = []
            for cur in frontier:
                rows = conn.execute(
                    select(branch_provenance.c.repo, branch_provenance.c.branch).where(
                        branch_provenance.c.up_repo == cur.repo, branch_provenance.c.up_branch == cur.branch
                    )
                ).all()
                for r, b in sorted(rows):
                    down = BranchRef(r, b)
                    if down not in out:
                        out.append(down)
                        nxt.append(down)
            if direct:
                break
            frontier = nxt
        return out

    def _reaches(self, conn: Connection, start: BranchRef, target: BranchRef) -> bool:
        return target in self._downstream_branches(conn, start, direct=False)

    # -- references -------------------------------------------------------------

    def resolve(self, repo: str, ref: str) -> str:
        """The commit id a reference names (branch head, id, ``master~2``…)."""
        with self.engine.connect() as conn:
            self._require_repo(conn, repo)
            return self._resolve(conn, repo, ref)

    def _resolve(self, conn: Connection, repo: str, ref: str) -> str:
        if not isinstance(ref, str) or not ref:
            raise InvalidArgument("a reference (branch or commit id) is required")
        base, steps = parse_ancestry(ref)
        if is_commit_id(base):
            row = conn.execute(select(commits.c.repo).where(commits.c.id == base)).first()
            if row is None or row.repo != repo:
                raise CommitNotFound(f"commit {base} not found in repo {repo}")
            commit_id: str | None = base
        else:
            check_branch_name(base)
            row = self._branch_row(conn, repo, base)
            tag = self._tag_row(conn, repo, base) if row is None else None
            if row is None and tag is None:
                raise BranchNotFound(f"branch {base} not found in repo {repo}")
            commit_id = row.head if row is not None else tag.commit  # type: ignore[attr-defined]
            if commit_id is None:
                raise CommitNotFound(f"branch {repo}@{base} has no commits yet")
        for step in range(steps):
            commit_id = conn.execute(select(commits.c.parent).where(commits.c.id == commit_id)).scalar()
            if commit_id is None:
                raise CommitNotFound(f"{repo}@{ref}: the history has only {step + 1} commit(s)")
        assert commit_id is not None
        return commit_id

    # -- commits ----------------------------------------------------------------

    def start_commit(
        self,
        repo: str,
        branch: str,
        *,
        parent: str | None = None,
        description: str = "",
        metadata: dict[str, Any] | None = None,
        origin: Origin | str = Origin.USER,
        provenance: Iterable[str] = (),
        owner: str | None = None,
        lease: float | None = None,
        force: bool = False,
    ) -> Commit:
        """Open a commit at the head of a branch (created if missing), for the caller alone.

        Branches provenant on this one get an open commit in the same commit
        set, so that pipelines downstream know work is coming. If the branch's
        head is already open (someone else's commit), this one is *detached*:
        it starts from the newest finished commit and finishing it rebases its
        changes onto the head (see :mod:`.publish`). The commit is abandoned
        once ``lease`` seconds pass without a write (``None``: the store's default,
        ``DATUMFLOW_COMMIT_LEASE``, an hour; ``0``: no time limit), or when ``owner``
        (a process identity) has exited; abandoned commits are failed.
        A pipeline's output branch takes commits of its jobs alone (origin
        ``auto``), unless ``force`` (an owner's repair, see :mod:`.outputs`).
        """
        origin = Origin(origin)
        metadata = _check_metadata(metadata)
        check_branch_name(branch)
        self._reap_abandoned()
        with self.engine.begin() as conn:
            self._require_repo(conn, repo)
            self._refuse_direct(conn, repo, branch, "a direct commit", origin)
            if not force:
                self._refuse_output(conn, repo, branch, "start a commit", origin)
            if self._branch_row(conn, repo, branch) is None:
                if self._tag_row(conn, repo, branch) is not None:
                    raise ProtectedBranch(f"{repo}@{branch} is a tag: tags are read-only")
                # insert_ignore: a concurrent writer may create the same branch first (PostgreSQL)
                conn.execute(
                    insert_ignore(self.engine, branches),
                    {"repo": repo, "name": branch, "head": None, "created": time.time()},
                )
            commit_id = uuid.uuid4().hex
            self._open_commit(
                conn, repo, branch, commit_id, commit_set=commit_id, parent=parent,
                description=description, metadata=metadata, origin=origin, provenance=list(provenance),
            )
            if origin is not Origin.AUTO:
                self._grant_lease(conn, commit_id, owner, lease)
            self._open_downstream(conn, BranchRef(repo, branch), commit_id)
        return self.inspect_commit(repo, commit_id)

    def _open_commit(
        self,
        conn: Connection,
        repo: str,
        branch: str,
        commit_id: str,
        *,
        commit_set: str,
        parent: str | None,
        description: str,
        metadata: dict[str, Any],
        origin: Origin,
        provenance: list[str],
    ) -> None:
        row = self._branch_row(conn, repo, branch)
        head = row.head
        parent_id = self._resolve(conn, repo, parent) if parent else head
        detached = False
        if head is not None and parent is None and origin is not Origin.AUTO:
            while parent_id is not None:  # someone else's open commit on top: start beside it
                above = conn.execute(select(commits.c.state, commits.c.parent).where(commits.c.id == parent_id)).one()
                if above.state != CommitState.OPEN.value:
                    break
                detached, parent_id = True, above.parent
        parent_row = conn.execute(select(commits).where(commits.c.id == parent_id)).first() if parent_id else None
        upstream = set(provenance)
        for up in self._upstream_branches(conn, BranchRef(repo, branch)):
            up_head = self._branch_row(conn, up.repo, up.branch).head
            if up_head:
                upstream.add(up_head)
        for up_id in upstream:
            if conn.execute(select(commits.c.id).where(commits.c.id == up_id)).first() is None:
                raise CommitNotFound(f"provenance commit {up_id} not found")
        seq = (conn.execute(select(func.max(commits.c.seq))).scalar() or 0) + 1
        conn.execute(
            insert(commits),
            {
                "id": commit_id, "seq": seq, "repo": repo, "branch": branch, "parent": parent_id,
                "origin": origin.value, "state": CommitState.OPEN.value, "description": description,
                "meta": json.dumps(metadata, sort_keys=True), "started": time.time(), "finished": None,
                "commit_set": commit_set, "root": parent_row.root if parent_row else None,
                "size_bytes": parent_row.size_bytes if parent_row else 0,
                "file_count": parent_row.file_count if parent_row else 0, "error": None,
            },
        )
        for up_id in sorted(upstream):
            conn.execute(insert(commit_provenance), {"commit": commit_id, "upstream": up_id})
        if detached:
            return
        moved = conn.execute(
            update(branches)
            .where(branches.c.repo == repo, branches.c.name == branch, _is(branches.c.head, head))
            .values(head=commit_id)
        ).rowcount
        if moved != 1:  # the transaction serializes writers; this guards the invariant
            from datumflow.storage_service.errors import ConcurrentUpdate

            raise ConcurrentUpdate(f"branch {repo}@{branch} moved while committing; retry")

    def _open_downstream(self, conn: Connection, ref: BranchRef, commit_set: str) -> None:
        for down in self._downstream_branches(conn, ref, direct=False):
            self._open_commit(
                conn, down.repo, down.branch, uuid.uuid4().hex, commit_set=commit_set, parent=None,
                description="", metadata={}, origin=Origin.AUTO, provenance=[],
            )

    def writing(
        self, repo: str, branch: str, *, description: str = "", metadata: dict[str, Any] | None = None,
        origin: Origin | str = Origin.USER, provenance: Iterable[str] = (), what: str = "write",
    ) -> AbstractContextManager[OpenCommit]:
        """A commit for a ``with`` block: finished at its end, failed if it raises (see :mod:`~.lifecycle`)."""
        return writing(self, repo, branch, description=description, metadata=metadata, origin=origin,
                       provenance=provenance, what=what)

    def finish_commit(
        self,
        repo: str,
        ref: str,
        *,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> Commit:
        """Finish an open commit; with ``error`` it fails instead.

        A failed commit keeps its record (and error) for inspection, but its
        partial content is dropped and its branch head goes back to the parent,
        so no later commit builds on half-written data.
        """
        extra = _check_metadata(metadata)
        with self.engine.begin() as conn:
            self._require_repo(conn, repo)
            commit_id = self._resolve(conn, repo, ref)
            row = conn.execute(select(commits).where(commits.c.id == commit_id)).one()
            if row.state != CommitState.OPEN.value:
                raise CommitFinished(f"commit {repo}@{commit_id} is already {row.state}")
            values: dict[str, Any] = {"finished": time.time()}
            if description is not None:
                values["description"] = description
            if extra:
                values["meta"] = json.dumps({**json.loads(row.meta), **extra}, sort_keys=True)
            self._drop_lease(conn, commit_id)
            detached = error is None and self._is_detached(conn, row)
            if not detached:
                if error is None:
                    values["state"] = CommitState.FINISHED.value
                else:
                    values.update(self._failed_values(conn, row, error))
                conn.execute(update(commits).where(commits.c.id == commit_id).values(**values))
                if error is None:
                    self._finish_aliases(conn, row.commit_set)
        if detached:  # its own changes, rebased onto the branch head as it is now
            return self._publish_detached(repo, row, values)
        finished = self.inspect_commit(repo, commit_id)
        for callback in self.on_commit_finished:
            callback(finished)
        return finished

    def _failed_values(self, conn: Connection, row: Any, error: str) -> dict[str, Any]:
        parent = conn.execute(select(commits).where(commits.c.id == row.parent)).first() if row.parent else None
        if row.branch:
            conn.execute(
                update(branches)
                .where(branches.c.repo == row.repo, branches.c.name == row.branch, branches.c.head == row.id)
                .values(head=row.parent)
            )
        return {
            "state": CommitState.FAILED.value,
            "error": error or "failed",
            "root": parent.root if parent else None,
            "size_bytes": parent.size_bytes if parent else 0,
            "file_count": parent.file_count if parent else 0,
        }

    def _finish_aliases(self, conn: Connection, commit_set: str) -> None:
        """Finish open AUTO commits of branches no pipeline writes, once their inputs are done."""
        progress = True
        while progress:
            progress = False
            rows = conn.execute(
                select(commits.c.id, commits.c.repo, commits.c.branch)
                .select_from(
                    commits.join(branches, and_(branches.c.repo == commits.c.repo, branches.c.name == commits.c.branch))
                )
                .where(
                    commits.c.commit_set == commit_set,
                    commits.c.state == CommitState.OPEN.value,
                    commits.c.origin == Origin.AUTO.value,
                    branches.c.owner.is_(None),
                )
            ).all()
            for cid, _, _ in rows:
                open_ups = conn.execute(
                    select(func.count())
                    .select_from(commit_provenance.join(commits, commits.c.id == commit_provenance.c.upstream))
                    .where(commit_provenance.c.commit == cid, commits.c.state == CommitState.OPEN.value)
                ).scalar()
                if not open_ups:
                    conn.execute(
                        update(commits).where(commits.c.id == cid)
                        .values(state=CommitState.FINISHED.value, finished=time.time())
                    )
                    progress = True

    def head_commit(self, repo: str, branch: str) -> Commit | None:
        """The head commit of a branch, in one query; None if there is no such branch or it has no commits.

        For the request path (S3 GetObject/HeadObject): on None, ``inspect_branch`` says which.
        """
        rows = lookup.head_rows(self.engine, repo, branch)
        if not rows:
            return None
        upstream = tuple(sorted({r.lookup_upstream for r in rows if r.lookup_upstream is not None}))
        return _commit_from_row(rows[0], upstream, rows[0].lookup_merge_parent)

    def inspect_commit(self, repo: str, ref: str) -> Commit:
        with self.engine.connect() as conn:
            self._require_repo(conn, repo)
            commit_id = self._resolve(conn, repo, ref)
            return self._commit(conn, commit_id)

    def _commit(self, conn: Connection, commit_id: str) -> Commit:
        row = conn.execute(select(commits).where(commits.c.id == commit_id)).first()
        if row is None:
            raise CommitNotFound(f"commit {commit_id} not found")
        prov = conn.execute(
            select(commit_provenance.c.upstream).where(commit_provenance.c.commit == commit_id)
        ).scalars().all()
        second = conn.execute(
            select(commit_parents.c.parent).where(commit_parents.c.commit == commit_id, commit_parents.c.position == 1)
        ).scalar()
        return _commit_from_row(row, tuple(sorted(prov)), second)

    def _commits(self, conn: Connection, ids: Sequence[str]) -> dict[str, tuple[int, Commit]]:
        """(seq, commit) of each of ``ids`` that exists, in three queries per batch (a history walk)."""
        found: dict[str, tuple[int, Commit]] = {}
        wanted = list(dict.fromkeys(ids))
        for i in range(0, len(wanted), _BATCH):
            batch = wanted[i:i + _BATCH]
            upstream: dict[str, list[str]] = {}
            query = select(commit_provenance.c.commit, commit_provenance.c.upstream)
            for child, up in conn.execute(query.where(commit_provenance.c.commit.in_(batch))):
                upstream.setdefault(child, []).append(up)
            query = select(commit_parents.c.commit, commit_parents.c.parent).where(commit_parents.c.position == 1)
            second = {child: parent for child, parent in conn.execute(query.where(commit_parents.c.commit.in_(batch)))}
            for row in conn.execute(select(commits).where(commits.c.id.in_(batch))):
                commit = _commit_from_row(row, tuple(sorted(upstream.get(row.id, ()))), second.get(row.id))
                found[row.id] = (row.seq, commit)
        return found

    def list_commits(
        self, repo: str, branch: str | None = None, *, limit: int | None = None, state: str | None = None,
        first_parent: bool = False, until: str | None = None,
    ) -> list[Commit]:
        """Newest first. With a branch (or any ref): its history from the head, through both
        parents of merge commits (``first_parent``: the first-parent line only), stopping
        before ``until``."""
        with self.engine.connect() as conn:
            self._require_repo(conn, repo)
            if branch is None:
                query = select(commits).where(commits.c.repo == repo).order_by(commits.c.seq.desc())
                if state:
                    query = query.where(commits.c.state == state)
                if limit:
                    query = query.limit(limit)
                rows = conn.execute(query).all()
                return [self._commit(conn, r.id) for r in rows]
            row = None if is_commit_id(parse_ancestry(branch)[0]) else self._branch_row(conn, repo, branch)
            start = row.head if row is not None else self._resolve(conn, repo, branch)
            stop = self._resolve(conn, repo, until) if until else None
            return self._history(conn, start, limit=limit, state=state, first_parent=first_parent, until=stop)

    def wait_commit(self, repo: str, ref: str, *, timeout: float | None = None) -> Commit:
        """Block until the commit is finished (or failed)."""
        commit_id = self.resolve(repo, ref)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            commit = self.inspect_commit(repo, commit_id)
            if commit.is_finished:
                return commit
            if deadline is not None and time.monotonic() > deadline:
                raise Timeout(f"commit {repo}@{commit_id} did not finish within {timeout}s")
            time.sleep(_WAIT_POLL)

    def delete_commit(self, repo: str, ref: str) -> None:
        """Drop an open commit, or a finished one that nothing builds on."""
        with self.engine.begin() as conn:
            self._require_repo(conn, repo)
            commit_id = self._resolve(conn, repo, ref)
            row = conn.execute(select(commits).where(commits.c.id == commit_id)).first()
            if conn.execute(select(commits.c.id).where(commits.c.parent == commit_id)).first() or conn.execute(
                select(commit_parents.c.commit).where(commit_parents.c.parent == commit_id)
            ).first():
                raise InvalidArgument(f"commit {repo}@{commit_id} has children; delete them first")
            self._refuse_delete(conn, repo, commit_id)
            users = conn.execute(
                select(commits.c.repo, commits.c.id)
                .select_from(commit_provenance.join(commits, commits.c.id == commit_provenance.c.commit))
                .where(commit_provenance.c.upstream == commit_id, commits.c.state != CommitState.OPEN.value)
            ).all()
            if users:
                raise BranchInUse(
                    f"commit {repo}@{commit_id} is provenance of finished commits "
                    + ", ".join(f"{r}@{c}" for r, c in users)
                )
            # Open commits opened downstream because of this one, transitively (raw -> clean -> model).
            doomed = [commit_id]
            for cid in doomed:
                doomed.extend(
                    c for c in conn.execute(
                        select(commit_provenance.c.commit)
                        .select_from(commit_provenance.join(commits, commits.c.id == commit_provenance.c.commit))
                        .where(commit_provenance.c.upstream == cid, commits.c.state == CommitState.OPEN.value)
                    ).scalars()
                    if c not in doomed
                )
            for cid in doomed:
                victim = conn.execute(select(commits).where(commits.c.id == cid)).first()
                if victim is None:
                    continue
                conn.execute(
                    update(branches).where(branches.c.head == cid).values(head=victim.parent)
                )
                conn.execute(
                    delete(commit_provenance).where(
                        (commit_provenance.c.commit == cid) | (commit_provenance.c.upstream == cid)
                    )
                )
                conn.execute(delete(commit_parents).where(commit_parents.c.commit == cid))
                conn.execute(delete(commits).where(commits.c.id == cid))
            del row

    def _refuse_delete(self, conn: Connection, repo: str, commit_id: str) -> None:
        """A tagged commit, or the head of a protected branch, stays."""
        tagged = conn.execute(select(tags.c.name).where(tags.c.repo == repo, tags.c.commit == commit_id)).first()
        if tagged:
            raise ProtectedBranch(f"commit {repo}@{commit_id} is tagged {tagged.name}; delete the tag first")
        for name in conn.execute(
            select(branches.c.name).where(branches.c.repo == repo, branches.c.head == commit_id)
        ).scalars():
            self._refuse_direct(conn, repo, name, "deleting its head commit")

    # -- commit sets and provenance ------------------------------------------------

    def commit_set(self, set_id: str) -> list[Commit]:
        """Every commit of a commit set: the origin commit and all it caused downstream."""
        with self.engine.connect() as conn:
            ids = conn.execute(
                select(commits.c.id).where(commits.c.commit_set == set_id).order_by(commits.c.seq)
            ).scalars().all()
            if not ids:
                raise CommitNotFound(f"commit set {set_id} not found")
            return [self._commit(conn, i) for i in ids]

    def wait_commit_set(self, set_id: str, *, timeout: float | None = None) -> list[Commit]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            found = self.commit_set(set_id)
            if all(c.is_finished for c in found):
                return found
            if deadline is not None and time.monotonic() > deadline:
                raise Timeout(f"commit set {set_id} did not finish within {timeout}s")
            time.sleep(_WAIT_POLL)

    def provenance(self, repo: str, ref: str, *, depth: int | None = None) -> list[ProvenanceEntry]:
        """Every commit this one was computed from, transitively (depth 1 = direct)."""
        return self._walk_provenance(repo, ref, depth, upstream=True)

    def subvenance(self, repo: str, ref: str, *, depth: int | None = None) -> list[ProvenanceEntry]:
        """Every commit computed from this one, transitively."""
        return self._walk_provenance(repo, ref, depth, upstream=False)

    def _walk_provenance(self, repo: str, ref: str, depth: int | None, *, upstream: bool) -> list[ProvenanceEntry]:
        if depth is not None and depth < 0:
            raise InvalidArgument("depth must be >= 0")
        src, dst = (
            (commit_provenance.c.commit, commit_provenance.c.upstream)
            if upstream
            else (commit_provenance.c.upstream, commit_provenance.c.commit)
        )
        with self.engine.connect() as conn:
            self._require_repo(conn, repo)
            start = self._resolve(conn, repo, ref)
            seen = {start}
            frontier = [start]
            out: list[ProvenanceEntry] = []
            level = 0
            while frontier and (depth is None or level < depth):
                level += 1
                nxt = conn.execute(select(dst).where(src.in_(frontier))).scalars().all()
                frontier = [c for c in dict.fromkeys(nxt) if c not in seen]
                seen.update(frontier)
                for cid in frontier:
                    c = conn.execute(
                        select(commits.c.repo, commits.c.branch, commits.c.origin).where(commits.c.id == cid)
                    ).one()
                    out.append(ProvenanceEntry(c.repo, cid, c.branch, level, Origin(c.origin)))
            return out


def _is(column: Any, value: Any) -> Any:
    return column.is_(None) if value is None else column == value


def _check_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise InvalidArgument("commit metadata must be a mapping of string keys")
    try:
        json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"commit metadata must be JSON-serializable: {exc}") from exc
    return dict(metadata)


def _commit_from_row(row: Any, provenance: tuple[str, ...], merge_parent: str | None = None) -> Commit:
    return Commit(
        id=row.id,
        repo=row.repo,
        branch=row.branch,
        parent=row.parent,
        origin=Origin(row.origin),
        state=CommitState(row.state),
        description=row.description,
        metadata=json.loads(row.meta),
        started=row.started,
        finished=row.finished,
        commit_set=row.commit_set,
        root=row.root,
        size_bytes=row.size_bytes,
        file_count=row.file_count,
        provenance=provenance,
        error=row.error,
        merge_parent=merge_parent,
    )
