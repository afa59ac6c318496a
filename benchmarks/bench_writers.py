"""Concurrent writers on one branch: commits/s with 1, 4 and 16 writers, embedded and over HTTP.

Each writer makes single-file commits (``put_file`` to the branch: a commit of
its own each) for a fixed time budget; every writer is its own process
(embedded: its own ``Store`` on the same SQLite root; HTTP: its own client of
one ``serve`` process). The figure is commits/s over all writers; the ratio
is against one writer on the same surface (16-writer/1-writer should not
collapse: writers serialize on the branch head, so the goal is that the rate
holds, not that it grows). Every run checks that the branch holds exactly
the commits the writers were acknowledged.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._procs import datumflow_service

if TYPE_CHECKING:
    from .run import Context

REPO = "writers"


def _embedded(root: str, n: int, seconds: float, out: Any, ready: Any, start: Any) -> None:
    from datumflow.storage_service import Store

    with Store(root, fsync=False) as store:
        ready.put(n)
        start.wait()
        out.put(_loop(store, n, seconds))


def _http(url: str, token: str, n: int, seconds: float, out: Any, ready: Any, start: Any) -> None:
    from datumflow.storage_service.client.http import Client

    with Client(url, token=token) as client:
        client.inspect_repo(REPO)  # connected
        ready.put(n)
        start.wait()
        out.put(_loop(client, n, seconds))


def _loop(store: Any, n: int, seconds: float) -> int:
    done, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        store.put_file(REPO, "master", f"w{n}/f{done}", f"{n}-{done}".encode())
        done += 1
    return done


def _rate(target: Any, args: tuple[Any, ...], writers: int, seconds: float) -> tuple[float, int]:
    ctx = multiprocessing.get_context("spawn")
    out, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=target, args=(*args, n, seconds, out, ready, go)) for n in range(writers)]
    for p in procs:
        p.start()
    for _ in procs:  # every writer imported and connected: process start-up is not measured
        ready.get(timeout=600)
    start = time.monotonic()
    go.set()
    made = sum(out.get(timeout=seconds + 300) for _ in procs)
    for p in procs:
        p.join(60)
    return made / (time.monotonic() - start), made


def run(ctx: Context) -> list[dict[str, Any]]:
    seconds = ctx.pick(20.0, 4.0)
    out: list[dict[str, Any]] = []
    for surface in ("embedded", "http"):
        root = ctx.workdir / f"store-{surface}"
        rates: dict[int, float] = {}
        for writers in (1, 4, 16):
            rates[writers] = _measure(ctx, surface, root / str(writers), writers, seconds)
            one = rates[1]
            ratio = rates[writers] / one if one else None
            out.append(ctx.figure(
                f"writers.{surface}.{writers}", rates[writers], "commits/s",
                peer=f"1 writer ({surface})", ratio=ratio,
                goal="16-writer/1-writer >= 0.5" if writers == 16 else "-",
                met=None if writers != 16 or ratio is None else ratio >= 0.5,
            ))
    return out


def _measure(ctx: Context, surface: str, root: Path, writers: int, seconds: float) -> float:
    from datumflow.storage_service import Store

    with Store(str(root), fsync=False) as store:
        store.create_repo(REPO)
    if surface == "embedded":
        rate, made = _rate(_embedded, (str(root),), writers, seconds)
    else:
        with datumflow_service(root, ctx.workdir / f"serve-{writers}.log") as (url, token):
            rate, made = _rate(_http, (url, token), writers, seconds)
    with Store(str(root), fsync=False) as store:
        commits = len(store.list_commits(REPO, "master"))
    if commits != made:
        raise AssertionError(f"{surface} x{writers}: {made} acknowledged commits, {commits} in the history")
    ctx.log(f"writers {surface} x{writers}: {rate:.1f} commits/s ({made} commits)")
    return rate
