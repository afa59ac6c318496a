"""Pipelines: dedup-aware reruns, per-datum overhead and lineage, against the bare costs under them.

Figures (the pipelines issue's goals):

* 10,000 one-file datums (glob ``/*``, transform ``cp -r /pfs/in/. /pfs/out/``),
  then 1% more files: the incremental job's time over the full job's (≤ 0.03);
* 100,000 one-file datums: an unchanged re-run's time (< 1 s) and its time
  per skipped datum (≤ 5 µs); the first job of those 100,000 is built
  untimed by a driver that records each datum's output in-process (what a
  ``cp`` datum would upload: the input file's own index entry), as
  ``@task.datum`` records a datum an Airflow task ran;
* job time against the fraction of datums that are new (0, 1, 5, 10, 25, 50,
  100 % of 2,000 files changed), against its full job: a table figure
  per fraction and a plot, ``docs/pipelines-new-datum-fraction.png``;
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
At ``--scale small`` the jobs have 1,000 datums (10,000 for the re-run figures, 500 for the fractions).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.pipelines.executors.local import LocalExecutor
from datumflow.storage_service.pipelines.jobs import DatumState, JobInfo, JobState
from datumflow.storage_service.store import queries
from datumflow.storage_service.store.store import Store

from .plot import plot

if TYPE_CHECKING:
    from .run import Context

IN = "in"
SWEEP = "sweep_in"
NOOP_ROUNDS = 4  # no-op jobs, each preceded by as many bare spawns


FRACTIONS = (0.0, 0.01, 0.05, 0.10, 0.25, 0.50, 1.0)  # of the datums new in a job (content changed)
PLOT = Path(__file__).resolve().parent.parent / "docs" / "pipelines-new-datum-fraction.png"


@dataclass(frozen=True)
class Sizes:
    datums: int  # files of the input commit = datums of the full job
    big: int  # datums of the unchanged re-run figures
    added: int  # files added before each incremental job (1%)
    reps: int  # incremental jobs and unchanged re-runs (median)
    noop: int  # datums of the `true` job
    lookups: int  # lineage lookups (median)
    fsync_datums: int  # datums of each job of the fsync figure
    sweep: int  # datums of the pipeline of the new-datum fraction figures


FULL = Sizes(datums=10_000, big=100_000, added=100, reps=3, noop=2_000, lookups=21, fsync_datums=100, sweep=2_000)
SMALL = Sizes(datums=1_000, big=10_000, added=10, reps=3, noop=1_000, lookups=21, fsync_datums=50, sweep=500)


def run(ctx: Context) -> list[dict[str, Any]]:
    sizes = ctx.pick(FULL, SMALL)
    out: list[dict[str, Any]] = []
    with Store(str(ctx.workdir / "store"), fsync=False) as store:
        pipes = Pipelines(store, executor=LocalExecutor(store, workdir=str(_scratch(ctx))))
        # The figures of jobs by reference first (each figure is printed as it is measured).
        sweep_s, figures = fractions(ctx, sizes, pipes)
        out += figures
        out += unchanged(ctx, sizes, pipes, sweep_s / sizes.sweep)
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
    """The full job of "copy" and 1% incremental jobs."""
    pipes.create_pipeline(copy_spec("copy", IN))
    ctx.log(f"full job: {sizes.datums} datums")
    full_s, job = _job(ctx, pipes, "copy")
    _expect(job, processed=sizes.datums, skipped=0)

    incr_s = []
    for rep in range(sizes.reps):
        ctx.log(f"incremental job {rep + 1}/{sizes.reps}: +{sizes.added} files")
        pipes.store.put_files(IN, "master", [(_name(f"g{rep}_", i), b"new %d %d\n" % (rep, i))
                                             for i in range(sizes.added)])
        seconds, job = _job(ctx, pipes, "copy")
        _expect(job, processed=sizes.added, skipped=job.total - sizes.added)
        incr_s.append(seconds)
    incr = ctx.median(incr_s)
    per_processed_ms = full_s / sizes.datums * 1000
    n = f"{sizes.datums:,}"
    return [
        ctx.figure(
            "pipelines.incremental_1pct_vs_full", incr, "s",
            peer=f"full job {full_s:.1f} s ({n} datums, {per_processed_ms:.1f} ms/datum)",
            ratio=incr / full_s, goal="≤ 0.03 of the full job", met=incr / full_s <= 0.03,
        ),
    ]


def fractions(ctx: Context, sizes: Sizes, pipes: Pipelines) -> tuple[float, list[dict[str, Any]]]:
    """Jobs of "sweep" in which a fraction of the datums is new (their files changed), against its full job
    (whose time is returned)."""
    store = pipes.store
    store.create_repo(SWEEP)
    store.put_files(SWEEP, "master", [(_name("s", i), b"sweep %d\n" % i) for i in range(sizes.sweep)])
    pipes.create_pipeline(copy_spec("sweep", SWEEP))
    ctx.log(f"sweep: full job of {sizes.sweep} datums")
    full_s, job = _job(ctx, pipes, "sweep")
    _expect(job, processed=sizes.sweep, skipped=0)
    names = sorted(f.path for f in store.list_files(SWEEP, "master", ""))
    out: list[dict[str, Any]] = []
    points: list[tuple[float, float]] = []
    runs: list[tuple[float, int, float, bool]] = []
    for k, fraction in enumerate(FRACTIONS):
        changed = round(fraction * len(names))
        if changed:
            step = len(names) / changed
            picked = [names[int(i * step)] for i in range(changed)]
            store.put_files(SWEEP, "master", [(p, b"round %d %s\n" % (k, p.encode())) for p in picked])
        else:
            pipes.run_pipeline("sweep")
        ctx.log(f"fraction {fraction:.0%}: {changed} of {len(names)} datums new")
        seconds, job = _job(ctx, pipes, "sweep")
        _expect(job, processed=changed, skipped=len(names) - changed)
        points.append((fraction * 100, seconds))
        runs.append((fraction, changed, seconds, bool(job.base_job)))
    # The 100 % job records every datum, as the full job did: the mean of the two is the reference, so
    # that a load that drifts over the sweep moves both ends of the ratio.
    reference = (full_s + runs[-1][2]) / 2 if runs[-1][0] == 1.0 else full_s
    for fraction, changed, seconds, by_reference in runs:
        out.append(ctx.figure(
            f"pipelines.new_datums_{round(fraction * 100)}pct", seconds, "s",
            peer=f"full job {reference:.1f} s (mean of the first full job and the 100 % job); "
                 f"{changed:,} of {len(names):,} datums new "
                 f"({'inherited by reference' if by_reference else 'every datum recorded'})",
            ratio=seconds / reference, goal="diagnostic (plotted)", met=None,
        ))
    if not ctx.small:
        _plot(ctx, points, reference, len(names))
    return reference, out


def unchanged(ctx: Context, sizes: Sizes, pipes: Pipelines, per_processed_s: float) -> list[dict[str, Any]]:
    """Unchanged re-runs of a pipeline of ``sizes.big`` datums (its first job built untimed, in-process),
    each after a walk of the input commit's file list (every file's info: the peer)."""
    store = pipes.store
    store.create_repo("big")
    store.put_files("big", "master", [(_name("b", i), b"big %d\n" % i) for i in range(sizes.big)])
    pipes.create_pipeline(copy_spec("bigcopy", "big"))
    ctx.log(f"building the first job of {sizes.big:,} datums (untimed, in-process)")
    (first,) = pipes.list_jobs("bigcopy")
    _record_copies(pipes, first)
    rerun_s, walk_s = [], []
    for rep in range(sizes.reps):
        ctx.log(f"unchanged re-run {rep + 1}/{sizes.reps} of {sizes.big:,} datums")
        walk_s.append(ctx.timed(partial(_walk, store, "big")))
        pipes.run_pipeline("bigcopy")
        seconds, job = _job(ctx, pipes, "bigcopy")
        _expect(job, processed=0, skipped=sizes.big)
        rerun_s.append(seconds)
    rerun, walk = ctx.median(rerun_s), ctx.median(walk_s)
    per_skipped_us = rerun / sizes.big * 1e6
    per_processed_ms = per_processed_s * 1000
    return [
        ctx.figure(
            "pipelines.skipped_datum_cost", per_skipped_us, "µs/datum",
            peer=f"unchanged re-run of {sizes.big:,} datums; processed datum {per_processed_ms:.1f} ms",
            ratio=per_skipped_us / 1000 / per_processed_ms, goal="≤ 5 µs per skipped datum",
            met=per_skipped_us <= 5,
        ),
        ctx.figure(
            "pipelines.unchanged_rerun", rerun, "s",
            peer=f"walk of the input's {sizes.big:,} files {walk * 1000:.0f} ms",
            ratio=rerun / walk, goal=f"< 1 s for {sizes.big:,} datums", met=rerun < 1,
        ),
    ]


def _walk(store: Store, repo: str) -> None:
    for _ in store.walk_files(repo, "master"):
        pass


def _record_copies(pipes: Pipelines, job: JobInfo) -> None:
    """Plan ``job`` and record each datum's output as ``cp`` would have made it, then complete it."""
    store = pipes.store
    entries = dict(queries.entries_under(store, queries.commit_root(store, job.inputs["big"] or "")))
    for d in pipes.plan_job(job.id):
        (path,) = [f[0] for i in d.inputs for f in i["files"]]
        pipes.jobs.record_datum(job.id, d.id, state=DatumState.SUCCESS, outputs={path: entries[path]}, tries=1)
    done = pipes.complete_job(job.id)
    if done.state is not JobState.SUCCESS:
        raise AssertionError(f"bigcopy job {done.id}: {done.state.value}: {done.reason}")


def _plot(ctx: Context, points: list[tuple[float, float]], full_s: float, datums: int) -> None:
    failed = plot({
        "title": f"Job time against the new-datum fraction ({datums:,} one-file datums)",
        "note": "unchanged datums are carried over by reference; a job with more than half new records all",
        "xlabel": "datums new in the job (%)", "ylabel": "job time (s)",
        "series": {"job": [list(p) for p in points],
                   "fraction x the full job": [[x, full_s * x / 100] for x, _ in points]},
    }, PLOT)
    if failed:
        ctx.log(f"no plot: {failed}")


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
