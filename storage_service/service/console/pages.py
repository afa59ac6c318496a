"""The web console: ``build_router(get_store, auth=...)``, mounted at ``/console``.

Server-rendered HTML (escaped by :mod:`.console_html`), one stylesheet, no
scripts: repos, branches, commit logs, a file browser with downloads,
commit details with metadata and provenance, pipelines and their jobs, the
lineage graph of a commit drawn as SVG (:mod:`.console_graph`) and the
lineage of one file. With auth on, a token entered once at ``/console/login``
opens a session: an HttpOnly, SameSite=Strict cookie (Secure over https)
holding the token's hash signed with the server key — never the token — and
the pages show only readable repos. Every answer forbids framing
(``Content-Security-Policy: frame-ancestors 'none'``, ``X-Frame-Options: DENY``)
and scripts.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs

from datumflow.storage_service.errors import DatumflowError, NotFound, Unauthenticated, status_for
from datumflow.storage_service.model.core import Commit, FileInfo, ProvenanceEntry
from datumflow.storage_service.pipelines.lineage import LineageNode
from datumflow.storage_service.service.auth import ANONYMOUS_ADMIN, Auth, Principal, hash_token
from datumflow.storage_service.service.console import history as history_views
from datumflow.storage_service.service.console.graph import build_graph, render_svg
from datumflow.storage_service.service.console.html import Raw, e, human_size, link, page, q, table, when
from datumflow.storage_service.service.secrets import ServerKey
from datumflow.storage_service.store.store import Store
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

__all__ = ["build_router"]

STATIC = Path(__file__).parent / "static"
COOKIE = "datumflow_token"
PAGE = 200


def commit_url(repo: str, commit: str) -> str:
    return f"/console/repos/{q(repo)}/commits/{q(commit)}"


def file_lineage_url(repo: str, commit: str, path: str) -> str:
    return f"/console/lineage/{q(repo)}/{q(commit)}/" + "/".join(q(p) for p in path.split("/"))


_R = TypeVar("_R", bound=Response)

# No scripts, no frames, no foreign anything: a page of the console can be neither framed (clickjacking)
# nor made to run or load what an attacker put in a file name or commit message.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                               "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


FRAME_ANCESTORS_ENV = "DATUMFLOW_FRAME_ANCESTORS"


def _secured(response: _R) -> _R:
    response.headers.update(SECURITY_HEADERS)
    # Sites allowed to show console pages in a frame (Airflow's UI embeds the lineage picture): listed,
    # space-separated, in DATUMFLOW_FRAME_ANCESTORS; then CSP names them and X-Frame-Options (which
    # cannot name a site) is left out. Without it no page can be framed.
    ancestors = " ".join(a for a in os.environ.get(FRAME_ANCESTORS_ENV, "").split() if _is_source(a))
    if ancestors:
        policy = response.headers["Content-Security-Policy"].replace("frame-ancestors 'none'",
                                                                     f"frame-ancestors 'self' {ancestors}")
        response.headers["Content-Security-Policy"] = policy
        del response.headers["X-Frame-Options"]
    return response


def _is_source(text: str) -> bool:
    """A CSP host source such as https://airflow.example.com or http://127.0.0.1:* (nothing that ends the header)."""
    return text.startswith(("http://", "https://")) and not any(c in text for c in ";,'\"\\ ")


def build_router(get_store: Callable[[], Store], *, auth: Auth | None = None) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    views = _Views(get_store, auth)

    def view(render: Callable[..., str | Response]) -> Callable[..., Response]:
        def handler(request: Request, **params: Any) -> Response:
            try:
                who = views.principal(request)
            except Unauthenticated:
                return _secured(RedirectResponse("/console/login", status_code=303))
            try:
                out = render(who, request, **params)
            except DatumflowError as exc:
                status = status_for(exc)
                body = f'<p class="error">{e(type(exc).__name__)}: {e(exc)}</p>'
                return _secured(HTMLResponse(page("Error", body, [("/console/", "repos")], who.name),
                                             status_code=status))
            return _secured(out if isinstance(out, Response) else HTMLResponse(out))

        handler.__signature__ = _signature(render)  # type: ignore[attr-defined]
        return handler

    router.add_api_route("/", view(views.repos), methods=["GET"])
    router.add_api_route("/repos/{repo}", view(views.repo), methods=["GET"])
    router.add_api_route("/repos/{repo}/branches/{branch}", view(views.branch), methods=["GET"])
    router.add_api_route("/repos/{repo}/branches/{branch}/merge", view(views.merge_preview), methods=["GET"])
    merge_view = view(views.merge)

    async def merge(request: Request, repo: str, branch: str) -> Response:
        request.state.form_body = (await request.body()).decode(errors="replace")[:10_000]
        return await run_in_threadpool(merge_view, request, repo=repo, branch=branch)

    router.add_api_route("/repos/{repo}/branches/{branch}/merge", merge, methods=["POST"])
    router.add_api_route("/repos/{repo}/commits/{commit}", view(views.commit), methods=["GET"])
    router.add_api_route("/repos/{repo}/commits/{commit}/files", view(views.files), methods=["GET"])
    router.add_api_route("/repos/{repo}/commits/{commit}/download", view(views.download), methods=["GET"])
    router.add_api_route("/repos/{repo}/commits/{commit}/lineage", view(views.graph), methods=["GET"])
    router.add_api_route("/lineage/{repo}/{commit}/{path:path}", view(views.file_lineage), methods=["GET"])
    router.add_api_route("/pipelines", view(views.pipelines), methods=["GET"])
    router.add_api_route("/pipelines/{name}", view(views.pipeline), methods=["GET"])
    router.add_api_route("/login", views.login_form, methods=["GET"])
    router.add_api_route("/login", views.login, methods=["POST"])
    router.add_api_route("/static/{name}", _static, methods=["GET"])
    return router


def _signature(render: Callable[..., Any]) -> Any:
    """The route's parameters: the request plus the path parameters ``render`` takes after (who, request)."""
    import inspect

    params = list(inspect.signature(render).parameters.values())[2:]
    request = inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)
    return inspect.Signature([request, *[p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in params]])


def _static(name: str) -> Response:
    if name not in {p.name for p in STATIC.iterdir()}:
        return Response("not found", status_code=404)
    return FileResponse(STATIC / name, headers={"Cache-Control": "max-age=300"})


class _Views:
    def __init__(self, get_store: Callable[[], Store], auth: Auth | None) -> None:
        self.get_store = get_store
        self.auth = auth
        self._pipelines: Any = None
        self._key: ServerKey | None = None

    @property
    def store(self) -> Store:
        return self.get_store()

    @property
    def pipes(self) -> Any:
        if self._pipelines is None or self._pipelines.store is not self.store:
            from datumflow.storage_service.pipelines.engine import Pipelines

            self._pipelines = Pipelines(self.store)
        return self._pipelines

    def principal(self, request: Request) -> Principal:
        if self.auth is None or self.auth.open_mode():
            return ANONYMOUS_ADMIN
        session = self._server_key().unsign(request.cookies.get(COOKIE, ""))
        if session is None:
            raise Unauthenticated("no console session")
        return self.auth.authenticate_hash(session)

    def _server_key(self) -> ServerKey:
        if self._key is None:
            self._key = ServerKey.load(self.store.root)
        return self._key

    # -- login ----------------------------------------------------------------------

    def login_form(self, error: str = "") -> HTMLResponse:
        msg = f'<p class="error">{e(error)}</p>' if error else ""
        body = (
            f'{msg}<form method="post" action="/console/login" class="login">'
            '<label>Token <input type="password" name="token" autocomplete="off" required></label>'
            '<button type="submit">Sign in</button></form>'
            "<p class=\"hint\">A datumflow token (<code>datumflow auth token create NAME</code>).</p>"
        )
        return _secured(HTMLResponse(page("Sign in", body), status_code=401 if error else 200))

    async def login(self, request: Request) -> Response:
        token = parse_qs((await request.body()).decode("utf-8", "replace")).get("token", [""])[0]
        out = _secured(RedirectResponse("/console/", status_code=303))
        if self.auth is None or self.auth.open_mode():
            return out  # nothing to sign in to
        try:
            self.auth.authenticate(token)
        except Unauthenticated:
            return self.login_form("unknown or revoked token")
        # The cookie holds the token's hash, signed with the server key: never the token itself, which
        # would work on the API too. Revoking the token ends the session.
        session = self._server_key().sign(hash_token(token))
        out.set_cookie(COOKIE, session, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                       path="/console")
        return out

    # -- repos, branches, commits -----------------------------------------------------------

    def repos(self, who: Principal, request: Request) -> str:
        rows = [
            (link(f"/console/repos/{q(r.name)}", r.name), r.description,
             Raw(", ".join(link(f"/console/repos/{q(r.name)}/branches/{q(b)}", b) for b in r.branches)),
             human_size(r.size_bytes), when(r.created))
            for r in self.store.list_repos() if who.role_on(r.name)
        ]
        body = table(["repo", "description", "branches", "size (master)", "created"], rows, "repos")
        return page("Repos", body, [], who.name)

    def repo(self, who: Principal, request: Request, repo: str) -> str:
        who.require(repo, "reader")
        info = self.store.inspect_repo(repo)
        branches = [
            (link(f"/console/repos/{q(repo)}/branches/{q(b.name)}", b.name),
             link(commit_url(repo, b.head), b.head[:12]) if b.head else "—",
             ", ".join(str(p) for p in b.provenance) or "—", b.owner or "—")
            for b in self.store.list_branches(repo)
        ]
        recent = self._commit_rows(repo, self.store.list_commits(repo, limit=20), branch=True)
        body = (
            f'<p class="lead">{e(info.description)}</p><h2>Branches</h2>'
            + table(["branch", "head", "provenance", "written by pipeline"], branches)
            + "<h2>Recent commits</h2>"
            + table(["commit", "branch", "description", "origin", "state", "started", "files", "size"], recent)
        )
        return page(repo, body, [("/console/", "repos"), ("", repo)], who.name)

    def branch(self, who: Principal, request: Request, repo: str, branch: str) -> str:
        who.require(repo, "reader")
        commits = self.store.list_commits(repo, branch, limit=PAGE)
        own = {c.id for c in self.store.list_commits(repo, branch, limit=PAGE, first_parent=True)}
        others = self.store.inspect_repo(repo).branches
        body = (
            "<h2>Merge</h2>" + history_views.merge_form(repo, branch, list(others))
            + "<h2>Commit graph</h2>" + history_views.commit_graph(repo, commits[:60], own)
            + "<h2>Commit log</h2>" + table(
                ["commit", "description", "origin", "state", "started", "files", "size"],
                self._commit_rows(repo, commits, branch=False), "log",
            )
        )
        crumbs = [("/console/", "repos"), (f"/console/repos/{q(repo)}", repo), ("", branch)]
        return page(f"{repo}@{branch}", body, crumbs, who.name)

    def merge_preview(self, who: Principal, request: Request, repo: str, branch: str) -> str:
        who.require(repo, "reader")
        source = request.query_params.get("source", "")
        result = self.store.merge(repo, source, branch, dry_run=True)
        body = (history_views.merge_form(repo, branch, list(self.store.inspect_repo(repo).branches), source)
                + history_views.merge_preview(repo, result))
        crumbs = [("/console/", "repos"), (f"/console/repos/{q(repo)}", repo),
                  (f"/console/repos/{q(repo)}/branches/{q(branch)}", branch), ("", "merge")]
        return page(f"Merge {source} into {repo}@{branch}", body, crumbs, who.name)

    def merge(self, who: Principal, request: Request, repo: str, branch: str) -> Response:
        who.require(repo, "writer")
        history_views.same_origin(request)
        form = parse_qs(request.state.form_body)
        source = (form.get("source") or [""])[0]
        strategy = history_views.strategy_of((form.get("strategy") or [""])[0])
        result = self.store.merge(repo, source, branch, strategy=strategy, author=who.name,
                                  message=f"Merge {source} into {branch} (console)")
        target = result.commit.id if result.commit else branch
        return RedirectResponse(commit_url(repo, target), status_code=303)

    def _commit_rows(self, repo: str, commits: list[Commit], *, branch: bool) -> list[tuple[object, ...]]:
        rows: list[tuple[object, ...]] = []
        for c in commits:
            row: list[object] = [link(commit_url(repo, c.id), c.id[:12], "mono")]
            if branch:
                row.append(c.branch or "—")
            row += [c.description or "—", c.origin.value, _state(c), when(c.started), c.file_count,
                    human_size(c.size_bytes)]
            rows.append(tuple(row))
        return rows

    def commit(self, who: Principal, request: Request, repo: str, commit: str) -> str:
        who.require(repo, "reader")
        store = self.store
        c = store.inspect_commit(repo, commit)
        summary = table(["field", "value"], [
            ("id", Raw(f'<span class="mono">{e(c.id)}</span>')),
            ("branch", link(f"/console/repos/{q(repo)}/branches/{q(c.branch)}", c.branch) if c.branch else "—"),
            ("parent", link(commit_url(repo, c.parent), c.parent[:12]) if c.parent else "—"),
            *([("merged parent", link(commit_url(repo, c.merge_parent), c.merge_parent[:12]))]
              if c.merge_parent else []),
            ("origin", c.origin.value), ("state", _state(c)), ("description", c.description or "—"),
            ("started", when(c.started)), ("finished", when(c.finished)),
            ("files", c.file_count), ("size", human_size(c.size_bytes)), ("commit set", c.commit_set),
            ("error", c.error or "—"),
            *self._airflow_row(c),
        ], "kv")
        meta = table(["key", "value"], [(k, json.dumps(v) if not isinstance(v, str) else v)
                                        for k, v in sorted(c.metadata.items())], "kv")
        up = [self._entry_row(x) for x in store.provenance(repo, c.id, depth=1)]
        down = [self._entry_row(x) for x in store.subvenance(repo, c.id, depth=1)]
        graph = self._graph_svg(repo, c.id)
        body = (
            '<div class="grid"><section><h2>Commit</h2>' + summary + "</section>"
            "<section><h2>Metadata</h2>" + meta + self._job_block(c) + "</section></div>"
            f'<h2>Lineage graph <small>{link(commit_url(repo, c.id) + "/lineage", "open full page")}</small></h2>'
            f'<div class="graph-wrap">{graph}</div>'
            '<div class="grid"><section><h2>Provenance <small>(computed from)</small></h2>'
            + table(["repo", "commit", "branch", "origin"], up)
            + "</section><section><h2>Subvenance <small>(computed from it)</small></h2>"
            + table(["repo", "commit", "branch", "origin"], down) + "</section></div>"
            + "<h2>Changes</h2>" + self._changes(repo, c)
            + "<h2>Files</h2>" + self._listing(repo, c.id, "", None)
        )
        crumbs = [("/console/", "repos"), (f"/console/repos/{q(repo)}", repo)]
        if c.branch:
            crumbs.append((f"/console/repos/{q(repo)}/branches/{q(c.branch)}", c.branch))
        crumbs.append(("", c.id[:12]))
        return page(f"Commit {repo}@{c.id[:12]}", body, crumbs, who.name)

    @staticmethod
    def _airflow_row(c: Commit) -> list[tuple[object, ...]]:
        """The Airflow run that made the commit (``airflow.run_url`` in its metadata), if it is a web link."""
        stamp = c.metadata.get("airflow")
        if not isinstance(stamp, dict):
            return []
        url = stamp.get("run_url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return []
        label = f"{stamp.get('dag_id')} / {stamp.get('run_id')}"
        return [("Airflow run", link(url, label, "airflow-run"))]

    def _entry_row(self, x: ProvenanceEntry) -> tuple[object, ...]:
        return (x.repo, link(commit_url(x.repo, x.commit), x.commit[:12], "mono"), x.branch or "—", x.origin.value)

    def _job_block(self, c: Commit) -> str:
        try:
            job = self.pipes.job_for_commit(c.id)
        except (DatumflowError, LookupError):
            return ""
        counters = ", ".join(f"{k} {v}" for k, v in job.counters.items())
        return (
            "<h2>Job</h2>" + table(["field", "value"], [
                ("pipeline", link(f"/console/pipelines/{q(job.pipeline)}", job.pipeline)),
                ("job", job.id), ("state", job.state.value), ("datums", counters),
            ], "kv")
        )

    def _changes(self, repo: str, c: Commit) -> str:
        rows = []
        for i, d in enumerate(self.store.diff(repo, None, c.id)):
            if i == 50:
                rows.append(("…", "more changes not shown", ""))
                break
            changed = d.new or d.old
            size = changed.size if changed else 0
            rows.append((d.change, d.path, human_size(size)))
        return str(table(["change", "path", "size"], rows, "changes"))

    # -- files ------------------------------------------------------------------------

    def files(self, who: Principal, request: Request, repo: str, commit: str, path: str = "",
              after: str | None = None) -> str:
        who.require(repo, "reader")
        c = self.store.inspect_commit(repo, commit)
        crumbs = [("/console/", "repos"), (f"/console/repos/{q(repo)}", repo), (commit_url(repo, c.id), c.id[:12])]
        base = f"{commit_url(repo, c.id)}/files?path="
        so_far = ""
        for part in [p for p in path.split("/") if p]:
            so_far = posixpath.join(so_far, part)
            crumbs.append((base + q(so_far), part))
        return page(f"{repo}@{c.id[:12]}:/{path}", self._listing(repo, c.id, path, after), crumbs, who.name)

    def _listing(self, repo: str, commit: str, path: str, after: str | None) -> str:
        try:
            found = self.store.list_files(repo, commit, path, start_after=after, limit=PAGE)
        except NotFound:
            found = []
        base = commit_url(repo, commit)
        rows = [self._file_row(repo, commit, base, f) for f in found]
        more = ""
        if len(found) == PAGE:
            nxt = posixpath.basename(found[-1].path)
            more = f'<p>{link(f"{base}/files?path={q(path)}&after={q(nxt)}", "next page →")}</p>'
        return str(table(["name", "size", "content hash", ""], rows, "files")) + more

    def _file_row(self, repo: str, commit: str, base: str, f: FileInfo) -> tuple[object, ...]:
        name = posixpath.basename(f.path)
        if f.is_dir:
            return (link(f"{base}/files?path={q(f.path)}", name + "/", "dir"), human_size(f.size), "", "")
        return (
            link(f"{base}/download?path={q(f.path)}", name, "file"), human_size(f.size),
            Raw(f'<span class="mono">{e((f.hash or "")[:16])}</span>'),
            link(file_lineage_url(repo, commit, f.path), "lineage"),
        )

    def download(self, who: Principal, request: Request, repo: str, commit: str, path: str) -> Response:
        who.require(repo, "reader")
        info = self.store.inspect_file(repo, commit, path)
        name = posixpath.basename(info.path).replace('"', "")
        headers = {"Content-Length": str(info.size), "Content-Disposition": f'attachment; filename="{name}"',
                   "ETag": f'"{info.hash}"'}
        return StreamingResponse(self.store.open_file(repo, commit, info.path), headers=headers,
                                 media_type="application/octet-stream")

    # -- lineage ----------------------------------------------------------------------

    def _graph_svg(self, repo: str, commit: str) -> str:
        owners: dict[tuple[str, str | None], str | None] = {}

        def pipeline_of(c: Commit) -> str | None:
            key = (c.repo, c.branch)
            if key not in owners:
                try:
                    owners[key] = self.store.inspect_branch(c.repo, c.branch).owner if c.branch else None
                except DatumflowError:
                    owners[key] = None
            return owners[key]

        graph = build_graph(self.store, repo, commit, pipeline_of)
        note = '<p class="hint">The graph is cut at 80 commits.</p>' if graph.truncated else ""
        return render_svg(graph, lambda c: commit_url(c.repo, c.id) + "/lineage") + note

    def graph(self, who: Principal, request: Request, repo: str, commit: str) -> str:
        who.require(repo, "reader")
        c = self.store.inspect_commit(repo, commit)
        body = (
            '<p class="lead">Upstream commits on the left, downstream on the right; one lane per repo. '
            "Each pipeline is a labelled pill on the edges into the commit it computed; "
            "dashed lines are its spec (the code). "
            "Click a commit to centre the graph on it.</p>"
            f'<div class="graph-wrap">{self._graph_svg(repo, c.id)}</div>'
            f"<p>{link(commit_url(repo, c.id), 'commit details')}</p>"
        )
        crumbs = [("/console/", "repos"), (f"/console/repos/{q(repo)}", repo), (commit_url(repo, c.id), c.id[:12]),
                  ("", "lineage")]
        return page(f"Lineage of {repo}@{c.id[:12]}", body, crumbs, who.name)

    def file_lineage(self, who: Principal, request: Request, repo: str, commit: str, path: str) -> str:
        who.require(repo, "reader")
        c = self.store.inspect_commit(repo, commit)
        root = self.pipes.lineage(repo, c.id, path)
        body = (
            '<p class="lead">Where this file came from: the datum of each pipeline that wrote it, '
            "and that datum's input files, upstream to the files nobody computed.</p>"
            f'<ul class="tree">{_tree(root, 0)}</ul>'
        )
        crumbs = [("/console/", "repos"), (f"/console/repos/{q(repo)}", repo), (commit_url(repo, c.id), c.id[:12]),
                  ("", path)]
        return page(f"Lineage of {repo}:{path}", body, crumbs, who.name)

    # -- pipelines ------------------------------------------------------------------------

    def pipelines(self, who: Principal, request: Request) -> str:
        rows = [
            (link(f"/console/pipelines/{q(p.name)}", p.name), p.description or "—", ", ".join(p.inputs),
             f"{p.name}@{p.output_branch}", p.version, when(p.updated))
            for p in self.pipes.list_pipelines() if who.role_on(p.name)
        ]
        body = table(["pipeline", "description", "inputs", "output", "version", "updated"], rows, "pipelines")
        return page("Pipelines", body, [("/console/", "repos"), ("", "pipelines")], who.name)

    def pipeline(self, who: Principal, request: Request, name: str) -> str:
        who.require(name, "reader")
        info = self.pipes.inspect_pipeline(name)
        jobs = [
            (j.id[:12], j.state.value, link(commit_url(name, j.output_commit), j.output_commit[:12], "mono"),
             f"{j.total} total · {j.processed} run · {j.skipped} reused · {j.failed} failed", when(j.created),
             j.reason or "")
            for j in self.pipes.list_jobs(name)
        ]
        body = (
            f'<p class="lead">{e(info.description)}</p><h2>Jobs</h2>'
            + table(["job", "state", "output commit", "datums", "created", "reason"], jobs, "jobs")
            + f"<h2>Spec <small>version {e(info.version)}</small></h2>"
            f'<pre class="spec">{e(json.dumps(info.spec, indent=2))}</pre>'
        )
        return page(f"Pipeline {name}", body, [("/console/pipelines", "pipelines"), ("", name)], who.name)


def _state(c: Commit) -> Raw:
    return Raw(f'<span class="state {e(c.state.value)}">{e(c.state.value)}</span>')


def _tree(node: LineageNode, depth: int, limit: int = 50) -> str:
    label = (
        f'{link(commit_url(node.repo, node.commit), f"{node.repo}@{node.commit[:10]}", "mono")}:'
        f"{link(file_lineage_url(node.repo, node.commit, node.path), node.path, 'path')}"
    )
    by = ""
    if node.pipeline:
        by = (f' <span class="by">written by {link(f"/console/pipelines/{q(node.pipeline)}", node.pipeline)} '
              f'datum <span class="mono">{e((node.datum or "")[:10])}</span></span>')
    kids = "".join(_tree(k, depth + 1) for k in node.inputs[:limit])
    if len(node.inputs) > limit:
        kids += f'<li class="more">… and {len(node.inputs) - limit} more input files</li>'
    return f"<li>{label}{by}" + (f"<ul>{kids}</ul>" if kids else "") + "</li>"
