"""Spout pipelines under ``serve``, ``pipeline stop|start`` and ``run-cron`` over HTTP and the CLI.

A real ``serve`` with users: the spout's process gets the service's loopback
address and a token scoped to its output repo; stopping the pipeline ends
the process, starting it runs it again; deleting it ends it for good.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator

import pytest
from datumflow.storage_service.client.http import Client
from datumflow.storage_service.errors import Unauthenticated

from tests.helpers.waiting import until

from .conftest import Service, init_auth, launch
from .test_pipelines_http import cli

pytestmark = [
    pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap (Debian bubblewrap) is not installed"),
    pytest.mark.slow,
]

# One commit per start (named by how many commits came before), a forbidden write attempt, then waits.
SPOUT = r'''
import json, os, time, datumflow
from datumflow.storage_service.errors import DatumflowError
client = datumflow.connect()
repo = os.environ["PPS_PIPELINE_NAME"]
try:
    client.put_file("other", "master", "x", b"x")
    denied = "no"
except DatumflowError as exc:
    denied = type(exc).__name__
n = len(client.list_commits(repo, "master"))
with client.writing(repo, "master") as commit:
    client.put_file(repo, commit.id, f"start-{n}.json", json.dumps({"denied": denied}).encode())
time.sleep(3600)
'''


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("spouts") / "store"
    code = root.parent / "code"
    code.mkdir()
    (code / "spout.py").write_text(SPOUT)
    token = init_auth(root)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DATUMFLOW_SANDBOX_BINDS", str(code))
        env.setenv("DATUMFLOW_SPOUT_GRACE", "2")
        svc = launch(root, token=token, args=("--pipelines-interval", "0.2"))
    svc.extra["code"] = str(code)
    yield svc
    svc.stop()


@pytest.fixture
def client(served: Service) -> Iterator[Client]:
    with Client(served.url, token=served.token, retries=2) as c:
        yield c


def _starts(client: Client, repo: str) -> list[str]:
    done = [c for c in client.list_commits(repo, "master") if c.is_finished]
    return sorted(f.path for f in client.walk_files(repo, done[0].id)) if done else []


def test_a_spout_runs_under_serve_stops_starts_and_ends_with_its_pipeline(served: Service, client: Client) -> None:
    client.create_repo("other", exist_ok=True)
    spec = {"pipeline": {"name": "feed"}, "spout": {},
            "transform": {"image": "python:3.11-slim", "cmd": ["python3", f"{served.extra['code']}/spout.py"]}}
    client.pipelines.create_pipeline(spec)
    first = until(lambda: _starts(client, "feed"))
    assert len(first) == 1
    assert json.loads(client.get_file("feed", "master", first[0])) == {"denied": "Forbidden"}
    assert client.list_commits("other") == []
    spec_commit = client.pipelines.inspect_pipeline("feed").spec_commit
    assert spec_commit in client.inspect_commit("feed", "master").provenance

    stopped = client.pipelines.stop_pipeline("feed")
    assert stopped.state == "stopped"
    until(lambda: (client.pipelines.inspect_pipeline("feed").spout or {}).get("state") == "stopped")
    assert len(_starts(client, "feed")) == 1

    assert client.pipelines.start_pipeline("feed").state == "running"
    assert len(until(lambda: len(s := _starts(client, "feed")) == 2 and s)) == 2  # a new process, a new commit
    status = client.pipelines.inspect_pipeline("feed").spout
    assert status is not None and status["state"] == "running"

    client.pipelines.delete_pipeline("feed")
    assert "feed" not in {r.name for r in client.list_repos()}


def test_stop_and_start_over_the_cli_against_the_service(served: Service, client: Client) -> None:
    client.create_repo("words", exist_ok=True)
    client.pipelines.create_pipeline({
        "pipeline": {"name": "count"}, "input": {"pfs": {"repo": "words", "glob": "/*"}},
        "transform": {"image": "alpine:3", "cmd": ["sh", "-c", "wc -c < $words > /pfs/out/$(basename $words)"]},
    })
    first = until(lambda: (jobs := client.pipelines.list_jobs("count")) and jobs[0])  # the spec's own job
    client.pipelines.wait_job(first.id, timeout=60, drive=False)
    done = cli(served, "pipeline", "stop", "count", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "stopped"
    client.put_file("words", "master", "a.txt", b"hello")
    time.sleep(1.5)  # several rounds of the service's job loop
    assert [j.id for j in client.pipelines.list_jobs("count")] == [first.id]  # none for the new commit
    done = cli(served, "pipeline", "start", "count", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["state"] == "running", done.stderr
    job = until(lambda: (jobs := client.pipelines.list_jobs("count")) and jobs[0].id != first.id and jobs[0])
    assert client.pipelines.wait_job(job.id, timeout=60, drive=False).state.value == "success"
    assert client.get_file("count", "master", "a.txt").strip() == b"5"
    missing = cli(served, "pipeline", "stop", "nope")
    assert missing.returncode == 1 and "not found" in missing.stderr


def test_run_cron_over_http_ticks_now(served: Service, client: Client) -> None:
    client.pipelines.create_pipeline({
        "pipeline": {"name": "hourly"}, "input": {"cron": {"name": "tick", "spec": "@every 1h"}},
        "transform": {"image": "alpine:3", "cmd": ["sh", "-c", "ls /pfs/tick > /pfs/out/ticks"]},
    })
    commit = client.pipelines.run_cron("hourly")
    job = client.pipelines.wait_job(client.pipelines.job_for_commit(commit).id, timeout=60, drive=False)
    assert job.state.value == "success"
    assert len(client.get_file("hourly", "master", "ticks").split()) == 1
    done = cli(served, "pipeline", "run-cron", "hourly", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["pipeline"] == "hourly"
    refused = cli(served, "pipeline", "run-cron", "count")
    assert refused.returncode == 1 and "no cron input" in refused.stderr


def test_a_made_up_pipeline_token_is_refused(served: Service) -> None:
    with Client(served.url, token="dfp_made-up", retries=0) as fake, pytest.raises(Unauthenticated):
        fake.list_repos()
