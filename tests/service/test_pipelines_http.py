"""Pipelines, jobs, datums, lineage and worker steps over HTTP, against real ``serve`` processes.

The session ``service`` runs jobs itself (``serve`` starts the pipelines
loop); the CLI runs as a child process with ``--address http://…``. The
worker-step tests use a service started with ``--no-pipelines``, so that the
test drives the job the way a pod or an Airflow task does.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from datumflow.storage_service import errors
from datumflow.storage_service.client.http import AsyncClient, Client
from datumflow.storage_service.core.db import open_engine
from datumflow.storage_service.pipelines import worker_steps
from datumflow.storage_service.pipelines.engine import PipelineNotFound
from datumflow.storage_service.pipelines.jobs import JobNotFound, JobState
from datumflow.storage_service.service.auth import Auth

from .conftest import Service, free_port

API = "/api/v1"
UPPER = ["sh", "-c", "for f in /pfs/in/*; do tr a-z A-Z < $f > /pfs/out/$(basename $f); done"]


def spec(name: str, repo: str, cmd: list[str] | None = None) -> dict[str, Any]:
    return {
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": repo, "glob": "/*", "name": "in"}},
        "transform": {"image": "alpine:3", "cmd": cmd or UPPER},
    }


def cli(service: Service, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATUMFLOW_")}
    env["DATUMFLOW_TOKEN"] = token or service.token or ""
    return subprocess.run(
        [sys.executable, "-m", "datumflow.storage_service.cli.main", "--address", service.url, *args],
        capture_output=True, text=True, timeout=60, env=env,
    )


def new_user(service: Service, grants: dict[str, str] | None = None) -> tuple[Auth, str, str]:
    """A user of ``service`` (admin API on its database, in this process) and its token."""
    admin = Auth(open_engine(f"sqlite:///{service.root / 'metadata.db'}"))
    name = f"u-{uuid.uuid4().hex[:8]}"
    admin.create_user(name)
    for repo, role in (grants or {}).items():
        admin.grant(name, repo, role)
    return admin, name, admin.create_token(name)


def headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def only_job(client: Client, pipeline: str, *, count: int = 1) -> Any:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        jobs = client.pipelines.list_jobs(pipeline)
        if len(jobs) >= count:
            return jobs[0]
        time.sleep(0.1)
    raise AssertionError(f"no job {count} for {pipeline}")


@pytest.fixture
def names() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"in-{tag}", f"up-{tag}"


# -- the CLI against the service --------------------------------------------------------


def test_cli_creates_waits_lists_datums_and_lineage(
    service: Service, client: Client, names: tuple[str, str], tmp_path: Path
) -> None:
    repo, name = names
    client.create_repo(repo)
    client.put_files(repo, "master", [("a.txt", b"alpha"), ("b.txt", b"beta")])
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(spec(name, repo)))

    created = cli(service, "pipeline", "create", "-f", str(spec_file), "--json")
    assert created.returncode == 0, created.stderr
    assert [p["name"] for p in json.loads(created.stdout)] == [name]

    job = only_job(client, name)
    waited = cli(service, "job", "wait", job.id, "--timeout", "30", "--json")
    assert waited.returncode == 0, waited.stderr + waited.stdout
    done = json.loads(waited.stdout)
    assert done["state"] == "success" and done["processed"] == 2
    assert client.get_file(name, "master", "a.txt") == b"ALPHA"

    datums = cli(service, "datum", "list", job.id, "--json")
    assert datums.returncode == 0, datums.stderr
    listed = json.loads(datums.stdout)
    assert sorted(i["path"] for d in listed for i in d["inputs"]) == ["a.txt", "b.txt"]
    assert {d["state"] for d in listed} == {"success"}

    lineage = cli(service, "lineage", f"{name}@master:b.txt", "--json")
    assert lineage.returncode == 0, lineage.stderr
    node = json.loads(lineage.stdout)
    assert node["pipeline"] == name and node["job"] == job.id
    assert [(i["repo"], i["path"]) for i in node["inputs"]] == [(repo, "b.txt")]

    # A new file upstream: the service runs a second job, which reuses the two known datums.
    client.put_file(repo, "master", "c.txt", b"gamma")
    second = only_job(client, name, count=2)
    finished = client.pipelines.wait_job(second.id, timeout=30)
    assert (finished.state, finished.processed, finished.skipped) == (JobState.SUCCESS, 1, 2)
    assert client.get_file(name, "master", "c.txt") == b"GAMMA"

    async def sensor() -> Any:
        async with AsyncClient(service.url, token=service.token) as ac:
            return await ac.pipelines.wait_job(second.id, timeout=5)

    assert asyncio.run(sensor()).id == second.id


def test_pipeline_list_inspect_run_and_delete(client: Client, names: tuple[str, str]) -> None:
    repo, name = names
    client.create_repo(repo)
    client.put_file(repo, "master", "a.txt", b"a")
    info = client.pipelines.create_pipeline(spec(name, repo))
    assert info.name == name and info.inputs == [f"{repo}@master"] and info.version == 1
    assert name in [p.name for p in client.pipelines.list_pipelines()]
    with pytest.raises(errors.AlreadyExists):
        client.pipelines.create_pipeline(spec(name, repo))
    updated = client.pipelines.update_pipeline(spec(name, repo, ["sh", "-c", "echo v2 > /pfs/out/v"]))
    assert updated.version == 2

    commit = client.pipelines.run_pipeline(name, reprocess=True)
    job = client.pipelines.job_for_commit(commit)
    assert client.pipelines.wait_job(job.id, timeout=30).state is JobState.SUCCESS
    assert client.get_file(name, commit, "v") == b"v2\n"

    client.pipelines.delete_pipeline(name)
    with pytest.raises(PipelineNotFound):
        client.pipelines.inspect_pipeline(name)
    with pytest.raises(errors.RepoNotFound):
        client.inspect_repo(name)


# -- bad input ------------------------------------------------------------------------------


def test_invalid_spec_is_400_naming_each_bad_field(service: Service, names: tuple[str, str]) -> None:
    repo, name = names
    bad = {
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": repo, "glob": "../up"}},
        "transform": {"image": "alpine", "cmd": [], "err_cmd": ["true"]},
        "datum_tries": 0,
    }
    answer = httpx.post(f"{service.url}{API}/pipelines", json={"spec": bad}, headers=headers(service.token))
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["type"] == "InvalidArgument"
    for field in ("input.pfs.glob", "transform.err_cmd", "datum_tries", "transform"):
        assert field in error["message"], field
    assert not httpx.get(f"{service.url}{API}/pipelines/{name}", headers=headers(service.token)).is_success

    text = httpx.post(f"{service.url}{API}/pipelines", json={"spec": "pipeline: [unclosed"},
                      headers=headers(service.token))
    assert text.status_code == 400 and text.json()["error"]["type"] == "InvalidArgument"
    missing = httpx.post(f"{service.url}{API}/pipelines", json={}, headers=headers(service.token))
    assert missing.status_code == 422 and "spec" in missing.json()["error"]["message"]


def test_unknown_pipeline_job_and_datum_are_404(service: Service, client: Client) -> None:
    h = headers(service.token)
    for url, kind in (
        ("/pipelines/no-such-pipeline", "PipelineNotFound"),
        ("/pipelines/no-such-pipeline/jobs", "PipelineNotFound"),
        ("/jobs/" + "0" * 32, "JobNotFound"),
        ("/jobs/" + "0" * 32 + "/datums", "JobNotFound"),
        ("/jobs/" + "0" * 32 + "/wait?timeout=0", "JobNotFound"),
    ):
        answer = httpx.get(service.url + API + url, headers=h)
        assert (answer.status_code, answer.json()["error"]["type"]) == (404, kind), url
    with pytest.raises(PipelineNotFound, match="no-such-pipeline"):
        client.pipelines.inspect_pipeline("no-such-pipeline")
    with pytest.raises(JobNotFound):
        client.pipelines.inspect_job("0" * 32)
    with pytest.raises(errors.InvalidArgument, match="embedded store"):
        client.pipelines.run_local(spec("x", "y"))

    waited = cli(service, "job", "wait", "0" * 32)
    assert waited.returncode == 1
    assert waited.stderr.strip().count("\n") == 0 and "not found" in waited.stderr


# -- roles ----------------------------------------------------------------------------------


def test_create_needs_writer_on_output_and_reader_on_inputs(
    service: Service, client: Client, names: tuple[str, str]
) -> None:
    repo, name = names
    client.create_repo(repo)
    admin, user, token = new_user(service)
    with Client(service.url, token=token, retries=0) as mine:
        with pytest.raises(errors.Forbidden, match=f"reader on repo {repo}"):
            mine.pipelines.create_pipeline(spec(name, repo))
        admin.grant(user, repo, "reader")
        assert mine.pipelines.create_pipeline(spec(name, repo)).name == name  # a new output repo: its owner
        assert mine.whoami()["roles"][name] == "owner"
        assert name in [p.name for p in mine.pipelines.list_pipelines()]
    _, other_user, other = new_user(service)
    with Client(service.url, token=other, retries=0) as stranger:
        assert name not in [p.name for p in stranger.pipelines.list_pipelines()]
        with pytest.raises(errors.Forbidden):
            stranger.pipelines.list_jobs(repo)
        admin.grant(other_user, repo, "reader")
        with pytest.raises(errors.Forbidden, match=f"writer on repo {name}"):  # someone else's pipeline
            stranger.pipelines.update_pipeline(spec(name, repo))
        with pytest.raises(errors.Forbidden, match="owner"):
            stranger.pipelines.delete_pipeline(name)
    client.pipelines.delete_pipeline(name)


# -- worker steps, driven from outside the service --------------------------------------


@pytest.fixture(scope="module")
def idle_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """An open service that does not run jobs (``--no-pipelines``)."""
    tmp_path = tmp_path_factory.mktemp("idle")
    root = tmp_path / "store"
    port = free_port()
    log = tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "datumflow.storage_service.service.serve", "serve", "--root", str(root),
           "--port", str(port), "--log-level", "warning", "--no-pipelines"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "DATUMFLOW_FSYNC": "0"})
    svc = Service(f"http://127.0.0.1:{port}", root, None, proc, log)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(svc.url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            if time.monotonic() > deadline or proc.poll() is not None:
                svc.stop()
                raise RuntimeError(log.read_text()) from None
            time.sleep(0.1)
    yield svc
    svc.stop()


def test_worker_steps_drive_a_job_from_outside(idle_service: Service, tmp_path: Path) -> None:
    with Client(idle_service.url) as client:
        client.create_repo("in")
        client.put_files("in", "master", [("a.txt", b"alpha"), ("b.txt", b"beta")])
        remote = client.pipelines
        remote.create_pipeline(spec("up", "in"))
        job = only_job(client, "up")
        assert job.state is JobState.CREATED
        with pytest.raises(errors.Timeout):
            remote.wait_job(job.id, timeout=0.3)  # nothing runs jobs in this service

        first, second = remote.plan_job(job.id)
        ran = worker_steps.run_datum(remote, job.id, first.id, str(tmp_path / "pfs1"))  # the transform runs here
        assert ran.state.value == "success" and ran.tries == 1

        pfs = tmp_path / "pfs2"
        fetched = worker_steps.fetch_datum(remote, job.id, second.id, str(pfs))
        path = fetched.inputs[0]["path"]
        assert (pfs / "in" / path).read_bytes() in (b"alpha", b"beta")
        (pfs / "out" / "deep").mkdir(parents=True)
        (pfs / "out" / "deep" / path).write_bytes(b"by hand")
        uploaded = worker_steps.upload_datum(remote, job.id, second.id, str(pfs), log="hand-made\n")
        assert uploaded.state.value == "success" and uploaded.log == "hand-made\n"

        done = remote.complete_job(job.id)
        assert done.state is JobState.SUCCESS and done.processed == 2
        assert client.get_file("up", "master", f"deep/{path}") == b"by hand"
        other = ({"a.txt", "b.txt"} - {path}).pop()
        assert client.get_file("up", "master", other) == (b"ALPHA" if other == "a.txt" else b"BETA")


def test_worker_failure_and_bad_output_tar(idle_service: Service, tmp_path: Path) -> None:
    with Client(idle_service.url) as client:
        client.create_repo("src")
        client.put_file("src", "master", "x", b"x")
        remote = client.pipelines
        remote.create_pipeline(spec("fails", "src", ["sh", "-c", "echo boom; exit 3"]) | {"datum_tries": 2})
        job = only_job(client, "fails")
        (datum,) = remote.plan_job(job.id)

        url = f"{idle_service.url}{API}/jobs/{job.id}/datums/{datum.id}/output"
        escape = httpx.post(url, content=_tar({"../evil": b"x"}))
        assert escape.status_code == 400 and "outside out/" in escape.json()["error"]["message"]
        garbage = httpx.post(url, content=b"not a tar at all")
        assert garbage.status_code == 400 and garbage.json()["error"]["type"] == "InvalidArgument"

        failed = worker_steps.run_datum(remote, job.id, datum.id, str(tmp_path / "pfs"))
        assert failed.state.value == "failed" and failed.tries == 2
        assert "exited with status 3" in (failed.error or "") and "boom" in (failed.log or "")
        ended = remote.complete_job(job.id)
        assert ended.state is JobState.FAILURE and "exited with status 3" in (ended.reason or "")
        assert client.inspect_commit("fails", ended.output_commit).state.value == "failed"
        with pytest.raises(errors.InvalidArgument, match="not running"):
            remote.complete_job(job.id)


def _tar(files: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_the_client_rebuilds_every_error_class_by_name() -> None:
    """Every DatumflowError subclass in storage_service comes back as itself (or, if it needs more than a
    message, as its nearest ancestor that does not), in a process that imported only the client: every
    error class is defined in errors.py, so importing every other module finds no class the client lacks."""
    probe = """
import importlib, json, pkgutil
from datumflow.storage_service.client import http as client
from datumflow.storage_service import errors
known = set(errors._by_name())
def plain(klass):  # built from its message alone, as the service's error body allows
    try:
        klass("m")
    except TypeError:
        return False
    return True
ok = all(isinstance(errors.error_from_name(n, "m"), errors.DatumflowError) for n in known) and all(
    type(errors.error_from_name(n, "m")) is k for n, k in errors._by_name().items() if plain(k))
package = importlib.import_module("datumflow.storage_service")
for info in pkgutil.walk_packages(package.__path__, "datumflow.storage_service."):
    if info.name.endswith("__main__"):
        continue
    try:
        importlib.import_module(info.name)
    except Exception:  # an optional dependency is missing: its errors cannot reach this client either
        pass
print(json.dumps({"missing": sorted(set(errors._by_name()) - known), "ok": ok, "names": sorted(known)}))
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["ok"] and found["missing"] == []
    for name in ("PipelineNotFound", "JobNotFound", "SpoutNotFound", "TopicNotFound", "CorruptOffsets"):
        assert name in found["names"]
