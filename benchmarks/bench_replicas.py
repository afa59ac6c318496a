"""Service replicas sharing one PostgreSQL database: throughput of one job with 1, 2 and 3 replicas,
and how long a survivor takes to finish the job of a replica killed mid-job.

Every replica is a ``serve`` process with its job loop on, over the same database and the same
object folder; the job is a copy of one small file per datum. Throughput is datums per second from
the pipeline's creation to the job's end, as a ratio to one replica. The takeover figure is the time
from the SIGKILL to the job's end, next to the lease (the least it can be).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import ExitStack
from typing import Any

from benchmarks._procs import free_port, http_ready, running
from benchmarks.run import Context

DATUMS = {"full": 2000, "small": 200}
LEASE = 5.0
COPY = ["sh", "-c", "cd /pfs && find . -path ./out -prune -o -type f -print | sed 's|^./||' | "
        "while read f; do mkdir -p \"out/$(dirname $f)\"; cp \"$f\" \"out/$f\"; done"]


def run(ctx: Context) -> list[dict[str, Any]]:
    n = ctx.pick(DATUMS["full"], DATUMS["small"])
    out: list[dict[str, Any]] = []
    rates: dict[int, float] = {}
    for replicas in (1, 2, 3):
        seconds, _ = _job(ctx, n, replicas, kill_after=None)
        rates[replicas] = n / seconds
        ctx.log(f"{replicas} replica(s): {n} datums in {seconds:.1f}s")
    for replicas in (1, 2, 3):
        out.append(ctx.figure(f"job of {n} datums, {replicas} replica(s) on PostgreSQL", rates[replicas], "datums/s",
                              peer="1 replica", ratio=rates[replicas] / rates[1],
                              goal="grows with replicas" if replicas > 1 else "", met=None if replicas == 1
                              else rates[replicas] > rates[1]))
    _, takeover = _job(ctx, n, 2, kill_after=n // 4)
    out.append(ctx.figure(f"survivor finishes a killed replica's job ({n} datums, 2 replicas)", takeover, "s",
                          peer=f"claim lease {LEASE:.0f}s", ratio=takeover / LEASE, goal="job ends", met=True))
    return out


def _job(ctx: Context, n: int, replicas: int, *, kill_after: int | None) -> tuple[float, float]:
    """(seconds from pipeline creation to job end, seconds from the kill to job end)."""
    db = _database()
    objects = ctx.workdir / f"objects-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "DATUMFLOW_JOB_LEASE": str(LEASE), "DATUMFLOW_FSYNC": "0"}
    with ExitStack() as stack:
        procs = []
        for i in range(replicas):
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            cmd = [sys.executable, "-m", "datumflow.storage_service.service.serve", "serve",
                   "--root", str(ctx.workdir / f"r{replicas}-{i}-{uuid.uuid4().hex[:6]}"), "--db", db,
                   "--objects", str(objects), "--port", str(port), "--log-level", "warning",
                   "--pipelines-interval", "0.2"]
            procs.append((url, stack.enter_context(running(f"replica {i}", cmd, ctx.workdir / f"r{i}.log",
                                                           http_ready(url + "/healthz"), env=env))))
        from datumflow.storage_service.client.http import Client

        first = Client(procs[0][0], retries=3)
        first.create_repo("in")
        first.put_files("in", "master", [(f"f{i:05d}.txt", b"datum %d\n" % i) for i in range(n)])
        start = time.perf_counter()
        first.pipelines.create_pipeline({
            "pipeline": {"name": "copy"}, "input": {"pfs": {"repo": "in", "glob": "/*"}},
            "transform": {"image": "alpine:3", "cmd": COPY}})
        job = _first_job(first)
        killed_at = None
        watcher = first
        while True:
            info = watcher.pipelines.inspect_job(job)
            if info.state.done:
                end = time.perf_counter()
                if info.state.value != "success":
                    raise RuntimeError(f"job {job} ended {info.state.value}: {info.reason}")
                break
            if kill_after is not None and killed_at is None:
                done = sum(d.state.value == "success" for d in watcher.pipelines.list_datums(job))
                if done >= kill_after:
                    procs[0][1].process.send_signal(signal.SIGKILL)
                    killed_at = time.perf_counter()
                    watcher = Client(procs[1][0], retries=3)
            time.sleep(0.2)
    return end - start, (end - killed_at) if killed_at else 0.0


def _first_job(client: Any) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        jobs = client.pipelines.list_jobs("copy")
        if jobs:
            return str(jobs[0].id)
        time.sleep(0.2)
    raise RuntimeError("the pipeline opened no job")


def _database() -> str:
    name = f"dfbench_{uuid.uuid4().hex[:8]}"
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f'CREATE DATABASE "{name}"'],
                   check=True, capture_output=True)
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


if __name__ == "__main__":
    raise SystemExit("run through: python -m benchmarks.run --only replicas")
