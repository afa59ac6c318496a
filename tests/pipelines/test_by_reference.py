"""Jobs that inherit their base job's datums by reference equal jobs computed from scratch.

Two pipelines of the same transform read the same inputs: ``inc`` (the
default: each job carries its base job's unchanged datums over by reference)
and ``ref`` (``reprocess_spec: every_job``: each job computes and runs every
datum). After every input commit of a sequence of edits (files added,
changed, deleted, across pfs, cross and join inputs) both output commits hold
the same files, every file has the same lineage, and every datum listed,
inspected and counted is the same.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from datumflow.storage_service.model.lineage import LineageNode
from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.pipelines.jobs import JobInfo, JobState
from datumflow.storage_service.store.store import Store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import pfs, spec

# Every input file of the datum is copied to out/<input>_<path with / as _>, and its name appended
# to out/all.txt, so datums sharing a file (cross) or all datums (all.txt) collide and are merged.
TRANSFORM = ["sh", "-c", "cd /pfs && for d in *; do [ \"$d\" = out ] && continue; "
             "find \"$d/\" -type f | sort | while read f; do n=$(echo \"$f\" | tr / _); "
             "cat \"$f\" >> \"out/$n\"; echo \"$f\" >> out/all.txt; done; done"]

INPUTS: dict[str, dict[str, Any]] = {
    "pfs": pfs("a"),
    "deep": pfs("a", "/**"),
    "cross": {"cross": [pfs("a"), pfs("b")]},
    "join": {"join": [pfs("a", "/(k*)_*", join_on="$1"), pfs("b", "/(k*)_*", join_on="$1")]},
    "union": {"union": [pfs("a"), pfs("b")]},
}
NAMES = [f"k{i}_{j}" for i in range(3) for j in range(2)] + ["d0/k0_x", "d0/k1_y", "d1/k2_z"]

Edit = tuple[str, str, int | None]  # (repo, path, new content or None to delete)


def _initial(store: Store) -> None:
    for repo in ("a", "b"):
        store.create_repo(repo)
        store.put_files(repo, "master", [(n, f"{repo} {n} 0\n".encode()) for n in NAMES[::2]])


def _pipelines(pipes: Pipelines, kind: str) -> None:
    pipes.create_pipeline(spec("inc", INPUTS[kind], TRANSFORM))
    pipes.create_pipeline(spec("ref", INPUTS[kind], TRANSFORM, reprocess_spec="every_job"))


def _apply(store: Store, edits: list[Edit]) -> None:
    for repo in ("a", "b"):
        mine = [(path, None if v is None else f"{repo} {path} {v}\n".encode()) for r, path, v in edits if r == repo]
        present = {f.path for f in store.walk_files(repo, "master")}
        mine = [(p, v) for p, v in mine if v is not None or p in present]
        if mine:
            store.put_files(repo, "master", mine)


def _lineage(node: LineageNode, top: bool = True) -> Any:
    """A lineage tree without what names the pipeline's own job and commit."""
    return (
        node.path, node.hash, None if top else node.commit, node.datums,
        tuple(sorted(_lineage(k, top=False) for k in node.inputs)),
    )


def _head_job(pipes: Pipelines, name: str) -> JobInfo:
    (job, *_) = pipes.list_jobs(name)
    assert job.state is JobState.SUCCESS, job.reason
    return job


def _same(store: Store, pipes: Pipelines) -> JobInfo:
    inc, ref = _head_job(pipes, "inc"), _head_job(pipes, "ref")
    assert inc.inputs == ref.inputs
    files = {f.path: f.hash for f in store.walk_files("inc", inc.output_commit)}
    assert files == {f.path: f.hash for f in store.walk_files("ref", ref.output_commit)}
    for path in files:
        mine = pipes.lineage("inc", inc.output_commit, path)
        assert mine.job == inc.id and mine.commit == inc.output_commit
        assert _lineage(mine) == _lineage(pipes.lineage("ref", ref.output_commit, path)), path
    listed = pipes.list_datums(inc.id)
    expected = {d.id: d.inputs for d in pipes.list_datums(ref.id)}
    assert {d.id: d.inputs for d in listed} == expected
    for d in listed:
        assert d.job == inc.id
        assert pipes.inspect_datum(inc.id, d.id) == d
        assert pipes.inspect_datum(inc.id, d.id[:10]) == d
    states = [d.state.value for d in listed]
    assert inc.total == len(listed) == ref.total
    assert (inc.processed, inc.skipped, inc.failed) == (states.count("success"), states.count("skipped"), 0)
    assert store.inspect_commit("inc", inc.output_commit).metadata["datums"] == inc.counters
    return inc


def _run(root: Path, kind: str, steps: list[list[Edit]]) -> list[JobInfo]:
    with Store(str(root), fsync=False) as store:
        pipes = Pipelines(store)
        _initial(store)
        _pipelines(pipes, kind)
        pipes.process()
        jobs = [_same(store, pipes)]
        for edits in steps:
            _apply(store, edits)
            pipes.process()
            jobs.append(_same(store, pipes))
        pipes.run_pipeline("inc")  # an unchanged re-run
        pipes.run_pipeline("ref")
        pipes.process()
        jobs.append(_same(store, pipes))
        assert jobs[-1].processed == 0
        return jobs


# A table of edit sequences: changes, additions, deletions (of files and of whole folders' files).
TABLE: list[list[Edit]] = [
    [("a", "k0_0", 1)],
    [("a", "k1_1", 1), ("b", "k0_0", 2)],
    [("a", "k2_0", None)],
    [("a", "d0/k1_y", 3), ("a", "d0/k0_x", None)],
    [("b", "k1_1", 5), ("b", "k2_0", None)],
    [("a", "k2_0", 7)],
]


@pytest.mark.parametrize("kind", sorted(INPUTS))
def test_jobs_by_reference_equal_jobs_from_scratch(tmp_path: Path, kind: str) -> None:
    jobs = _run(tmp_path / "store", kind, TABLE)
    assert any(j.base_job is not None for j in jobs), "no job inherited its base's datums"
    assert any(0 < j.processed < j.total for j in jobs)


_edit = st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(NAMES), st.one_of(st.none(), st.integers(1, 3)))


@pytest.mark.slow
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(sorted(INPUTS)), steps=st.lists(st.lists(_edit, min_size=1, max_size=3), max_size=5))
def test_random_edit_sequences_by_reference_equal_from_scratch(kind: str, steps: list[list[Edit]]) -> None:
    with tempfile.TemporaryDirectory(prefix="byref-") as folder:
        _run(Path(folder) / "store", kind, steps)


def test_a_job_inherits_from_its_root_and_a_later_one_can_become_a_root(tmp_path: Path) -> None:
    with Store(str(tmp_path / "store"), fsync=False) as store:
        pipes = Pipelines(store)
        store.create_repo("a")
        store.put_files("a", "master", [(f"f{i}", b"%d" % i) for i in range(10)])
        pipes.create_pipeline(spec("inc", pfs("a"), TRANSFORM))
        (root,) = pipes.process()
        store.put_file("a", "master", "f1", b"new")
        (second,) = pipes.process()
        store.put_file("a", "master", "f2", b"new")
        (third,) = pipes.process()
        assert root.base_job is None and second.base_job == root.id and third.base_job == root.id
        assert (third.processed, third.skipped, third.total) == (1, 9, 10)
        store.put_files("a", "master", [(f"f{i}", b"again") for i in range(3, 10)])
        (fourth,) = pipes.process()  # most datums differ: every datum is recorded (a new root)
        assert fourth.base_job is None and (fourth.processed, fourth.skipped) == (7, 3)
        assert store.get_file("inc", "master", "a_f1") == b"new"
        assert store.get_file("inc", "master", "a_f9") == b"again"
        pipes.delete_pipeline("inc")
        assert not pipes.exists("inc")


def test_a_job_whose_output_commit_was_deleted_is_no_base(tmp_path: Path) -> None:
    with Store(str(tmp_path / "store"), fsync=False) as store:
        pipes = Pipelines(store)
        store.create_repo("a")
        store.put_files("a", "master", [(f"f{i}", b"%d" % i) for i in range(4)])
        pipes.create_pipeline(spec("inc", pfs("a"), TRANSFORM))
        (first,) = pipes.process()
        store.put_file("a", "master", "f1", b"new")
        (second,) = pipes.process()
        assert second.base_job == first.id
        store.delete_commit("inc", second.output_commit)
        store.put_file("a", "master", "f2", b"new")
        (third,) = pipes.process()
        assert third.base_job == first.id  # the newest job whose output commit is still there
        assert store.get_file("inc", "master", "a_f1") == b"new" and store.get_file("inc", "master", "a_f2") == b"new"
        assert third.counters == {"total": 4, "processed": 1, "skipped": 3, "failed": 0, "recovered": 0}


def test_lineage_of_inherited_files_crosses_stages_at_the_current_commits(tmp_path: Path) -> None:
    copy = ["sh", "-c", "cp -r /pfs/*/. /pfs/out/ 2>/dev/null; rm -rf /pfs/out/out; true"]
    with Store(str(tmp_path / "store"), fsync=False) as store:
        pipes = Pipelines(store)
        store.create_repo("a")
        store.put_files("a", "master", [(f"f{i}", b"%d" % i) for i in range(6)])
        pipes.create_pipeline(spec("one", pfs("a"), copy))
        pipes.create_pipeline(spec("two", pfs("one"), copy))
        pipes.process()
        store.put_file("a", "master", "f1", b"changed")
        pipes.process()
        one, two = _head_job(pipes, "one"), _head_job(pipes, "two")
        assert one.base_job is not None and two.base_job is not None
        a_head = store.resolve("a", "master")
        for path, touched in (("f1", True), ("f4", False)):
            node = pipes.lineage("two", "master", path)
            assert (node.job, node.commit) == (two.id, two.output_commit)
            (mid,) = node.inputs
            assert (mid.repo, mid.commit, mid.path, mid.job) == ("one", one.output_commit, path, one.id)
            (leaf,) = mid.inputs
            assert (leaf.repo, leaf.commit, leaf.path, leaf.pipeline) == ("a", a_head, path, None)
            assert store.get_file("two", "master", path) == (b"changed" if touched else path[1:].encode())
