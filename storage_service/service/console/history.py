"""Console views of history: the commit graph with both parents of merges, and merging a branch.

The merge page previews a merge (a dry run: status, and every conflicting
path with the base, destination and source versions) and performs it on a
POST from the same origin, with an optional strategy; the destination then
shows the merge commit. No scripts: a form and server-rendered SVG.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from datumflow.storage_service.errors import Forbidden, InvalidArgument
from datumflow.storage_service.model.core import Commit, FileInfo
from datumflow.storage_service.model.history import MergeResult
from datumflow.storage_service.service.console.html import Raw, e, q, table
from fastapi import Request

__all__ = ["commit_graph", "merge_form", "merge_preview", "same_origin", "strategy_of"]

_ROW, _LANE, _R = 26, 22, 6


def commit_graph(repo: str, commits: list[Commit], first_parent: set[str]) -> Raw:
    """An SVG of the history: the branch's own line in the first lane, merged commits beside it,
    an edge from each commit to each of its parents (two for a merge commit)."""
    lanes: dict[str, int] = {}
    for c in commits:
        lanes[c.id] = 0 if c.id in first_parent else 1
    pos = {c.id: (12 + lanes[c.id] * _LANE, 14 + i * _ROW) for i, c in enumerate(commits)}
    edges, dots = [], []
    for c in commits:
        x, y = pos[c.id]
        for parent in c.parents:
            if parent in pos:
                px, py = pos[parent]
                cls = "merge-edge" if parent == c.merge_parent else "edge"
                edges.append(f'<path class="{cls}" d="M{x},{y} C{x},{y + _ROW / 2} {px},{py - _ROW / 2} {px},{py}" '
                             'fill="none" stroke="#6b8fb3" stroke-width="2"/>')
        fill = "#d98b2b" if c.merge_parent else "#2b6cb0"
        url = f"/console/repos/{q(repo)}/commits/{q(c.id)}"
        label = e(f"{c.id[:8]}  {c.description or ''}"[:70])
        dots.append(f'<a href="{e(url)}"><circle class="node{" merge" if c.merge_parent else ""}" cx="{x}" '
                    f'cy="{y}" r="{_R}" fill="{fill}"/><text x="{12 + 3 * _LANE}" y="{y + 4}" '
                    f'font-size="12" font-family="monospace">{label}</text></a>')
    height = 20 + len(commits) * _ROW
    return Raw(f'<svg class="history" xmlns="http://www.w3.org/2000/svg" width="720" height="{height}">'
               + "".join(edges) + "".join(dots) + "</svg>")


def merge_form(repo: str, dest: str, branches: list[str], source: str = "") -> Raw:
    options = "".join(f'<option value="{e(b)}"{" selected" if b == source else ""}>{e(b)}</option>'
                      for b in branches if b != dest)
    action = f"/console/repos/{q(repo)}/branches/{q(dest)}/merge"
    return Raw(
        f'<form class="merge" method="get" action="{e(action)}">merge <select name="source">{options}</select> '
        f'into <b>{e(dest)}</b> <button type="submit">preview</button></form>'
    )


def merge_preview(repo: str, result: MergeResult) -> Raw:
    rows = [(c.path, _side(c.base), _side(c.ours), _side(c.theirs)) for c in result.conflicts]
    action = f"/console/repos/{q(repo)}/branches/{q(result.dest)}/merge"
    hidden = f'<input type="hidden" name="source" value="{e(result.source)}"/>'
    if result.status == "up-to-date":
        return Raw(f"<p>{e(result.dest)} already has {e(result.source[:12])}: nothing to merge.</p>")
    if result.conflicts:
        choice = ('<select name="strategy"><option value="ours">ours: keep the destination\'s versions</option>'
                  '<option value="theirs">theirs: take the source\'s versions</option></select>')
        return Raw(
            f'<p class="error">{len(result.conflicts)} conflicting path(s): both sides changed them since '
            f"{e((result.base or '')[:12])}. Nothing moves unless a strategy settles them.</p>"
            + table(["path", "base", "ours (destination)", "theirs (source)"], rows, "conflicts")
            + f'<form method="post" action="{e(action)}">{hidden}{choice} <button type="submit">merge</button></form>'
        )
    kind = "a fast-forward" if result.status == "fast-forward" else f"a merge of {result.changed} path(s)"
    return Raw(f"<p>No conflicts: {e(kind)}.</p>"
               f'<form method="post" action="{e(action)}">{hidden}<button type="submit">merge</button></form>')


def same_origin(request: Request) -> None:
    """A form POST must come from a page of this console (the session is a cookie)."""
    sent = request.headers.get("origin") or request.headers.get("referer")
    if not sent or urlsplit(sent).netloc != request.headers.get("host"):
        raise Forbidden("a merge must be posted from the console's own page")


def strategy_of(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    if value not in ("ours", "theirs"):
        raise InvalidArgument(f"unknown strategy {value!r}")
    return value


def _side(info: FileInfo | None) -> str:
    return "absent" if info is None else f"{info.size} B · {(info.hash or '')[:12]}"

