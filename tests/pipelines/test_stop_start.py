"""``pipeline stop|start`` (Pachyderm's ``stop pipeline`` / ``start pipeline``) and ``run cron``, embedded.

A stopped pipeline makes no jobs for the commits that arrive and ticks no
cron; starting it runs what arrived meanwhile, in order.
"""

from __future__ import annotations

import shutil

import pytest
from datumflow.storage_service.errors import InvalidArgument, PipelineNotFound
from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.pipelines.jobs import JobState
from datumflow.storage_service.store.store import Store

from tests.pipelines.conftest import COPY, pfs, spec

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap (Debian bubblewrap) is not installed")


def _put(store: Store, repo: str, path: str, data: bytes) -> None:
    with store.writing(repo, "master") as c:
        store.put_file(repo, c.id, path, data)


def _files(store: Store, repo: str) -> list[str]:
    head = store.list_commits(repo, "master")[0]
    newest = next(c for c in store.list_commits(repo, "master") if c.is_finished) if not head.is_finished else head
    return sorted(f.path for f in store.walk_files(repo, newest.id))


def test_a_stopped_pipeline_makes_no_jobs_and_start_runs_what_arrived(store: Store, pipelines: Pipelines) -> None:
    store.create_repo("docs")
    _put(store, "docs", "a.txt", b"a")
    pipelines.create_pipeline(spec("copy", pfs("docs"), COPY))
    assert [j.state for j in pipelines.process()] == [JobState.SUCCESS]
    assert pipelines.stop_pipeline("copy").state == "stopped"
    _put(store, "docs", "b.txt", b"b")
    _put(store, "docs", "c.txt", b"c")
    assert pipelines.process() == []
    assert [j.state for j in pipelines.list_jobs("copy")] == [JobState.SUCCESS]  # no job for either commit
    assert _files(store, "copy") == ["docs/a.txt"]
    assert pipelines.inspect_pipeline("copy").state == "stopped"

    assert pipelines.start_pipeline("copy").state == "running"
    ran = pipelines.process()
    assert [j.state for j in ran] == [JobState.SUCCESS, JobState.SUCCESS]  # both commits, oldest first
    assert _files(store, "copy") == ["docs/a.txt", "docs/b.txt", "docs/c.txt"]


def test_stopping_a_missing_pipeline_is_not_found(pipelines: Pipelines) -> None:
    with pytest.raises(PipelineNotFound):
        pipelines.stop_pipeline("nope")
    with pytest.raises(PipelineNotFound):
        pipelines.start_pipeline("nope")


def test_a_stopped_cron_pipeline_does_not_tick(store: Store, pipelines: Pipelines) -> None:
    pipelines.create_pipeline(spec("tick", {"cron": {"name": "t", "spec": "@every 1s"}},
                                   ["sh", "-c", "ls /pfs/t > /pfs/out/seen"]))
    pipelines.process()
    pipelines.stop_pipeline("tick")
    assert pipelines.tick_crons(now=10**10) == []
    with pytest.raises(InvalidArgument, match="is stopped"):
        pipelines.run_cron("tick")
    pipelines.start_pipeline("tick")
    assert len(pipelines.tick_crons(now=10**10)) == 1
    commit = pipelines.run_cron("tick")
    pipelines.process()
    job = pipelines.job_for_commit(commit)
    assert job.state is JobState.SUCCESS
    assert len(store.get_file("tick", "master", "seen").split()) == 2  # the due tick and the run-cron one, no more


def test_run_cron_refuses_a_pipeline_without_cron(store: Store, pipelines: Pipelines) -> None:
    store.create_repo("docs")
    pipelines.create_pipeline(spec("copy", pfs("docs"), COPY))
    with pytest.raises(InvalidArgument, match="no cron input"):
        pipelines.run_cron("copy")
