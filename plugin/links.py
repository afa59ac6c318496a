"""Operator extra link: from a task to the commit it made, in the datumflow console."""

from __future__ import annotations

from typing import Any

from ._compat import BaseOperatorLink

__all__ = ["DatumflowCommitLink", "commit_url"]

XCOM_KEY = "datumflow_commit_link"


def commit_url(console: str, repo: str, commit: str) -> str:
    """The console's page of a commit (``/console/repos/<repo>/commits/<id>``)."""
    from urllib.parse import quote

    return f"{console.rstrip('/')}/repos/{quote(repo, safe='')}/commits/{quote(commit, safe='')}"


class DatumflowCommitLink(BaseOperatorLink):
    name = "datumflow commit"

    @staticmethod
    def persist(context: Any, console: str | None, ref: dict[str, Any]) -> None:
        if console:
            context["ti"].xcom_push(key=XCOM_KEY, value=commit_url(console, ref["repo"], ref["commit"]))

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(ti_key=ti_key, key=XCOM_KEY)
        return str(value) if value else ""
