"""Spout pipelines: a long-running transform that writes commits into its own output repo.

As in Pachyderm 2.x, a pipeline with ``spout`` (and no ``input``) has no
jobs or datums: its ``transform.cmd`` is started once and kept running, and
the code makes commits itself through the service's API — ``datumflow put
<pipeline>@master FILE`` (one commit per call), ``datumflow commit
start``/``finish`` around several puts, or ``datumflow.connect()`` in
Python. Its process is told where and how:

- ``DATUMFLOW_ADDRESS`` — the service (``serve``'s own loopback address; an
  embedded ``pipeline run`` starts a loopback one for it);
- ``DATUMFLOW_TOKEN`` — a token scoped to the pipeline: writer on its output
  repo, nothing else; minted at each start, revoked when the process ends;
- ``PPS_PIPELINE_NAME``, ``PACH_OUTPUT_REPO``/``PACH_OUTPUT_BRANCH``, and the
  spec's ``env`` and secrets; ``/pfs/out`` exists (empty) as in Pachyderm.

It runs in the datum sandbox (:mod:`.sandbox`): its own ``/tmp``, no store
root, database or service environment; the network is the host's, so it
reaches the service and the outside source it reads.

Every commit it makes on the output branch carries the head of the pipeline's
``spec`` branch as provenance (the output branch is provenant on it), so the
code that wrote the data is provenance, as for jobs.

:class:`SpoutSupervisor` keeps each spout as it should be, one ``step()`` at
a time (``serve`` calls it every half second):

- a running pipeline's spout is started; one that exits — crashes or not —
  is restarted after a backoff doubling from ``DATUMFLOW_SPOUT_BACKOFF``
  (1 s) up to ``DATUMFLOW_SPOUT_BACKOFF_MAX`` (60 s), reset once a run lasts
  that long;
- ``pipeline stop`` and ``pipeline delete`` end it (SIGTERM to its code
  inside the sandbox, SIGKILL to everything after ``DATUMFLOW_SPOUT_GRACE``
  seconds, 5); a new spec (``update``) restarts it on the new code;
- among several services on one database, one runs each spout: the
  supervisor holds a lease on its ``df_spout_runs`` row, renewed every
  step; a dead service's spouts are taken over once its lease lapses.

The row also says how it goes (``pipeline inspect`` shows it): state
(``running``, ``backoff``, ``stopped``), pid, restarts, the last exit status
and the tail of the output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from datumflow.storage_service.core.db import insert_ignore
from datumflow.storage_service.core.pipeline_schema import spout_runs
from datumflow.storage_service.errors import DatumflowError
from datumflow.storage_service.pipelines import tokens
from datumflow.storage_service.pipelines.registry import PipelineRegistry
from datumflow.storage_service.pipelines.sandbox import Sandbox, sandbox_from_env
from datumflow.storage_service.pipelines.spec import PipelineSpec
from datumflow.storage_service.pipelines.worker import secret_env, secret_mounts
from datumflow.storage_service.store.store import Store
from sqlalchemy import or_, update

__all__ = ["SpoutSupervisor"]

LOG_LIMIT = 16 * 1024
LOG_EVERY = 2.0  # seconds between copies of a running spout's output tail into its run record
_log = logging.getLogger(__name__)


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass
class _Running:
    """One spout process this supervisor started."""

    pipeline: str
    spec_commit: str
    proc: subprocess.Popen[bytes]
    token: str
    folder: Path
    log: IO[bytes]
    started: float = field(default_factory=time.time)
    logged: float = field(default_factory=time.monotonic)  # when its output tail was last recorded


@dataclass
class _Waiting:
    """A spout that exited: when it may start again, and how many runs in a row were short."""

    not_before: float
    short_runs: int


class SpoutSupervisor:
    """Starts, restarts and stops the processes of spout pipelines (see the module docstring)."""

    def __init__(
        self, store: Store, registry: PipelineRegistry, *, address: str, sandbox: Sandbox | None = None,
        lease_seconds: float = 30.0, owner: str | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.address = address
        self.sandbox = sandbox or sandbox_from_env(hidden=[store.root])
        self.lease_seconds = lease_seconds
        self.owner = owner or f"spouts:{uuid.uuid4().hex[:12]}"
        self.backoff = _env_float("DATUMFLOW_SPOUT_BACKOFF", 1.0)
        self.backoff_max = _env_float("DATUMFLOW_SPOUT_BACKOFF_MAX", 60.0)
        self.grace = _env_float("DATUMFLOW_SPOUT_GRACE", 5.0)
        self._running: dict[str, _Running] = {}
        self._waiting: dict[str, _Waiting] = {}

    # -- the reconciling step -------------------------------------------------------

    def step(self, only: str | None = None) -> None:
        """Bring every spout (or only pipeline ``only``) to what its pipeline asks for."""
        wanted = {name: commit for name, commit, stopped in self.registry.spouts()
                  if not stopped and (only is None or name == only)}
        for name in list(self._running):
            run = self._running[name]
            if wanted.get(name) != run.spec_commit:  # stopped, deleted, or a new spec
                self._end(run, state="stopped" if name in wanted or self._exists(name) else None)
                self._waiting.pop(name, None)
            elif run.proc.poll() is not None:
                self._exited(run)
        for name in list(self._waiting):
            if name not in wanted and name not in self._running:
                del self._waiting[name]
                if self._exists(name):
                    self._record(name, state="stopped")
                    self._release(name)
        for name, spec_commit in wanted.items():
            if name in self._running:
                run = self._running[name]
                if not self._renew(name):  # another supervisor took it over (ours lapsed): one process only
                    _log.warning("spout %s: lease taken over by another service; ending this process", name)
                    self._end(run, state=None)
                elif time.monotonic() - run.logged >= LOG_EVERY:  # `logs --pipeline` shows it as it runs
                    run.logged = time.monotonic()
                    self._record(name, log=_tail(run))
                continue
            waiting = self._waiting.get(name)
            if waiting is not None and time.time() < waiting.not_before:
                continue
            if self._claim(name):
                self._start(name, spec_commit)

    def running(self) -> list[str]:
        return sorted(self._running)

    def stop_all(self) -> None:
        """End every process this supervisor runs (the service is shutting down)."""
        for run in list(self._running.values()):
            self._end(run, state="stopped")

    # -- processes ----------------------------------------------------------------------

    def _start(self, name: str, spec_commit: str) -> None:
        try:
            spec = self.registry.spec_at(name, spec_commit)
        except DatumflowError as exc:
            self._record(name, state="failed", log=f"[datumflow] cannot read spec {spec_commit}: {exc}\n")
            self._wait(name, short=True)
            return
        folder = Path(tempfile.mkdtemp(prefix=f"datumflow-spout-{name}-"))
        (folder / "pfs" / "out").mkdir(parents=True)
        token = tokens.mint(self.store.engine, name)
        log = open(folder / "log", "w+b")  # noqa: SIM115 - kept open while the process runs
        try:
            cmd, cwd, env = self._command(spec, folder / "pfs", token)
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                    env=env, start_new_session=True)
        except (OSError, DatumflowError) as exc:
            log.close()
            tokens.revoke(self.store.engine, token)
            shutil.rmtree(folder, ignore_errors=True)
            self._record(name, state="backoff", log=f"[datumflow] cannot start the spout: {exc}\n", restarted=True)
            self._wait(name, short=True)
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.write("".join(line + "\n" for line in spec.transform.stdin).encode())
                proc.stdin.close()
        self._running[name] = _Running(name, spec_commit, proc, token, folder, log)
        self._record(name, state="running", pid=proc.pid, started=time.time(), spec_commit=spec_commit)
        _log.info("spout %s started (pid %s)", name, proc.pid)

    def _command(self, spec: PipelineSpec, pfs: Path, token: str) -> tuple[list[str], str, dict[str, str]]:
        env = {
            **spec.transform.env, **secret_env(spec.transform),
            "PPS_PIPELINE_NAME": spec.name, "PACH_OUTPUT_REPO": spec.name, "PACH_OUTPUT_BRANCH": spec.output_branch,
            "DATUMFLOW_ADDRESS": self.address, "DATUMFLOW_TOKEN": token,
        }
        if self.sandbox.isolated:
            self.sandbox.check()
            cmd = self.sandbox.argv(spec.transform.cmd, pfs, [], env=env, working_dir=spec.transform.working_dir,
                                    mounts=secret_mounts(spec.transform))
            return cmd, str(pfs), {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        self.sandbox.check()
        host = {k: v for k, v in os.environ.items() if not k.startswith("DATUMFLOW_")}
        return list(spec.transform.cmd), str(pfs), {**host, **env}

    def _exited(self, run: _Running) -> None:
        code = run.proc.returncode
        lasted = time.time() - run.started
        self._close(run)
        self._record(run.pipeline, state="backoff", pid=None, last_exit=code, log=_tail(run), restarted=True)
        _log.warning("spout %s exited with status %s after %.1fs; restarting", run.pipeline, code, lasted)
        self._wait(run.pipeline, short=lasted < self.backoff_max)

    def _wait(self, name: str, *, short: bool) -> None:
        before = self._waiting.get(name)
        runs = (before.short_runs + 1 if before else 1) if short else 1
        delay = min(self.backoff_max, self.backoff * 2 ** (runs - 1))
        self._waiting[name] = _Waiting(time.time() + delay, runs)

    def _end(self, run: _Running, *, state: str | None) -> None:
        """Stop a process: SIGTERM to it and everything under it (the sandbox puts the user's code in a
        session of its own), SIGKILL after the grace period."""
        # In the sandbox only the user's code gets SIGTERM: bwrap would die of it at once and take the
        # code with it (SIGKILL), before a handler could finish the commit in progress.
        _signal_tree(run.proc.pid, signal.SIGTERM, root=not self.sandbox.isolated)
        try:
            run.proc.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            _signal_tree(run.proc.pid, signal.SIGKILL)
            run.proc.wait()
        log = _tail(run)
        self._close(run)
        if state is not None:
            self._record(run.pipeline, state=state, pid=None, last_exit=run.proc.returncode, log=log)
            self._release(run.pipeline)
        _log.info("spout %s stopped", run.pipeline)

    def _close(self, run: _Running) -> None:
        self._running.pop(run.pipeline, None)
        tokens.revoke(self.store.engine, run.token)
        run.log.close()
        shutil.rmtree(run.folder, ignore_errors=True)

    def _exists(self, name: str) -> bool:
        return self.registry.row(name) is not None

    # -- the run record and its lease --------------------------------------------------

    def _claim(self, name: str) -> bool:
        """Take the spout's lease (free, ours, or lapsed); False if another supervisor holds it."""
        now = time.time()
        values = {"owner": self.owner, "lease_until": now + self.lease_seconds}
        with self.store.engine.begin() as conn:
            # The first record, unless there is one (another replica's supervisor may be inserting it
            # at this moment: then this insert skips, and the lease is taken, or not, below).
            row = {"pipeline": name, "state": "stopped", "restarts": 0, **values}
            if conn.execute(insert_ignore(self.store.engine, spout_runs), row).rowcount == 1:
                return True
            free = or_(spout_runs.c.owner.is_(None), spout_runs.c.owner == self.owner, spout_runs.c.lease_until < now)
            moved = conn.execute(update(spout_runs).where(spout_runs.c.pipeline == name, free).values(**values))
            return bool(moved.rowcount == 1)

    def _renew(self, name: str) -> bool:
        with self.store.engine.begin() as conn:
            moved = conn.execute(update(spout_runs).where(spout_runs.c.pipeline == name,
                                                          spout_runs.c.owner == self.owner)
                                 .values(lease_until=time.time() + self.lease_seconds))
            return bool(moved.rowcount == 1)

    def _release(self, name: str) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(update(spout_runs).where(spout_runs.c.pipeline == name, spout_runs.c.owner == self.owner)
                         .values(owner=None, lease_until=None))

    def _record(self, name: str, *, restarted: bool = False, **values: Any) -> None:
        if restarted:
            values["restarts"] = spout_runs.c.restarts + 1
        with self.store.engine.begin() as conn:
            conn.execute(update(spout_runs).where(spout_runs.c.pipeline == name).values(**values))


def _signal_tree(pid: int, sig: signal.Signals, *, root: bool = True) -> None:
    """Send ``sig`` to every process below ``pid`` (found through /proc) and, with ``root``, to ``pid``
    and its process group."""
    below = _descendants(pid)
    if not root:  # the sandbox's own processes (bwrap and its init) would end the code at once
        below = [p for p in below if _program(p) != "bwrap"]
    targets = [*([pid] if root else []), *below]
    if root:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
    for target in reversed(targets):  # the user's code first
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(target, sig)


def _program(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return os.path.basename(f.read().split(b"\0", 1)[0].decode(errors="replace"))
    except OSError:
        return ""


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: list[int] = []
    stack = list(children.get(pid, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(children.get(child, []))
    return found


def _tail(run: _Running) -> str:
    with contextlib.suppress(OSError, ValueError):
        run.log.flush()
        size = run.log.seek(0, os.SEEK_END)
        run.log.seek(max(0, size - LOG_LIMIT))
        return run.log.read().decode("utf-8", "replace")
    return ""

