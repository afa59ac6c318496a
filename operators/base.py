"""What every datumflow operator shares: the connection id, a cached hook, lineage and the commit link."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from datumflow.plugin._compat import AirflowException, BaseOperator
from datumflow.plugin.hooks import DatumflowHook
from datumflow.plugin.links import DatumflowCommitLink
from datumflow.plugin.openlineage import operator_lineage
from datumflow.plugin.refs import airflow_metadata, commit_ref

__all__ = ["DatumflowBaseOperator", "with_conn_id"]


def with_conn_id(*fields: str) -> Sequence[str]:
    """``template_fields`` of an operator: its own plus ``datumflow_conn_id``."""
    return ("datumflow_conn_id", *fields)


class DatumflowBaseOperator(BaseOperator):
    """Base of datumflow operators: ``self.hook``, ``self.done(context, commit)`` and OpenLineage."""

    template_fields: Sequence[str] = with_conn_id()
    operator_extra_links = (DatumflowCommitLink(),)
    ui_color = "#d7ecf7"

    def __init__(self, *, datumflow_conn_id: str = DatumflowHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.datumflow_conn_id = datumflow_conn_id
        self.lineage_inputs: list[dict[str, Any]] = []
        self.lineage_outputs: list[dict[str, Any]] = []

    @cached_property
    def hook(self) -> DatumflowHook:
        return DatumflowHook(datumflow_conn_id=self.datumflow_conn_id)

    def metadata(self, context: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {**(extra or {}), **airflow_metadata(context)}

    def done(self, context: Any, commit: Any) -> dict[str, Any]:
        """The XCom value of a task that made ``commit``: its reference (and the link to it)."""
        ref = commit_ref(commit)
        self.lineage_outputs.append(ref)
        DatumflowCommitLink.persist(context, self.hook.console_url, ref)
        return ref

    def provenance_ids(self, values: Sequence[Any]) -> list[str]:
        """Commit ids of ``"repo@ref"`` strings, commit references (operator results) or plain ids."""
        from datumflow.storage_service.names import is_commit_id

        out = []
        for value in values or ():
            if isinstance(value, dict):
                out.append(str(value["commit"]))
            elif isinstance(value, str) and "@" in value:
                repo, _, ref = value.partition("@")
                out.append(str(self.hook.get_conn().resolve(repo, ref or "master")))
            elif isinstance(value, str) and is_commit_id(value):
                out.append(value)
            else:
                raise self.fail(f"provenance {value!r}: give 'repo@ref', a commit reference or a commit id")
        return out

    def fail(self, message: str) -> AirflowException:
        return AirflowException(f"{self.task_id}: {message}")

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        return operator_lineage(self.hook.address, self.lineage_inputs, self.lineage_outputs)

    def write(self, context: Any, repo: str, branch: str, work: Any, *, commit: Any = None,
              description: str = "", provenance: Sequence[str] = ()) -> dict[str, Any]:
        """Run ``work(commit_id)`` in ``commit`` (an open commit) or in a new commit finished here.

        A new commit that ``work`` fails is finished with the error: nothing half-written stays visible.
        """
        client = self.hook.get_conn()
        if commit:
            commit_id = commit["commit"] if isinstance(commit, dict) else str(commit)
            work(commit_id)
            return self.done(context, client.inspect_commit(repo, commit_id))
        with client.writing(repo, branch, description=description, metadata=self.metadata(context),
                            provenance=provenance, what=self.task_id) as opened:
            work(opened.id)
        assert opened.finished is not None
        return self.done(context, opened.finished)


def commit_id_of(value: Any) -> str:
    """A commit id from a commit reference (the dict operators return) or a plain id."""
    if isinstance(value, dict):
        return str(value["commit"])
    return str(value)
