"""What happens on its own: cron inputs tick when due, and a background loop runs ready jobs."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Callable

from datumflow.storage_service.errors import DatumflowError, InvalidArgument
from datumflow.storage_service.pipelines.cron import next_tick, tick
from datumflow.storage_service.pipelines.registry import PipelineRegistry
from datumflow.storage_service.pipelines.spec import CronInput, parse_spec
from datumflow.storage_service.store.store import Store

__all__ = ["BackgroundLoop", "run_cron", "tick_crons"]


def tick_crons(store: Store, registry: PipelineRegistry, now: float | None = None) -> list[str]:
    """Commit a tick into every cron input that is due; returns the new commit ids."""
    when = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.timezone.utc)
    made: list[str] = []
    for info in registry.list_all():
        if info.state == "stopped":
            continue
        spec = parse_spec(info.spec)
        seen = registry.last_ticks(spec.name)
        last = dict(seen)
        due = []
        for leaf in spec.leaves():
            if not isinstance(leaf, CronInput):
                continue
            since = dt.datetime.fromisoformat(last.get(leaf.name) or leaf.start or _iso(info.created))
            if next_tick(leaf.spec, since) <= when:
                due.append(leaf)
                last[leaf.name] = when.isoformat()
        # Claimed before committed: of several job loops on one database exactly one wins the
        # compare-and-swap and commits the tick (a crash in between loses that one tick).
        if due and registry.claim_ticks(spec.name, seen, last):
            made.extend(tick(store, spec.cron_repo(leaf), when, overwrite=leaf.overwrite) for leaf in due)
    return made


def run_cron(store: Store, registry: PipelineRegistry, name: str, now: float | None = None) -> str:
    """Tick every cron input of pipeline ``name`` now, as ``pachctl run cron`` does, whatever its schedule;
    returns the output commit the (last) tick opened: its job runs the pipeline on the ticks."""
    info = registry.inspect(name)
    if info.state == "stopped":
        raise InvalidArgument(f"pipeline {name} is stopped: start it first (datumflow pipeline start {name})")
    spec = parse_spec(info.spec)
    crons = [leaf for leaf in spec.leaves() if isinstance(leaf, CronInput)]
    if not crons:
        raise InvalidArgument(f"pipeline {name} has no cron input")
    when = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.timezone.utc)
    ticks = [tick(store, spec.cron_repo(leaf), when, overwrite=leaf.overwrite) for leaf in crons]
    last = store.inspect_commit(spec.cron_repo(crons[-1]), ticks[-1])
    return next(c.id for c in store.commit_set(last.commit_set) if c.repo == name)


class BackgroundLoop:
    """Runs ``step`` every ``interval`` seconds in a daemon thread until stopped."""

    def __init__(self, step: Callable[[], object], name: str = "datumflow-pipelines") -> None:
        self._step = step
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, interval: float = 1.0) -> None:
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                with contextlib.suppress(DatumflowError):  # recorded on the job; the loop serves the others
                    self._step()
                self._stop.wait(interval)

        self._thread = threading.Thread(target=loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat()
