"""Airflow on SQLite in a temporary AIRFLOW_HOME, and a live datumflow service as a real process.

=====================  =======  ================================================
fixture                scope    what it gives
=====================  =======  ================================================
``airflow_db``         session  ``airflow db migrate`` done once
``datumflow_service``  session  ``(address, root)`` of ``serve`` on a free port
``connections``        session  ``datumflow_default`` (http) and
                                ``datumflow_local`` (file, same root) defined
``client``             test     a ``Client`` of the service
=====================  =======  ================================================
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, unique_name

# Airflow reads its configuration when first imported: set it before any test module imports it.
_HOME = tempfile.mkdtemp(prefix="datumflow-airflow-")
_DAGS = Path(_HOME) / "dags"  # the examples and the test DAGs, linked into one dags folder
_DAGS.mkdir()
for _dag_file in [*(Path(__file__).resolve().parents[2] / "dags_examples").glob("*.py"),
                  *(Path(__file__).parent / "dags").glob("*.py")]:
    (_DAGS / _dag_file.name).symlink_to(_dag_file)
os.environ.update({
    "AIRFLOW_HOME": _HOME,
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
    "AIRFLOW__CORE__DAGS_FOLDER": str(_DAGS),
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
    "AIRFLOW__API__BASE_URL": "http://af.example:8080",
})

pytest.importorskip("airflow")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.airflow)


@pytest.fixture(scope="session")
def airflow_db() -> None:
    airflow = Path(sys.executable).with_name("airflow")
    result = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True, env=os.environ)
    assert result.returncode == 0, result.stderr[-3000:]
    from airflow import settings

    settings.configure_orm()


@pytest.fixture(scope="session")
def dag_test_works(airflow_db: None) -> None:
    """``dag.test()`` runs tasks through Airflow's in-process execution API; some FastAPI/pydantic
    releases break building it (Airflow 3.2.2 with fastapi 0.165 + pydantic 2.14 does)."""
    from tests.conftest import service_missing

    try:
        from airflow.api_fastapi.execution_api.app import InProcessExecutionAPI

        InProcessExecutionAPI().app  # noqa: B018
    except Exception as exc:
        service_missing(f"Airflow's in-process execution API cannot be built here ({type(exc).__name__}: "
                        f"{str(exc)[:200]}); dag.test() cannot run tasks")


@pytest.fixture(scope="session")
def datumflow_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    root = str(tmp_path_factory.mktemp("datumflow-store"))
    port = free_port()
    log = open(os.path.join(root, "..", "service.log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "datumflow.storage_service.service.serve", "--root", root, "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
        # Airflow's UI on loopback shows the console's lineage picture in a frame.
        env={**os.environ, "DATUMFLOW_FRAME_ANCESTORS": "http://127.0.0.1:* http://localhost:*"},
    )
    address = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120  # a loaded CI machine: migrations and imports take a while
    while True:
        try:
            if httpx.get(address + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"datumflow service did not start: {Path(log.name).read_text()[-2000:]}")
        time.sleep(0.1)
    try:
        yield address, root
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="session")
def connections(datumflow_service: tuple[str, str], airflow_db: None) -> tuple[str, str]:
    address, root = datumflow_service
    port = int(address.rsplit(":", 1)[1])
    os.environ["AIRFLOW_CONN_DATUMFLOW_DEFAULT"] = json.dumps(
        {"conn_type": "datumflow", "host": "127.0.0.1", "port": port, "schema": "http"})
    os.environ["AIRFLOW_CONN_DATUMFLOW_LOCAL"] = json.dumps(
        {"conn_type": "datumflow", "host": root, "schema": "file"})
    return address, root


@pytest.fixture
def client(connections: tuple[str, str]) -> Iterator[object]:
    from datumflow.storage_service.client.http import Client

    with Client(connections[0]) as c:
        yield c


@pytest.fixture
def repo_name() -> str:
    return unique_name("af")
