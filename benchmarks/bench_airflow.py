"""Commit-triggered DAGs in a real Airflow deployment: DAG runs per commit in a burst, commit-to-run latency.

The deployment is ``tests/airflow/deployment.py``'s: ``api-server``,
``scheduler``, ``dag-processor`` and ``triggerer`` as processes over a fresh
PostgreSQL database, the connection in Airflow's database. The DAG
``df_deploy_burst`` is scheduled on ``datumflow://<repo>@master``, watched
by a ``CommitEventTrigger`` (poll 0.5 s, paced by the listener's
acknowledgement).

Two peers, the same one-task DAG, in the same deployment, interleaved:

- ``df_deploy_rest`` (no schedule), triggered through Airflow's REST API
  (``POST /api/v2/dags/…/dagRuns``) right after each commit finishes, as a
  commit hook would: the fastest a run can follow a commit;
- ``df_deploy_pushed``, scheduled on an asset without a watcher, whose
  events are posted to Airflow's REST API (``POST /api/v2/assets/events``)
  after each commit, as the service's push does: Airflow's own asset path,
  which folds the events queued between two scheduler loops into one run.

Measured:

- a burst of 20 commits made back to back: how many DAG runs consumed
  exactly one commit (goal: all of them), and per commit the time from its
  finish to its run's creation (``queued_at``), median and p95;
- isolated commits (the previous run created before the next commit):
  the same time, median.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from benchmarks._procs import datumflow_service, free_port
from benchmarks.run import Context

BURST = 20
DAG_WATCHED, DAG_REST, DAG_PUSHED = "df_deploy_burst", "df_deploy_rest", "df_deploy_pushed"


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


def _ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


class _Airflow:
    """The deployment's REST API with one token (logging in per call would be measured too)."""

    def __init__(self, dep: Any) -> None:
        self.http = httpx.Client(base_url=f"{dep.url}/api/v2", timeout=120,
                                 headers={"Authorization": f"Bearer {dep.token()}"})

    def get(self, path: str, **params: Any) -> Any:
        answer = self.http.get(path, params=params)
        answer.raise_for_status()
        return answer.json()

    def trigger(self, commit: str) -> None:
        answer = self.http.post(f"/dags/{DAG_REST}/dagRuns", json={"logical_date": None, "conf": {"commit": commit}})
        answer.raise_for_status()

    def run_count(self, dag_id: str) -> int:
        return int(self.get(f"/dags/{dag_id}/dagRuns", limit=1)["total_entries"])

    def post_event(self, asset_id: int, commit: str) -> None:
        answer = self.http.post("/assets/events", json={"asset_id": asset_id, "extra": {"commit": commit}})
        answer.raise_for_status()

    def asset_id(self, uri: str) -> int:
        for asset in self.get("/assets", uri_pattern=uri, limit=100)["assets"]:
            if asset["uri"] == uri:
                return int(asset["id"])
        raise RuntimeError(f"no asset {uri}")

    def pushed_runs(self) -> dict[str, tuple[float, list[str]]]:
        out = {}
        for run in self.get(f"/dags/{DAG_PUSHED}/dagRuns", limit=1000)["dag_runs"]:
            events = self.get(f"/dags/{DAG_PUSHED}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")
            out[run["dag_run_id"]] = (_ts(run["queued_at"]), [e["extra"]["commit"] for e in events["asset_events"]])
        return out

    def watched_runs(self) -> dict[str, tuple[float, list[str]]]:
        """run id -> (queued_at, the commits of its asset events), for every run of the watched DAG."""
        out = {}
        for run in self.get(f"/dags/{DAG_WATCHED}/dagRuns", limit=1000)["dag_runs"]:
            events = self.get(f"/dags/{DAG_WATCHED}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")
            out[run["dag_run_id"]] = (_ts(run["queued_at"]), [e["extra"]["payload"]["commit"]
                                                             for e in events["asset_events"]])
        return out

    def rest_runs(self) -> dict[str, float]:
        """commit -> queued_at of its run of the peer DAG."""
        runs = self.get(f"/dags/{DAG_REST}/dagRuns", limit=1000)["dag_runs"]
        return {r["conf"]["commit"]: _ts(r["queued_at"]) for r in runs}


def run(ctx: Context) -> list[dict[str, Any]]:
    from datumflow.storage_service.client.http import Client

    from tests.airflow.deployment import Deployment

    db = _database()
    if db is None:
        return [ctx.figure("airflow.runs_per_commit_burst20", None, "runs/commit", peer="PostgreSQL not reachable",
                           ratio=None, goal="1.0 (20 runs for 20 commits)", met=None)]
    admin, db_url = db
    tag = uuid.uuid4().hex[:6]
    watched, other, pushed = f"bench-burst-{tag}", f"bench-rest-{tag}", f"bench-pushed-{tag}"
    try:
        with datumflow_service(ctx.workdir / "store", ctx.workdir / "serve.log") as (url, token), \
                Client(url, token=token) as client:
            for repo in (watched, other, pushed):
                client.create_repo(repo)
            client.put_file(watched, "master", "seed", b"0")
            port = url.rsplit(":", 1)[1]
            dep = Deployment(ctx.workdir / "airflow", db_url, free_port(), extra_env={"DF_BURST_REPO": watched,
                                                                                      "DF_PUSH_REPO": pushed})
            ctx.log("airflow db migrate")
            dep.prepare(port, password=token, migrate_timeout=900)
            dep.start()
            try:
                return _measure(ctx, dep, client, (watched, other, pushed), db_url)
            finally:
                dep.stop()
    finally:
        name = db_url.rsplit("/", 1)[1]
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
    from tests.airflow.deployment import wait_for

    return wait_for(check, timeout, lambda: f"timed out: {what}")


class _Rounds:
    """What both paths produced: per commit, its finish time and (once seen) its run's creation time."""

    def __init__(self, ctx: Context, dep: Any, client: Any, repos: tuple[str, str, str]) -> None:
        self.ctx, self.client = ctx, client
        self.watched, self.other, self.pushed = repos
        self.api = _Airflow(dep)
        self.pushed_asset = self.api.asset_id(f"datumflow://{self.pushed}@master")
        self.burst_pushed: list[str] = []
        self.alone_pushed: list[str] = []
        self.finished: dict[str, float] = {}
        self.burst_watched: list[str] = []
        self.burst_rest: list[str] = []
        self.alone_watched: list[str] = []
        self.alone_rest: list[str] = []
        self.n = 0

    def _commit(self, repo: str) -> str:
        self.n += 1
        commit = self.client.put_file(repo, "master", f"c{self.n}", b"x")
        self.finished[commit.id] = float(commit.finished)
        return str(commit.id)

    def watcher_burst(self) -> None:
        before = self.api.run_count(DAG_WATCHED)
        self.burst_watched += [self._commit(self.watched) for _ in range(BURST)]
        _wait(lambda: self.api.run_count(DAG_WATCHED) >= before + BURST, 600, "the watched DAG's runs of a burst")

    def rest_burst(self) -> None:
        for _ in range(BURST):
            commit = self._commit(self.other)
            self.api.trigger(commit)
            self.burst_rest.append(commit)

    def push_burst(self) -> None:
        for _ in range(BURST):
            commit = self._commit(self.pushed)
            self.api.post_event(self.pushed_asset, commit)
            self.burst_pushed.append(commit)

    def push_alone(self) -> None:
        before = self.api.run_count(DAG_PUSHED)
        commit = self._commit(self.pushed)
        self.api.post_event(self.pushed_asset, commit)
        self.alone_pushed.append(commit)
        _wait(lambda: self.api.run_count(DAG_PUSHED) > before, 300, "an isolated pushed commit's run")

    def watcher_alone(self) -> None:
        before = self.api.run_count(DAG_WATCHED)
        self.alone_watched.append(self._commit(self.watched))
        _wait(lambda: self.api.run_count(DAG_WATCHED) > before, 300, "an isolated commit's run")

    def rest_alone(self) -> None:
        commit = self._commit(self.other)
        self.api.trigger(commit)
        self.alone_rest.append(commit)

    def latencies(self) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
        """commit -> latency, for each path (watched and pushed: commits with a run of their own alone)."""
        time.sleep(5)  # a late, duplicate or folded run would show now
        rest = {c: q - self.finished[c] for c, q in self.api.rest_runs().items() if c in self.finished}
        return self._alone(self.api.watched_runs()), rest, self._alone(self.api.pushed_runs())

    def _alone(self, runs: dict[str, tuple[float, list[str]]]) -> dict[str, float]:
        consumed: dict[str, list[float]] = {}
        folded = set()
        for queued, commits in runs.values():
            for c in commits:
                consumed.setdefault(c, []).append(queued)
            if len(commits) > 1:
                folded.update(commits)
        return {c: q[0] - self.finished[c] for c, q in consumed.items()
                if c in self.finished and len(q) == 1 and c not in folded}


def _measure(ctx: Context, dep: Any, client: Any, repos: tuple[str, str, str], db_url: str) -> list[dict[str, Any]]:
    from tests.airflow.deployment import emitted

    dep.wait_api(600)
    for dag_id in (DAG_WATCHED, DAG_REST, DAG_PUSHED):
        dep.wait_dag(dag_id, 600)
    seed = client.resolve(repos[0], "master")
    _wait(lambda: emitted(db_url) == seed, 600, "the watcher never started")
    rounds, alone = ctx.pick(2, 1), ctx.pick(6, 3)
    r = _Rounds(ctx, dep, client, repos)
    started = time.monotonic()
    bursts = [r.watcher_burst, r.rest_burst, r.push_burst]
    singles = [r.watcher_alone, r.rest_alone, r.push_alone]
    for i in range(rounds):  # interleaved, each path first in turn
        for step in bursts[i % 3:] + bursts[:i % 3]:
            ctx.log(f"round {i + 1}: {step.__name__}")
            step()
            time.sleep(5)  # the previous burst's runs created
    ctx.log(f"{alone} isolated commits each way")
    for i in range(alone):
        for step in singles[i % 3:] + singles[:i % 3]:
            step()
            time.sleep(1)  # the previous run scheduled: the next commit is alone
    lat_w, lat_r, lat_p = r.latencies()
    ctx.log(f"measured in {time.monotonic() - started:.0f} s")
    total = BURST * rounds
    once = sum(1 for c in r.burst_watched if c in lat_w)
    once_pushed = sum(1 for c in r.burst_pushed if c in lat_p)
    burst_pushed = set(r.burst_pushed)
    pushed_runs = sum(1 for _, cs in r.api.pushed_runs().values() if burst_pushed & set(cs))

    def pick(lat: dict[str, float], commits: list[str]) -> list[float]:
        return [lat[c] for c in commits if c in lat]

    bw, br = pick(lat_w, r.burst_watched), pick(lat_r, r.burst_rest)
    aw, ar, ap = pick(lat_w, r.alone_watched), pick(lat_r, r.alone_rest), pick(lat_p, r.alone_pushed)
    med = statistics.median
    return [
        ctx.figure("airflow.runs_per_commit_burst20", once / total, "runs/commit",
                   peer=f"{once} of {total} commits ({rounds} burst(s) of {BURST}) had a DAG run of their own",
                   ratio=once / total, goal="1.0 (20 runs for 20 commits)", met=once == total),
        ctx.figure("airflow.asset_event_runs_per_commit_burst20", pushed_runs / total, "runs/commit",
                   peer=f"an asset event posted to Airflow per commit: {pushed_runs} runs for {total} commits, "
                        f"{once_pushed} with a run of their own",
                   ratio=pushed_runs / total, goal="diagnostic: what Airflow's asset path does unpaced", met=None),
        ctx.figure("airflow.burst_commit_to_run_median", med(bw) if bw else None, "s",
                   peer=f"REST trigger per commit {med(br):.2f} s" if br else "no REST runs",
                   ratio=med(bw) / med(br) if bw and br else None,
                   goal="diagnostic: paced, one run per commit in turn", met=None),
        ctx.figure("airflow.burst_commit_to_run_p95", _p95(bw) if bw else None, "s",
                   peer=f"REST trigger per commit p95 {_p95(br):.2f} s" if br else "no REST runs",
                   ratio=_p95(bw) / _p95(br) if bw and br else None,
                   goal="diagnostic: the burst's last commit waits for 19 runs", met=None),
        ctx.figure("airflow.isolated_commit_to_run_median", med(aw) if aw else None, "s",
                   peer=f"asset event posted {med(ap):.2f} s; REST trigger {med(ar):.2f} s "
                        f"({len(aw)}/{len(ap)}/{len(ar)} commits)" if ap and ar else "no peer runs",
                   ratio=med(aw) / med(ap) if aw and ap else None,
                   goal="diagnostic: poll 0.5 s over Airflow's own asset path", met=None),
    ]
