"""The datum step against a service whose own job loop is on: the step drives its job, whoever opened it.

A commit on the step's input opens the step pipeline's job at once (an open
output commit in the commit's set), where the service's job loop sees it.
The loop must leave it to the step (the spec marks it driven from outside):
the user's function runs in the KFP step alone — each output file says where
its function ran (the step's environment carries a mark the service's does
not, and datums run unsandboxed here, so they see it) — the step's counters
are the job's, and the output commit carries the KFP run.
"""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from datumflow.kfp_components import datum_step
from datumflow.storage_service.client.http import Client

MARK = "ran in the KFP step"

WHERE = '''
import os

def process(input_path, output_dir):
    name = os.path.basename(input_path)
    with open(os.path.join(output_dir, name + ".where"), "w") as out:
        out.write(os.environ.get("DF_KFP_STEP_MARK", "ran somewhere else"))
'''


@pytest.fixture
def looping(looping_service: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    monkeypatch.setenv("DATUMFLOW_ADDRESS", looping_service.url)
    monkeypatch.setenv("DATUMFLOW_TOKEN", looping_service.token)
    monkeypatch.setenv("PATH", f"{Path(__import__('sys').executable).parent}:{__import__('os').environ['PATH']}")
    monkeypatch.setenv("DATUMFLOW_SANDBOX", "none")  # the function sees the step's environment (and its mark)
    monkeypatch.setenv("DF_KFP_STEP_MARK", MARK)
    with Client(looping_service.url, token=looping_service.token, retries=2) as client:
        yield client


def _where(client: Client, repo: str, commit: str) -> dict[str, str]:
    return {f.path: client.get_file(repo, commit, f.path).decode() for f in client.walk_files(repo, commit)}


def test_the_step_drives_the_job_a_commit_opened_and_the_loop_leaves_it(looping: Client, repo_name: str) -> None:
    client = looping
    client.create_repo(repo_name)
    client.put_files(repo_name, "master", [("a.csv", b"1"), ("b.csv", b"2")])
    name = f"{repo_name}-where"
    first = datum_step(name=name, input_ref=f"{repo_name}@master", function=WHERE).outputs
    assert (first["processed"], first["skipped"]) == (2, 0)

    commit = client.put_file(repo_name, "master", "c.csv", b"3")  # opens the pipeline's job now
    [opened] = [j for j in client.pipelines.list_jobs(name) if j.state.value == "created"]
    assert opened.commit_set == commit.commit_set and opened.inputs["input"] == commit.id
    time.sleep(4)  # several turns of the service's job loop (one a second)
    assert client.pipelines.inspect_job(opened.id).state.value == "created"  # left to the step

    out = datum_step(name=name, input_ref=f"{repo_name}@master", function=WHERE, input_commit=commit.id).outputs
    assert out["job"] == opened.id and out["commit"] == opened.output_commit  # the job the commit opened
    assert (out["processed"], out["skipped"]) == (1, 2)
    job = client.pipelines.inspect_job(opened.id)
    assert (job.state.value, job.processed, job.skipped, job.total) == ("success", 1, 2, 3)  # the same truth
    assert job.external  # planned by the step, not by the loop
    assert _where(client, name, out["commit"]) == {f"{n}.csv.where": MARK for n in "abc"}  # never in the service
    meta = client.inspect_commit(name, out["commit"]).metadata
    assert meta["kfp_run_id"] and meta["kfp_task"] and meta["job"] == opened.id  # the KFP run joined the commit
    assert meta["datums"]["processed"] == 1 and meta["datums"]["skipped"] == 2

    again = datum_step(name=name, input_ref=f"{repo_name}@master", function=WHERE).outputs
    assert again["job"] == opened.id and (again["processed"], again["skipped"]) == (0, 3)  # reused, nothing ran
    assert len(client.pipelines.list_jobs(name)) == 2  # the first run's job and the commit's: no other


def test_a_step_waits_for_the_job_a_loop_took_and_reports_its_counters(looping: Client, repo_name: str) -> None:
    """A job the loop does run (its spec is not a step's): a step joining it waits and tells the job's truth."""
    from datumflow.kfp_components.datum_step import pipeline_spec
    from datumflow.storage_service.pipelines.driver import find_or_open_job, run_datums

    client = looping
    client.create_repo(repo_name)
    client.put_files(repo_name, "master", [("a.csv", b"1"), ("b.csv", b"2")])
    slow = WHERE.replace("import os", "import os, time").replace("    name =", "    time.sleep(2)\n    name =")
    spec = pipeline_spec(f"{repo_name}-loop", repo_name, "master", "/*", slow, "")
    del spec["transform"]["env"]["DATUMFLOW_EXTERNAL_WORKER"]  # a pipeline the service's loop runs
    info = client.pipelines.create_pipeline(spec)
    job = find_or_open_job(client.pipelines, info, {"input": client.resolve(repo_name, "master")})
    deadline = time.monotonic() + 60
    while (job := client.pipelines.inspect_job(job.id)).state.value == "created" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job.state.value == "running" and not job.external  # the loop took it and works on it
    ran: list[str] = []
    driven = run_datums(client.pipelines, job, lambda job_id, d: ran.append(d.id))  # type: ignore[func-returns-value]
    assert not ran  # this driver ran nothing: it waited
    assert driven.job.state.value == "success" and not driven.reused
    assert driven.counters == {"total": 2, "processed": 2, "skipped": 0}  # the job's, run by the loop
    assert _where(client, info.name, driven.job.output_commit) == {
        "a.csv.where": "ran somewhere else", "b.csv.where": "ran somewhere else"}  # the service ran them
