"""Small HTML builders for the console: every value passes through :func:`e` (escaped)."""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Iterable, Sequence
from urllib.parse import quote

__all__ = ["Raw", "e", "human_size", "link", "page", "q", "table", "when"]


class Raw(str):
    """HTML that is already safe (built by these helpers); not escaped again."""


def e(value: object) -> Raw:
    if isinstance(value, Raw):
        return value
    return Raw(html.escape("" if value is None else str(value), quote=True))


def q(value: str) -> str:
    """A path segment or query value, URL-encoded."""
    return quote(value, safe="")


def link(href: str, text: object, cls: str = "") -> Raw:
    klass = f' class="{e(cls)}"' if cls else ""
    return Raw(f'<a href="{e(href)}"{klass}>{e(text)}</a>')


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], cls: str = "") -> Raw:
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        body = f'<tr><td colspan="{len(headers)}" class="empty">nothing here yet</td></tr>'
    return Raw(f'<table class="{e(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def when(ts: float | None) -> str:
    if not ts:
        return "—"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def page(title: str, body: str, crumbs: Sequence[tuple[str, str]] = (), user: str = "") -> str:
    trail = " / ".join(str(link(h, t)) if h else f"<span>{e(t)}</span>" for h, t in crumbs)
    who = f'<span class="who">{e(user)}</span>' if user else ""
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)} · datumflow</title>"
        '<link rel="stylesheet" href="/console/static/console.css"></head><body>'
        '<header><a class="brand" href="/console/">datumflow</a>'
        '<nav><a href="/console/">Repos</a><a href="/console/pipelines">Pipelines</a></nav>'
        f"{who}</header>"
        f'<main><div class="crumbs">{trail}</div><h1>{e(title)}</h1>{body}</main></body></html>'
    )
