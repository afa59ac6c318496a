"""The lineage view: which commits a DAG run made, and what each was computed from.

Served by Airflow 3's API server as a FastAPI sub-app (``fastapi_apps`` in
the plugin, mounted at ``/datumflow``) and linked from the DAG-run page as an
external view: ``/datumflow/lineage/{dag_id}/{run_id}`` (HTML; ``?format=json``
gives the data).
"""

from __future__ import annotations

import html
from typing import Any

from .refs import AIRFLOW_KEY

__all__ = ["create_app", "run_lineage"]


def run_lineage(client: Any, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Every commit the run made, with its direct provenance and subvenance."""
    out = []
    for repo in client.list_repos():
        for commit in client.list_commits(repo.name):
            stamp = commit.metadata.get(AIRFLOW_KEY) or {}
            if stamp.get("dag_id") != dag_id or stamp.get("run_id") != run_id:
                continue
            out.append({
                "repo": commit.repo, "branch": commit.branch, "commit": commit.id, "state": commit.state.value,
                "task_id": stamp.get("task_id"), "error": commit.error,
                "provenance": [f"{p.repo}@{p.commit}" for p in client.provenance(commit.repo, commit.id, depth=1)],
                "subvenance": [f"{p.repo}@{p.commit}" for p in client.subvenance(commit.repo, commit.id, depth=1)],
            })
    return out


def _page(dag_id: str, run_id: str, rows: list[dict[str, Any]]) -> str:
    e = html.escape
    body = "".join(
        f"<tr><td>{e(str(r['task_id']))}</td><td>{e(r['repo'])}@{e(str(r['branch']))}</td>"
        f"<td><code>{e(r['commit'][:12])}</code></td><td>{e(r['state'])}</td>"
        f"<td>{'<br>'.join(e(p) for p in r['provenance'])}</td>"
        f"<td>{'<br>'.join(e(s) for s in r['subvenance'])}</td></tr>"
        for r in rows
    )
    return (f"<html><head><title>datumflow lineage</title></head><body><h2>Commits of {e(dag_id)} / {e(run_id)}"
            f"</h2><table border=1><tr><th>task</th><th>branch</th><th>commit</th><th>state</th>"
            f"<th>computed from</th><th>used by</th></tr>{body}</table></body></html>")


def create_app(conn_id: str | None = None) -> Any:
    from fastapi import FastAPI, Query
    from fastapi.responses import HTMLResponse

    from .hooks import DatumflowHook

    app = FastAPI(title="datumflow lineage")

    @app.get("/lineage/{dag_id}/{run_id}", response_model=None)
    def lineage(dag_id: str, run_id: str, format: str = Query("html")) -> Any:
        hook = DatumflowHook(datumflow_conn_id=conn_id or DatumflowHook.default_conn_name)
        rows = run_lineage(hook.get_conn(), dag_id, run_id)
        return rows if format == "json" else HTMLResponse(_page(dag_id, run_id, rows))

    return app
