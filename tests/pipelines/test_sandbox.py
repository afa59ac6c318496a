"""The datum's container contract on this host: a real /pfs, a private /tmp, nothing of the service.

A user script written for Pachyderm (it names /pfs/<input> and reads
PACH_DATUM_* literally) runs unchanged; the same script then tries what a
hostile pipeline would: read the store's root and database, the service's
environment, another datum's /tmp, and rewrite metadata.db.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.pipelines.executors.local import LocalExecutor
from datumflow.storage_service.pipelines.sandbox import Sandbox, SandboxUnavailable
from datumflow.storage_service.store.store import Store

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap (Debian bubblewrap) is not installed")

PROBE = r'''
import glob, json, os, sys
store, db = sys.argv[1], sys.argv[2]
name = os.path.basename(os.environ["images"])
found = {
    "input": open("/pfs/images/" + name).read(),
    "env_path": os.environ["images"],
    "datum_id": os.environ["PACH_DATUM_ID"],
    "job_id": os.environ["PACH_JOB_ID"],
    "output_commit": os.environ["PACH_OUTPUT_COMMIT_ID"],
    "uid": os.getuid(),
    "cwd": os.getcwd(),
    "tmp_before": sorted(os.listdir("/tmp")),
    "sees_store": os.path.exists(store),
    "sees_db": os.path.exists(db),
    "service_secret": os.environ.get("SERVICE_SECRET"),
    "env_keys": sorted(k for k in os.environ
                       if not k.startswith(("PACH_", "DATUMFLOW_", "PPS_")) and k not in ("images", "images_COMMIT")),
    "other_pfs": sorted(os.listdir("/pfs")),
}
open("/tmp/" + name, "w").write("mine")
for target in (db, "/pfs/images/" + name):
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, "w").write("overwritten")
        found["wrote " + target] = True
    except OSError as exc:
        found["wrote " + target] = type(exc).__name__
open("/pfs/out/" + name + ".json", "w").write(json.dumps(found))
'''


@pytest.fixture
def code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "probe.py").write_text(PROBE)
    monkeypatch.setenv("DATUMFLOW_SANDBOX_BINDS", str(folder))
    monkeypatch.setenv("SERVICE_SECRET", "hunter2")
    return folder


def test_a_datum_sees_its_pfs_and_nothing_of_the_service(store: Store, code: Path) -> None:
    store.create_repo("images")
    store.put_files("images", "master", [("a.png", b"AAA"), ("b.png", b"BBB")])
    db = str(Path(store.root) / "metadata.db")
    before = Path(db).read_bytes()
    pipelines = Pipelines(store)
    pipelines.create_pipeline({
        "pipeline": {"name": "probe"}, "input": {"pfs": {"repo": "images", "glob": "/*"}},
        "transform": {"cmd": ["python3", f"{code}/probe.py", store.root, db], "env": {"GIVEN": "yes"}},
    })
    (job,) = [j for j in pipelines.process() if j.pipeline == "probe"]
    assert job.state.value == "success", job.reason
    files = store.walk_files("probe", "master")
    reports = {p.path: json.loads(store.get_file("probe", "master", p.path)) for p in files}
    a, b = reports["a.png.json"], reports["b.png.json"]
    assert (a["input"], b["input"]) == ("AAA", "BBB")  # /pfs/images/... read literally
    assert a["env_path"] == "/pfs/images/a.png" and a["cwd"] == "/pfs"
    assert a["job_id"] == job.id and a["output_commit"] == job.output_commit
    assert a["uid"] == 65534
    # Another datum's /tmp is not this one's (the code bind lives under the host's /tmp in this test).
    assert {"a.png", "b.png"}.isdisjoint(a["tmp_before"] + b["tmp_before"])
    assert a["sees_store"] is False and a["sees_db"] is False
    assert a["service_secret"] is None
    assert set(a["env_keys"]) <= {"GIVEN", "HOME", "PATH", "PWD", "LC_CTYPE"}  # LC_CTYPE: python3 sets it
    assert a["other_pfs"] == ["images", "out"]
    # The datum may "write" the database path only inside its own private view: the real file is intact.
    assert a["wrote /pfs/images/a.png"] in ("PermissionError", "OSError")
    assert Path(db).read_bytes()[:16] == before[:16] == b"SQLite format 3\x00"
    assert b"overwritten" not in Path(db).read_bytes()
    assert store.get_file("images", "master", "a.png") == b"AAA"


def test_without_bwrap_a_datum_fails_with_the_fix_named(store: Store, code: Path) -> None:
    store.create_repo("images")
    store.put_files("images", "master", [("a.png", b"A")])
    executor = LocalExecutor(store, sandbox=Sandbox(bwrap="no-such-bwrap-here"))
    pipelines = Pipelines(store, executor=executor)
    pipelines.create_pipeline({"pipeline": {"name": "p"}, "input": {"pfs": {"repo": "images", "glob": "/*"}},
                               "transform": {"cmd": ["true"]}})
    (job,) = [j for j in pipelines.process() if j.pipeline == "p"]
    assert job.state.value == "failure"
    assert "apt-get install bubblewrap" in (job.reason or "") and "DATUMFLOW_SANDBOX=none" in (job.reason or "")


def test_a_bind_that_would_show_the_store_is_refused(store: Store) -> None:
    with pytest.raises(SandboxUnavailable, match="would show"):
        Sandbox(binds=(str(Path(store.root).parent),), hidden=(store.root,)).check()


def test_egress_copies_the_finished_output_to_a_url(store: Store, tmp_path: Path) -> None:
    store.create_repo("in")
    store.put_files("in", "master", [("a", b"A"), ("d/b", b"B")])
    target = tmp_path / "egress"
    pipelines = Pipelines(store)
    pipelines.create_pipeline({
        "pipeline": {"name": "copy"}, "input": {"pfs": {"repo": "in", "glob": "/"}},
        "transform": {"cmd": ["sh", "-c", "cp -r /pfs/in/. /pfs/out/"]}, "egress": {"URL": f"file://{target}"},
    })
    (job,) = [j for j in pipelines.process() if j.pipeline == "copy"]
    assert job.state.value == "success", job.reason
    assert (target / "a").read_bytes() == b"A" and (target / "d" / "b").read_bytes() == b"B"


def test_a_pods_wrapper_exports_the_same_variables(store: Store, tmp_path: Path) -> None:
    import subprocess

    from datumflow.storage_service.pipelines.datums import Datum, DatumInput, FileRef
    from datumflow.storage_service.pipelines.worker import DatumEnv, write_env_file

    datum = Datum.of([DatumInput("labs", "labs", "c1", "a-h1.csv", (FileRef("a-h1.csv", "h", 1),), group_by="h1"),
                      DatumInput("more-labs", "m", "c2", "x", (FileRef("x", "h", 1),))])
    pfs = tmp_path / "d1"
    pfs.mkdir()
    env_file = write_env_file(DatumEnv("job1", datum, "out1", "lab"), pfs)
    shown = subprocess.run(["sh", "-c", f". {env_file}; echo $labs $PACH_DATUM_labs_GROUP_BY $PACH_OUTPUT_COMMIT_ID"],
                           capture_output=True, text=True, check=True,
                           env={"DATUMFLOW_PFS": "/pfs", "PATH": "/usr/bin:/bin"}).stdout.split()  # as in a pod
    assert shown == ["/pfs/labs/a-h1.csv", "h1", "out1"]
