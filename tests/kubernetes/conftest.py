"""A live, token-protected datumflow service (its own pipeline loop off: the pods run the datums).

=================  =======  ====================================================
fixture            scope    what it gives
=================  =======  ====================================================
``live``           session  ``Live``: url, admin token, scoped worker token, root
``admin``          test     a Client of ``live`` as the admin
``sim``            test     a ``PodSim`` whose Secret ``datumflow-worker`` holds
                            the service address and the worker's scoped token
``airflow_home``   session  Airflow on SQLite in a temporary AIRFLOW_HOME, migrated
=================  =======  ====================================================
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from datumflow.storage_service.client.http import Client

from tests.conftest import free_port
from tests.kubernetes.podsim import PodSim

# Airflow reads its configuration when first imported; tests/airflow may have set it already.
_HOME = tempfile.mkdtemp(prefix="datumflow-k8s-airflow-")
for key, value in {
    "AIRFLOW_HOME": _HOME,
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
    "AIRFLOW__CORE__DAGS_FOLDER": str(Path(__file__).resolve().parents[2] / "dags_examples"),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
}.items():
    os.environ.setdefault(key, value)

SERVE = [sys.executable, "-m", "datumflow.storage_service.service.serve"]


@dataclass
class Live:
    url: str
    admin_token: str
    root: Path
    log: Path

    def worker_token(self, *grants: tuple[str, str]) -> str:
        """A token of a new user holding only ``grants`` ((repo, role), ...)."""
        name = f"worker-{uuid.uuid4().hex[:8]}"
        _auth(self.root, "user", "create", name)
        for repo, role in grants:
            _auth(self.root, "grant", name, repo, role)
        return _auth(self.root, "token", "create", name)


def _auth(root: Path, *args: str) -> str:
    done = subprocess.run([*SERVE, "auth", *args, "--root", str(root)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("k8s-service") / "store"
    token = _auth(root, "init")
    port = free_port()
    log = root.parent / "service.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*SERVE, "serve", "--root", str(root), "--port", str(port), "--no-pipelines", "--log-level", "warning"],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "DATUMFLOW_FSYNC": "0"},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"service did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    try:
        yield Live(url, token, root, log)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def admin(live: Live) -> Iterator[Client]:
    with Client(live.url, token=live.admin_token, retries=2) as c:
        yield c


def make_sim(live: Live, workdir: Path, worker_token: str, **secrets: dict[str, str]) -> PodSim:
    return PodSim(workdir, {
        "datumflow-worker": {"DATUMFLOW_ADDRESS": live.url, "DATUMFLOW_TOKEN": worker_token}, **secrets,
    })


@pytest.fixture(scope="session")
def airflow_home() -> str:
    pytest.importorskip("airflow")
    airflow = Path(sys.executable).with_name("airflow")
    result = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True, env=os.environ)
    assert result.returncode == 0, result.stderr[-3000:]
    from airflow import settings

    settings.configure_orm()
    return os.environ["AIRFLOW_HOME"]
