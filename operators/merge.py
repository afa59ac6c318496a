"""Publish, undo and name commits: merge a branch, revert a commit, tag a commit.

``DatumflowMergeOperator`` is the publish step of write-audit-publish: it
merges ``source`` into ``dest`` (fast-forward or a three-way merge), stamps
the merge commit (always one, unless ``fast_forward=True``) with the task's
dag/run/task ids, and fails the task on conflicts
(nothing moves) or on a failed merge check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datumflow.plugin._compat import deprecated_alias
from datumflow.storage_service.errors import CheckFailed, MergeConflict

from .base import DatumflowBaseOperator, with_conn_id

__all__ = [
    "CreateTagOperator",
    "DatumflowCreateTagOperator",
    "DatumflowMergeOperator",
    "DatumflowRevertCommitOperator",
    "RevertCommitOperator",
]


class DatumflowMergeOperator(DatumflowBaseOperator):
    """Merge ``repo@source`` (a branch, tag or commit) into the branch ``dest``; returns the new head's ref."""

    template_fields: Sequence[str] = with_conn_id("repo", "source", "dest", "message", "checks")

    def __init__(self, *, repo: str, source: str, dest: str = "master", strategy: str | None = None,
                 message: str = "", checks: Sequence[str] = (), fast_forward: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.repo, self.source, self.dest, self.strategy = repo, source, dest, strategy
        self.message, self.checks, self.fast_forward = message, checks, fast_forward

    def execute(self, context: Any) -> dict[str, Any]:
        store = self.hook.get_conn()
        try:
            result = store.merge(
                self.repo, self.source, self.dest, strategy=self.strategy, message=self.message,
                metadata=self.metadata(context), checks=list(self.checks), fast_forward=self.fast_forward,
            )
        except (MergeConflict, CheckFailed) as exc:
            raise self.fail(str(exc)) from exc
        self.lineage_inputs.append({"repo": self.repo, "branch": None, "commit": result.source})
        ref = self.done(context, result.commit)
        return {**ref, "branch": self.dest, "status": result.status, "merge_base": result.base}


class DatumflowRevertCommitOperator(DatumflowBaseOperator):
    """A new commit on ``branch`` (default: the commit's own) undoing ``commit``'s changes."""

    template_fields: Sequence[str] = with_conn_id("repo", "commit", "branch", "message")

    def __init__(self, *, repo: str, commit: str, branch: str | None = None, message: str = "",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.repo, self.commit, self.branch, self.message = repo, commit, branch, message

    def execute(self, context: Any) -> dict[str, Any]:
        commit = self.commit["commit"] if isinstance(self.commit, dict) else self.commit
        try:
            undone = self.hook.get_conn().revert(self.repo, commit, branch=self.branch or None, message=self.message)
        except MergeConflict as exc:
            raise self.fail(str(exc)) from exc
        return self.done(context, undone)


class DatumflowCreateTagOperator(DatumflowBaseOperator):
    """Tag the commit ``ref`` resolves to (a branch head, an XCom commit ref, an id) as ``repo@tag``."""

    template_fields: Sequence[str] = with_conn_id("repo", "tag", "ref", "message")

    def __init__(self, *, repo: str, tag: str, ref: Any = "master", message: str = "", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.repo, self.tag, self.ref, self.message = repo, tag, ref, message

    def execute(self, context: Any) -> dict[str, Any]:
        ref = self.ref["commit"] if isinstance(self.ref, dict) else self.ref
        tag = self.hook.get_conn().create_tag(self.repo, self.tag, ref, message=self.message)
        return {"repo": tag.repo, "tag": tag.name, "commit": tag.commit}


RevertCommitOperator = deprecated_alias(DatumflowRevertCommitOperator, "RevertCommitOperator")
CreateTagOperator = deprecated_alias(DatumflowCreateTagOperator, "CreateTagOperator")
