"""Jobs run only the datums the datum cache has not seen succeed."""

from __future__ import annotations

from pathlib import Path

from datumflow.storage_service.model.core import CommitState
from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.pipelines.executors.local import LocalExecutor
from datumflow.storage_service.pipelines.sandbox import Sandbox
from datumflow.storage_service.store.store import Store

from .conftest import pfs, spec

UPPER = ["sh", "-c", "for f in /pfs/words/*; do tr a-z A-Z < $f > /pfs/out/$(basename $f); done"]


def _setup(store: Store, pipelines: Pipelines, n: int = 4) -> None:
    store.create_repo("words")
    store.put_files("words", "master", [(f"w{i}.txt", f"word {i}".encode()) for i in range(n)])
    pipelines.create_pipeline(spec("upper", pfs("words"), UPPER))
    (job,) = pipelines.process()
    assert job.state.value == "success"
    assert (job.total, job.processed, job.skipped) == (n, n, 0)


def test_adding_one_file_runs_one_datum(store: Store, pipelines: Pipelines) -> None:
    _setup(store, pipelines)
    store.put_file("words", "master", "new.txt", b"fresh")
    (job,) = pipelines.process()
    assert (job.total, job.processed, job.skipped) == (5, 1, 4)
    assert store.get_file("upper", "master", "new.txt") == b"FRESH"
    assert store.get_file("upper", "master", "w0.txt") == b"WORD 0"


def test_unchanged_rerun_runs_nothing(store: Store, pipelines: Pipelines) -> None:
    _setup(store, pipelines)
    before = {f.path: f.hash for f in store.walk_files("upper", "master")}
    pipelines.run_pipeline("upper")
    (job,) = pipelines.process()
    assert (job.processed, job.skipped) == (0, 4)
    assert {f.path: f.hash for f in store.walk_files("upper", "master")} == before


def test_code_change_reruns_everything(store: Store, pipelines: Pipelines) -> None:
    _setup(store, pipelines)
    lower = ["sh", "-c", "for f in /pfs/words/*; do cp $f /pfs/out/$(basename $f).copy; done"]
    pipelines.update_pipeline(spec("upper", pfs("words"), lower))
    (job,) = pipelines.process()
    assert (job.processed, job.skipped) == (4, 0)
    assert sorted(f.path for f in store.walk_files("upper", "master")) == [f"w{i}.txt.copy" for i in range(4)]


def test_reprocess_flag_forces_every_datum(store: Store, pipelines: Pipelines) -> None:
    _setup(store, pipelines)
    pipelines.run_pipeline("upper", reprocess=True)
    (job,) = pipelines.process()
    assert (job.processed, job.skipped) == (4, 0)


def test_any_earlier_run_is_reused_not_just_the_last(store: Store, pipelines: Pipelines) -> None:
    _setup(store, pipelines, n=2)
    store.delete_file("words", "master", "w1.txt")
    (gone,) = pipelines.process()
    assert (gone.total, gone.processed) == (1, 0)
    assert [f.path for f in store.walk_files("upper", "master")] == ["w0.txt"]  # its output left too
    store.put_file("words", "master", "w1.txt", b"word 1")  # back, as two jobs ago
    (back,) = pipelines.process()
    assert (back.processed, back.skipped) == (0, 2)
    assert store.get_file("upper", "master", "w1.txt") == b"WORD 1"


def test_failed_datums_run_again_next_job(store: Store, tmp_path: Path) -> None:
    fixes = tmp_path / "fixes"  # a host folder the datums see (read-only): the "fix" appears there
    fixes.mkdir()
    pipelines = Pipelines(store, executor=LocalExecutor(store, sandbox=Sandbox(binds=(str(fixes),))))
    store.create_repo("nums")
    store.put_files("nums", "master", [("ok", b"1"), ("bad", b"2")])
    flaky = ["sh", "-c", "for f in /pfs/nums/*; do [ -e /pfs/nums/bad ] && [ ! -e \"$FIXED\" ] && exit 3; "
             "cp $f /pfs/out/; done"]
    marker = str(fixes / "fixed")
    pipelines.create_pipeline(spec("n", pfs("nums"), flaky, datum_tries=1,
                                   **{"transform": {"cmd": flaky, "env": {"FIXED": marker}}}))
    (failed,) = pipelines.process()
    assert failed.state.value == "failure"
    assert failed.failed == 1 and failed.processed == 1
    open(marker, "w").close()
    pipelines.run_pipeline("n")
    (job,) = pipelines.process()
    assert job.state.value == "success"
    assert job.processed == 2  # the failed job's successes were not cached: its commit never finished
    assert store.inspect_commit("n", job.output_commit).state is CommitState.FINISHED


def test_two_stages_propagate_only_new_work(store: Store, pipelines: Pipelines) -> None:
    _setup(store, pipelines)
    pipelines.create_pipeline(spec("both", pfs("upper", glob="/"), ["sh", "-c", "cat /pfs/upper/* > /pfs/out/all"]))
    pipelines.process()
    store.put_file("words", "master", "z.txt", b"zed")
    jobs = {j.pipeline: j for j in pipelines.process()}
    assert (jobs["upper"].processed, jobs["upper"].skipped) == (1, 4)
    assert jobs["both"].processed == 1
    assert store.get_file("both", "master", "all").endswith(b"ZED")


def test_a_write_into_a_jobs_open_output_commit_is_refused(store: Store, pipelines: Pipelines) -> None:
    """The job's output is the union of its datums: a file put there by hand would vanish, so it is refused."""
    import pytest
    from datumflow.storage_service.errors import OutputBranch

    _setup(store, pipelines)
    out = pipelines.run_pipeline("upper")  # an open output commit, not run yet
    with pytest.raises(OutputBranch, match="open output commit of a job of pipeline upper"):
        store.put_file("upper", out, "extra.txt", b"mine")
    with pytest.raises(OutputBranch):
        store.delete_file("upper", out, "w0.txt")
    (job,) = pipelines.process()
    assert job.state.value == "success"  # the job itself still writes it
    assert sorted(f.path for f in store.walk_files("upper", "master")) == [f"w{i}.txt" for i in range(4)]
