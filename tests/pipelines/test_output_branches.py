"""A pipeline's output branch takes writes from the pipeline's jobs alone; owners repair it with force.

The surfaces over HTTP (Client, CLI, S3, fsspec) are in
``tests/service/test_output_branches_http.py``; this is the store, in process.
"""

from __future__ import annotations

import pytest
from datumflow.storage_service.errors import OutputBranch, ProtectedBranch
from datumflow.storage_service.model.core import CommitState, Origin
from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.store.store import Store

from .conftest import pfs, spec

UPPER = ["sh", "-c", "for f in /pfs/words/*; do tr a-z A-Z < $f > /pfs/out/$(basename $f); done"]


def _upper(store: Store, pipelines: Pipelines) -> None:
    store.create_repo("words")
    store.put_files("words", "master", [("a.txt", b"alpha"), ("b.txt", b"beta")])
    pipelines.create_pipeline(spec("upper", pfs("words"), UPPER))
    (job,) = pipelines.process()
    assert job.state.value == "success"


def _files(store: Store, repo: str) -> dict[str, bytes]:
    return {f.path: store.get_file(repo, "master", f.path) for f in store.walk_files(repo, "master")}


def test_ordinary_writes_to_an_output_branch_are_refused_and_change_nothing(store: Store,
                                                                            pipelines: Pipelines) -> None:
    _upper(store, pipelines)
    store.put_file("upper", "scratch", "extra.txt", b"a branch of the output repo that is not the output")
    head, before = store.resolve("upper", "master"), _files(store, "upper")
    writes = [
        lambda: store.put_file("upper", "master", "extra.txt", b"mine"),
        lambda: store.put_files("upper", "master", [("x/1", b"1"), ("x/2", b"2")]),
        lambda: store.delete_file("upper", "master", "a.txt"),
        lambda: store.copy_file("words", "master", "a.txt", "upper", "master", "copied.txt"),
        lambda: store.start_commit("upper", "master"),
        lambda: store.start_commit("upper", "master", origin=Origin.SPOUT),  # not a spout pipeline
        lambda: store.write_file("upper", "master", "s3.txt", b"as the S3 gateway writes"),
        lambda: store.remove_files("upper", "master", ["a.txt"]),
        lambda: store.merge("upper", "scratch", "master"),
    ]
    for write in writes:
        with pytest.raises(OutputBranch, match="output branch of pipeline upper") as caught:
            write()
        assert isinstance(caught.value, ProtectedBranch) and isinstance(caught.value, PermissionError)
    assert store.resolve("upper", "master") == head and _files(store, "upper") == before
    assert not store.list_commits("upper", "master", state="open")


def test_the_pipeline_still_runs_after_refused_writes(store: Store, pipelines: Pipelines) -> None:
    _upper(store, pipelines)
    with pytest.raises(OutputBranch):
        store.put_file("upper", "master", "extra.txt", b"mine")
    store.put_file("words", "master", "c.txt", b"gamma")
    (job,) = pipelines.process()
    assert (job.state.value, job.processed, job.skipped) == ("success", 1, 2)
    assert _files(store, "upper") == {"a.txt": b"ALPHA", "b.txt": b"BETA", "c.txt": b"GAMMA"}
    assert store.inspect_commit("upper", "master").origin is Origin.AUTO


def test_running_the_pipeline_opens_its_commit_there(store: Store, pipelines: Pipelines) -> None:
    """An ``auto`` commit on the output branch is a job (pipeline run, the Airflow/KFP drivers): never refused."""
    _upper(store, pipelines)
    opened = store.start_commit("upper", "master", origin=Origin.AUTO)
    (job,) = pipelines.process()
    assert job.output_commit == opened.id and job.state.value == "success"


def test_an_owner_repairs_with_force_and_the_next_job_writes_the_datums_union(store: Store,
                                                                              pipelines: Pipelines) -> None:
    _upper(store, pipelines)
    fixed = store.put_file("upper", "master", "a.txt", b"REPAIRED", force=True)
    assert store.get_file("upper", "master", "a.txt") == b"REPAIRED" and fixed.origin is Origin.USER
    store.delete_file("upper", "master", "b.txt", force=True)
    repair = store.start_commit("upper", "master", force=True, description="hand repair")
    store.put_file("upper", repair.id, "note.txt", b"by hand")  # the forced commit is the repairer's
    store.finish_commit("upper", repair.id)
    assert set(_files(store, "upper")) == {"a.txt", "note.txt"}
    store.put_file("words", "master", "c.txt", b"gamma")
    (job,) = pipelines.process()
    assert job.state.value == "success"
    # The job's output is the union of its datums, as in Pachyderm: a repair lasts until the next job.
    assert _files(store, "upper") == {"a.txt": b"ALPHA", "b.txt": b"BETA", "c.txt": b"GAMMA"}


def test_force_does_not_leak_past_the_write(store: Store, pipelines: Pipelines) -> None:
    _upper(store, pipelines)
    store.put_file("upper", "master", "once.txt", b"1", force=True)
    with pytest.raises(OutputBranch):
        store.put_file("upper", "master", "twice.txt", b"2")


def test_a_spout_pipelines_output_is_written_by_its_spout(store: Store, pipelines: Pipelines) -> None:
    pipelines.create_pipeline({"pipeline": {"name": "ticks"}, "spout": {}, "transform": {"cmd": ["true"]}})
    with store.writing("ticks", "master", origin=Origin.SPOUT, what="spout batch") as commit:
        store.put_file("ticks", commit.id, "batch-1", b"payload")
    assert store.get_file("ticks", "master", "batch-1") == b"payload"
    assert store.inspect_commit("ticks", commit.id).state is CommitState.FINISHED
    with pytest.raises(OutputBranch):  # anyone else is still refused
        store.put_file("ticks", "master", "by-hand", b"x")


def test_other_branches_of_the_output_repo_and_cron_repos_are_not_outputs(store: Store,
                                                                        pipelines: Pipelines) -> None:
    _upper(store, pipelines)
    store.put_file("upper", "scratch", "notes.txt", b"free to write")  # a branch of its own
    pipelines.create_pipeline(spec("tick", {"cron": {"name": "tick", "spec": "@every 1h"}},
                                   ["sh", "-c", "ls /pfs/tick > /pfs/out/seen"]))
    store.put_file("tick_tick", "master", "manual-tick", b"")  # an input, not an output
