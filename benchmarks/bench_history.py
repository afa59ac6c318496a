"""Git for data: merge cost against repo size, and bisect's runs.

Figures (the issue's goals):

* a three-way merge of two branches with 10 changed files each, in a
  1,000,000-file repo, against the same merge in a 1,000-file repo: the big
  repo's time (< 50 ms) and the ratio (≤ 3) — a merge costs O(changes), not
  O(files), because the index diff skips every shared subtree;
* bisect over 1,000 commits with one planted bad commit: runs of the test
  (goal ⌈log2 1000⌉ = 10).

The repos are built cheaply: one commit of N entries that all share one
stored chunk (the index is what a merge reads). At ``--scale small`` the big
repo has 100,000 files.
"""

from __future__ import annotations

import math
import uuid
from typing import TYPE_CHECKING, Any

from datumflow.storage_service.store.store import Store

if TYPE_CHECKING:
    from .run import Context

REPS = 5


def run(ctx: Context) -> list[dict[str, Any]]:
    big = ctx.pick(1_000_000, 100_000)
    out: list[dict[str, Any]] = []
    with Store(str(ctx.workdir / "store"), fsync=False) as store:
        small_ms = merge_ms(ctx, store, 1_000)
        big_ms = merge_ms(ctx, store, big)
        ratio = big_ms / small_ms
        out.append(ctx.figure(
            f"history.merge_10x10_{big // 1000}k_files", big_ms, "ms", peer=f"1k-file repo: {small_ms:.1f} ms",
            ratio=ratio, goal="< 50 ms, ratio ≤ 3", met=big_ms < 50 and ratio <= 3,
        ))
        runs = bisect_runs(ctx, store, 1_000, 637)
        goal = math.ceil(math.log2(1_000))
        out.append(ctx.figure("history.bisect_1000_commits", runs, "runs", peer=f"⌈log2 1000⌉ = {goal}",
                              ratio=runs / goal, goal=f"≤ {goal}", met=runs <= goal))
    return out


def build(store: Store, repo: str, files: int) -> Any:
    """A repo of ``files`` one-chunk files sharing one stored chunk, in one commit; returns the entry."""
    store.create_repo(repo)
    entry = store.tree.get(store.put_file(repo, "scratch", "seed", b"seed").root, "seed")
    edits = {f"d{i // 1000:04d}/f{i:07d}.csv": entry for i in range(files)}
    store.write_entries(repo, "master", lambda _: edits)
    return entry


def merge_ms(ctx: Context, store: Store, files: int) -> float:
    repo = f"m{files}-{uuid.uuid4().hex[:6]}"
    ctx.log(f"building a {files:,}-file repo")
    entry = build(store, repo, files)
    other = store.tree.get(store.put_file(repo, "scratch", "seed", b"changed").root, "seed")
    times = []
    for rep in range(REPS):
        store.create_branch(repo, f"dst{rep}", head="master")
        store.create_branch(repo, f"src{rep}", head="master")
        step = max(files // 10, 1)
        dst = {f"d{(i * step) // 1000:04d}/f{i * step:07d}.csv": other for i in range(10)}
        src = {f"d{(i * step + 1) // 1000:04d}/f{i * step + 1:07d}.csv": other for i in range(10)}
        store.write_entries(repo, f"dst{rep}", lambda _, e=dst: e)
        store.write_entries(repo, f"src{rep}", lambda _, e=src: e)
        result: list[Any] = []
        times.append(ctx.timed(lambda r=rep, out=result: out.append(store.merge(repo, f"src{r}", f"dst{r}"))))
        assert result[0].status == "merged" and result[0].changed == 10
    del entry
    return ctx.median(times) * 1000


def bisect_runs(ctx: Context, store: Store, commits: int, planted: int) -> int:
    repo = f"b-{uuid.uuid4().hex[:6]}"
    store.create_repo(repo)
    good = store.tree.get(store.put_file(repo, "scratch", "v", b"ok").root, "v")
    bad = store.tree.get(store.put_file(repo, "scratch", "v", b"bad").root, "v")
    ctx.log(f"building {commits} commits")
    ids = [store.write_entries(repo, "master", lambda _, e=(bad if i >= planted else good): {"v": e}).id
           for i in range(commits)]
    result = store.bisect(repo, ids[0], ids[-1], lambda c: store.get_file(repo, c, "v") == b"ok")
    assert result.first_bad == ids[planted]
    return result.runs
