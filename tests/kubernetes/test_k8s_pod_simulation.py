"""Datum pods run for real as local processes against a live service: fetch → transform → upload.

The cluster is the only thing simulated (``PodSim``: the rendered pod's containers as processes
sharing a folder that stands in for ``/pfs``); the pods talk to the service over HTTP with a
token scoped to the input (reader) and output (writer) repos.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from datumflow.storage_service.client.http import Client
from datumflow.storage_service.errors import Forbidden
from datumflow.storage_service.pipelines.executors.pod import PodSettings, build_pod, make_batches
from datumflow.storage_service.pipelines.spec import parse_spec

from tests.kubernetes.conftest import Live, make_sim

UPPER = ["for f in /pfs/in/*; do tr a-z A-Z < \"$f\" > /pfs/out/$(basename \"$f\"); done"]


def pipeline_spec(name: str, repo: str, stdin: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": repo, "glob": "/*", "name": "in"}},
        "transform": {"image": "alpine:3", "cmd": ["sh"], "stdin": stdin},
        **extra,
    }


def setup(admin: Client, files: dict[str, bytes], stdin: list[str]) -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    repo, name = f"in-{tag}", f"up-{tag}"
    admin.create_repo(repo)
    admin.put_files(repo, "master", list(files.items()))
    admin.pipelines.create_pipeline(pipeline_spec(name, repo, stdin))
    return repo, name


def run_job(live: Live, admin: Client, tmp_path: Path, repo: str, name: str, *, size: int) -> tuple[Any, Any]:
    svc = admin.pipelines
    job = next(j for j in svc.list_jobs(name) if j.state.value == "created")
    pending = [d.id for d in svc.plan_job(job.id)]
    spec = parse_spec(svc.inspect_pipeline(name).spec)
    sim = make_sim(live, tmp_path, live.worker_token((repo, "reader"), (name, "writer")))
    results = [sim(build_pod(spec, b, PodSettings(poll_seconds=0.05))) for b in make_batches(job.id, name, pending,
                                                                                           size=size)]
    return results, svc.complete_job(job.id)


def test_pods_write_the_output_commit_with_provenance_and_lineage(live: Live, admin: Client, tmp_path: Path) -> None:
    repo, name = setup(admin, {"a.txt": b"alpha", "b.txt": b"beta", "c.txt": b"gamma"}, UPPER)
    results, job = run_job(live, admin, tmp_path, repo, name, size=2)
    assert [r.phase for r in results] == ["Succeeded", "Succeeded"], [r.log for r in results]
    assert job.state.value == "success" and job.processed == 3
    out = admin.inspect_commit(name, job.output_commit)
    assert out.state.value == "finished"
    assert {f.path: admin.get_file(name, out.id, f.path) for f in admin.walk_files(name, out.id)} == {
        "a.txt": b"ALPHA", "b.txt": b"BETA", "c.txt": b"GAMMA"}
    input_head = admin.inspect_commit(repo, "master").id
    assert input_head in out.provenance
    for datum in admin.pipelines.list_datums(job.id):  # each output file names the datum (and input) that wrote it
        assert datum.outputs == [f"{p}" for p in (Path(datum.inputs[0]["path"]).name,)]


def test_a_failing_transform_fails_the_pod_and_leaves_no_partial_commit(
    live: Live, admin: Client, tmp_path: Path
) -> None:
    stdin = ["for f in /pfs/in/*; do grep -q bad \"$f\" && exit 3; cp \"$f\" /pfs/out/; done"]
    repo, name = setup(admin, {"a.txt": b"fine", "b.txt": b"bad"}, stdin)
    results, job = run_job(live, admin, tmp_path, repo, name, size=2)
    assert results[0].phase == "Failed"
    assert results[0].exit_codes["user"] == 3 and results[0].exit_codes["uploader"] == 3
    assert job.state.value == "failure"
    out = admin.inspect_commit(name, job.output_commit)
    assert out.state.value == "failed"
    assert out.error and job.id in out.error
    # The pod runs its datums in id order and stops at the first failure: a.txt succeeded and was
    # uploaded if it came first, but the failed job makes no commit with it visible either way.
    datums = sorted(admin.pipelines.list_datums(job.id), key=lambda d: d.id)
    a_first = datums[0].inputs[0]["path"].endswith("a.txt")
    assert [d.state.value for d in datums].count("success") == (1 if a_first else 0)
    assert admin.inspect_branch(name, "master").head is None  # the failed commit never became the head


def test_the_worker_token_cannot_write_elsewhere(live: Live, admin: Client) -> None:
    other = f"other-{uuid.uuid4().hex[:8]}"
    admin.create_repo(other)
    with Client(live.url, token=live.worker_token((other, "reader"))) as worker, pytest.raises(Forbidden):
        worker.put_file(other, "master", "x", b"no")


# Reads Pachyderm's variables of a hyphenated input (a shell cannot export them; env(1) sets them).
HYPHENATED = (
    "import json, os; p = os.environ['raw-in']; "
    "open('/pfs/out/' + os.path.basename(p) + '.json', 'w').write(json.dumps({"
    "'path': p.split('/pfs/', 1)[-1], 'commit': os.environ['raw-in_COMMIT'], 'data': open(p).read(), "
    "'datum': os.environ['PACH_DATUM_ID']}))"
)


def test_pods_set_the_variables_of_hyphenated_input_names(live: Live, admin: Client, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    repo, name = f"in-{tag}", f"hy-{tag}"
    admin.create_repo(repo)
    admin.put_files(repo, "master", [("a.txt", b"alpha"), ("b.txt", b"beta")])
    admin.pipelines.create_pipeline({
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": repo, "glob": "/*", "name": "raw-in"}},
        "transform": {"image": "python:3.11-slim", "cmd": ["python3", "-c", HYPHENATED]},
    })
    results, job = run_job(live, admin, tmp_path, repo, name, size=2)
    assert [r.phase for r in results] == ["Succeeded"], [r.log for r in results]
    assert job.state.value == "success" and job.processed == 2
    head = admin.inspect_commit(repo, "master").id
    seen = {f.path: json.loads(admin.get_file(name, job.output_commit, f.path))
            for f in admin.walk_files(name, job.output_commit)}
    by_datum = {d.id: d for d in admin.pipelines.list_datums(job.id)}
    assert {p: (v["path"], v["commit"], v["data"]) for p, v in seen.items()} == {
        "a.txt.json": ("raw-in/a.txt", head, "alpha"), "b.txt.json": ("raw-in/b.txt", head, "beta")}
    # Two datums in one pod: each saw its own values (the wrapper took the first one's off again).
    assert {v["datum"] for v in seen.values()} == set(by_datum)
