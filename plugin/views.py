"""The lineage view: which commits a DAG run made, what each was computed from, and its lineage picture.

Served by Airflow 3's API server as a FastAPI sub-app (``fastapi_apps`` in
the plugin, mounted at ``/datumflow``) and shown on the DAG-run page as an
external view: ``/datumflow/lineage/{dag_id}/{run_id}`` (HTML; ``?format=json``
gives the data). It answers only a user Airflow lets read the DAG's runs
(the same JWT, header or cookie, as Airflow's own UI and REST API). Each
commit links to its console page, and its lineage graph — the console's
picture — is embedded below the table.

The connection is read off-session (:mod:`.server`): the API server's
metastore session is never touched.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import quote

from .refs import AIRFLOW_KEY

__all__ = ["create_app", "run_lineage"]

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem;color:#1f2937}
h2{font-size:1.15rem}table{border-collapse:collapse;width:100%;margin-bottom:1.5rem}
th,td{border-bottom:1px solid #e5e7eb;padding:.4rem .6rem;text-align:left;vertical-align:top;font-size:.9rem}
th{background:#f3f4f6}code,.mono{font-family:ui-monospace,monospace}
.state-finished{color:#047857}.state-failed{color:#b91c1c}.state-open{color:#b45309}
iframe.lineage{width:100%;height:420px;border:1px solid #e5e7eb;border-radius:6px}
.empty{color:#6b7280}
"""


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


def _commit_href(console: str | None, ref: str) -> str | None:
    repo, _, commit = ref.partition("@")
    if not console:
        return None
    return f"{console}/repos/{quote(repo, safe='')}/commits/{quote(commit, safe='')}"


def _ref_cell(console: str | None, ref: str) -> str:
    e = html.escape
    repo, _, commit = ref.partition("@")
    label = f"{e(repo)}@<code>{e(commit[:12])}</code>"
    href = _commit_href(console, ref)
    return f'<a href="{e(href)}" target="_top">{label}</a>' if href else label


def page(dag_id: str, run_id: str, rows: list[dict[str, Any]], console: str | None) -> str:
    e = html.escape
    body_rows = "".join(
        f"<tr><td>{e(str(r['task_id']))}</td><td>{e(r['repo'])}@{e(str(r['branch']))}</td>"
        f"<td>{_ref_cell(console, r['repo'] + '@' + r['commit'])}</td>"
        f"<td class='state-{e(r['state'])}'>{e(r['state'])}{' — ' + e(r['error']) if r['error'] else ''}</td>"
        f"<td>{'<br>'.join(_ref_cell(console, p) for p in r['provenance']) or '—'}</td>"
        f"<td>{'<br>'.join(_ref_cell(console, s) for s in r['subvenance']) or '—'}</td></tr>"
        for r in rows
    )
    pictures = "".join(
        f"<h2>Lineage of {e(r['repo'])}@<code>{e(r['commit'][:12])}</code></h2>"
        f'<iframe class="lineage" title="lineage of {e(r["repo"])}@{e(r["commit"][:12])}" '
        f'src="{e(str(_commit_href(console, r["repo"] + "@" + r["commit"])))}/lineage"></iframe>'
        for r in rows if console
    )
    table = (f"<table><tr><th>task</th><th>branch</th><th>commit</th><th>state</th><th>computed from</th>"
             f"<th>used by</th></tr>{body_rows}</table>") if rows else \
        '<p class="empty">This run made no datumflow commit.</p>'
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>datumflow lineage</title>"
            f"<style>{STYLE}</style></head><body><h2>Commits of {e(dag_id)} / {e(run_id)}</h2>"
            f"{table}{pictures}</body></html>")


def _read(conn_id: str, dag_id: str, run_id: str) -> tuple[list[dict[str, Any]], str | None]:
    from .server import server_hook

    hook = server_hook(conn_id)
    try:
        return run_lineage(hook.get_conn(), dag_id, run_id), hook.console_url
    finally:
        hook.close()


def _reader() -> Any:
    """The dependency that lets through only users allowed to read the DAG's runs."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return requires_access_dag("GET", DagAccessEntity.RUN)


def create_app(conn_id: str | None = None) -> Any:
    from fastapi import Depends, FastAPI, Query
    from fastapi.responses import HTMLResponse, JSONResponse
    from starlette.concurrency import run_in_threadpool

    from .hooks import DatumflowHook

    app = FastAPI(title="datumflow lineage")
    name = conn_id or DatumflowHook.default_conn_name

    @app.get("/lineage/{dag_id}/{run_id}", response_model=None, dependencies=[Depends(_reader())])
    async def lineage(dag_id: str, run_id: str, format: str = Query("html")) -> Any:
        try:  # a thread of its own: nothing here may touch the API server's session
            rows, console = await run_in_threadpool(_read, name, dag_id, run_id)
        except Exception as exc:
            message = f"datumflow is not reachable through connection {name!r}: {type(exc).__name__}: {exc}"
            if format == "json":
                return JSONResponse({"detail": message}, status_code=502)
            return HTMLResponse(f"<p>{html.escape(message)}</p>", status_code=502)
        return rows if format == "json" else HTMLResponse(page(dag_id, run_id, rows, console))

    return app
