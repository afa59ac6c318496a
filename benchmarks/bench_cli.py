"""CLI start-up: ``datumflow --version`` and ``datumflow ls`` on a small embedded store, against
``git --version`` and ``git ls-tree`` on a repo of the same files; then the same ``ls``, a ``put`` of
one small file and a ``log`` against a ``serve`` process, and ``put``/``log`` on the embedded store.

Each figure is one process start measured from outside (``subprocess.run`` wall time), as a user
meets it in a shell or a script: the median of ``runs`` rounds, every command once per round in
turn (interleaved), after one warm-up round. The goal (issue 19): ``--version`` at most 0.15 s, a
small ``ls`` at most 0.3 s.

Every start runs with bytecode caching on, as an installed package has it (pip and ``uv
--compile-bytecode`` compile every module at install): with ``PYTHONDONTWRITEBYTECODE`` set, as
in some shells, an editable install's own modules would be compiled again on every start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.run import Context

DATUMFLOW = str(Path(sys.executable).parent / "datumflow")
_DROP = ("PYTHONDONTWRITEBYTECODE", "DATUMFLOW_ADDRESS", "DATUMFLOW_TOKEN", "DATUMFLOW_NO_RUN")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _DROP}
    return {**env, **extra}


def _start(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - began


def _medians(ctx: Context, commands: dict[str, tuple[list[str], dict[str, str]]], cwd: Path,
             runs: int) -> dict[str, float]:
    """name -> median seconds; one warm-up round (page cache, bytecode cache), then ``runs`` rounds."""
    for argv, env in commands.values():
        _start(argv, cwd, env)
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, (argv, env) in commands.items():
            times[name].append(_start(argv, cwd, env))
    return {name: ctx.median(t) for name, t in times.items()}


def _small_store(root: Path, files: int) -> None:
    from datumflow.storage_service.store.store import Store

    with Store(str(root)) as store:
        store.create_repo("small")
        store.put_files("small", "master", [(f"f{i:03}.txt", f"line {i}\n".encode()) for i in range(files)])


def _small_git(folder: Path, files: int) -> None:
    git = folder / "git"
    subprocess.run(["git", "init", "-q", str(git)], check=True)
    for i in range(files):
        (git / f"f{i:03}.txt").write_text(f"line {i}\n")
    subprocess.run(["git", "-C", str(git), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(git), "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "small"],
                   check=True)


def run(ctx: Context) -> list[dict[str, Any]]:
    if shutil.which("git") is None:
        ctx.log("git is not installed: the CLI area needs it as its peer")
        return []
    runs = ctx.pick(20, 8)
    files = ctx.pick(100, 20)
    folder = ctx.workdir
    folder.mkdir(parents=True, exist_ok=True)
    _small_store(folder / ".datumflow", files)
    _small_git(folder, files)
    (folder / "one.txt").write_text("one small file\n")
    git = str(folder / "git")
    local = _env()
    # put: one small file as a new commit, against git's two steps of the same (add, commit) in one shell
    git_put = (f"cp one.txt {git}/one.txt && echo . >> one.txt && git -C {git} add one.txt && "
               f"git -C {git} -c user.name=b -c user.email=b@b commit -qm one")
    commands = {
        "version": ([DATUMFLOW, "--version"], local),
        "git version": (["git", "--version"], local),
        "ls": ([DATUMFLOW, "ls", "small@master"], local),
        "git ls-tree": (["git", "-C", git, "ls-tree", "HEAD"], local),
        "python": ([sys.executable, "-c", "pass"], local),
        "put": ([DATUMFLOW, "put", "small@master:one.txt", "one.txt"], local),
        "git put": (["sh", "-c", git_put], local),
        "log": ([DATUMFLOW, "log", "small@master"], local),
        "git log": (["git", "-C", git, "log"], local),
    }
    got = _medians(ctx, commands, folder, runs)
    out = [
        ctx.figure("cli start: datumflow --version", got["version"], "s", peer="git --version",
                   ratio=got["version"] / got["git version"], goal="<= 0.15 s", met=got["version"] <= 0.15),
        ctx.figure(f"cli start: datumflow ls ({files} files, embedded)", got["ls"], "s",
                   peer=f"git ls-tree ({files} files)", ratio=got["ls"] / got["git ls-tree"], goal="<= 0.3 s",
                   met=got["ls"] <= 0.3),
        ctx.figure("cli start: python -c pass (the floor)", got["python"], "s", peer="git --version",
                   ratio=got["python"] / got["git version"], goal="(reference)", met=None),
        ctx.figure("cli start: datumflow put, one small file (embedded)", got["put"], "s",
                   peer="git add + git commit of it", ratio=got["put"] / got["git put"], goal="report", met=None),
        ctx.figure("cli start: datumflow log (embedded)", got["log"], "s", peer="git log",
                   ratio=got["log"] / got["git log"], goal="report", met=None),
    ]
    return out + _remote(ctx, folder, runs, files, got)


def _remote(ctx: Context, folder: Path, runs: int, files: int, local: dict[str, float]) -> list[dict[str, Any]]:
    """The same verbs against a ``serve`` process over a store of the same files."""
    from benchmarks._procs import datumflow_service

    root = folder / "served"
    _small_store(root, files)
    with datumflow_service(root, folder / "serve.log") as (url, token):
        env = _env(DATUMFLOW_ADDRESS=url, DATUMFLOW_TOKEN=token)
        got = _medians(ctx, {
            "ls": ([DATUMFLOW, "ls", "small@master"], env),
            "git ls-tree": (["git", "-C", str(folder / "git"), "ls-tree", "HEAD"], _env()),
            "put": ([DATUMFLOW, "put", "small@master:one.txt", "one.txt"], env),
            "log": ([DATUMFLOW, "log", "small@master"], env),
        }, folder, runs)
    return [
        ctx.figure(f"cli start: datumflow ls ({files} files, served)", got["ls"], "s",
                   peer=f"git ls-tree ({files} files)", ratio=got["ls"] / got["git ls-tree"], goal="report",
                   met=None),
        ctx.figure("cli start: datumflow put, one small file (served)", got["put"], "s",
                   peer="the same put, embedded", ratio=got["put"] / local["put"], goal="report", met=None),
        ctx.figure("cli start: datumflow log (served)", got["log"], "s", peer="the same log, embedded",
                   ratio=got["log"] / local["log"], goal="report", met=None),
    ]

