"""Per-file lineage, recursively upstream through every pipeline."""

from __future__ import annotations

import time

import pytest
from datumflow.storage_service.errors import PathNotFound
from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.store.store import Store

from .conftest import pfs, spec

COUNT = ["sh", "-c", "for f in /pfs/docs/*; do wc -w < $f > /pfs/out/$(basename $f).n; done"]
TOTAL = ["sh", "-c", "cat /pfs/counts/* | awk '{s+=$1} END {print s}' > /pfs/out/total"]


def test_lineage_through_two_stages(store: Store, pipelines: Pipelines) -> None:
    store.create_repo("docs")
    data = store.put_files("docs", "master", [("a.txt", b"one two"), ("b.txt", b"three")])
    pipelines.create_pipeline(spec("counts", pfs("docs"), COUNT))
    pipelines.create_pipeline(spec("total", pfs("counts", glob="/"), TOTAL))
    pipelines.process()
    assert store.get_file("total", "master", "total") == b"3\n"
    node = pipelines.lineage("total", "master", "total")
    assert (node.repo, node.pipeline, node.path) == ("total", "total", "total")
    assert [c.path for c in node.inputs] == ["a.txt.n", "b.txt.n"]
    first = node.inputs[0]
    assert (first.repo, first.pipeline) == ("counts", "counts")
    assert first.hash == store.inspect_file("counts", "master", "a.txt.n").hash
    (source,) = first.inputs
    assert (source.repo, source.commit, source.path, source.pipeline) == ("docs", data.id, "a.txt", None)
    assert source.hash == store.inspect_file("docs", data.id, "a.txt").hash
    shallow = pipelines.lineage("total", "master", "total", depth=1)
    assert shallow.inputs[0].inputs == ()
    as_dict = node.to_dict()
    assert as_dict["inputs"][0]["inputs"][0] == {"repo": "docs", "commit": data.id, "path": "a.txt",
                                                 "hash": source.hash}


def test_reused_datum_names_the_current_input_commit(store: Store, pipelines: Pipelines) -> None:
    store.create_repo("docs")
    store.put_file("docs", "master", "a.txt", b"one")
    pipelines.create_pipeline(spec("counts", pfs("docs"), COUNT))
    pipelines.process()
    newer = store.put_file("docs", "master", "b.txt", b"two")
    pipelines.process()
    (source,) = pipelines.lineage("counts", "master", "a.txt.n").inputs
    assert source.commit == newer.id


def test_lineage_of_a_missing_file(store: Store, pipelines: Pipelines) -> None:
    store.create_repo("docs")
    store.put_file("docs", "master", "a.txt", b"one")
    with pytest.raises(PathNotFound):
        pipelines.lineage("docs", "master", "nope")
    assert pipelines.lineage("docs", "master", "a.txt").pipeline is None


@pytest.mark.slow
def test_lineage_is_fast_with_ten_thousand_datums(store: Store, pipelines: Pipelines) -> None:
    """Recorded lineage of a 10k-datum job, queried directly (the jobs are recorded, not run)."""
    import json

    from datumflow.storage_service.core.pipeline_schema import datums
    from datumflow.storage_service.pipelines.lineage import record_lineage

    store.create_repo("docs")
    src = store.put_files("docs", "master", [(f"f{i}", str(i).encode()) for i in range(10_000)])
    pipelines.create_pipeline(spec("counts", pfs("docs"), ["true"]))
    (job,) = pipelines.list_jobs("counts")
    assert len(pipelines.plan_job(job.id)) == 10_000  # recorded, as an external executor's plan is; none run
    files = {f.path: f.hash for f in store.walk_files("docs", src.id)}
    store.create_repo("scratch")
    out = store.start_commit("scratch", "master")
    store.put_files("scratch", out.id, [(f"f{i}.n", b"x") for i in range(10_000)])
    store.finish_commit("scratch", out.id)
    rows = pipelines.list_datums(job.id)
    assert len(rows) == 10_000
    by_path = {r.inputs[0]["path"]: r.id for r in rows}
    record_lineage(store.engine, out.id, job.id, {f"{p}.n": d for p, d in by_path.items()})
    with store.engine.connect() as conn:
        assert conn.execute(datums.select().where(datums.c.job == job.id).limit(1)).first() is not None
    start = time.perf_counter()
    node = pipelines.lineage("scratch", out.id, "f1234.n")
    elapsed = time.perf_counter() - start
    assert node.inputs[0].path == "f1234" and node.inputs[0].hash == files["f1234"]
    assert json.dumps(node.to_dict())
    print(f"lineage lookup: {elapsed * 1000:.1f} ms")


def test_lineage_follows_a_file_through_a_merge(store: Store, pipelines: Pipelines) -> None:
    store.create_repo("docs")
    store.put_files("docs", "master", [("a.txt", b"one two")])
    pipelines.create_pipeline(spec("counts", pfs("docs"), COUNT))
    pipelines.process()
    written = store.resolve("counts", "master")
    store.create_branch("counts", "review", head="master")
    store.create_branch("counts", "publish", head="master")
    store.put_file("counts", "review", "note", b"checked")
    store.put_file("counts", "publish", "readme", b"r")
    merged = store.merge("counts", "review", "publish").commit
    assert merged.merge_parent  # a merge commit: the job's file reached it through its parents
    node = pipelines.lineage("counts", "publish", "a.txt.n")
    assert (node.pipeline, node.commit) == ("counts", written)
    assert [c.path for c in node.inputs] == ["a.txt"]
