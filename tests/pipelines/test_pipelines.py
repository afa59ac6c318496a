"""Creating, updating and deleting pipelines: output repo, branches, spec commits, cycles."""

from __future__ import annotations

import json

import pytest
from datumflow.storage_service.errors import AlreadyExists, BranchInUse, InvalidArgument, RepoNotFound
from datumflow.storage_service.model.core import BranchRef, CommitState, Origin
from datumflow.storage_service.pipelines.engine import PipelineNotFound, Pipelines
from datumflow.storage_service.store.store import Store

from .conftest import COPY, pfs, spec


def test_create_makes_output_repo_owned_branch_and_spec_commit(store: Store, pipelines: Pipelines) -> None:
    store.create_repo("raw")
    info = pipelines.create_pipeline(spec("clean", pfs("raw"), COPY))
    out = store.inspect_branch("clean", "master")
    assert out.owner == "clean"
    assert set(out.provenance) == {BranchRef("raw", "master"), BranchRef("clean", "spec")}
    spec_commit = store.inspect_commit("clean", "spec")
    assert spec_commit.id == info.spec_commit
    assert spec_commit.origin is Origin.SPEC
    assert json.loads(store.get_file("clean", "spec", "spec.json"))["transform"]["cmd"] == COPY
    assert info.inputs == ["raw@master"]


def test_output_commit_provenance_names_inputs_and_spec(store: Store, pipelines: Pipelines) -> None:
    store.create_repo("raw")
    info = pipelines.create_pipeline(spec("clean", pfs("raw"), COPY))
    data = store.put_file("raw", "master", "a.txt", b"hello")
    (job,) = [j for j in pipelines.process() if j.inputs == {"raw": data.id}]
    out = store.inspect_commit("clean", job.output_commit)
    assert out.state is CommitState.FINISHED
    assert set(out.provenance) == {data.id, info.spec_commit}
    assert out.commit_set == data.commit_set
    assert out.metadata["job"] == job.id
    assert out.metadata["datums"]["processed"] == 1


def test_bad_input_leaves_nothing_behind(store: Store, pipelines: Pipelines) -> None:
    with pytest.raises(RepoNotFound, match="input repo missing"):
        pipelines.create_pipeline(spec("p", pfs("missing"), COPY))
    with pytest.raises(InvalidArgument):
        pipelines.create_pipeline(spec("p", pfs("missing", glob=""), COPY))
    assert [r.name for r in store.list_repos()] == []
    assert pipelines.list_pipelines() == []


def test_existing_pipeline_or_repo_is_refused(store: Store, pipelines: Pipelines) -> None:
    store.create_repo("raw")
    store.create_repo("taken")
    with pytest.raises(AlreadyExists, match="repo taken"):
        pipelines.create_pipeline(spec("taken", pfs("raw"), COPY))
    pipelines.create_pipeline(spec("p", pfs("raw"), COPY))
    with pytest.raises(AlreadyExists, match="use update"):
        pipelines.create_pipeline(spec("p", pfs("raw"), COPY))


def test_cycles_are_refused(store: Store, pipelines: Pipelines) -> None:
    store.create_repo("raw")
    pipelines.create_pipeline(spec("a", pfs("raw"), COPY))
    pipelines.create_pipeline(spec("b", pfs("a"), COPY))
    with pytest.raises(InvalidArgument, match=r"cycle: a -> b -> a"):
        pipelines.update_pipeline(spec("a", {"cross": [pfs("raw"), pfs("b")]}, COPY))
    assert pipelines.inspect_pipeline("a").version == 1  # nothing changed


def test_update_commits_a_new_spec_and_keeps_history(store: Store, pipelines: Pipelines) -> None:
    store.create_repo("raw")
    first = pipelines.create_pipeline(spec("p", pfs("raw"), COPY))
    second = pipelines.update_pipeline(spec("p", pfs("raw"), ["true"]))
    assert second.version == 2
    assert second.spec_commit != first.spec_commit
    assert [c.id for c in store.list_commits("p", "spec")] == [second.spec_commit, first.spec_commit]
    with pytest.raises(InvalidArgument, match="output_branch cannot change"):
        pipelines.update_pipeline(spec("p", pfs("raw"), COPY, output_branch="other"))


def test_delete_removes_output_and_refuses_when_used(store: Store, pipelines: Pipelines) -> None:
    store.create_repo("raw")
    pipelines.create_pipeline(spec("a", pfs("raw"), COPY))
    pipelines.create_pipeline(spec("b", pfs("a"), COPY))
    with pytest.raises(BranchInUse, match="input of b"):
        pipelines.delete_pipeline("a")
    pipelines.delete_pipeline("b")
    pipelines.delete_pipeline("a")
    assert [r.name for r in store.list_repos()] == ["raw"]
    with pytest.raises(PipelineNotFound):
        pipelines.inspect_pipeline("a")


def test_one_commit_set_touching_two_inputs_makes_one_job(store: Store, pipelines: Pipelines) -> None:
    store.create_repo("a")
    store.create_repo("b")
    store.create_branch("a", "master")
    store.create_branch("b", "master", provenance=["a@master"])  # b follows a: one commit set reaches both
    pipelines.create_pipeline(spec("p", {"cross": [pfs("a"), pfs("b", glob="/")]}, ["true"]))
    pipelines.process()
    before = len(pipelines.list_jobs("p"))
    store.put_file("a", "master", "x", b"1")
    pipelines.process()
    jobs = pipelines.list_jobs("p")
    assert len(jobs) == before + 1
    assert set(jobs[0].inputs) == {"a", "b"} and all(jobs[0].inputs.values())


def test_cron_input_ticks_into_its_repo(store: Store, pipelines: Pipelines) -> None:
    pipelines.create_pipeline(spec("c", {"cron": {"name": "tick", "spec": "@every 1s"}}, COPY))
    made = pipelines.tick_crons(now=pipelines.inspect_pipeline("c").created + 5)
    assert len(made) == 1
    (tick,) = list(store.walk_files("c_tick", "master"))
    jobs = pipelines.process()
    assert jobs[-1].state.value == "success"
    assert [f.path for f in store.walk_files("c", "master")] == [f"tick/{tick.path}"]
    assert pipelines.tick_crons(now=pipelines.inspect_pipeline("c").created + 5) == []
