"""Sync: unchanged data costs nothing, changed data costs what changed, restores run at disk speed.

Figures (the sync issue's goals), on a folder of 1 KiB random files
(100,000 at full scale, 10,000 small):

* re-sync of the unchanged folder (``Store.sync_up``, stat cache warm) against
  ``git add -A`` of the same unchanged folder in a git repo that has it
  committed (≥ 1x), and against restic's second ``backup`` of it (≥ 2x);
* the same unchanged re-sync through the CLI, ``datumflow sync`` as a
  subprocess (its interpreter start-up included, as the peers'), against
  ``git add -A`` (reported, no goal of its own);
* re-sync after changing 1 % of the files, over the first sync (≤ 0.05);
* restore of the folder into an empty one (``Store.sync_down``) against
  ``cp -r`` (≥ 0.5x) and ``restic restore`` of the same snapshot (≥ 1x), all
  three into a memory file system where there is one (see ``_restore`` for why).

Peers are timed as the commands users run (their start-up included);
datumflow is timed in-process (its start-up is not), as in the store area.
Every run follows a ``sync`` (untimed); the folder is warm in the page cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datumflow.storage_service.store.store import Store

if TYPE_CHECKING:
    from .run import Context

REPO = "bench"


@dataclass(frozen=True)
class Sizes:
    files: int
    reps: int


FULL = Sizes(files=100_000, reps=3)
SMALL = Sizes(files=10_000, reps=3)


def run(ctx: Context) -> list[dict[str, Any]]:
    sizes = ctx.pick(FULL, SMALL)
    os.environ["DATUMFLOW_SYNC_CACHE"] = str(ctx.workdir / "sync-cache")
    folder = ctx.workdir / "data"
    ctx.log(f"writing {sizes.files} files of 1 KiB")
    _small_folder(folder, sizes.files)
    time.sleep(0.5)  # past the stat cache's racy window
    label = f"{sizes.files // 1000}k"
    out = []
    with Store(str(ctx.workdir / "store")) as store:
        store.create_repo(REPO)
        first = ctx.timed(lambda: store.sync_up(str(folder), REPO, "master"))
        out += _unchanged(ctx, sizes, store, folder, label, ctx.workdir / "store")
        out += _one_percent(ctx, sizes, store, folder, first, label)
        out += _restore(ctx, sizes, store, folder, label)
    return out  # nothing is removed here (the git copy, the restores): see _restore, and run.py


def _unchanged(
    ctx: Context, sizes: Sizes, store: Store, folder: Path, label: str, root: Path
) -> list[dict[str, Any]]:
    git = _git_repo(ctx, folder)
    restic = _restic_repo(ctx, folder)
    cli = [str(Path(sys.executable).with_name("datumflow")), "--address", f"file://{root}", "sync", str(folder),
           f"{REPO}@master", "--json"]
    times: dict[str, list[float]] = {"df": [], "git": [], "restic": [], "cli": []}
    for rep in range(sizes.reps):
        ctx.log(f"unchanged re-sync rep {rep + 1}/{sizes.reps}")
        result: list[Any] = []
        times["df"].append(ctx.timed(partial(_sync_up, store, folder, result)))
        if not result[0].is_noop or result[0].files_read:
            raise AssertionError(f"an unchanged re-sync did something: {result[0].counts()}")
        times["git"].append(ctx.timed(lambda: _run(["git", "add", "-A"], cwd=git)))
        times["cli"].append(ctx.timed(lambda: _run(cli)))
        if restic:
            times["restic"].append(ctx.timed(lambda: _restic(restic, "backup", "-q", str(folder))))
    df = ctx.median(times["df"])
    out = [ctx.figure(
        f"sync.resync_unchanged_{label}_vs_git_add", df * 1000, "ms",
        peer=f"git add -A {ctx.median(times['git']) * 1000:.0f} ms", ratio=ctx.median(times["git"]) / df,
        goal="≥ 1x git add -A (speed)", met=ctx.median(times["git"]) / df >= 1,
    )]
    cli_s = ctx.median(times["cli"])
    out.append(ctx.figure(
        f"sync.cli_resync_unchanged_{label}_vs_git_add", cli_s * 1000, "ms",
        peer=f"git add -A {ctx.median(times['git']) * 1000:.0f} ms", ratio=ctx.median(times["git"]) / cli_s,
        goal="reported (the CLI path, start-up included)", met=None,
    ))
    if restic:
        ratio = ctx.median(times["restic"]) / df
        out.append(ctx.figure(
            f"sync.resync_unchanged_{label}_vs_restic", df * 1000, "ms",
            peer=f"restic 2nd backup {ctx.median(times['restic']) * 1000:.0f} ms", ratio=ratio,
            goal="≥ 2x restic (speed)", met=ratio >= 2,
        ))
    else:
        out.append(ctx.figure(f"sync.resync_unchanged_{label}_vs_restic", df * 1000, "ms", peer="restic not found",
                              ratio=None, goal="≥ 2x restic (speed)", met=None))
    return out


def _one_percent(
    ctx: Context, sizes: Sizes, store: Store, folder: Path, first: float, label: str
) -> list[dict[str, Any]]:
    times = []
    step = 100
    for rep in range(sizes.reps):
        ctx.log(f"1% changed rep {rep + 1}/{sizes.reps}")
        for i in range(rep, sizes.files, step):
            path = folder / f"{i // 1000:04d}" / f"{i % 1000:03d}.bin"
            path.write_bytes(os.urandom(1024))
        time.sleep(0.5)
        result: list[Any] = []
        times.append(ctx.timed(partial(_sync_up, store, folder, result)))
        if len(result[0].changed) != len(range(rep, sizes.files, step)):
            raise AssertionError(f"1% re-sync found {len(result[0].changed)} changes")
    share = ctx.median(times) / first
    return [ctx.figure(
        f"sync.resync_1pct_{label}_vs_first", ctx.median(times) * 1000, "ms",
        peer=f"first sync {first * 1000:.0f} ms", ratio=share, goal="≤ 0.05 of the first sync", met=share <= 0.05,
    )]


def _restore(ctx: Context, sizes: Sizes, store: Store, folder: Path, label: str) -> list[dict[str, Any]]:
    """Restores into a memory file system (``/dev/shm``) where there is one, each to a folder of its own.

    On ext4 without a journal (as here), the kernel skips the inodes of files
    deleted in the last minute (five, while their inode table is unwritten)
    when it allocates new ones, testing each in turn: file creations after
    100,000 deletions, made by anything (a test run's clean-up, another
    restore's), ran 20 to 100 times slower (``cp -r`` of the folder: 30 to 60 s
    of system time instead of about 1 s). Timed there, a restore measured
    whoever deleted last, not the tool. In memory every tool creates its files
    at the same cost, run after run; the source folder, the store and the
    restic repository stay on disk (in the page cache, as ever).
    """
    restic = _restic_repo(ctx, folder)
    times: dict[str, list[float]] = {"df": [], "cp": [], "restic": []}
    shm = Path("/dev/shm")
    in_memory = shm.is_dir() and shutil.disk_usage(shm).free > 3 * sizes.files * 8192
    targets = Path(tempfile.mkdtemp(prefix="datumflow-restore-", dir=shm)) if in_memory else ctx.workdir / "restored"
    targets.mkdir(exist_ok=True)
    try:
        for rep in range(sizes.reps):
            ctx.log(f"restore rep {rep + 1}/{sizes.reps}")
            mine = targets / f"df-{rep}"
            times["df"].append(ctx.timed(partial(store.sync_down, REPO, "master", "", str(mine), cache=False)))
            if sum(1 for _ in mine.rglob("*.bin")) != sizes.files:
                raise AssertionError("the restore is incomplete")
            times["cp"].append(ctx.timed(partial(_run, ["cp", "-r", str(folder), str(targets / f"cp-{rep}")])))
            if restic:
                times["restic"].append(ctx.timed(partial(_restic, restic, "restore", "latest", "-q", "--target",
                                                         str(targets / f"restic-{rep}"))))
            if in_memory:  # removing files from memory slows nothing down
                for made in targets.iterdir():
                    shutil.rmtree(made)
    finally:
        if in_memory:
            shutil.rmtree(targets, ignore_errors=True)
    where = " (to memory)" if in_memory else ""
    rate = {k: sizes.files / ctx.median(v) for k, v in times.items() if v}
    out = [ctx.figure(
        f"sync.restore_{label}_1kib_vs_cp", rate["df"], "files/s", peer=f"cp -r {rate['cp']:.0f} files/s",
        ratio=rate["df"] / rate["cp"], goal=f"≥ 0.5x cp -r{where}", met=rate["df"] / rate["cp"] >= 0.5,
    )]
    if restic:
        out.append(ctx.figure(
            f"sync.restore_{label}_1kib_vs_restic", rate["df"], "files/s",
            peer=f"restic restore {rate['restic']:.0f} files/s", ratio=rate["df"] / rate["restic"],
            goal=f"≥ 1x restic restore{where}", met=rate["df"] / rate["restic"] >= 1,
        ))
    else:
        out.append(ctx.figure(f"sync.restore_{label}_1kib_vs_restic", rate["df"], "files/s",
                              peer="restic not found", ratio=None, goal="≥ 1x restic restore", met=None))
    return out


def _sync_up(store: Store, folder: Path, out: list[Any]) -> None:
    out.append(store.sync_up(str(folder), REPO, "master"))


# -- peers -------------------------------------------------------------------------------


def _git_repo(ctx: Context, folder: Path) -> Path:
    """A git work tree holding a copy of the folder, committed once: ``git add -A`` then finds it unchanged."""
    repo = ctx.workdir / "git"
    _run(["git", "init", "-q", str(repo)])
    for key in ("gc.auto", "maintenance.auto"):  # no detached gc (the loose objects would start one) during runs
        _run(["git", "config", key, "0" if key == "gc.auto" else "false"], cwd=repo)
    shutil.copytree(folder, repo / "data")  # copies: a hard link would change the source's ctime
    _run(["git", "add", "-A"], cwd=repo)
    _run(["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "data"], cwd=repo)
    return repo


def _restic_repo(ctx: Context, folder: Path) -> dict[str, str] | None:
    """A restic repository with one backup of the folder (its environment), or None without restic."""
    if shutil.which("restic") is None:
        return None
    repo = ctx.workdir / "restic"
    env = {**os.environ, "RESTIC_REPOSITORY": str(repo), "RESTIC_PASSWORD": "bench",
           "RESTIC_CACHE_DIR": str(ctx.workdir / "restic-cache")}
    if not repo.exists():
        _restic(env, "init", "-q")
        _restic(env, "backup", "-q", str(folder))
    return env


def _restic(env: dict[str, str], *args: str) -> None:
    subprocess.run(["restic", *args], check=True, env=env, stdout=subprocess.DEVNULL)


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    subprocess.run(cmd, check=True, cwd=cwd, stdout=subprocess.DEVNULL)


def _small_folder(folder: Path, count: int) -> None:
    data = os.urandom(count * 1024)
    for i in range(count):
        sub = folder / f"{i // 1000:04d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True)
        (sub / f"{i % 1000:03d}.bin").write_bytes(data[i * 1024:(i + 1) * 1024])
