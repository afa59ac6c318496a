"""Pipelines: dedup-aware reruns, per-datum overhead and lineage, against the bare costs under them.

Figures (the pipelines issue's goals):

* 10,000 one-file datums (glob ``/*``, transform ``cp -r /pfs/in/. /pfs/out/``),
  then 1% more files: the incremental job's time over the full job's (≤ 0.03);
* an unchanged re-run of the same job: its time per skipped datum (≤ 20 µs);
* a no-op transform (``true``): job time per datum minus the bare cost of
  spawning ``true`` from the same process the same number of times, in four
  rounds of (spawns, then a fresh job of as many datums), median (≤ 5 ms);
* lineage of one file through a 3-stage chain of 10,000-datum jobs, against a
  plain ``inspect_file`` of the same file (≤ 50 ms);
* (diagnostic) the cost of the per-datum output pack's fsync: a copy job with
  the store's default ``fsync=True`` against ``fsync=False``.

Everything runs embedded (``Pipelines(store)`` in this process, the local
executor), on a store with ``fsync=False`` except for the fsync figure: a
10,000-datum job with one fsynced pack per datum would not fit the time budget.
At ``--scale small`` the jobs have 1,000 datums.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.pipelines.executors.local import LocalExecutor
from datumflow.storage_service.pipelines.jobs import JobInfo, JobState
from datumflow.storage_service.store.store import Store

if TYPE_CHECKING:
    from .run import Context

IN = "in"
NOOP_ROUNDS = 4  # no-op jobs, each preceded by as many bare spawns


@dataclass(frozen=True)
class Sizes:
    datums: int  # files of the input commit = datums of the full job
    added: int  # files added before each incremental job (1%)
    reps: int  # incremental jobs and unchanged re-runs (median)
    noop: int  # datums of the `true` job
    lookups: int  # lineage lookups (median)
    fsync_datums: int  # datums of each job of the fsync figure


FULL = Sizes(datums=10_000, added=100, reps=3, noop=2_000, lookups=21, fsync_datums=100)
SMALL = Sizes(datums=1_000, added=10, reps=3, noop=1_000, lookups=21, fsync_datums=50)


def run(ctx: Context) -> list[dict[str, Any]]:
    sizes = ctx.pick(FULL, SMALL)
    out: list[dict[str, Any]] = []
    with Store(str(ctx.workdir / "store"), fsync=False) as store:
        pipes = Pipelines(store, executor=LocalExecutor(store, workdir=str(_scratch(ctx))))
        store.create_repo(IN)
        store.put_files(IN, "master", [(_name("f", i), b"datum %d\n" % i) for i in range(sizes.datums)])
        out += incremental(ctx, sizes, pipes)
        out += noop(ctx, sizes, pipes)
        out += lineage(ctx, sizes, pipes)
    out += fsync_cost(ctx, sizes)
    return out


# -- incremental and unchanged re-runs ------------------------------------------------


def copy_spec(name: str, src: str, parallelism: int = 1) -> dict[str, Any]:
    return {
        "pipeline": {"name": name},
        "input": {"pfs": {"repo": src, "glob": "/*"}},
        "transform": {"image": "busybox", "cmd": ["cp", "-r", f"/pfs/{src}/.", "/pfs/out/"]},
        "parallelism_spec": {"constant": parallelism},
    }


def incremental(ctx: Context, sizes: Sizes, pipes: Pipelines) -> list[dict[str, Any]]:
    pipes.create_pipeline(copy_spec("copy", IN))
    ctx.log(f"full job: {sizes.datums} datums")
    full_s, job = _job(ctx, pipes, "copy")
    _expect(job, processed=sizes.datums, skipped=0)

    incr_s, rerun_s, rerun_skipped = [], [], []
    for rep in range(sizes.reps):
        ctx.log(f"incremental job {rep + 1}/{sizes.reps}: +{sizes.added} files")
        pipes.store.put_files(IN, "master", [(_name(f"g{rep}_", i), b"new %d %d\n" % (rep, i))
                                             for i in range(sizes.added)])
        seconds, job = _job(ctx, pipes, "copy")
        _expect(job, processed=sizes.added, skipped=job.total - sizes.added)
        incr_s.append(seconds)

        pipes.run_pipeline("copy")
        seconds, job = _job(ctx, pipes, "copy")
        _expect(job, processed=0, skipped=job.total)
        rerun_s.append(seconds)
        rerun_skipped.append(job.total)

    incr, rerun = ctx.median(incr_s), ctx.median(rerun_s)
    skipped = int(ctx.median([float(n) for n in rerun_skipped]))
    per_skipped_us = rerun / skipped * 1e6
    per_processed_ms = full_s / sizes.datums * 1000
    n = f"{sizes.datums:,}"
    return [
        ctx.figure(
            "pipelines.incremental_1pct_vs_full", incr, "s",
            peer=f"full job {full_s:.1f} s ({n} datums, {per_processed_ms:.1f} ms/datum)",
            ratio=incr / full_s, goal="≤ 0.03 of the full job", met=incr / full_s <= 0.03,
        ),
        ctx.figure(
            "pipelines.skipped_datum_cost", per_skipped_us, "µs/datum",
            peer=f"unchanged re-run {rerun * 1000:.0f} ms for {skipped:,} skipped; "
                 f"processed datum {per_processed_ms:.1f} ms",
            ratio=per_skipped_us / 1000 / per_processed_ms, goal="≤ 20 µs per skipped datum",
            met=per_skipped_us <= 20,
        ),
    ]


# -- per-datum overhead with a no-op transform ------------------------------------------


def noop(ctx: Context, sizes: Sizes, pipes: Pipelines) -> list[dict[str, Any]]:
    """Rounds of (bare spawns, a fresh no-op job of as many datums): fine-grained interleaving."""
    store = pipes.store
    per_round = sizes.noop // NOOP_ROUNDS
    job_ms, bare_ms = [], []
    for r in range(NOOP_ROUNDS):
        repo, name = f"noop_in{r}", f"noop{r}"
        store.create_repo(repo)
        store.put_files(repo, "master", [(_name("n", i), b"noop %d %d\n" % (r, i)) for i in range(per_round)])
        pipes.create_pipeline({
            "pipeline": {"name": name},
            "input": {"pfs": {"repo": repo, "glob": "/*"}},
            "transform": {"image": "busybox", "cmd": ["true"]},
        })
        ctx.log(f"no-op round {r + 1}/{NOOP_ROUNDS}: {per_round} bare spawns of `true`, a job of {per_round} datums")
        bare_ms.append(ctx.timed(partial(_spawn_true, per_round)) / per_round * 1000)
        seconds, job = _job(ctx, pipes, name)
        _expect(job, processed=per_round, skipped=0)
        job_ms.append(seconds / per_round * 1000)
    per_datum, bare = ctx.median(job_ms), ctx.median(bare_ms)
    overhead = ctx.median([j - b for j, b in zip(job_ms, bare_ms, strict=True)])
    return [ctx.figure(
        "pipelines.noop_datum_overhead", overhead, "ms/datum",
        peer=f"bare spawn of true {bare:.2f} ms; job {per_datum:.2f} ms/datum "
             f"({NOOP_ROUNDS} jobs of {per_round:,} datums)",
        ratio=per_datum / bare, goal="≤ 5 ms over the bare spawn", met=overhead <= 5,
    )]


def _spawn_true(times: int) -> None:
    for _ in range(times):
        subprocess.run(["true"], check=True)


# -- lineage through three stages -----------------------------------------------------------


def lineage(ctx: Context, sizes: Sizes, pipes: Pipelines) -> list[dict[str, Any]]:
    # stage 1 is "copy" (10,000 + 1% datums); two more 1:1 stages on top, built untimed
    for name, src in (("stage2", "copy"), ("stage3", "stage2")):
        pipes.create_pipeline(copy_spec(name, src, parallelism=2))
        ctx.log(f"building {name} (untimed)")
        (job,) = pipes.process(pipeline=name)
        if job.state is not JobState.SUCCESS:
            raise AssertionError(f"{name}: {job.state.value}: {job.reason}")
    store = pipes.store
    paths = sorted(f.path for f in store.list_files("stage3", "master", ""))
    picks = [paths[(k * len(paths)) // sizes.lookups] for k in range(sizes.lookups)]
    lin_s, info_s = [], []
    for path in picks:  # interleaved: a lineage, then the plain inspect of the same file
        found: list[Any] = []
        lin_s.append(ctx.timed(partial(_lineage, pipes, path, found)))
        info_s.append(ctx.timed(partial(store.inspect_file, "stage3", "master", path)))
        chain = [node.repo for _, node in found[0].walk()]
        if chain != ["stage3", "stage2", "copy", IN]:
            raise AssertionError(f"lineage of stage3:{path} is {chain}")
    lin, info = ctx.median(lin_s) * 1000, ctx.median(info_s) * 1000
    return [ctx.figure(
        "pipelines.lineage_3stages", lin, "ms",
        peer=f"inspect_file {info:.2f} ms (stages of {len(paths):,} datums)",
        ratio=lin / info, goal="≤ 50 ms", met=lin <= 50,
    )]


def _lineage(pipes: Pipelines, path: str, found: list[Any]) -> None:
    found.append(pipes.lineage("stage3", "master", path))


# -- the per-datum pack's fsync (diagnostic) -------------------------------------------------


def fsync_cost(ctx: Context, sizes: Sizes) -> list[dict[str, Any]]:
    per: dict[bool, list[float]] = {True: [], False: []}
    for rep in range(2):
        for fsync in (False, True):
            root = ctx.workdir / f"fsync-{fsync}-{rep}"
            with Store(str(root), fsync=fsync) as store:
                pipes = Pipelines(store, executor=LocalExecutor(store, workdir=str(_scratch(ctx))))
                store.create_repo(IN)
                store.put_files(IN, "master", [(_name("f", i), b"%d\n" % i) for i in range(sizes.fsync_datums)])
                pipes.create_pipeline(copy_spec("copy", IN))
                seconds, job = _job(ctx, pipes, "copy")
                _expect(job, processed=sizes.fsync_datums, skipped=0)
                per[fsync].append(seconds / sizes.fsync_datums * 1000)
            _rmtree(root)
    on, off = ctx.median(per[True]), ctx.median(per[False])
    return [ctx.figure(
        "pipelines.copy_datum_fsync_on", on, "ms/datum",
        peer=f"fsync=False {off:.2f} ms/datum ({sizes.fsync_datums} datums)",
        ratio=on / off, goal="diagnostic (no goal)", met=None,
    )]


# -- helpers -------------------------------------------------------------------------------


def _job(ctx: Context, pipes: Pipelines, pipeline: str) -> tuple[float, JobInfo]:
    jobs: list[JobInfo] = []
    seconds = ctx.timed(lambda: jobs.extend(pipes.process(pipeline=pipeline)))
    if len(jobs) != 1:
        raise AssertionError(f"{pipeline}: expected one job, ran {len(jobs)}")
    job = jobs[0]
    if job.state is not JobState.SUCCESS:
        raise AssertionError(f"{pipeline} job {job.id}: {job.state.value}: {job.reason}")
    return seconds, job


def _expect(job: JobInfo, *, processed: int, skipped: int) -> None:
    got = job.counters
    if got["processed"] != processed or got["skipped"] != skipped:
        raise AssertionError(f"job {job.id}: counters {got}, expected processed={processed} skipped={skipped}")


def _name(prefix: str, i: int) -> str:
    return f"{prefix}{i:05d}"


def _scratch(ctx: Context) -> Path:
    folder = ctx.workdir / "datums"
    folder.mkdir(exist_ok=True)
    return folder


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
