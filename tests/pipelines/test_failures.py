"""A failing datum fails the job and its output commit; nothing half-way is visible."""

from __future__ import annotations

from pathlib import Path

from datumflow.storage_service.model.core import CommitState
from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.pipelines.executors.local import LocalExecutor
from datumflow.storage_service.pipelines.jobs import DatumState
from datumflow.storage_service.pipelines.sandbox import Sandbox
from datumflow.storage_service.store.store import Store

from .conftest import pfs, spec


def _run(store: Store, pipelines: Pipelines, cmd: list[str], **extra: object) -> tuple[object, object]:
    store.create_repo("in")
    store.put_files("in", "master", [("a", b"A"), ("b", b"B")])
    good = pipelines.create_pipeline(spec("p", pfs("in"), ["sh", "-c", "cp /pfs/in/* /pfs/out/"]))
    pipelines.process()
    before = store.inspect_commit("p", "master")
    pipelines.update_pipeline(spec("p", pfs("in"), cmd, datum_tries=1, **extra))  # type: ignore[arg-type]
    (job,) = pipelines.process()
    assert good.name == "p"
    return job, before


def _assert_failed_cleanly(store: Store, job: object, before: object) -> None:
    out = store.inspect_commit("p", job.output_commit)  # type: ignore[attr-defined]
    assert out.state is CommitState.FAILED
    assert job.id in (out.error or "")  # type: ignore[attr-defined]
    head = store.inspect_commit("p", "master")
    assert head.id == before.id  # type: ignore[attr-defined]
    assert sorted(f.path for f in store.walk_files("p", "master")) == ["a", "b"]


def test_non_zero_exit_fails_job_with_the_datum_log(store: Store, pipelines: Pipelines) -> None:
    job, before = _run(store, pipelines, ["sh", "-c", "echo partial > /pfs/out/x; echo 'boom on stderr' >&2; exit 7"])
    assert job.state.value == "failure"
    assert "exited with status 7" in job.reason
    assert "boom on stderr" in job.reason
    _assert_failed_cleanly(store, job, before)
    datums = pipelines.list_datums(job.id)
    assert {d.state for d in datums} == {DatumState.FAILED}
    assert "boom on stderr" in (pipelines.inspect_datum(job.id, datums[0].id).log or "")


def test_timeout_kills_the_process_group(store: Store, pipelines: Pipelines, tmp_path: object) -> None:
    # The datum runs in its own PID namespace: its background child is found by a unique argument.
    cmd = ["sh", "-c", "sleep 60.4242 & wait"]
    job, before = _run(store, pipelines, cmd, datum_timeout="1s", parallelism_spec={"constant": 2})
    assert job.state.value == "failure"
    assert "timed out after 1s" in job.reason
    _assert_failed_cleanly(store, job, before)
    assert not [pid for pid in _pids_running("60.4242") if _alive(pid)]


def _pids_running(arg: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if arg.encode() in (entry / "cmdline").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _alive(pid: int) -> bool:
    """Running (a zombie left for an init that does not reap counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_symlink_escaping_pfs_fails(store: Store, pipelines: Pipelines) -> None:
    job, before = _run(store, pipelines, ["sh", "-c", "ln -s /etc/hostname /pfs/out/stolen"])
    assert job.state.value == "failure"
    assert "outside the datum's /pfs" in job.reason
    _assert_failed_cleanly(store, job, before)


def test_writing_into_an_input_fails(store: Store, pipelines: Pipelines) -> None:
    job, before = _run(store, pipelines, ["sh", "-ec", "echo x >> /pfs/in/* ; cp /pfs/in/* /pfs/out/"])
    assert job.state.value == "failure"
    assert "Read-only file system" in job.reason  # inputs are mounted read-only in the datum's view
    _assert_failed_cleanly(store, job, before)


def test_two_datums_writing_one_path_are_merged_and_lineage_names_both(store: Store, pipelines: Pipelines) -> None:
    store.create_repo("in")
    store.put_files("in", "master", [("a", b"A"), ("b", b"B")])
    pipelines.create_pipeline(spec("p", pfs("in"), ["sh", "-c", "cat /pfs/in/* >> /pfs/out/result"]))
    (job,) = pipelines.process()
    assert job.state.value == "success", job.reason
    datums = sorted(pipelines.list_datums(job.id), key=lambda d: d.id)
    by_id = {d.id: d.inputs[0]["path"] for d in datums}
    # As Pachyderm: every datum's part, in datum id order.
    assert store.get_file("p", "master", "result").decode() == "".join(by_id[d.id].upper() for d in datums)
    node = pipelines.lineage("p", "master", "result")
    assert sorted(node.datums) == sorted(by_id) and node.datum == datums[0].id
    assert sorted(i.path for i in node.inputs) == ["a", "b"]


def test_retries_recover_a_flaky_datum(store: Store, tmp_path: object) -> None:
    # Tries share nothing inside the sandbox; the host fallback lets the marker outlive a try.
    pipelines = Pipelines(store, executor=LocalExecutor(store, sandbox=Sandbox(isolated=False)))
    store.create_repo("in")
    store.put_file("in", "master", "a", b"A")
    marker = f"{tmp_path}/tried"
    flaky = ["sh", "-c", f"if [ ! -e {marker} ]; then touch {marker}; exit 1; fi; cp /pfs/in/a /pfs/out/"]
    pipelines.create_pipeline(spec("p", pfs("in"), flaky, datum_tries=2))
    (job,) = pipelines.process()
    assert job.state.value == "success"
    assert (job.processed, job.recovered) == (1, 1)
    assert pipelines.list_datums(job.id)[0].tries == 2


def test_downstream_of_a_failed_job_is_killed(store: Store, pipelines: Pipelines) -> None:
    store.create_repo("in")
    pipelines.create_pipeline(spec("p", pfs("in"), ["false"], datum_tries=1))
    pipelines.create_pipeline(spec("q", pfs("p"), ["true"]))
    pipelines.process()
    store.put_file("in", "master", "a", b"A")
    jobs = {j.pipeline: j for j in pipelines.process()}
    assert jobs["p"].state.value == "failure"
    assert jobs["q"].state.value == "killed"
    assert store.inspect_commit("q", jobs["q"].output_commit).state is CommitState.FAILED


def test_environment_names_job_datum_and_inputs(store: Store, pipelines: Pipelines) -> None:
    store.create_repo("in")
    data = store.put_file("in", "master", "a", b"A")
    env = ["sh", "-c", "echo $PACH_JOB_ID $DATUMFLOW_DATUM_ID $in_COMMIT $in $MODE > /pfs/out/env"]
    pipelines.create_pipeline({**spec("p", pfs("in"), env), "transform": {"cmd": env, "env": {"MODE": "m"}}})
    (job,) = pipelines.process()
    (datum,) = pipelines.list_datums(job.id)
    job_id, datum_id, commit, path, mode = store.get_file("p", "master", "env").decode().split()
    assert (job_id, datum_id, commit, mode) == (job.id, datum.id, data.id, "m")
    assert path.endswith("/in/a")
