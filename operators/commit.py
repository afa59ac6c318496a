"""A commit opened in one task and finished in another.

If the DAG run fails in between, the plugin's listener finishes the open
commit with an error (see ``datumflow.plugin.listener``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datumflow.plugin._compat import deprecated_alias

from .base import DatumflowBaseOperator, commit_id_of, with_conn_id

__all__ = [
    "DatumflowFinishCommitOperator",
    "DatumflowStartCommitOperator",
    "FinishCommitOperator",
    "StartCommitOperator",
]


class DatumflowStartCommitOperator(DatumflowBaseOperator):
    """Open a commit on ``repo@branch``; returns its reference (``state: open``).

    ``provenance``: what the commit is computed from — ``"repo@ref"`` strings,
    commit references returned by other operators, or commit ids.
    """

    template_fields: Sequence[str] = with_conn_id("repo", "branch", "description", "commit_metadata", "provenance")

    def __init__(self, *, repo: str, branch: str = "master", description: str = "",
                 metadata: dict[str, Any] | None = None, provenance: Sequence[Any] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.repo, self.branch, self.description, self.commit_metadata = repo, branch, description, metadata
        self.provenance = provenance

    def execute(self, context: Any) -> dict[str, Any]:
        client = self.hook.get_conn()
        commit = client.start_commit(
            self.repo, self.branch, description=self.description,
            metadata=self.metadata(context, self.commit_metadata),
            provenance=self.provenance_ids(self.provenance),
        )
        return self.done(context, commit)


class DatumflowFinishCommitOperator(DatumflowBaseOperator):
    """Finish an open commit (a reference from ``StartCommitOperator`` or an id); ``error`` fails it.

    ``metadata``: key/values added to the commit's metadata as it finishes.
    """

    template_fields: Sequence[str] = with_conn_id("repo", "commit", "description", "error", "commit_metadata")

    def __init__(self, *, repo: str, commit: Any, description: str | None = None, error: str | None = None,
                 metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.repo, self.commit, self.description, self.error = repo, commit, description, error
        self.commit_metadata = metadata

    def execute(self, context: Any) -> dict[str, Any]:
        finishing = self.metadata(context)
        commit = self.hook.get_conn().finish_commit(
            self.repo, commit_id_of(self.commit), description=self.description,
            metadata={**(self.commit_metadata or {}), "airflow_finish": finishing["airflow"]},
            error=self.error or None,
        )
        return self.done(context, commit)


StartCommitOperator = deprecated_alias(DatumflowStartCommitOperator, "StartCommitOperator")
FinishCommitOperator = deprecated_alias(DatumflowFinishCommitOperator, "FinishCommitOperator")
