"""The service under test: real ``serve`` processes on free loopback ports.

==================  =======  ===================================================
fixture             scope    what it gives
==================  =======  ===================================================
``service``         session  a token-protected service (``.url``, ``.token``, ``.root``)
``open_service``    session  a service whose store has no users (no tokens needed)
``start_service``   test     factory: ``start_service(root, db=..., objects=...)``
``client``          test     a :class:`Client` of ``service`` as its admin
``repo_name``       test     a repo name no other test uses
==================  =======  ===================================================
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from datumflow.storage_service.client.http import Client

from tests.conftest import free_port

STARTUP_TIMEOUT = 90.0  # loaded machines take a while to import the service


@dataclass
class Service:
    url: str
    root: Path
    token: str | None
    process: subprocess.Popen[bytes]
    log: Path
    extra: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m datumflow.storage_service.service.serve ARGS`` (the standalone entry point)."""
    return subprocess.run(
        [sys.executable, "-m", "datumflow.storage_service.service.serve", *args],
        capture_output=True, text=True, timeout=60,
    )


def init_auth(root: Path, db: str | None = None) -> str:
    extra = ["--db", db] if db else []
    done = run_cli("auth", "init", "--root", str(root), *extra)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def launch(root: Path, *, token: str | None, db: str | None = None, host: str = "127.0.0.1",
           args: tuple[str, ...] = ()) -> Service:
    port = free_port()
    log = root.parent / f"service-{port}.log"
    cmd = [sys.executable, "-m", "datumflow.storage_service.service.serve", "serve", "--root", str(root),
           "--host", host, "--port", str(port), "--log-level", "warning"]
    if db:
        cmd += ["--db", db]
    cmd += args
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "DATUMFLOW_FSYNC": "0"})
    service = Service(f"http://127.0.0.1:{port}", root, token, proc, log)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(service.url + "/healthz", timeout=1).status_code == 200:
                return service
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    service.stop()
    raise RuntimeError(f"serve did not answer within {STARTUP_TIMEOUT}s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("svc") / "store"
    token = init_auth(root)
    svc = launch(root, token=token)
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def open_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = launch(tmp_path_factory.mktemp("open") / "store", token=None)
    yield svc
    svc.stop()


@pytest.fixture
def start_service() -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def start(root: Path, *, token: str | None = None, db: str | None = None) -> Service:
        svc = launch(root, token=token, db=db)
        started.append(svc)
        return svc

    yield start
    for svc in started:
        svc.stop()


@pytest.fixture
def client(service: Service) -> Iterator[Client]:
    with Client(service.url, token=service.token, retries=2) as c:
        yield c


@pytest.fixture
def repo_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"
