"""The attack suite: real ``serve`` processes on loopback, attacked with real tokens.

=================  =======  =========================================================
fixture            scope    what it gives
=================  =======  =========================================================
``svc``            module   a token-protected service logging every request (``.log``)
``admin``          test     a :class:`Client` of ``svc`` as its admin
``make_user``      test     factory: ``make_user() -> User(name, token, client)``
``open_svc``       module   a service whose store has no users (open mode)
=================  =======  =========================================================
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from datumflow.storage_service.client.http import Client
from datumflow.storage_service.service.auth import Auth
from sqlalchemy import create_engine

from tests.conftest import free_port
from tests.service.conftest import Service, init_auth, run_cli

STARTUP_TIMEOUT = 120.0  # a loaded CI machine takes its time importing


def launch(root: Path, *, token: str | None, env: dict[str, str] | None = None, log_level: str = "info") -> Service:
    """``serve`` on a free loopback port, its access log kept in ``Service.log``."""
    port = free_port()
    log = root.parent / f"service-{port}.log"
    cmd = [sys.executable, "-m", "datumflow.storage_service.service.serve", "serve", "--root", str(root),
           "--host", "127.0.0.1", "--port", str(port), "--log-level", log_level, "--pipelines-interval", "0.2"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "DATUMFLOW_FSYNC": "0", **(env or {})})
    svc = Service(f"http://127.0.0.1:{port}", root, token, proc, log)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(svc.url + "/healthz", timeout=1).status_code == 200:
                return svc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    svc.stop()
    raise RuntimeError(f"serve did not answer within {STARTUP_TIMEOUT}s:\n{log.read_text()}")


@functools.cache
def auth_of(root: Path) -> Auth:
    """The users, tokens and roles of a service's store, administered in this process (as the CLI does)."""
    return Auth(create_engine(f"sqlite:///{root / 'metadata.db'}"))


def auth_cli(root: Path, *args: str) -> dict[str, object]:
    done = run_cli("auth", *args, "--root", str(root), "--json")
    assert done.returncode == 0, done.stderr
    out: dict[str, object] = json.loads(done.stdout)
    return out


@dataclass
class User:
    name: str
    token: str
    client: Client


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("sec") / "store"
    token = init_auth(root)
    service = launch(root, token=token)
    yield service
    service.stop()


@pytest.fixture
def admin(svc: Service) -> Iterator[Client]:
    with Client(svc.url, token=svc.token) as c:
        yield c


@pytest.fixture
def make_user(svc: Service) -> Iterator[Callable[[], User]]:
    made: list[User] = []

    def make() -> User:
        name = f"u-{uuid.uuid4().hex[:8]}"
        auth_of(svc.root).create_user(name)
        token = auth_of(svc.root).create_token(name)
        user = User(name, token, Client(svc.url, token=token))
        made.append(user)
        return user

    yield make
    for user in made:
        user.client.close()


@pytest.fixture
def name() -> str:
    return f"r-{uuid.uuid4().hex[:10]}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
