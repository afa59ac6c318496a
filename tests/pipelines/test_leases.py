"""Several job loops on one database share a job's datums in batches; a loop that dies has its
work taken over when its claims lapse; every datum's outcome is recorded once; a cron tick is
committed once whatever the number of loops."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datumflow.storage_service.core.pipeline_schema import lineage as lineage_table
from datumflow.storage_service.pipelines.datums import compute_datums
from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.pipelines.executors.local import JobRun, LocalExecutor
from datumflow.storage_service.pipelines.jobs import DatumState, JobState
from datumflow.storage_service.pipelines.leases import PLANNING_PREFIX
from datumflow.storage_service.pipelines.planning import plan_datums
from datumflow.storage_service.store.store import Store
from sqlalchemy import func, select

from .conftest import COPY, pfs, spec

N = 40


class CountingExecutor(LocalExecutor):
    """The real local executor, counting the datums it was handed (to see who ran what)."""

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.ran: Counter[str] = Counter()

    def run(self, run: JobRun, pending: Sequence[Any], on_done: Any) -> None:
        self.ran.update(d.id for d in pending)
        super().run(run, pending, on_done)


def _job_of_n_datums(store: Store, n: int = N) -> str:
    store.create_repo("in")
    store.put_files("in", "master", [(f"f{i:03d}.txt", f"line {i}\n".encode()) for i in range(n)])
    Pipelines(store).create_pipeline(spec("copy", pfs("in"), COPY))
    (job,) = Pipelines(store).list_jobs("copy")
    return job.id


def _check_output(store: Store, job_id: str, n: int = N) -> None:
    job = Pipelines(store).inspect_job(job_id)
    assert job.state is JobState.SUCCESS, job.reason
    assert job.processed == n and job.failed == 0
    out = job.output_commit
    files = {f.path: store.get_file("copy", out, f.path) for f in store.walk_files("copy", out)}
    assert files == {f"in/f{i:03d}.txt": f"line {i}\n".encode() for i in range(n)}
    with store.engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(lineage_table)
                            .where(lineage_table.c.commit == job.output_commit)).scalar()
    assert rows == n  # each output file's lineage recorded once


def test_two_loops_share_one_job_and_each_datum_runs_once(tmp_path: Path) -> None:
    with Store(str(tmp_path / "s"), fsync=False) as store:
        job_id = _job_of_n_datums(store)
        loops = [Pipelines(store, executor=CountingExecutor(store), batch_size=4) for _ in range(2)]
        start = threading.Barrier(2)
        errors: list[BaseException] = []

        def work(p: Pipelines) -> None:
            try:
                start.wait()
                while not p.inspect_job(job_id).state.done:
                    p.process()
                    time.sleep(0.01)
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(p,)) for p in loops]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert errors == []
        ran = [p.executor.ran for p in loops]  # type: ignore[attr-defined]
        assert sum(ran, Counter()) == Counter({d: 1 for d in sum(ran, Counter())})  # nobody ran a datum twice
        assert len(sum(ran, Counter())) == N and all(ran), ran  # both loops ran some
        _check_output(store, job_id)


def test_a_dead_loops_datums_are_taken_over_once_its_claims_lapse(tmp_path: Path) -> None:
    with Store(str(tmp_path / "s"), fsync=False) as store:
        job_id = _job_of_n_datums(store)
        dead = Pipelines(store, lease_seconds=2)
        job = dead.inspect_job(job_id)
        assert dead.leases.claim_plan(job_id)
        spec_ = dead.registry.job_spec(job)
        plan_datums(dead.jobs, dead.cache, job, spec_, compute_datums(store, spec_, job.inputs),
                    pool_from=PLANNING_PREFIX + dead.leases.owner)
        taken = dead.leases.claim_datums(job_id, 10)  # … and then the loop dies: no renewal, no outcome
        claimed_at = time.time()
        assert len(taken) == 10

        alive = Pipelines(store, lease_seconds=30, executor=CountingExecutor(store))
        deadline = time.monotonic() + 120
        while not alive.inspect_job(job_id).state.done and time.monotonic() < deadline:
            alive.process()
            time.sleep(0.05)
        ended = alive.inspect_job(job_id)
        assert ended.finished is not None and ended.finished >= claimed_at + 2  # not before the claims lapsed
        ran = alive.executor.ran  # type: ignore[attr-defined]
        assert set(taken) <= set(ran) and len(ran) == N and set(ran.values()) == {1}
        _check_output(store, job_id)
        # The dead loop's late outcome (it was only paused) is refused: the datum is not recorded twice.
        assert dead.leases.record(job_id, taken[0], {"state": DatumState.FAILED.value}) is False
        assert alive.jobs.datum(job_id, taken[0]).state is DatumState.SUCCESS


def test_a_job_whose_planner_died_is_planned_again(tmp_path: Path) -> None:
    with Store(str(tmp_path / "s"), fsync=False) as store:
        job_id = _job_of_n_datums(store, 5)
        dead = Pipelines(store, lease_seconds=0.3)
        assert dead.leases.claim_plan(job_id)  # and dies before recording a datum
        time.sleep(0.4)
        (ended,) = Pipelines(store).process()
        assert ended.id == job_id
        _check_output(store, job_id, 5)


def test_a_cron_tick_is_committed_once_by_several_loops(tmp_path: Path) -> None:
    with Store(str(tmp_path / "s"), fsync=False) as store:
        cron = {"cron": {"name": "tick", "spec": "@every 1h", "start": "2000-01-01T00:00:00+00:00"}}
        Pipelines(store).create_pipeline(spec("ticks", cron, ["true"]))
        loops = [Pipelines(store) for _ in range(4)]
        now = time.time()
        start = threading.Barrier(len(loops))
        made: list[list[str]] = []

        def tick(p: Pipelines) -> None:
            start.wait()
            made.append(p.tick_crons(now=now))

        threads = [threading.Thread(target=tick, args=(p,)) for p in loops]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(len(m) for m in made) == [0, 0, 0, 1]
