"""Merge, revert and reset: bringing a branch's work back, undoing it, and rewinding.

A merge of ``source`` into the branch ``dest``:

* finds the merge base (the newest common ancestor, over both parents of
  merge commits: a walk down from both heads by creation order that stops
  at the first commit reached from both, so about O(commits since they
  diverged));
* is *up to date* if the source is already in the destination, a
  *fast-forward* if the destination is the base, and otherwise a three-way
  merge of the file indexes (:mod:`..core.merge`, O(changes on both sides));
* stops with :class:`MergeConflict` and moves nothing when both sides
  changed a path differently, unless a strategy settles it;
* stages the merge commit (two parents, the merger and the reason in its
  metadata, the union of both sides' provenance), runs the destination's
  checks and the merge's own on it, and only then moves the destination by
  compare-and-swap. A commit landing on the destination meanwhile makes the
  merge start over on the new head (a few times, then ConcurrentUpdate), so
  that commit is never lost.
"""

from __future__ import annotations

import getpass
import heapq
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

from datumflow.storage_service.core.history_schema import commit_parents
from datumflow.storage_service.core.inflight import gc_lock
from datumflow.storage_service.core.merge import STRATEGIES, three_way
from datumflow.storage_service.core.schema import branches, commit_provenance, commits
from datumflow.storage_service.errors import (
    CheckFailed,
    CommitOpen,
    ConcurrentUpdate,
    InvalidArgument,
    MergeConflict,
)
from datumflow.storage_service.model.bisect import run_command
from datumflow.storage_service.model.core import Branch, BranchRef, Commit, CommitState, Origin
from datumflow.storage_service.model.history import MergeResult, PathConflict
from datumflow.storage_service.store.base import StoreBase
from datumflow.storage_service.store.listing import file_info
from datumflow.storage_service.store.publish import EDIT_LOCK as _EDIT_LOCK
from sqlalchemy import Connection, delete, func, insert, literal, select, update

__all__ = ["MERGE_ATTEMPTS", "Merging"]

MERGE_ATTEMPTS = 20  # lost compare-and-swaps before ConcurrentUpdate
OPEN_HEAD_WAIT = 30.0  # seconds to wait for an open commit on the destination to finish
_OPEN_POLL = 0.05
_SHOWN_CONFLICTS = 20
_READ_AHEAD = 256  # commits a history walk reads per round trip along a first-parent line


class Merging(StoreBase):
    # -- ancestry ---------------------------------------------------------------------

    def merge_base(self, repo: str, a: str, b: str) -> str | None:
        """The newest common ancestor of two refs (None: unrelated histories)."""
        with self.engine.connect() as conn:
            self._require_repo(conn, repo)
            return self._merge_base(conn, self._resolve(conn, repo, a), self._resolve(conn, repo, b))

    def _merge_base(self, conn: Connection, a: str, b: str) -> str | None:
        if a == b:
            return a
        flags = {a: 1, b: 2}
        heap = [(-s, c) for s, c in self._seqs(conn, [a, b])]
        heapq.heapify(heap)
        while heap:
            _, cur = heapq.heappop(heap)
            mark = flags[cur]
            if mark == 3:  # every descendant of cur came out first (higher seq): its marks are final
                return cur
            for seq, parent in self._seqs(conn, self._parents(conn, cur)):
                known = flags.get(parent, 0)
                flags[parent] = known | mark
                if not known:
                    heapq.heappush(heap, (-seq, parent))
        return None

    def _parents(self, conn: Connection, commit_id: str) -> list[str]:
        first = conn.execute(select(commits.c.parent).where(commits.c.id == commit_id)).scalar()
        more = conn.execute(
            select(commit_parents.c.parent).where(commit_parents.c.commit == commit_id)
            .order_by(commit_parents.c.position)
        ).scalars().all()
        return [p for p in (first, *more) if p]

    def _seqs(self, conn: Connection, ids: list[str]) -> list[tuple[int, str]]:
        if not ids:
            return []
        return [(s, i) for i, s in conn.execute(select(commits.c.id, commits.c.seq).where(commits.c.id.in_(ids)))]

    def _history(
        self, conn: Connection, start: str | None, *, limit: int | None, state: str | None,
        first_parent: bool, until: str | None,
    ) -> list[Commit]:
        """Commits reachable from ``start``, newest (highest seq) first, not walking past ``until``.

        The walk reads ahead: each commit it reaches unread brings its first-parent line up to
        ``_READ_AHEAD`` commits back in one recursive query and three batched ones, so a linear
        history of any length costs a few round trips, not four per commit."""
        out: list[Commit] = []
        known: dict[str, tuple[int, Commit]] = {}
        ahead = _READ_AHEAD if limit is None else max(1, min(_READ_AHEAD, limit))

        def read(ids: list[str]) -> None:
            missing = [i for i in ids if i not in known]
            if missing:
                known.update(self._commits(conn, self._first_parent_lines(conn, missing, ahead)))

        read([start] if start else [])
        heap = [(-known[start][0], start)] if start in known else []
        seen = {start}
        while heap and (limit is None or len(out) < limit):
            _, cur = heapq.heappop(heap)
            if cur == until:
                continue
            commit = known[cur][1]
            if state is None or commit.state.value == state:
                out.append(commit)
            parents = [p for p in (commit.parents[:1] if first_parent else commit.parents) if p not in seen]
            read(parents)
            for parent in parents:
                if parent in known:
                    seen.add(parent)
                    heapq.heappush(heap, (-known[parent][0], parent))
        return out

    def _first_parent_lines(self, conn: Connection, ids: list[str], steps: int) -> list[str]:
        """``ids`` and their first parents, ``steps`` back at most, in one recursive query (on the
        primary key: a long history is never scanned)."""
        line = (select(commits.c.id, commits.c.parent, literal(0).label("step"))
                .where(commits.c.id.in_(ids)).cte("line", recursive=True))
        back = (select(commits.c.id, commits.c.parent, line.c.step + 1)
                .select_from(commits.join(line, commits.c.id == line.c.parent))
                .where(line.c.step < steps))
        line = line.union_all(back)
        return list(dict.fromkeys(conn.execute(select(line.c.id)).scalars()))

    def _is_ancestor(self, conn: Connection, ancestor: str, of: str) -> bool:
        return self._merge_base(conn, ancestor, of) == ancestor

    # -- merge --------------------------------------------------------------------------

    def merge(
        self, repo: str, source: str, dest: str, *, strategy: str | None = None, message: str = "",
        author: str | None = None, metadata: dict[str, Any] | None = None, checks: Sequence[str] = (),
        dry_run: bool = False, fast_forward: bool = True,
    ) -> MergeResult:
        """Merge ``source`` (any ref) into the branch ``dest``; see the module docstring.

        ``fast_forward=False`` makes a merge commit even when the destination has
        not moved since the source left it, so the publish is recorded (who, why).
        """
        if strategy is not None and strategy not in STRATEGIES:
            raise InvalidArgument(f"unknown merge strategy {strategy!r}: use ours or theirs")
        if isinstance(checks, str):
            raise InvalidArgument("checks must be a list of commands")
        who = author or _user()
        deadline = time.monotonic() + OPEN_HEAD_WAIT
        attempts = 0
        while attempts < MERGE_ATTEMPTS:
            plan = self._plan(repo, source, dest, strategy, fast_forward)
            if plan.status == "dest-open":  # a write is landing on the destination: wait for it
                if time.monotonic() > deadline:
                    raise CommitOpen(f"branch {repo}@{dest} has an open commit {plan.head}; finish it before merging")
                time.sleep(_OPEN_POLL)
                continue
            if plan.status == "up-to-date" or dry_run or (plan.conflicts and strategy is None):
                return self._unmoved(plan, dry_run)
            done = self._try_merge(plan, message, who, metadata or {}, checks)
            if done is not None:
                return done
            attempts += 1
        raise ConcurrentUpdate(f"branch {repo}@{dest} kept moving during the merge; try again")

    def _plan(self, repo: str, source: str, dest: str, strategy: str | None, fast_forward: bool = True) -> _Plan:
        with self.engine.connect() as conn:
            self._require_repo(conn, repo)
            row = self._require_branch(conn, repo, dest)
            self._refuse_output(conn, repo, dest, "merge")
            src = self._resolve(conn, repo, source)
            src_commit, head = self._commit(conn, src), row.head
            if src_commit.state is CommitState.OPEN:
                raise CommitOpen(f"commit {repo}@{src} is open; finish it before merging it")
            head_commit = self._commit(conn, head) if head else None
            if head_commit is not None and head_commit.state is CommitState.OPEN:
                plan = _Plan(repo, source, src, dest, head, None, strategy)
                plan.status = "dest-open"
                return plan
            base = self._merge_base(conn, src, head) if head else None
        plan = _Plan(repo, source, src, dest, head, base, strategy)
        if head is not None and base == src:
            plan.status = "up-to-date"
        elif head is None or (base == head and fast_forward):
            plan.status = "fast-forward"
        else:
            assert head_commit is not None
            base_root = self._root_of(base) if base else None
            merged = three_way(self.tree, base_root, head_commit.root, src_commit.root, strategy)
            plan.edits, plan.ours_root = merged.edits, head_commit.root
            plan.conflicts = tuple(
                PathConflict(p, _info(p, b), _info(p, o), _info(p, t)) for p, b, o, t in merged.conflicts
            )
        return plan

    def _unmoved(self, plan: _Plan, dry_run: bool) -> MergeResult:
        if plan.conflicts and plan.strategy is None and not dry_run:
            shown = ", ".join(c.path for c in plan.conflicts[:_SHOWN_CONFLICTS])
            more = len(plan.conflicts) - _SHOWN_CONFLICTS
            raise MergeConflict(
                f"merging {plan.source} into {plan.repo}@{plan.dest}: {len(plan.conflicts)} conflicting path(s): "
                f"{shown}{f' and {more} more' if more > 0 else ''}; nothing moved "
                "(resolve them, or merge with strategy ours or theirs; a dry run lists them all)"
            )
        status = "conflict" if plan.conflicts and plan.strategy is None else plan.status
        commit = self.inspect_commit(plan.repo, plan.head) if plan.head and not dry_run else None
        return plan.result(status, commit)

    def _try_merge(
        self, plan: _Plan, message: str, who: str, metadata: dict[str, Any], checks: Sequence[str]
    ) -> MergeResult | None:
        """One attempt: None if the destination moved meanwhile (the caller starts over)."""
        with self.engine.connect() as conn:
            protection = self._protection(conn, plan.repo, plan.dest)
        all_checks = [*(protection.checks if protection else ()), *checks]
        if plan.status == "fast-forward":
            self._run_checks(plan, plan.src, all_checks)
            moved = self._publish(plan, plan.src, None)
            return plan.result("fast-forward", self.inspect_commit(plan.repo, plan.src)) if moved else None
        staged, root = self._stage(plan, message, who, metadata)
        try:
            self._run_checks(plan, staged, all_checks)
            moved = self._publish(plan, staged, root)
        except BaseException:
            self._drop_staged(staged)
            raise
        if not moved:
            self._drop_staged(staged)
            return None
        commit = self.inspect_commit(plan.repo, staged)
        for callback in getattr(self, "on_commit_finished", ()):
            callback(commit)
        return plan.result("merged", commit)

    def _stage(self, plan: _Plan, message: str, who: str, metadata: dict[str, Any]) -> tuple[str, str | None]:
        """The merge commit, open and on no branch head yet, with its index written."""
        commit_id = uuid.uuid4().hex
        meta = {**metadata, "merge": {
            "source": plan.source, "source_commit": plan.src, "base": plan.base, "strategy": plan.strategy,
            "merged_by": who, "conflicts_resolved": len(plan.conflicts),
        }}
        with _EDIT_LOCK, self.engine.begin() as conn:
            gc_lock(conn, exclusive=False)  # its index nodes may be ones gc is about to collect
            try:
                root = self.tree.edit(plan.ours_root, plan.edits)
                files, size = self.tree.stats(root)
                self._write_nodes(conn)
            except BaseException:
                self.nodes.discard()
                raise
            seq = (conn.execute(select(func.max(commits.c.seq))).scalar() or 0) + 1
            conn.execute(insert(commits), {
                "id": commit_id, "seq": seq, "repo": plan.repo, "branch": plan.dest, "parent": plan.head,
                "origin": Origin.USER.value, "state": CommitState.OPEN.value,
                "description": message or f"Merge {plan.source} into {plan.dest}",
                "meta": json.dumps(meta, sort_keys=True), "started": time.time(), "finished": None,
                "commit_set": commit_id, "root": root, "size_bytes": size, "file_count": files, "error": None,
            })
            conn.execute(insert(commit_parents), {"commit": commit_id, "position": 1, "parent": plan.src})
            ups = conn.execute(select(commit_provenance.c.upstream).where(
                commit_provenance.c.commit.in_([plan.head, plan.src]))).scalars().all()
            for up in sorted(set(ups)):
                conn.execute(insert(commit_provenance), {"commit": commit_id, "upstream": up})
        return commit_id, root

    def _run_checks(self, plan: _Plan, commit_id: str, checks: Sequence[str]) -> None:
        for cmd in checks:
            code, output = run_command(self, plan.repo, commit_id, cmd)  # type: ignore[arg-type]
            if code != 0:
                raise CheckFailed(
                    f"merge check {cmd!r} failed (exit {code}) on the merge of {plan.source} into "
                    f"{plan.repo}@{plan.dest}; the branch did not move. Output: {output.strip()[-500:]}"
                )

    def _publish(self, plan: _Plan, commit_id: str, root: str | None) -> bool:
        """Finish the staged commit and move the destination by compare-and-swap, in one transaction."""
        try:
            with self.engine.begin() as conn:
                self._publish_in(conn, plan, commit_id, root)
        except _Moved:
            return False
        return True

    def _publish_in(self, conn: Connection, plan: _Plan, commit_id: str, root: str | None) -> None:
        if commit_id != plan.src:
            finished = conn.execute(
                update(commits).where(commits.c.id == commit_id, commits.c.state == CommitState.OPEN.value,
                                      _is(commits.c.root, root))
                .values(state=CommitState.FINISHED.value, finished=time.time())
            ).rowcount
            if finished != 1:
                raise ConcurrentUpdate(f"the staged merge commit {commit_id} was changed by a check")
        moved = conn.execute(
            update(branches).where(branches.c.repo == plan.repo, branches.c.name == plan.dest,
                                   _is(branches.c.head, plan.head)).values(head=commit_id)
        ).rowcount
        if moved != 1:
            raise _Moved  # rolls the transaction back: the staged commit stays unfinished
        set_id = commit_id if commit_id != plan.src else uuid.uuid4().hex
        self._open_downstream(conn, BranchRef(plan.repo, plan.dest), set_id)
        self._finish_aliases(conn, set_id)

    def _drop_staged(self, commit_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(commit_parents).where(commit_parents.c.commit == commit_id))
            conn.execute(delete(commit_provenance).where(commit_provenance.c.commit == commit_id))
            conn.execute(delete(commits).where(commits.c.id == commit_id, commits.c.state == CommitState.OPEN.value))

    # -- revert and reset -----------------------------------------------------------------

    def revert(self, repo: str, ref: str, *, branch: str | None = None, message: str = "") -> Commit:
        """A new commit on ``branch`` (default: the commit's own) undoing ``ref``'s changes.

        A merge commit is reverted against its first parent. A path changed
        again since is a conflict (MergeConflict), and nothing is written.
        """
        target = self.inspect_commit(repo, ref)
        if target.state is CommitState.OPEN:
            raise CommitOpen(f"commit {repo}@{target.id} is open; only a finished commit can be reverted")
        on = branch or target.branch
        if on is None:
            raise InvalidArgument(f"commit {repo}@{target.id} is on no branch; name the branch to revert it on")
        parent_root = self._root_of(target.parent) if target.parent else None
        undo = [(k, now, before) for k, now, before in self.tree.diff(target.root, parent_root)]
        commit = self.start_commit(repo, on, description=message or f"Revert {target.id}",
                                   metadata={"reverts": target.id})

        def edits_for(root: str | None) -> dict[str, Any]:
            edits, clashes = {}, []
            for key, now, before in undo:
                current = self.tree.get(root, key)
                if current == now:
                    edits[key] = before
                elif current != before:
                    clashes.append(key)
            if clashes:
                raise MergeConflict(
                    f"cannot revert {target.id} on {repo}@{on}: changed again since: {', '.join(clashes[:20])}"
                )
            return edits

        try:
            self.write_entries(repo, commit.id, edits_for, verb="revert")
        except BaseException as exc:
            self.finish_commit(repo, commit.id, error=f"revert failed: {exc}")
            raise
        return self.finish_commit(repo, commit.id)

    def reset_branch(self, repo: str, branch: str, to: str, *, force: bool = False) -> Branch:
        """Move ``branch`` back to an ancestor of its head; the commits after it leave the branch."""
        with self.engine.begin() as conn:
            row = self._require_branch(conn, repo, branch)
            self._refuse_direct(conn, repo, branch, "a reset")
            target = self._resolve(conn, repo, to)
            if row.head is None or not self._is_ancestor(conn, target, row.head):
                raise InvalidArgument(f"{to} is not an ancestor of {repo}@{branch}: a reset only goes back")
            if not force:
                raise InvalidArgument(
                    f"resetting {repo}@{branch} to {target} drops the commits after it from the branch; "
                    "pass force to do it"
                )
            if self._commit(conn, row.head).state is CommitState.OPEN:
                raise CommitOpen(f"branch {repo}@{branch} has an open commit; finish or delete it first")
            conn.execute(update(branches).where(branches.c.repo == repo, branches.c.name == branch,
                                                branches.c.head == row.head).values(head=target))
        return self.inspect_branch(repo, branch)


class _Moved(Exception):
    """The destination moved under a merge: start over on its new head."""


class _Plan:
    """What one merge attempt found: the commits, the base, and the edits or conflicts."""

    def __init__(self, repo: str, source: str, src: str, dest: str, head: str | None, base: str | None,
                 strategy: str | None) -> None:
        self.repo, self.source, self.src, self.dest = repo, source, src, dest
        self.head, self.base, self.strategy = head, base, strategy
        self.status = "merged"
        self.edits: dict[str, Any] = {}
        self.ours_root: str | None = None
        self.conflicts: tuple[PathConflict, ...] = ()

    def result(self, status: str, commit: Commit | None) -> MergeResult:
        return MergeResult(status, self.repo, self.src, self.dest, self.base, commit, self.conflicts,
                           len(self.edits), self.strategy)


def _info(path: str, entry: Any) -> Any:
    return file_info(path, entry) if entry is not None else None


def _is(column: Any, value: Any) -> Any:
    return column.is_(None) if value is None else column == value


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
