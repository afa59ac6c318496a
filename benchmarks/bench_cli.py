"""CLI start-up: ``datumflow --version`` and ``datumflow ls`` on a small embedded store, against
``git --version`` and ``git ls-tree`` on a repo of the same files; ``get`` of one small file against
``git show HEAD:FILE``; ``put`` of one small file and ``log`` (of that repo, and of one with a
history of 500 commits; 100 at small scale) against ``git add`` + ``git commit`` and ``git log``;
``ls``, ``get``, ``put`` and ``log`` also against a ``serve`` process over a store of the same
files (on loopback, started here).

Each figure is one process start measured from outside (wall time), as a user meets it in a shell
or a script: the median of ``runs`` rounds, every command once per round in turn (interleaved),
after one warm-up round. The ``_cpu`` rows are the same starts' CPU time (user + system), which a
busy machine inflates far less than wall time. The goal (issue 19): ``--version`` at most 0.15 s,
a small ``ls`` at most 0.3 s.

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


def _start(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its children)."""
    began = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, argv)
    return wall, usage.ru_utime + usage.ru_stime


def _medians(ctx: Context, commands: dict[str, tuple[list[str], dict[str, str]]], cwd: Path,
             runs: int) -> dict[str, float]:
    """name -> median wall seconds, and ``name cpu`` -> median CPU seconds; one warm-up round (page
    cache, bytecode cache), then ``runs`` rounds."""
    for argv, env in commands.values():
        _start(argv, cwd, env)
    times: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, (argv, env) in commands.items():
            wall, used = _start(argv, cwd, env)
            times[name].append(wall)
            cpu[name].append(used)
    return {**{name: ctx.median(t) for name, t in times.items()},
            **{f"{name} cpu": ctx.median(t) for name, t in cpu.items()}}


def _small_store(root: Path, files: int) -> None:
    from datumflow.storage_service.store.store import Store

    with Store(str(root)) as store:
        store.create_repo("small")
        store.put_files("small", "master", [(f"f{i:03}.txt", f"line {i}\n".encode()) for i in range(files)])


def _long_store(root: Path, commits: int) -> None:
    """Repo ``long``: ``commits`` commits of one file each."""
    from datumflow.storage_service.store.store import Store

    with Store(str(root), fsync=False) as store:
        store.create_repo("long")
        for i in range(commits):
            store.put_files("long", "master", [("a.txt", f"{i}\n".encode())])


def _long_git(git: Path, commits: int) -> None:
    """The same history in git (one fast-import)."""
    subprocess.run(["git", "init", "-q", str(git)], check=True)
    stream = "".join(f"commit refs/heads/master\ncommitter b <b@b> {i} +0000\ndata 2\n{i % 10}\n"
                     f"M 644 inline a.txt\ndata {len(str(i)) + 1}\n{i}\n\n" for i in range(commits))
    subprocess.run(["git", "-C", str(git), "fast-import", "--quiet"], input=stream.encode(), check=True)


def _small_git(folder: Path, files: int) -> None:
    git = folder / "git"
    subprocess.run(["git", "init", "-q", str(git)], check=True)
    for i in range(files):
        (git / f"f{i:03}.txt").write_text(f"line {i}\n")
    subprocess.run(["git", "-C", str(git), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(git), "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "small"],
                   check=True)


def run(ctx: Context) -> list[dict[str, Any]]:
    from benchmarks._procs import datumflow_service

    if shutil.which("git") is None:
        ctx.log("git is not installed: the CLI area needs it as its peer")
        return []
    runs = ctx.pick(20, 8)
    files = ctx.pick(100, 20)
    folder = ctx.workdir
    folder.mkdir(parents=True, exist_ok=True)
    _small_store(folder / ".datumflow", files)
    _small_store(folder / "served", files)
    _small_git(folder, files)
    long = ctx.pick(500, 100)
    for root in (folder / ".datumflow", folder / "served"):
        _long_store(root, long)
    _long_git(folder / "git-long", long)
    (folder / "one.txt").write_text("one small file\n")
    with datumflow_service(folder / "served", folder / "serve.log") as (url, token):
        got = _medians(ctx, _commands(folder, url, token), folder, runs)
    ms = {name: f"{seconds * 1000:.1f} ms" for name, seconds in got.items()}

    def figure(name: str, what: str, peer: str, peer_text: str, goal: str = "report",
               limit: float | None = None) -> dict[str, Any]:
        return ctx.figure(f"cli.{name}", got[what], "s", peer=peer_text, ratio=got[what] / got[peer], goal=goal,
                          met=None if limit is None else got[what] <= limit)

    tree = f"git ls-tree {ms['git ls-tree']} ({files} files)"
    commit = f"git add + git commit of it {ms['git put']}"
    log = f"git log {ms['git log']} (as many commits)"
    history = f"git log {ms['git log long']} ({long} commits)"
    show = f"git show HEAD:FILE {ms['git show']} (a file of 9 bytes)"
    return [
        figure("version", "version", "git version", f"git --version {ms['git version']}", "≤ 0.15 s", 0.15),
        figure("ls_embedded", "ls", "git ls-tree", tree, "≤ 0.3 s", 0.3),
        figure("python_floor", "python", "git version", f"git --version {ms['git version']}", "(reference)"),
        figure("get_embedded", "get", "git show", show),
        figure("get_served", "get served", "git show", show),
        figure("put_one_file_embedded", "put", "git put", commit),
        figure("log_embedded", "log", "git log", log),
        figure("ls_served", "ls served", "git ls-tree", tree),
        figure("put_one_file_served", "put served", "git put", commit),
        figure("log_served", "log served", "git log", log),
        figure("log_long_embedded", "log long", "git log long", history),
        figure("log_long_served", "log long served", "git log long", history),
        # CPU time moves less than wall time with the machine's load: what one idle core would take
        figure("version_cpu", "version cpu", "python cpu", f"python -c pass {ms['python cpu']} CPU",
               "diagnostic (CPU s)"),
        figure("ls_embedded_cpu", "ls cpu", "python cpu", f"python -c pass {ms['python cpu']} CPU",
               "diagnostic (CPU s)"),
        figure("ls_served_cpu", "ls served cpu", "python cpu", f"python -c pass {ms['python cpu']} CPU",
               "diagnostic (CPU s)"),
        figure("get_embedded_cpu", "get cpu", "python cpu", f"python -c pass {ms['python cpu']} CPU",
               "diagnostic (CPU s)"),
    ]


def _commands(folder: Path, url: str, token: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Every start a round makes: datumflow's on the embedded store and against ``url``, git's peers."""
    git = str(folder / "git")
    local = _env()
    served = _env(DATUMFLOW_ADDRESS=url, DATUMFLOW_TOKEN=token)
    # one small file as a new commit: git's two steps of the same (add, commit); the file changes each round
    git_put = (f"cp one.txt {git}/one.txt && echo . >> one.txt && git -C {git} add one.txt && "
               f"git -C {git} -c user.name=b -c user.email=b@b commit -qm one")
    put = [DATUMFLOW, "put", "small@master:one.txt", "one.txt"]
    return {
        "version": ([DATUMFLOW, "--version"], local),
        "git version": (["git", "--version"], local),
        "python": ([sys.executable, "-c", "pass"], local),
        "ls": ([DATUMFLOW, "ls", "small@master"], local),
        "ls served": ([DATUMFLOW, "ls", "small@master"], served),
        "git ls-tree": (["git", "-C", git, "ls-tree", "HEAD"], local),
        "get": ([DATUMFLOW, "get", "small@master:f007.txt"], local),
        "get served": ([DATUMFLOW, "get", "small@master:f007.txt"], served),
        "git show": (["git", "-C", git, "show", "HEAD:f007.txt"], local),
        "put": (put, local),
        "put served": (put, served),
        "git put": (["sh", "-c", git_put], local),
        "log": ([DATUMFLOW, "log", "small@master"], local),
        "log served": ([DATUMFLOW, "log", "small@master"], served),
        "git log": (["git", "-C", git, "log"], local),
        "log long": ([DATUMFLOW, "log", "long@master"], local),
        "log long served": ([DATUMFLOW, "log", "long@master"], served),
        "git log long": (["git", "-C", f"{git}-long", "log"], local),
    }
