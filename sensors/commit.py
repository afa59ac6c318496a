"""Sensors on commits: a new commit on a branch, a file in a branch head, a commit set finished downstream."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datumflow.plugin._compat import deprecated_alias
from datumflow.plugin.triggers import CommitSetTrigger, CommitTrigger, FileTrigger

from .base import DatumflowBaseSensor

__all__ = [
    "CommitSensor", "CommitSetSensor", "DatumflowCommitSensor", "DatumflowCommitSetSensor", "DatumflowFileSensor",
    "FileSensor",
]


class DatumflowCommitSensor(DatumflowBaseSensor):
    """Wait for a finished commit on ``repo@branch`` newer than ``after`` (default: the head at start).

    ``path_glob``: only a commit that changes files matching it counts. Returns ``{"commit": ref}``.
    """

    template_fields: Sequence[str] = ("datumflow_conn_id", "repo", "branch", "after", "path_glob")

    def __init__(self, *, repo: str, branch: str = "master", after: str | None = None,
                 path_glob: str | None = None, poll_interval: float = 2.0, **kwargs: Any) -> None:
        super().__init__(poke_interval=poll_interval, **kwargs)
        self.repo, self.branch, self.after, self.path_glob = repo, branch, after, path_glob
        self.poll_interval = poll_interval

    def prepare(self, context: Any) -> None:
        from datumflow.storage_service.errors import BranchNotFound

        if self.after is None:
            try:
                self.after = self.hook.get_conn().inspect_branch(self.repo, self.branch).head
            except BranchNotFound:
                self.after = None
        elif isinstance(self.after, dict):
            self.after = self.after["commit"]

    def trigger(self) -> CommitTrigger:
        return CommitTrigger(repo=self.repo, branch=self.branch, after=self.after or None,
                             path_glob=self.path_glob, poll_interval=self.poll_interval,
                             **self.trigger_kwargs())


class DatumflowFileSensor(DatumflowBaseSensor):
    """Wait until ``pattern`` (a path or glob) matches a file in the head of ``repo@branch``."""

    template_fields: Sequence[str] = ("datumflow_conn_id", "repo", "branch", "pattern")

    def __init__(self, *, repo: str, pattern: str, branch: str = "master", poll_interval: float = 2.0,
                 **kwargs: Any) -> None:
        super().__init__(poke_interval=poll_interval, **kwargs)
        self.repo, self.branch, self.pattern, self.poll_interval = repo, branch, pattern, poll_interval

    def trigger(self) -> FileTrigger:
        return FileTrigger(repo=self.repo, branch=self.branch, pattern=self.pattern,
                           poll_interval=self.poll_interval, **self.trigger_kwargs())


class DatumflowCommitSetSensor(DatumflowBaseSensor):
    """Wait until everything downstream of a commit has finished; fail fast naming a failed commit.

    ``commit``: a commit reference (an operator's return value), or give ``commit_set`` directly.
    """

    template_fields: Sequence[str] = ("datumflow_conn_id", "commit", "commit_set")

    def __init__(self, *, commit: Any = None, commit_set: str | None = None, poll_interval: float = 2.0,
                 **kwargs: Any) -> None:
        super().__init__(poke_interval=poll_interval, **kwargs)
        self.commit, self.commit_set, self.poll_interval = commit, commit_set, poll_interval

    def prepare(self, context: Any) -> None:
        if self.commit_set:
            return
        ref = self.commit
        if isinstance(ref, str) and ref.startswith("{"):
            import json

            ref = json.loads(ref.replace("'", '"').replace("None", "null"))
        if not isinstance(ref, dict) or not ref.get("commit"):
            raise ValueError(f"{self.task_id}: give commit_set=, or commit= a commit reference dict, not {ref!r}")
        self.commit_set = ref.get("commit_set") or self.hook.get_conn().inspect_commit(
            ref["repo"], ref["commit"]).commit_set

    def trigger(self) -> CommitSetTrigger:
        return CommitSetTrigger(commit_set=str(self.commit_set), poll_interval=self.poll_interval,
                                **self.trigger_kwargs())


CommitSensor = deprecated_alias(DatumflowCommitSensor, "CommitSensor")
FileSensor = deprecated_alias(DatumflowFileSensor, "FileSensor")
CommitSetSensor = deprecated_alias(DatumflowCommitSetSensor, "CommitSetSensor")
