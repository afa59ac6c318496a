"""Three service replicas on one PostgreSQL database and one S3 store (moto), a pipeline of 500
datums, and one replica SIGKILLed while the job runs, twice: the survivors take its claimed work
over when its claims lapse, the job succeeds, and every output file is committed once."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import httpx
import pytest
from datumflow.storage_service.client.http import Client

from tests.service.conftest import Service, launch

N = 500
LEASE = "2"  # seconds: short, so the test sees takeovers quickly
COPY = ["sh", "-c", "cd /pfs && find . -path ./out -prune -o -type f -print | sed 's|^./||' | "
        "while read f; do mkdir -p \"out/$(dirname $f)\"; cp \"$f\" \"out/$f\"; done"]

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.s3, pytest.mark.timeout(900)]


def _replica(root: Path, db: str, objects: str) -> Service:
    return launch(root, token=None, db=db, args=("--objects", objects, "--pipelines-interval", "0.2"))


def _datum_states(url: str, job_id: str) -> dict[str, int]:
    datums = httpx.get(f"{url}/api/v1/jobs/{job_id}/datums", timeout=30).json()
    counts: dict[str, int] = {}
    for d in datums:
        counts[d["state"]] = counts.get(d["state"], 0) + 1
    return counts


def test_a_replica_killed_mid_job_loses_nothing_and_commits_nothing_twice(
    tmp_path: Path, postgres_url: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATUMFLOW_JOB_LEASE", LEASE)
    monkeypatch.setenv("DATUMFLOW_DATUM_BATCH", "8")
    rng = random.Random(20261201)
    replicas = [_replica(tmp_path / f"r{i}", postgres_url, s3_bucket) for i in range(3)]
    try:
        with Client(replicas[0].url, retries=3) as client:
            client.create_repo("in")
            client.put_files("in", "master", [(f"d/{i:04d}.txt", f"datum {i}\n".encode()) for i in range(N)])
        left_at_kill: list[int] = []
        for round_ in range(2):
            name = f"copy{round_}"
            victim = rng.randrange(len(replicas))
            survivor = replicas[(victim + 1) % len(replicas)]
            with Client(survivor.url, retries=3) as other:
                other.pipelines.create_pipeline({
                    "pipeline": {"name": name}, "input": {"pfs": {"repo": "in", "glob": "/d/*"}},
                    "transform": {"image": "alpine:3", "cmd": COPY},
                })
                job = _wait_for_job(other, name)
                at_kill = _wait_until_some_datums_ran(survivor.url, job, rng.randint(1, N // 3))
                left_at_kill.append(at_kill.get("pending", 0) + at_kill.get("running", 0))
                replicas[victim].process.send_signal(signal.SIGKILL)
                replicas[victim].process.wait()
                done = other.pipelines.wait_job(job, timeout=300)
                assert done.state.value == "success", done.reason
                assert done.total == N and done.processed == N and done.failed == 0
                files = sorted(f.path for f in other.walk_files(name, done.output_commit))
                assert files == [f"in/d/{i:04d}.txt" for i in range(N)]
                sample = rng.sample(range(N), 20)
                for i in sample:
                    assert other.get_file(name, done.output_commit, f"in/d/{i:04d}.txt") == f"datum {i}\n".encode()
                lineage = other.pipelines.lineage(name, done.output_commit, f"in/d/{sample[0]:04d}.txt")
                assert lineage.datum is not None
            # A replacement replica joins, as a Deployment would start one.
            replicas[victim] = _replica(tmp_path / f"r{victim}-{round_}", postgres_url, s3_bucket)
        assert any(left_at_kill), left_at_kill  # at least one kill hit a job with datums still to run
    finally:
        for r in replicas:
            r.stop()


def _wait_for_job(client: Client, pipeline: str) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        jobs = client.pipelines.list_jobs(pipeline)
        if jobs:
            return jobs[0].id
        time.sleep(0.2)
    raise AssertionError(f"no job for {pipeline}")


def _wait_until_some_datums_ran(url: str, job_id: str, at_least: int) -> dict[str, int]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = _datum_states(url, job_id)
        if states.get("success", 0) >= at_least and states.get("pending", 0) + states.get("running", 0) > 0:
            return states
        if states and states.get("pending", 0) + states.get("running", 0) == 0 and states.get("success"):
            return states  # the job outran the kill point: the kill then hits the completion or an idle loop
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} ran no datum in time")
