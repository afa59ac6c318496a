"""The service's small requests under compiled load generators, against the same server's ``/healthz``.

Figures (``serve --no-pipelines`` on its default settings, fsync on; every
rate is a closed loop of 16 keep-alive connections on loopback):

* requests/s of S3 GetObject of a 1 KiB object (written through the gateway,
  so it carries its MD5 ETag and metadata; a presigned URL made once and
  replayed, so every request is authenticated as a client's would be) and of
  the API's content route for the same file (bearer token), under ``wrk``
  (Debian's package; the area is skipped without it), each as a ratio to
  ``GET /healthz`` of the same server under the same load. The loads run in
  rounds (healthz, GetObject, content, healthz, ...) and the figure is the
  median of the rounds' ratios, so both sides of a ratio see the same
  machine.
* HeadObject: ``wrk`` waits for a HEAD response's body (its parser is never
  told the request was a HEAD), so HeadObject and its ``/healthz`` peer run
  under ``benchmarks/_load.c`` (compiled here with ``cc``), in rounds as above.
* ``serve --workers 2`` against ``--workers 1``: GetObject requests/s of the
  two servers, on SQLite and on PostgreSQL (the local one at 127.0.0.1:5432),
  in rounds.
* memory: the server's resident size (all its processes) before and at the
  peak of the wrk loads, and before and at the peak of one 2 GiB upload (the
  HTTP API's streamed PUT, random bytes sent from this process).
* ``docs/service-throughput.png``: requests/s against connections (1 to 32)
  for ``/healthz``, GetObject, HeadObject and the content route, all under
  ``_load``: three passes of 3 s per point (each pass every concurrency,
  each concurrency every route), median per point.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._procs import HERE, datumflow_server, postgres_database, tree_rss
from .plot import plot

if TYPE_CHECKING:
    from .run import Context

REPO = "bench-s3"
BUCKET = f"master.{REPO}"
KEY = "small.bin"
CONNECTIONS = 16
GOAL = 0.5
MIB = 1024 * 1024
PLOT = HERE.parent / "docs" / "service-throughput.png"
_RATE = re.compile(r"Requests/sec:\s+([0-9.]+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")


class Load:
    """The load generators, and what one server's routes are."""

    def __init__(self, ctx: Context, wrk: str, load: str | None, seconds: float) -> None:
        self.ctx, self.wrk, self.load, self.seconds = ctx, wrk, load, seconds

    def wrk_rate(self, url: str, headers: tuple[str, ...] = (), connections: int = CONNECTIONS) -> float:
        cmd = [self.wrk, f"-t{min(2, connections)}", f"-c{connections}", f"-d{self.seconds:g}s"]
        for header in headers:
            cmd += ["-H", header]
        done = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=self.seconds + 60, check=True)
        bad = _NON_2XX.search(done.stdout)
        if bad and int(bad.group(1)):
            raise AssertionError(f"wrk saw {bad.group(1)} failed responses from {url.split('?')[0]}")
        match = _RATE.search(done.stdout)
        if match is None:
            raise AssertionError(f"no rate in wrk's output:\n{done.stdout}")
        return float(match.group(1))

    def load_rate(self, url: str, method: str = "GET", headers: tuple[str, ...] = (),
                  connections: int = CONNECTIONS) -> float:
        assert self.load is not None
        cmd = [self.load, "-c", str(connections), "-d", f"{self.seconds:g}", "-m", method]
        for header in headers:
            cmd += ["-H", header]
        done = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=self.seconds + 60, check=True)
        fields = done.stdout.split()
        got = dict(zip(fields[::2], fields[1::2], strict=True))
        if int(got["non2xx"]) or int(got["errors"]):
            raise AssertionError(f"_load saw {got['non2xx']} failed responses and {got['errors']} errors "
                                 f"from {method} {url.split('?')[0]}")
        return float(got["rps"])


class Server:
    """One serve process with its 1 KiB object: the URLs and headers of its routes."""

    def __init__(self, url: str, token: str, pid: int, root: Path, db: str | None) -> None:
        self.url, self.token, self.pid = url, token, pid
        s3 = _client(url, *_s3_key(root, db))
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=os.urandom(1024), ContentType="application/octet-stream")
        params = {"Bucket": BUCKET, "Key": KEY}
        self.get = s3.generate_presigned_url("get_object", Params=params, ExpiresIn=3600)
        self.head = s3.generate_presigned_url("head_object", Params=params, ExpiresIn=3600)
        self.healthz = url + "/healthz"
        self.content = f"{url}/api/v1/repos/{REPO}/commits/master/content?path={KEY}"
        self.bearer = (f"Authorization: Bearer {token}",)


def run(ctx: Context) -> list[dict[str, Any]]:
    wrk = shutil.which("wrk")
    if wrk is None:
        ctx.log("wrk is not installed (apt-get install wrk): small-request rates skipped")
        return []
    load = Load(ctx, wrk, _build_load(ctx), ctx.pick(5, 2))
    rounds = ctx.pick(5, 2)
    out: list[dict[str, Any]] = []
    with _server(ctx, "one") as one:
        out += _ratios(ctx, load, one, rounds)
        if load.load is not None:
            short = Load(ctx, wrk, load.load, ctx.pick(3, 1))
            _plot(ctx, short, one, ctx.pick([1, 2, 4, 8, 16, 32], [1, 4, 16]), ctx.pick(3, 1))
        out += _upload_memory(ctx, one, ctx.pick(2048, 256) * MIB)
    for backend in ("sqlite", "postgresql"):
        out += _workers(ctx, load, backend, rounds)
    return out


# -- the ratios to /healthz, and the memory under that load -----------------------------------


def _ratios(ctx: Context, load: Load, srv: Server, rounds: int) -> list[dict[str, Any]]:
    runs: dict[str, list[float]] = {k: [] for k in ("healthz", "get", "content", "healthz-load", "head")}
    before = tree_rss(srv.pid)
    first = 0
    with _sampling(srv.pid) as peak:
        for i in range(rounds):
            if i == 1:
                first = peak()
            ctx.log(f"round {i + 1}/{rounds}: /healthz, GetObject, content (wrk); /healthz, HeadObject (_load)")
            runs["healthz"].append(load.wrk_rate(srv.healthz))
            runs["get"].append(load.wrk_rate(srv.get))
            runs["content"].append(load.wrk_rate(srv.content, srv.bearer))
            if load.load is not None:
                runs["healthz-load"].append(load.load_rate(srv.healthz))
                runs["head"].append(load.load_rate(srv.head, "HEAD"))
    after = peak()
    out = []
    peer = f"/healthz of the same server, {CONNECTIONS} connections, {load.seconds:g} s x {rounds} rounds"
    for name, key, base, tool in (("s3.s3_get_object_1kib_wrk_rps", "get", "healthz", "wrk"),
                                  ("s3.api_content_1kib_wrk_rps", "content", "healthz", "wrk"),
                                  ("s3.s3_head_object_1kib_rps", "head", "healthz-load", "_load")):
        if not runs[key]:
            continue
        ratio = statistics.median(a / b for a, b in zip(runs[key], runs[base], strict=True))
        out.append(ctx.figure(
            name, statistics.median(runs[key]), "req/s",
            peer=f"{peer} ({tool}): median {statistics.median(runs[base]):.0f} req/s", ratio=ratio,
            goal=f">= {GOAL}x /healthz", met=ratio >= GOAL,
        ))
    out.append(ctx.figure(
        "s3.rss_under_wrk_load", after / MIB, "MiB",
        peer=f"RSS before the load {before / MIB:.0f} MiB; peak over the first round {first / MIB:.0f} MiB, "
             f"over all {rounds} rounds of every route (value)",
        ratio=after / before, goal="report (flat: about 1x)", met=None,
    ))
    return out


@contextmanager
def _sampling(pid: int, every: float = 0.1) -> Iterator[Callable[[], int]]:
    """Samples the server's RSS in a thread while the block runs; yields a function giving the peak."""
    peak = [tree_rss(pid)]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(every):
            peak[0] = max(peak[0], tree_rss(pid))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield lambda: peak[0]
    finally:
        stop.set()
        thread.join()


def _upload_memory(ctx: Context, srv: Server, size: int) -> list[dict[str, Any]]:
    """Peak RSS during one streamed upload of ``size`` random bytes through the HTTP API."""
    import httpx

    half = [0]

    def body() -> Iterator[bytes]:
        for i in range(size // MIB):  # fresh random bytes: the store would deduplicate repeated ones
            if i == size // MIB // 2:
                half[0] = peak()
            yield os.urandom(MIB)

    before = tree_rss(srv.pid)
    ctx.log(f"upload of {size // MIB} MiB, sampling the server's RSS")
    started = time.perf_counter()
    with _sampling(srv.pid) as peak, httpx.Client(timeout=600) as http:
        answer = http.put(f"{srv.url}/api/v1/repos/{REPO}/commits/master/content", params={"path": "big.bin"},
                          content=body(), headers={"Authorization": f"Bearer {srv.token}",
                                                   "Content-Type": "application/octet-stream"})
    seconds = time.perf_counter() - started
    if answer.status_code != 200:
        raise AssertionError(f"upload: {answer.status_code} {answer.text[:300]}")
    after = peak()
    return [ctx.figure(
        f"s3.rss_during_{size // MIB}mib_upload", after / MIB, "MiB",
        peer=f"RSS before the upload {before / MIB:.0f} MiB; peak over its first half {half[0] / MIB:.0f} MiB, "
             f"over all of it (value); {size / seconds / 1e6:.0f} MB/s through the HTTP API",
        ratio=after / before, goal="report (flat: about 1x)", met=None,
    )]


# -- the plot ------------------------------------------------------------------------------------


def _plot(ctx: Context, load: Load, srv: Server, conns: list[int], passes: int) -> None:
    routes: dict[str, Callable[[int], float]] = {
        "/healthz": lambda c: load.load_rate(srv.healthz, connections=c),
        "S3 GetObject 1 KiB": lambda c: load.load_rate(srv.get, connections=c),
        "S3 HeadObject 1 KiB": lambda c: load.load_rate(srv.head, "HEAD", connections=c),
        "API content 1 KiB": lambda c: load.load_rate(srv.content, headers=srv.bearer, connections=c),
    }
    runs: dict[tuple[str, int], list[float]] = {}
    for p in range(passes):
        for c in conns:  # every route at one concurrency, then the next: each point sees the same machine
            ctx.log(f"plot: pass {p + 1}/{passes}, {c} connection(s), every route")
            for name, rate in routes.items():
                runs.setdefault((name, c), []).append(rate(c))
    series = {name: [[c, statistics.median(runs[name, c])] for c in conns] for name in routes}
    spec = {"title": "datumflow serve: requests/s against concurrent connections (one process)",
            "note": f"closed loop, keep-alive, loopback; median of {passes} passes of {load.seconds:g} s a point; "
                    "2 cores, shared", "xlabel": "connections", "ylabel": "requests/s",
            "xlog": True, "series": series}
    if ctx.small:
        ctx.log("plot: small scale, docs/ left as it is")
        return
    failed = plot(spec, PLOT)
    ctx.log(failed or f"plot: {PLOT.relative_to(HERE.parent)}")


# -- workers ------------------------------------------------------------------------------------


def _workers(ctx: Context, load: Load, backend: str, rounds: int) -> list[dict[str, Any]]:
    rates: dict[int, list[float]] = {1: [], 2: []}
    with _server(ctx, f"{backend}-1", backend=backend) as one, \
            _server(ctx, f"{backend}-2", backend=backend, workers=2) as two:
        for i in range(rounds):
            ctx.log(f"{backend}: round {i + 1}/{rounds}: GetObject on --workers 1, then --workers 2 (wrk)")
            rates[1].append(load.wrk_rate(one.get))
            rates[2].append(load.wrk_rate(two.get))
    ratio = statistics.median(b / a for a, b in zip(rates[1], rates[2], strict=True))
    return [ctx.figure(
        f"s3.workers2_get_object_{backend}_rps", statistics.median(rates[2]), "req/s",
        peer=f"--workers 1 on {backend}: median {statistics.median(rates[1]):.0f} req/s (wrk, {CONNECTIONS} "
             f"connections, {rounds} rounds)",
        ratio=ratio, goal="> 1x (scales with cores)", met=ratio > 1.0,
    )]


# -- servers and tools ----------------------------------------------------------------------------


@contextmanager
def _server(ctx: Context, name: str, *, backend: str = "sqlite", workers: int = 1) -> Iterator[Server]:
    db = postgres_database() if backend == "postgresql" else None
    root = ctx.workdir / f"store-{name}"
    extra = ("--workers", str(workers)) if workers > 1 else ()
    with datumflow_server(root, ctx.workdir / f"serve-{name}.log", db=db, extra=extra) as (url, token, pid):
        yield Server(url, token, pid, root, db)


def _build_load(ctx: Context) -> str | None:
    """benchmarks/_load.c compiled into the scratch folder; None (HeadObject skipped) without a C compiler."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        ctx.log("no C compiler: HeadObject under load and the plot are skipped")
        return None
    out = ctx.workdir / "_load"
    subprocess.run([cc, "-O2", "-pthread", "-o", str(out), str(HERE / "_load.c")], check=True,
                   capture_output=True, timeout=120)
    return str(out)


def _s3_key(root: Path, db: str | None) -> tuple[str, str]:
    """A new S3 key pair of the admin (``auth s3-key create``)."""
    done = subprocess.run([sys.executable, "-m", "datumflow.storage_service.service.serve", "auth", "s3-key", "create",
                           "admin", "--root", str(root), *(["--db", db] if db else []), "--json"],
                          capture_output=True, text=True, check=True)
    pair = json.loads(done.stdout)
    return pair["access_key_id"], pair["secret_access_key"]


def _client(url: str, key: str, secret: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=url + "/s3", aws_access_key_id=key, aws_secret_access_key=secret,
                        region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))
