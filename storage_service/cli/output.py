"""How ``datumflow`` prints: one JSON document, aligned tables, fields, progress.

Human output is plain aligned text (stable for ``grep``/``awk``); ``--json``
output is the value objects' ``to_dict()``, one document per command.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

from datumflow.storage_service.cli.base import Context

__all__ = [
    "byte_progress",
    "emit",
    "human_size",
    "human_time",
    "jsonable",
    "print_fields",
    "print_json",
    "print_table",
]

PROGRESS_MIN_BYTES = 32 * 1024 * 1024

Render = Callable[[TextIO, Any], None]


def jsonable(value: Any) -> Any:
    """Value objects (anything with ``to_dict``), lists and dicts of them, as plain data."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def print_json(out: TextIO, value: Any) -> None:
    json.dump(jsonable(value), out, indent=2, sort_keys=True)
    out.write("\n")


def emit(ctx: Context, args: argparse.Namespace, value: Any, render: Render) -> None:
    """``--json``: one JSON document; otherwise the human rendering."""
    if getattr(args, "json", False):
        print_json(ctx.stdout, value)
    else:
        render(ctx.stdout, value)


def print_table(out: TextIO, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def print_fields(out: TextIO, fields: Sequence[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in fields) + 1
    for key, value in fields:
        out.write(f"{key + ':':<{width}} {'' if value is None else value}\n")


def human_size(n: int | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_time(ts: float | None) -> str:
    return "" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


@contextlib.contextmanager
def byte_progress(ctx: Context, description: str, total: int | None) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar on stderr, for large work on a terminal; else ``None``.

    ``total=None`` means unknown (a counter, no bar). Callers pass the yielded
    callback to the store only when it is not ``None``.
    """
    if not ctx.stderr_is_tty() or (total is not None and total < PROGRESS_MIN_BYTES):
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn()]
    with Progress(*columns, console=Console(file=ctx.stderr), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
