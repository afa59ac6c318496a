"""The worker steps and the CLI verbs, run as real subprocesses against an embedded store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.pipelines.jobs import DatumState
from datumflow.storage_service.store.store import Store

from .conftest import pfs, spec


def cli(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATUMFLOW_ADDRESS": f"file://{root}", "DATUMFLOW_FSYNC": "0"}
    proc = subprocess.run([sys.executable, "-m", "datumflow.storage_service.cli.main", *args],
                          capture_output=True, text=True, env=env, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def cli_json(root: Path, *args: str) -> Any:
    return json.loads(cli(root, *args, "--json").stdout)


def _pending_job(tmp_path: Path) -> tuple[Path, str, str]:
    """A store with one job whose single datum is recorded but not run."""
    root = tmp_path / "store"
    with Store(str(root), fsync=False) as store:
        store.create_repo("in")
        store.put_file("in", "master", "a.txt", b"hello")
        svc = Pipelines(store)
        svc.create_pipeline(spec("up", pfs("in"), ["sh", "-c", "tr a-z A-Z < /pfs/in/a.txt > /pfs/out/a.txt"]))
        job = svc.list_jobs("up")[0]
        (datum,) = svc.plan_job(job.id)
    return root, job.id, datum.id


def test_worker_run_datum_fetches_runs_and_uploads(tmp_path: Path) -> None:
    root, job, datum = _pending_job(tmp_path)
    out = cli_json(root, "worker", "run-datum", "--job", job, "--datum", datum, "--pfs", str(tmp_path / "pfs"))
    assert out["state"] == "success" and out["outputs"] == ["a.txt"]
    assert (tmp_path / "pfs" / "out" / "a.txt").read_text() == "HELLO"


def test_worker_fetch_and_upload_as_separate_steps(tmp_path: Path) -> None:
    root, job, datum = _pending_job(tmp_path)
    pod = tmp_path / "pod"
    cli(root, "worker", "fetch", "--job", job, "--datum", datum, "--pfs", str(pod))
    assert (pod / "in" / "a.txt").read_bytes() == b"hello"
    assert (pod / "out").is_dir()
    subprocess.run(["sh", "-c", f"rev {pod}/in/a.txt > {pod}/out/b.txt"], check=True)  # "the user's container"
    cli(root, "worker", "upload", "--job", job, "--datum", datum, "--pfs", str(pod))
    with Store(str(root), fsync=False) as store:
        svc = Pipelines(store)
        info = svc.inspect_datum(job, datum)
        assert info.state is DatumState.SUCCESS and info.outputs == ["b.txt"]
        done = svc.complete_job(job)
        assert done.state.value == "success"
        assert store.get_file("up", "master", "b.txt") == b"olleh"


def test_cli_pipeline_job_datum_lineage(tmp_path: Path) -> None:
    root = tmp_path / "store"
    data = tmp_path / "doc.txt"
    data.write_text("a b c")
    cli(root, "repo", "create", "docs")
    cli(root, "put", "docs@master:doc.txt", str(data))
    spec_file = tmp_path / "count.yaml"
    spec_file.write_text(
        "pipeline: {name: count}\n"
        "input: {pfs: {repo: docs, glob: '/*'}}\n"
        "transform:\n  image: alpine\n  cmd: [sh, -c, 'wc -w < /pfs/docs/doc.txt > /pfs/out/n']\n"
    )
    (created,) = cli_json(root, "pipeline", "create", "-f", str(spec_file))
    assert created["name"] == "count" and created["version"] == 1
    assert [p["name"] for p in cli_json(root, "pipeline", "list")] == ["count"]
    (job,) = cli_json(root, "job", "list", "count")
    assert job["state"] == "success" and job["processed"] == 1
    assert cli_json(root, "job", "wait", job["id"])["state"] == "success"
    (datum,) = cli_json(root, "datum", "list", job["id"])
    assert cli_json(root, "datum", "inspect", job["id"], datum["id"][:12])["outputs"] == ["n"]
    rerun = cli_json(root, "pipeline", "run", "count")
    assert (rerun["processed"], rerun["skipped"]) == (0, 1)
    forced = cli_json(root, "pipeline", "run", "count", "--reprocess")
    assert forced["processed"] == 1
    lineage = cli_json(root, "lineage", "count@master:n")
    assert lineage["inputs"][0]["path"] == "doc.txt"
    assert "<- count datum" in cli(root, "lineage", "count@master:n").stdout
    bad = cli(root, "pipeline", "create", "-f", str(spec_file), check=False)
    assert bad.returncode == 1 and bad.stderr.startswith("datumflow: error: pipeline count already exists")
    local = cli(root, "pipeline", "run-local", "-f", str(spec_file), "--sample", "1", "--out", str(tmp_path / "o"),
                "--json")
    assert json.loads(local.stdout)["ok"] is True
    assert len(cli_json(root, "job", "list", "count")) == 3  # run-local records no job
    (folder,) = (tmp_path / "o").iterdir()
    assert (folder / "n").read_text().strip() == "3"
    cli(root, "pipeline", "delete", "count")
    assert cli_json(root, "pipeline", "list") == []
