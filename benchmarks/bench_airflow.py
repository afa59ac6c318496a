"""Commit-triggered DAGs in a real Airflow deployment: DAG runs per commit in a burst, commit-to-run latency.

The deployment is ``tests/airflow/deployment.py``'s: ``api-server``,
``scheduler``, ``dag-processor`` and ``triggerer`` as processes over a fresh
PostgreSQL database, the connection in Airflow's database, and the DAG
``df_deploy_burst`` scheduled on ``datumflow://<repo>@master`` watched by a
``CommitEventTrigger``. A burst of commits is made as fast as the client
goes; the figures are how many DAG runs consumed exactly one commit (goal:
all of them) and, per commit, the time from its finish to its run's
creation (``queued_at``).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

from benchmarks._procs import datumflow_service, free_port
from benchmarks.run import Context

BURST = 20


def _database() -> tuple[Any, str] | None:
    try:
        import psycopg

        admin = psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", autocommit=True,
                                connect_timeout=5)
    except Exception:
        return None
    name = f"dfbench_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    return admin, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def _emitted(db_url: str) -> str | None:
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            value = conn.execute(sa.text("select value from asset_state_store where key = 'datumflow.emitted'"))
            found = value.scalar()
    finally:
        engine.dispose()
    return json.loads(found) if found else None


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run(ctx: Context) -> list[dict[str, Any]]:
    from datumflow.storage_service.client.http import Client

    from tests.airflow.deployment import Deployment, wait_for

    db = _database()
    if db is None:
        return [ctx.figure("airflow.runs_per_commit_burst20", None, "runs/commit", peer="PostgreSQL not reachable",
                           ratio=None, goal="1.0 (20 runs for 20 commits)", met=None)]
    admin, db_url = db
    repo = f"bench-burst-{uuid.uuid4().hex[:6]}"
    try:
        with datumflow_service(ctx.workdir / "store", ctx.workdir / "serve.log") as (url, token), \
                Client(url, token=token) as client:
            client.create_repo(repo)
            client.put_file(repo, "master", "seed", b"0")
            port = url.rsplit(":", 1)[1]
            dep = Deployment(ctx.workdir / "airflow", db_url, free_port(), extra_env={"DF_BURST_REPO": repo})
            ctx.log("airflow db migrate")
            dep.cli("db", "migrate", timeout=900)
            dep.cli("connections", "add", "datumflow_default", "--conn-type", "datumflow", "--conn-host",
                    "127.0.0.1", "--conn-port", port, "--conn-schema", "http", "--conn-password", token)
            dep.start()
            try:
                return _measure(ctx, dep, client, repo, db_url, wait_for)
            finally:
                dep.stop()
    finally:
        name = db_url.rsplit("/", 1)[1]
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _measure(ctx: Context, dep: Any, client: Any, repo: str, db_url: str, wait_for: Any) -> list[dict[str, Any]]:
    dep.wait_api(600)
    dep.wait_dag("df_deploy_burst", 600)
    seed = client.resolve(repo, "master")
    wait_for(lambda: _emitted(db_url) == seed, 600, lambda: "the watcher never started")
    ctx.log(f"burst of {BURST} commits")
    finished = {}
    for i in range(BURST):
        commit = client.put_file(repo, "master", f"b{i}", b"x")
        finished[commit.id] = commit.finished
    started = time.monotonic()
    wait_for(lambda: len(dep.runs("df_deploy_burst")) >= BURST or time.monotonic() - started > 900, 960,
             lambda: "no runs")
    time.sleep(5)
    runs = dep.runs("df_deploy_burst")
    single, latencies = 0, []
    for r in runs:
        events = dep.api("GET", f"/dags/df_deploy_burst/dagRuns/{r['dag_run_id']}/upstreamAssetEvents")
        commits = [e["extra"]["payload"]["commit"] for e in events["asset_events"]]
        if len(commits) == 1 and commits[0] in finished:
            single += 1
            latencies.append(_ts(r["queued_at"]) - float(finished[commits[0]]))
    latencies.sort()
    median = latencies[len(latencies) // 2] if latencies else None
    return [
        ctx.figure("airflow.runs_per_commit_burst20", single / BURST, "runs/commit",
                   peer=f"{len(runs)} DAG runs for {BURST} commits made back to back", ratio=single / BURST,
                   goal="1.0 (20 runs for 20 commits)", met=single == BURST),
        ctx.figure("airflow.commit_to_run_latency_median", median, "s",
                   peer=f"max {latencies[-1]:.1f} s; the whole burst drained in "
                        f"{time.monotonic() - started:.0f} s" if latencies else "no run",
                   ratio=None, goal="diagnostic: poll 0.5 s + one scheduler loop per commit", met=None),
    ]
