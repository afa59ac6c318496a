"""The store core against the tools people would otherwise use: cp, dvc, restic, borg, oxen.

Figures (the store issue's goals):

* ingest of one large random file (1 GiB), MB/s, against ``cp`` of the same
  file on the same disk (≥ 0.5x), ``dvc add`` (≥ 2x), and the first
  ``restic backup`` and ``borg create`` of it (≥ the faster of the two); also
  with fsync off, and against ``cp`` followed by an fsync of the copy;
* restore of that file (``get``), against ``cp`` (≥ 0.5x) and ``restic
  restore`` (≥ 1x);
* many 1 KiB files (100,000) in one commit, files/s, in-process and through
  the command line (``datumflow put -r``, start-up included), against ``dvc
  add`` of the same folder (≥ 5x), ``restic backup``, ``borg create`` and
  oxen's add + commit (≥ 1x each);
* re-put of the large file with 1 MiB inserted in the middle: bytes newly
  stored over the file size (≤ 2%);
* a 1-file commit and a diff of two commits 10 files apart, in a repo of
  1,000,000 files against one of 1,000 (< 50 ms, and ≤ 3x the small repo).

Every peer runs on the same source file(s), in the same process run,
interleaved with datumflow, each timed run after a ``sync`` so that neither
pays for the other's dirty pages; sources are warm in the page cache for both.
A peer that is not installed gets its row with a note instead of a ratio.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datumflow.storage_service.cli.files import write_atomically
from datumflow.storage_service.core.schema import packs
from datumflow.storage_service.store.store import Store
from sqlalchemy import func, select

if TYPE_CHECKING:
    from .run import Context

MIB = 1024 * 1024
MB = 1_000_000
REPO = "bench"
ROOT = Path(__file__).resolve().parent.parent
DATUMFLOW = Path(sys.executable).parent / "datumflow"  # the command of the environment running this


@dataclass(frozen=True)
class Sizes:
    big: int  # bytes of the large file
    files: int  # 1 KiB files in one commit
    repo_files: int  # files in the large repo of the commit/diff figures
    reps: int  # repetitions of the fast runs (median)
    dvc_reps: int  # repetitions of dvc add, restic and borg on the large file
    files_reps: int  # repetitions of datumflow on the many small files
    dvc_files_reps: int  # repetitions of dvc add, restic, borg on the many small files (slow)
    oxen_files_reps: int  # repetitions of oxen on the many small files (slower)
    commits: int = 21  # 1-file commits measured per repo


FULL = Sizes(big=1024 * MIB, files=100_000, repo_files=1_000_000, reps=5, dvc_reps=3, files_reps=3, dvc_files_reps=2,
             oxen_files_reps=1)
SMALL = Sizes(big=64 * MIB, files=10_000, repo_files=100_000, reps=3, dvc_reps=2, files_reps=3, dvc_files_reps=1,
              oxen_files_reps=1)


def run(ctx: Context) -> list[dict[str, Any]]:
    sizes = ctx.pick(FULL, SMALL)
    big = ctx.workdir / "big.bin"
    ctx.log(f"writing {sizes.big // MIB} MiB of random bytes")
    _random_file(big, sizes.big)
    out = ingest(ctx, sizes, big)
    out += insertion(ctx, sizes, big)
    big.unlink()
    out += small_files(ctx, sizes)
    out += large_repo(ctx, sizes)
    return out


# -- ingest of one large file ---------------------------------------------------------


def ingest(ctx: Context, sizes: Sizes, src: Path) -> list[dict[str, Any]]:
    dvc, restic, borg = _dvc(), shutil.which("restic"), shutil.which("borg")
    times: dict[str, list[float]] = {k: [] for k in (
        "cp", "cp+fsync", "df", "df-nofsync", "df-direct", "get-after-direct", "dvc", "restic", "borg",
        "get-cp", "get", "get-cli", "restic-restore",
    )}
    for rep in range(sizes.reps):
        ctx.log(f"ingest rep {rep + 1}/{sizes.reps}")
        dst = ctx.workdir / "copy.bin"
        times["cp"].append(ctx.timed(partial(_sh, "cp", src, dst)))
        dst.unlink()
        times["cp+fsync"].append(ctx.timed(partial(_sh, "sh", "-c", 'cp "$0" "$1" && sync "$1"', src, dst)))
        dst.unlink()
        df = _df_ingest(ctx, src, fsync=True, restore=True)
        for key, seconds in zip(("df", "get", "get-cli"), df, strict=True):
            times[key].append(seconds)
        times["df-nofsync"].append(_df_ingest(ctx, src, fsync=False)[0])
        direct = _df_ingest(ctx, src, fsync=True, restore=True, direct_io=True, cli=False)
        for key, seconds in zip(("df-direct", "get-after-direct"), direct, strict=True):
            times[key].append(seconds)
        if dvc and rep < sizes.dvc_reps:
            times["dvc"].append(_dvc_add(ctx, dvc, src, link=os.link))
        if restic and rep < sizes.dvc_reps:
            backup, restore = _restic_backup(ctx, restic, src, restore=True)
            times["restic"].append(backup)
            times["restic-restore"].append(restore)
        if borg and rep < sizes.dvc_reps:
            times["borg"].append(_borg_create(ctx, borg, src))
        restored = ctx.workdir / "restored"  # cp as the restore's peer: from the store's disk to a new file
        times["get-cp"].append(ctx.timed(partial(_sh, "cp", src, restored)))
        restored.unlink()
    rate = {k: sizes.big / MB / ctx.median(v) for k, v in times.items() if v}
    size = f"{sizes.big // MIB} MiB"
    out = [
        _versus(ctx, "store.ingest_vs_cp", rate, "df", "cp", "cp", size, 0.5),
        _versus(ctx, "store.ingest_nofsync_vs_cp", rate, "df-nofsync", "cp", "cp", size, 0.5,
                wanted="≥ 0.5x cp (DATUMFLOW_FSYNC=0)"),
        _versus(ctx, "store.ingest_vs_cp_fsync", rate, "df", "cp+fsync", "cp + fsync", size, 0.5,
                wanted="≥ 0.5x cp (both durable)"),
        _versus(ctx, "store.ingest_direct_vs_cp", rate, "df-direct", "cp", "cp", size, 0.5,
                wanted="≥ 0.5x cp (DATUMFLOW_DIRECT_IO=1, fsync on)"),
        _versus(ctx, "store.restore_after_direct_vs_cp", rate, "get-after-direct", "get-cp", "cp", size, None,
                wanted="report: right after a direct put, its packs come from the disk"),
        _versus(ctx, "store.ingest_vs_dvc", rate, "df", "dvc", "dvc add", size, 2),
        _versus(ctx, "store.ingest_vs_restic", rate, "df", "restic", "restic backup", size, 1),
        _versus(ctx, "store.ingest_vs_borg", rate, "df", "borg", "borg create", size, 1),
        _versus(ctx, "store.restore_vs_cp", rate, "get", "get-cp", "cp", size, 0.5),
        _versus(ctx, "store.restore_vs_restic", rate, "get", "restic-restore", "restic restore", size, 1),
        _versus(ctx, "store.restore_cli_vs_cp", rate, "get-cli", "get-cp", "cp", size, 0.5),
    ]
    return out


def _versus(
    ctx: Context, bench: str, rate: dict[str, float], ours: str, theirs: str, label: str, size: str,
    goal: float | None, *, wanted: str | None = None,
) -> dict[str, Any]:
    """A figure of rate[ours] against rate[theirs] (met: at least ``goal`` times it; None: only reported,
    ``wanted`` then says what for); a row with a note when the peer is not installed."""
    if wanted is None:
        wanted = f"≥ {goal:g}x {label}"
    if theirs not in rate:
        return ctx.figure(bench, rate[ours], "MB/s", peer=f"{label.split()[0]} not found", ratio=None,
                          goal=wanted, met=None)
    ratio = rate[ours] / rate[theirs]
    return ctx.figure(bench, rate[ours], "MB/s", peer=f"{label} {rate[theirs]:.0f} MB/s ({size})",
                      ratio=ratio, goal=wanted, met=None if goal is None else ratio >= goal)


def _df_ingest(
    ctx: Context, src: Path, *, fsync: bool, restore: bool = False, direct_io: bool = False, cli: bool = True,
) -> list[float]:
    """Seconds of a put of ``src`` into a fresh store; with ``restore``, then of a get in-process and (``cli``)
    by the CLI."""
    root = ctx.workdir / "store"
    out = ctx.workdir / "restored"
    with Store(str(root), fsync=fsync, direct_io=direct_io) as store:
        store.create_repo(REPO)
        seconds = [ctx.timed(lambda: store.put_files(REPO, "master", [(src.name, src)]))]
        if restore:
            seconds.append(ctx.timed(lambda: write_atomically(out, store.open_file(REPO, "master", src.name))))
            _same_size(out, src)
            out.unlink()
    if restore and cli:
        get = [DATUMFLOW, "--address", f"file://{root}", "get", f"{REPO}@master:{src.name}", "-o", out]
        seconds.append(ctx.timed(partial(_sh, *get)))
        _same_size(out, src)
        out.unlink()
    shutil.rmtree(root)
    return seconds


def _same_size(got: Path, want: Path) -> None:
    if got.stat().st_size != want.stat().st_size:
        raise AssertionError(f"restored {got.stat().st_size} bytes of {want.stat().st_size}")


# -- an insertion in the middle -------------------------------------------------------


def insertion(ctx: Context, sizes: Sizes, src: Path) -> list[dict[str, Any]]:
    ctx.log("re-put with 1 MiB inserted in the middle")
    edited = ctx.workdir / "edited.bin"
    half = sizes.big // 2
    with open(src, "rb") as fin, open(edited, "wb") as fout:
        fout.write(fin.read(half))
        fout.write(os.urandom(MIB))
        shutil.copyfileobj(fin, fout, 16 * MIB)
    root = ctx.workdir / "store"
    with Store(str(root)) as store:
        store.create_repo(REPO)
        store.put_files(REPO, "master", [("data.bin", src)])
        before = _packed_bytes(store)
        store.put_files(REPO, "master", [("data.bin", edited)])
        new = _packed_bytes(store) - before
    shutil.rmtree(root)
    edited.unlink()
    share = new / (sizes.big + MIB)
    return [ctx.figure(
        "store.insert_1mib_new_bytes", share * 100, "% of file",
        peer=f"{new / MIB:.2f} MiB new of {(sizes.big + MIB) / MIB:.0f} MiB",
        ratio=share, goal="≤ 2%", met=share <= 0.02,
    )]


def _packed_bytes(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.sum(packs.c.size), 0))).scalar() or 0)


# -- many small files --------------------------------------------------------------------


def small_files(ctx: Context, sizes: Sizes) -> list[dict[str, Any]]:
    folder = ctx.workdir / "small"
    ctx.log(f"writing {sizes.files} files of 1 KiB")
    _small_folder(folder, sizes.files)
    peers = {"dvc": _dvc(), "restic": shutil.which("restic"), "borg": shutil.which("borg"), "oxen": _oxen()}
    times: dict[str, list[float]] = {k: [] for k in ("df", "df-cli", *peers)}
    for rep in range(sizes.files_reps):  # interleaved, so that all sides see the same load
        ctx.log(f"small files rep {rep + 1}/{sizes.files_reps}")
        times["df"].append(_df_folder(ctx, folder))
        times["df-cli"].append(_df_cli_folder(ctx, folder))
        if peers["dvc"] and rep < sizes.dvc_files_reps:
            times["dvc"].append(_dvc_add(ctx, str(peers["dvc"]), folder, link=_link_tree))
        if peers["restic"] and rep < sizes.dvc_files_reps:
            times["restic"].append(_restic_backup(ctx, str(peers["restic"]), folder)[0])
        if peers["borg"] and rep < sizes.dvc_files_reps:
            times["borg"].append(_borg_create(ctx, str(peers["borg"]), folder))
        if peers["oxen"] and rep < sizes.oxen_files_reps:
            times["oxen"].append(_oxen_commit(ctx, str(peers["oxen"]), folder))
    shutil.rmtree(folder)
    rate = {k: sizes.files / ctx.median(v) for k, v in times.items() if v}
    name = f"store.{_count(sizes.files)}_files_1kib"
    rows = [
        ("_vs_dvc", "df", "dvc", "dvc add", 5),
        ("_cli_vs_dvc", "df-cli", "dvc", "dvc add", 5),
        ("_cli_vs_restic", "df-cli", "restic", "restic backup", 1),
        ("_cli_vs_borg", "df-cli", "borg", "borg create", 1),
        ("_cli_vs_oxen", "df-cli", "oxen", "oxen add + commit", 1),
    ]
    out = []
    for suffix, ours, theirs, label, goal in rows:
        wanted = f"≥ {goal}x {label}"
        if theirs not in rate:
            out.append(ctx.figure(name + suffix, rate[ours], "files/s", peer=f"{theirs} not found", ratio=None,
                                  goal=wanted, met=None))
            continue
        ratio = rate[ours] / rate[theirs]
        out.append(ctx.figure(name + suffix, rate[ours], "files/s", peer=f"{label} {rate[theirs]:.0f} files/s",
                              ratio=ratio, goal=wanted, met=None if goal is None else ratio >= goal))
    return out


def _df_folder(ctx: Context, folder: Path) -> float:
    root = ctx.workdir / "store"
    with Store(str(root)) as store:
        store.create_repo(REPO)
        seconds = ctx.timed(lambda: store.put_files(REPO, "master", [(folder.name, folder)]))
    shutil.rmtree(root)
    return seconds


def _df_cli_folder(ctx: Context, folder: Path) -> float:
    """Seconds of ``datumflow put -r`` of the folder into a fresh embedded store (created untimed)."""
    root = ctx.workdir / "cli-store"
    address = ["--address", f"file://{root}"]
    _sh(DATUMFLOW, *address, "repo", "create", REPO, quiet=True)
    seconds = ctx.timed(partial(_sh, DATUMFLOW, *address, "put", "-r", f"{REPO}@master:{folder.name}", folder,
                                quiet=True))
    shutil.rmtree(root)
    return seconds


def _small_folder(folder: Path, count: int) -> None:
    data = os.urandom(count * 1024)
    for i in range(count):
        sub = folder / f"{i // 1000:04d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True)
        (sub / f"{i % 1000:03d}.bin").write_bytes(data[i * 1024:(i + 1) * 1024])


# -- commit and diff in a large repo ---------------------------------------------------


def large_repo(ctx: Context, sizes: Sizes) -> list[dict[str, Any]]:
    small = _commit_and_diff(ctx, sizes, 1_000)
    large = _commit_and_diff(ctx, sizes, sizes.repo_files)
    label = _count(sizes.repo_files)
    out = []
    for what, key in (("commit_1file", "commit"), ("diff_10files", "diff")):
        ratio = large[key] / small[key]
        out.append(ctx.figure(
            f"store.{what}_{label}_vs_1k", large[key], "ms", peer=f"1k-file repo {small[key]:.2f} ms",
            ratio=ratio, goal=f"< 50 ms at {label} files, ≤ 3x the 1k repo",
            met=large[key] < 50 and ratio <= 3,
        ))
    return out


def _commit_and_diff(ctx: Context, sizes: Sizes, files: int) -> dict[str, float]:
    """Median ms of a 1-file commit and of a 10-file diff, in a fresh process-side store."""
    root = ctx.workdir / f"repo-{files}"
    ctx.log(f"building a {files}-file repo")
    with Store(str(root), fsync=True) as store:
        store.create_repo(REPO)
        batch = 100_000
        for lo in range(0, files, batch):
            store.put_files(REPO, "master", [(_path(i), b"%d\n" % i) for i in range(lo, min(files, lo + batch))])
    ctx.log(f"measuring commits and diffs at {files} files")
    with Store(str(root), fsync=True) as store:  # reopened: nothing cached from the build
        commit_s: list[float] = []
        ids: list[str] = []
        for k in range(sizes.commits):
            path = _path((k * files) // sizes.commits + k % 7)
            edit = [(path, b"v%d\n" % k)]
            seconds = ctx.timed(partial(_commit, store, edit, ids))
            commit_s.append(seconds)
        diff_s = []
        for k in range(len(ids) - 10):
            found: list[Any] = []
            pair = (ids[k], ids[k + 10])
            diff_s.append(ctx.timed(partial(_diff, store, pair, found)))
            if len(found) != 10:
                raise AssertionError(f"diff of commits 10 files apart found {len(found)} changes")
    shutil.rmtree(root)
    return {"commit": ctx.median(commit_s) * 1000, "diff": ctx.median(diff_s) * 1000}


def _commit(store: Store, edit: list[tuple[str, bytes]], ids: list[str]) -> None:
    ids.append(store.put_files(REPO, "master", edit).id)


def _diff(store: Store, pair: tuple[str, str], found: list[Any]) -> None:
    found.extend(store.diff(REPO, *pair))


def _path(i: int) -> str:
    return f"data/{i // 1000:04d}/{i % 1000:03d}.bin"


# -- peers and helpers --------------------------------------------------------------------


def _dvc() -> str | None:
    """dvc on PATH (``make bench`` adds .venv-bench/bin), else the bench venv's."""
    found = shutil.which("dvc")
    if found:
        return found
    local = Path(__file__).resolve().parent.parent / ".venv-bench" / "bin" / "dvc"
    return str(local) if local.exists() else None


def _dvc_add(ctx: Context, dvc: str, src: Path, *, link: Any) -> float:
    """Seconds of ``dvc add`` in a fresh git + dvc repo (the source is hard-linked in, untimed)."""
    repo = ctx.workdir / "dvc-repo"
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    subprocess.run([dvc, "init", "-q"], cwd=repo, check=True, env=env)
    link(src, repo / src.name)
    seconds = ctx.timed(lambda: subprocess.run([dvc, "add", "-q", src.name], cwd=repo, check=True, env=env))
    _rmtree_any(repo)
    return seconds


def _restic_backup(ctx: Context, restic: str, src: Path, *, restore: bool = False) -> tuple[float, float]:
    """Seconds of the first ``restic backup`` of ``src`` into a fresh local repository (made untimed),
    then, with ``restore``, of ``restic restore latest`` into an empty folder."""
    repo, cache, target = (ctx.workdir / n for n in ("restic-repo", "restic-cache", "restic-restore"))
    env = {**os.environ, "RESTIC_PASSWORD": "bench", "RESTIC_REPOSITORY": str(repo), "RESTIC_CACHE_DIR": str(cache)}
    subprocess.run([restic, "init"], env=env, check=True, capture_output=True)
    backup = ctx.timed(lambda: subprocess.run([restic, "backup", "--quiet", src.name], cwd=src.parent, env=env,
                                              check=True, stdout=subprocess.DEVNULL))
    restored = 0.0
    if restore:
        restored = ctx.timed(lambda: subprocess.run([restic, "restore", "latest", "--quiet", "--target", str(target)],
                                                    env=env, check=True, stdout=subprocess.DEVNULL))
        _same_size(target / src.name, src)
    for path in (repo, cache, target):
        if path.exists():
            _rmtree_any(path)
    return backup, restored


def _borg_create(ctx: Context, borg: str, src: Path) -> float:
    """Seconds of the first ``borg create`` of ``src`` into a fresh repository (``--encryption none``, made untimed)."""
    repo, home = ctx.workdir / "borg-repo", ctx.workdir / "borg-home"
    env = {**os.environ, "BORG_BASE_DIR": str(home), "BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK": "yes",
           "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes", "BORG_PASSPHRASE": ""}
    subprocess.run([borg, "init", "--encryption", "none", str(repo)], env=env, check=True, capture_output=True)
    seconds = ctx.timed(lambda: subprocess.run([borg, "create", f"{repo}::bench", src.name], cwd=src.parent,
                                               env=env, check=True))
    _rmtree_any(repo)
    _rmtree_any(home)
    return seconds


def _oxen() -> str | None:
    """A Python that imports ``oxen`` (the bench environment's, where ``oxenai`` is installed), else None."""
    python = ROOT / ".venv-bench" / "bin" / "python"
    if not python.exists():
        return None
    found = subprocess.run([str(python), "-c", "import oxen"], capture_output=True)
    return str(python) if found.returncode == 0 else None


_OXEN_INIT = "import sys, oxen; oxen.user.config_user('bench', 'bench@example.com'); oxen.Repo(sys.argv[1]).init()"
_OXEN_COMMIT = "import sys, oxen; r = oxen.Repo(sys.argv[1]); r.add(sys.argv[2]); r.commit('bench')"


def _oxen_commit(ctx: Context, python: str, folder: Path) -> float:
    """Seconds of oxen's add + commit of the folder (hard-linked into a fresh repo, made untimed), as a command."""
    repo = ctx.workdir / "oxen-repo"
    env = {**os.environ, "HOME": str(ctx.workdir / "oxen-home")}
    repo.mkdir()
    subprocess.run([python, "-c", _OXEN_INIT, str(repo)], env=env, check=True, capture_output=True)
    _link_tree(folder, repo / folder.name)
    seconds = ctx.timed(lambda: subprocess.run([python, "-c", _OXEN_COMMIT, str(repo), folder.name], cwd=repo,
                                               env=env, check=True, stdout=subprocess.DEVNULL))
    _rmtree_any(repo)
    _rmtree_any(ctx.workdir / "oxen-home")
    return seconds


def _link_tree(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "-al", str(src), str(dst)], check=True)


def _rmtree_any(path: Path) -> None:
    """Remove a tree that dvc may have made read-only."""
    def retry(func: Any, name: str, _exc: Any) -> None:
        os.chmod(os.path.dirname(name), 0o755)
        func(name)

    shutil.rmtree(path, onerror=retry)


def _sh(*cmd: Any, quiet: bool = False) -> None:
    subprocess.run([str(c) for c in cmd], check=True, stdout=subprocess.DEVNULL if quiet else None)


def _random_file(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        for _ in range(size // (16 * MIB)):
            fh.write(os.urandom(16 * MIB))
        fh.write(os.urandom(size % (16 * MIB)))


def _count(n: int) -> str:
    return f"{n // 1_000_000}M" if n % 1_000_000 == 0 else f"{n // 1000}k"
