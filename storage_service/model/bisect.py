"""Bisect and commands run on a commit's files, over anything that reads like a Store.

:class:`~datumflow.storage_service.store.store.Store` and the HTTP
``Client`` both run these (so ``bisect`` works embedded and remote, with
the command always running on the caller's machine); they need only the
reading methods named in :class:`Reader`.

A command sees the commit's files (all, or those under ``path``) in a fresh
folder, which is its working directory and ``DATUMFLOW_DATA``, and the
commit in ``DATUMFLOW_REPO``/``DATUMFLOW_COMMIT``. Exit status follows
``git bisect run``: 0 good, 125 skip (untestable), anything else bad.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.model.core import Commit, DiffEntry, FileInfo
from datumflow.storage_service.model.history import BisectResult, BisectStep

__all__ = ["Reader", "bisect", "checkout", "run_command", "verdict_of"]

SKIP = 125
Run = str | Sequence[str] | Callable[[str], int | bool | None]


class Reader(Protocol):
    def inspect_commit(self, repo: str, ref: str) -> Commit: ...

    def list_commits(
        self, repo: str, branch: str | None = None, *, limit: int | None = None, state: str | None = None,
        first_parent: bool = False, until: str | None = None,
    ) -> list[Commit]: ...

    def walk_files(self, repo: str, ref: str, path: str = "") -> Iterator[FileInfo]: ...

    def open_file(self, repo: str, ref: str, path: str) -> Iterator[bytes]: ...

    def diff(
        self, repo: str, old_ref: str | None, new_ref: str, *, old_repo: str | None = None
    ) -> Iterator[DiffEntry]: ...


def checkout(reader: Reader, repo: str, commit: str, folder: str, path: str = "") -> int:
    """Write the commit's files under ``path`` into ``folder``; returns how many."""
    count = 0
    for info in reader.walk_files(repo, commit, path):
        rel = info.path[len(path) + 1:] if path and info.path.startswith(path + "/") else info.path
        if path and info.path == path:
            rel = os.path.basename(info.path)
        local = os.path.join(folder, *rel.split("/"))
        os.makedirs(os.path.dirname(local) or folder, exist_ok=True)
        with open(local, "wb") as out:
            for piece in reader.open_file(repo, commit, info.path):
                out.write(piece)
        count += 1
    return count


def run_command(reader: Reader, repo: str, commit: str, cmd: str | Sequence[str], path: str = "",
                *, timeout: float | None = None) -> tuple[int, str]:
    """Run ``cmd`` on a checkout of the commit: (exit status, the tail of its output)."""
    argv = shlex.split(cmd) if isinstance(cmd, str) else list(cmd)
    if not argv:
        raise InvalidArgument("a command to run is required")
    with tempfile.TemporaryDirectory(prefix="datumflow-check-") as folder:
        checkout(reader, repo, commit, folder, path)
        env = {**os.environ, "DATUMFLOW_REPO": repo, "DATUMFLOW_COMMIT": commit, "DATUMFLOW_DATA": folder}
        try:
            done = subprocess.run(argv, cwd=folder, env=env, capture_output=True, timeout=timeout, check=False)
        except FileNotFoundError as exc:
            raise InvalidArgument(f"cannot run {argv[0]!r}: {exc}") from exc
        except subprocess.TimeoutExpired:
            return 124, f"timed out after {timeout}s"
    output = (done.stdout + done.stderr).decode(errors="replace")
    return done.returncode, output[-2000:]


def verdict_of(code: int) -> str:
    return "good" if code == 0 else "skip" if code == SKIP else "bad"


def bisect(reader: Reader, repo: str, good: str, bad: str, run: Run, path: str = "") -> BisectResult:
    """Find the first bad commit on the first-parent line from ``good`` (exclusive) to ``bad``.

    ``run`` is a command (run on each candidate's checkout) or a function of a
    commit id returning an exit status (or True for good). Binary search: about
    ⌈log2 n⌉ runs for n commits, more only when runs are skipped.
    """
    good_id, bad_id = reader.inspect_commit(repo, good).id, reader.inspect_commit(repo, bad).id
    line = _first_parent_line(reader, repo, good_id, bad_id)  # oldest first, bad last
    test = _tester(reader, repo, run, path)
    steps: list[BisectStep] = []
    lo, hi = 0, len(line) - 1  # line[hi] is known bad; everything before lo is known good
    skipped: set[int] = set()
    while lo < hi:
        mid = _probe(lo, hi, skipped)
        if mid is None:
            break
        code = test(line[mid])
        steps.append(BisectStep(line[mid], verdict_of(code), code))
        if code == SKIP:
            skipped.add(mid)
        elif code == 0:
            lo = mid + 1
        else:
            hi = mid
    if lo == hi:
        first = line[hi]
        changes = tuple(d.to_dict() for d in reader.diff(repo, None, first))
        return BisectResult(repo, good_id, bad_id, first, (), tuple(steps), changes)
    return BisectResult(repo, good_id, bad_id, None, tuple(line[lo:hi + 1]), tuple(steps))


def _first_parent_line(reader: Reader, repo: str, good: str, bad: str) -> list[str]:
    history = reader.list_commits(repo, bad, first_parent=True, until=good)
    if good == bad:
        raise InvalidArgument("the good and the bad commit are the same commit")
    last = history[-1] if history else None
    parent = last.parent if last else None
    if parent != good:
        raise InvalidArgument(f"commit {good} is not a first-parent ancestor of {bad}: nothing to bisect")
    return [c.id for c in reversed(history)]


def _probe(lo: int, hi: int, skipped: set[int]) -> int | None:
    """The untested index nearest the middle of [lo, hi) (hi is known bad)."""
    mid = (lo + hi) // 2
    for offset in range(hi - lo):
        for cand in (mid - offset, mid + offset):
            if lo <= cand < hi and cand not in skipped:
                return cand
    return None


def _tester(reader: Reader, repo: str, run: Run, path: str) -> Callable[[str], int]:
    if callable(run):
        def call(commit: str) -> int:
            got: Any = run(commit)
            if isinstance(got, bool):
                return 0 if got else 1
            return int(got or 0)
        return call
    return lambda commit: run_command(reader, repo, commit, run, path)[0]
