"""The lineage graph of a commit, laid out left to right and drawn as SVG on the server.

Nodes are the commit, everything upstream (provenance) and downstream
(subvenance) of it, plus the direct inputs of those commits (so a pipeline's
spec commit shows beside its data input). An edge runs from an input commit
to a commit computed from it; when a pipeline computed it, the edge carries
the pipeline's name. Columns are ranks (longest path from a source); rows
are repos, so the commits of one repo share a lane.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field

from datumflow.storage_service.errors import DatumflowError
from datumflow.storage_service.model.core import Commit, Origin
from datumflow.storage_service.store import queries
from datumflow.storage_service.store.store import Store

__all__ = ["Edge", "Graph", "build_graph", "render_svg"]

MAX_NODES = 80
NODE_W, NODE_H = 210, 50
COL_GAP, ROW_GAP, LANE_PAD, LABEL_W = 170, 16, 14, 120
PILL_OFFSET = 78  # a pipeline's pill sits this far left of the commit it computed
_PALETTE = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#4d7c0f", "#c026d3"]


@dataclass(frozen=True)
class Edge:
    upstream: str
    downstream: str
    label: str = ""  # the pipeline between them, "spec" for its code


@dataclass
class Graph:
    focus: str
    commits: dict[str, Commit] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)
    truncated: bool = False

    def repos(self) -> list[str]:
        return sorted({c.repo for c in self.commits.values()})


def build_graph(store: Store, repo: str, commit_id: str, pipeline_of: Callable[[Commit], str | None]) -> Graph:
    """The graph around ``repo@commit_id``; ``pipeline_of(commit)`` names the pipeline that wrote it."""
    focus = store.inspect_commit(repo, commit_id)
    graph = Graph(focus.id, {focus.id: focus})
    wanted = [(e.repo, e.commit) for e in store.provenance(repo, focus.id)]
    wanted += [(e.repo, e.commit) for e in store.subvenance(repo, focus.id)]
    for r, cid in wanted:
        _add(store, graph, r, cid)
    for commit in list(graph.commits.values()):  # one more level of inputs: spec commits, other inputs
        for up in commit.provenance:
            if up not in graph.commits:
                _add(store, graph, None, up)
    for commit in graph.commits.values():
        pipeline = pipeline_of(commit) if commit.origin in (Origin.PIPELINE, Origin.AUTO) else None
        for up in commit.provenance:
            if up in graph.commits:
                upc = graph.commits[up]
                label = "spec" if pipeline and upc.repo == commit.repo else (pipeline or "")
                graph.edges.append(Edge(up, commit.id, label))
    return graph


def _add(store: Store, graph: Graph, repo: str | None, commit_id: str) -> None:
    if len(graph.commits) >= MAX_NODES:
        graph.truncated = True
        return
    try:
        if repo is None:
            repo = queries.repo_of_commit(store, commit_id)
        graph.commits[commit_id] = store.inspect_commit(repo, commit_id)
    except DatumflowError:
        pass  # deleted meanwhile: leave it out


# -- layout ---------------------------------------------------------------------------------


def _ranks(graph: Graph) -> dict[str, int]:
    ups: dict[str, list[str]] = {cid: [] for cid in graph.commits}
    for e in graph.edges:
        ups[e.downstream].append(e.upstream)
    rank: dict[str, int] = {}

    def of(cid: str, trail: frozenset[str]) -> int:
        if cid not in rank:
            preds = [u for u in ups[cid] if u not in trail]
            rank[cid] = 1 + max((of(u, trail | {cid}) for u in preds), default=-1)
        return rank[cid]

    for cid in graph.commits:
        of(cid, frozenset())
    return rank


@dataclass(frozen=True)
class _Box:
    x: int
    y: int


def layout(graph: Graph) -> tuple[dict[str, _Box], list[tuple[str, int, int]], int, int]:
    """(node boxes, repo lanes as (repo, top, height), width, height)."""
    rank = _ranks(graph)
    boxes: dict[str, _Box] = {}
    lanes: list[tuple[str, int, int]] = []
    y = 10
    for repo in graph.repos():
        members = [c for c in graph.commits.values() if c.repo == repo]
        slots: dict[int, int] = {}
        for c in sorted(members, key=lambda c: (rank[c.id], c.branch or "", c.started)):
            row = slots.get(rank[c.id], 0)
            slots[rank[c.id]] = row + 1
            boxes[c.id] = _Box(LABEL_W + 20 + rank[c.id] * (NODE_W + COL_GAP), y + LANE_PAD + row * (NODE_H + ROW_GAP))
        rows = max(slots.values())
        height = 2 * LANE_PAD + rows * NODE_H + (rows - 1) * ROW_GAP
        lanes.append((repo, y, height))
        y += height + 10
    width = LABEL_W + 40 + (max(rank.values(), default=0) + 1) * (NODE_W + COL_GAP) - COL_GAP
    return boxes, lanes, width, y


# -- drawing -------------------------------------------------------------------------------


def render_svg(graph: Graph, href: Callable[[Commit], str]) -> str:
    boxes, lanes, width, height = layout(graph)
    colors = {repo: _PALETTE[i % len(_PALETTE)] for i, repo in enumerate(graph.repos())}
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" id="lineage-graph" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="lineage graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#64748b"/></marker></defs>',
    ]
    for repo, top, h in lanes:
        out.append(
            f'<g class="lane" data-repo="{_e(repo)}"><rect x="4" y="{top}" width="{width - 8}" height="{h}" rx="10" '
            f'fill="{colors[repo]}" fill-opacity="0.06" stroke="{colors[repo]}" stroke-opacity="0.25"/>'
            f'<text x="16" y="{top + h / 2 + 5:.0f}" class="lane-label" fill="{colors[repo]}">'
            f"{_e(_clip(repo, 14))}</text></g>"
        )
    pipes = {e.downstream: e.label for e in graph.edges if e.label and e.label != "spec"}
    for e in graph.edges:
        out.append(_edge_svg(e, boxes[e.upstream], boxes[e.downstream], e.downstream in pipes))
    for cid, name in pipes.items():
        out.append(_pipeline_svg(name, boxes[cid]))
    for cid, commit in graph.commits.items():
        out.append(_node_svg(commit, boxes[cid], colors[commit.repo], href(commit), cid == graph.focus))
    out.append("</svg>")
    return "\n".join(out)


def _edge_svg(edge: Edge, a: _Box, b: _Box, via_pipeline: bool) -> str:
    """A curve from ``a`` to ``b``; into a pipeline's pill when one computed ``b`` (dashed: its spec)."""
    x1, y1 = a.x + NODE_W, a.y + NODE_H // 2
    x2, y2 = b.x, b.y + NODE_H // 2
    if via_pipeline:
        x2 -= PILL_OFFSET + _pill_width(_pill_text(edge.label or "x")) // 2 - 4
    if x2 <= x1:  # same column (ranks prevent it): come in from below
        x2, y2 = b.x + NODE_W // 2, b.y + NODE_H
    mid = (x1 + x2) / 2
    dash = ' stroke-dasharray="5 4"' if edge.label == "spec" else ""
    arrow = "" if via_pipeline else ' marker-end="url(#arrow)"'
    return (
        f'<g class="edge" data-from="{edge.upstream}" data-to="{edge.downstream}" data-label="{_e(edge.label)}">'
        f'<path d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2 - (0 if via_pipeline else 2)},{y2}" fill="none" '
        f'stroke="#64748b" stroke-width="1.6"{dash}{arrow}/></g>'
    )


def _pill_text(name: str) -> str:
    return "⚙ " + _clip(name, 16)


def _pill_width(text: str) -> int:
    return 16 + 7 * len(text)


def _pipeline_svg(name: str, b: _Box) -> str:
    """The pipeline between a commit and its inputs: a labelled pill, then an arrow into the commit."""
    text = _pill_text(name)
    w = _pill_width(text)
    cx, cy = b.x - PILL_OFFSET, b.y + NODE_H // 2
    return (
        f'<g class="pipeline" data-pipeline="{_e(name)}">'
        f'<path d="M{cx + w // 2},{cy} L{b.x - 2},{cy}" stroke="#64748b" stroke-width="1.6" marker-end="url(#arrow)"/>'
        f'<rect x="{cx - w // 2}" y="{cy - 12}" width="{w}" height="24" rx="12" fill="#f1f5f9" stroke="#475569"/>'
        f'<text x="{cx}" y="{cy + 4}" text-anchor="middle" class="edge-label">{_e(text)}</text></g>'
    )


def _node_svg(commit: Commit, box: _Box, color: str, link: str, focus: bool) -> str:
    title = f"{commit.repo}@{commit.branch or '?'}"
    sub = f"{commit.id[:10]} · {commit.origin.value} · {commit.state.value}"
    stroke = f'stroke="{color}" stroke-width="{3 if focus else 1.5}"'
    fill = color if focus else "#ffffff"
    ink = "#ffffff" if focus else "#0f172a"
    sub_ink = "#e2e8f0" if focus else "#475569"
    return (
        f'<a href="{_e(link)}" class="node" data-commit="{commit.id}" data-repo="{_e(commit.repo)}">'
        f"<title>{_e(title)} {commit.id}</title>"
        f'<rect x="{box.x}" y="{box.y}" width="{NODE_W}" height="{NODE_H}" rx="8" fill="{fill}" {stroke}/>'
        f'<text x="{box.x + 12}" y="{box.y + 21}" class="node-title" fill="{ink}">{_e(_clip(title, 26))}</text>'
        f'<text x="{box.x + 12}" y="{box.y + 39}" class="node-sub" fill="{sub_ink}">{_e(sub)}</text></a>'
    )


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _e(text: str) -> str:
    return html.escape(text, quote=True)
