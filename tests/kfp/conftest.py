"""Fixtures of the Kubeflow tests: a live datumflow service and kfp.local.

The components run with ``kfp.local``'s subprocess runner in this
environment (``use_venv=False``), so they import the datumflow under test;
``DATUMFLOW_KFP_PACKAGE=''`` keeps them from pip-installing anything. The
service is a real ``serve`` process on a free loopback port with token auth;
tests hand its address and token to the components the way the Kubernetes
Secret would, through ``DATUMFLOW_ADDRESS`` / ``DATUMFLOW_TOKEN``.
"""

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

# Before any component is built: nothing to pip-install, datumflow is already here.
os.environ["DATUMFLOW_KFP_PACKAGE"] = ""

from datumflow.storage_service.client.http import Client

STARTUP_TIMEOUT = 120.0  # a loaded 2-core machine: imports and migrations take a while


@dataclass
class Service:
    url: str
    root: Path
    token: str
    process: subprocess.Popen[bytes]


def _serve(*args: str) -> list[str]:
    return [sys.executable, "-m", "datumflow.storage_service.service.serve", *args]


def _start(root: Path, *, job_loop: bool = False) -> Service:
    done = subprocess.run(_serve("auth", "init", "--root", str(root)), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    port = free_port()
    log = root.parent / "service.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            _serve("serve", "--root", str(root), "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                   *([] if job_loop else ["--no-pipelines"])),  # datums run in the KFP task, as in a cluster
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "DATUMFLOW_FSYNC": "0"},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return Service(url, root, done.stdout.strip(), proc)
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"serve did not answer within {STARTUP_TIMEOUT}s:\n{log.read_text()}")


def _stop(svc: Service) -> None:
    svc.process.terminate()
    try:
        svc.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        svc.process.kill()
        svc.process.wait()


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = _start(tmp_path_factory.mktemp("kfp-service") / "store")
    yield svc
    _stop(svc)


@pytest.fixture(scope="session")
def looping_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A service whose own job loop is on (``serve`` without ``--no-pipelines``), as most deployments run it."""
    svc = _start(tmp_path_factory.mktemp("kfp-looping") / "store", job_loop=True)
    yield svc
    _stop(svc)


@pytest.fixture(scope="session", autouse=True)
def kfp_local(tmp_path_factory: pytest.TempPathFactory) -> None:
    from kfp import local

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path_factory.mktemp("kfp-root")))


@pytest.fixture
def secret_env(service: Service, monkeypatch: pytest.MonkeyPatch) -> Service:
    """What ``use_secret_as_env(task, 'datumflow', ...)`` does in a pod: the variables are set."""
    monkeypatch.setenv("DATUMFLOW_ADDRESS", service.url)
    monkeypatch.setenv("DATUMFLOW_TOKEN", service.token)
    # A datum's transform runs ``python3``: this environment's interpreter.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return service


@pytest.fixture
def no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATUMFLOW_ADDRESS", raising=False)
    monkeypatch.delenv("DATUMFLOW_TOKEN", raising=False)


@pytest.fixture
def store_env(service: Service, monkeypatch: pytest.MonkeyPatch) -> Service:
    """A ``file://`` address of the service's own store (a shared volume in a cluster)."""
    monkeypatch.setenv("DATUMFLOW_ADDRESS", f"file://{service.root}")
    monkeypatch.delenv("DATUMFLOW_TOKEN", raising=False)
    # The datum's transform runs ``python3``: this environment's interpreter.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return service


@pytest.fixture
def client(service: Service) -> Iterator[Client]:
    with Client(service.url, token=service.token, retries=2) as c:
        yield c


@pytest.fixture
def repo_name() -> str:
    return f"k-{uuid.uuid4().hex[:10]}"
