"""Spout pipelines under ``serve`` and on the embedded store.

``serve`` keeps every running spout pipeline's process up beside its job
loop (:func:`start_spouts`), pointing them at its own loopback address.

The embedded store has no service, so ``datumflow pipeline run SPOUT``
(:func:`run_spout_here`) acts as one for the spout's sake: a loopback HTTP
service on a free port that takes **only** pipeline tokens (the spout's
scoped token; nothing else on this host gets in through it), the job loop
that runs the pipelines downstream of the spout's commits, and the
supervisor, until the pipeline is stopped or deleted (from another shell),
``seconds`` pass, or the command is interrupted.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Any

from datumflow.storage_service.errors import DatumflowError, InvalidArgument
from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.pipelines.spout_runner import SpoutSupervisor
from datumflow.storage_service.store.store import Store

__all__ = ["SpoutLoop", "run_spout_here", "start_spouts"]

_STEP = 0.25


class SpoutLoop:
    """A supervisor stepping in a thread of its own; ``stop`` ends its processes.

    The processes are started, and ended, by that thread: the sandbox ties each one to the
    thread that started it (bwrap's ``--die-with-parent``), so the thread outlives them and
    ``stop`` lets them have their SIGTERM and grace period.
    """

    def __init__(self, supervisor: SpoutSupervisor, only: str | None = None) -> None:
        self.supervisor = supervisor
        self.only = only
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, interval: float = _STEP) -> SpoutLoop:
        def loop() -> None:
            try:
                while not self._stop.is_set():
                    with contextlib.suppress(DatumflowError):  # recorded on the spout's run; the others go on
                        self.supervisor.step(self.only)
                    self._stop.wait(interval)
            finally:
                self.supervisor.stop_all()

        self._thread = threading.Thread(target=loop, name="datumflow-spouts", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def start_spouts(engine: Pipelines, address: str) -> SpoutLoop:
    """Run the spout pipelines of ``engine``'s store, their processes writing through ``address``."""
    return SpoutLoop(SpoutSupervisor(engine.store, engine.registry, address=address)).start()


def client_address(host: str, port: int) -> str:
    """Where a process on this host reaches a service bound to ``host``."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run_spout_here(store: Store, name: str, *, seconds: float | None = None) -> dict[str, Any]:
    """Run spout pipeline ``name`` of an embedded store in this process until it is stopped or deleted,
    ``seconds`` pass, or an interrupt; returns its last status."""
    engine = Pipelines(store)
    info = engine.inspect_pipeline(name)
    if info.spec.get("spout") is None:
        raise InvalidArgument(f"pipeline {name} is not a spout")
    if info.state == "stopped":
        raise InvalidArgument(f"pipeline {name} is stopped: start it first (datumflow pipeline start {name})")
    server, address = _loopback_service(store)
    engine.start_background(interval=0.5)
    loop = SpoutLoop(SpoutSupervisor(store, engine.registry, address=address), only=name).start()
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        while deadline is None or time.monotonic() < deadline:
            row = engine.registry.row(name)
            if row is None or row.stopped:
                break
            time.sleep(_STEP)
    finally:
        loop.stop()
        engine.stop_background()
        engine.process()  # the commits it made last still run downstream
        server.should_exit = True
    return engine.registry.spout_status(name) if engine.exists(name) else {"state": "deleted"}


def _loopback_service(store: Store) -> tuple[Any, str]:
    import uvicorn
    from datumflow.storage_service.service.app import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(store, pipeline_tokens_only=True)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", log_config=None,
                                           access_log=False))
    thread = threading.Thread(target=server.run, name="datumflow-spout-service", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise InvalidArgument(f"the loopback service for the spout did not start on port {port}")
        time.sleep(0.02)
    return server, client_address("127.0.0.1", port)
