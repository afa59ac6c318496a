"""A commit opened in one task and finished in another.

If the DAG run fails in between, the plugin's listener finishes the open
commit with an error (see ``datumflow.plugin.listener``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import DatumflowBaseOperator, commit_id_of, with_conn_id

__all__ = ["FinishCommitOperator", "StartCommitOperator"]


class StartCommitOperator(DatumflowBaseOperator):
    """Open a commit on ``repo@branch``; returns its reference (``state: open``)."""

    template_fields: Sequence[str] = with_conn_id("repo", "branch", "description", "commit_metadata")

    def __init__(self, *, repo: str, branch: str = "master", description: str = "",
                 metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.repo, self.branch, self.description, self.commit_metadata = repo, branch, description, metadata

    def execute(self, context: Any) -> dict[str, Any]:
        commit = self.hook.get_conn().start_commit(
            self.repo, self.branch, description=self.description,
            metadata=self.metadata(context, self.commit_metadata),
        )
        return self.done(context, commit)


class FinishCommitOperator(DatumflowBaseOperator):
    """Finish an open commit (a reference from ``StartCommitOperator`` or an id); ``error`` fails it."""

    template_fields: Sequence[str] = with_conn_id("repo", "commit", "description", "error")

    def __init__(self, *, repo: str, commit: Any, description: str | None = None, error: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.repo, self.commit, self.description, self.error = repo, commit, description, error

    def execute(self, context: Any) -> dict[str, Any]:
        finishing = self.metadata(context)
        commit = self.hook.get_conn().finish_commit(
            self.repo, commit_id_of(self.commit), description=self.description,
            metadata={"airflow_finish": finishing["airflow"]}, error=self.error or None,
        )
        return self.done(context, commit)
