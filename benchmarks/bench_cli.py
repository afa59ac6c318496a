"""CLI start-up: ``datumflow --version`` and ``datumflow ls`` on a small embedded store, against
``git --version`` and ``git ls-tree`` on a repo of the same files (medians of ``runs`` starts each).

Each figure is one process start measured from outside (``subprocess.run`` wall time), as a user
meets it in a shell or a script. The goal (issue 19): ``--version`` at most 0.15 s, a small ``ls``
at most 0.3 s.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.run import Context

DATUMFLOW = str(Path(sys.executable).parent / "datumflow")


def _start(argv: list[str], cwd: Path) -> float:
    began = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - began


def _median(ctx: Context, argv: list[str], cwd: Path, runs: int) -> float:
    _start(argv, cwd)  # warm the page cache and Python's bytecode cache
    return ctx.median([_start(argv, cwd) for _ in range(runs)])


def _small_store(ctx: Context, folder: Path, files: int) -> None:
    from datumflow.storage_service.store.store import Store

    with Store(str(folder / ".datumflow")) as store:
        store.create_repo("small")
        store.put_files("small", "master", [(f"f{i:03}.txt", f"line {i}\n".encode()) for i in range(files)])
    git = shutil.which("git")
    if git:
        subprocess.run([git, "init", "-q", str(folder / "git")], check=True)
        for i in range(files):
            (folder / "git" / f"f{i:03}.txt").write_text(f"line {i}\n")
        subprocess.run([git, "-C", str(folder / "git"), "add", "-A"], check=True)
        subprocess.run([git, "-C", str(folder / "git"), "-c", "user.name=b", "-c", "user.email=b@b", "commit",
                        "-qm", "small"], check=True)


def run(ctx: Context) -> list[dict[str, Any]]:
    runs = 10
    files = ctx.pick(100, 20)
    folder = ctx.workdir
    folder.mkdir(parents=True, exist_ok=True)
    _small_store(ctx, folder, files)
    git = shutil.which("git")
    out = []
    version = _median(ctx, [DATUMFLOW, "--version"], folder, runs)
    peer = _median(ctx, [git, "--version"], folder, runs) if git else None
    out.append(ctx.figure(
        "cli start: datumflow --version", version, "s", peer="git --version",
        ratio=version / peer if peer else None, goal="<= 0.15 s", met=version <= 0.15,
    ))
    ls = _median(ctx, [DATUMFLOW, "ls", "small@master"], folder, runs)
    peer_ls = _median(ctx, [git, "-C", str(folder / "git"), "ls-tree", "HEAD"], folder, runs) if git else None
    out.append(ctx.figure(
        f"cli start: datumflow ls ({files} files, embedded)", ls, "s", peer=f"git ls-tree ({files} files)",
        ratio=ls / peer_ls if peer_ls else None, goal="<= 0.3 s", met=ls <= 0.3,
    ))
    python = _median(ctx, [sys.executable, "-c", "pass"], folder, runs)
    out.append(ctx.figure(
        "cli start: python -c pass (the floor)", python, "s", peer="git --version",
        ratio=python / peer if peer else None, goal="(reference)", met=None,
    ))
    return out
