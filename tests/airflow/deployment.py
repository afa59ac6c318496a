"""A real Airflow deployment on loopback: ``api-server``, ``scheduler``, ``dag-processor`` and ``triggerer``.

Each is its own ``airflow`` process, as a user runs them, over a fresh
PostgreSQL metadata database, the LocalExecutor, a temporary AIRFLOW_HOME
whose dags folder holds ``deployment_dags/``, and Airflow's simple auth
manager with one admin user. The datumflow connection is created with
``airflow connections add`` (so it lives in the metadata database, encrypted
with a Fernet key), never as an environment variable.

Heavy (four Python processes of some hundred MB each, half a minute to
start on two cores): start one per test module and stop it afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.helpers.waiting import until

HERE = Path(__file__).parent
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
PROCESSES = ("api-server", "scheduler", "dag-processor", "triggerer")
ADMIN, PASSWORD = "admin", "admin-pw"
JWT_SECRET = "datumflow-deployment-test-secret-long-enough-for-hs512-0123456789"


class Deployment:
    def __init__(self, home: Path, db_url: str, port: int, extra_env: dict[str, str] | None = None) -> None:
        from cryptography.fernet import Fernet

        self.home, self.port = home, port
        self.url = f"http://127.0.0.1:{port}"
        dags = home / "dags"
        dags.mkdir(parents=True)
        for dag_file in (HERE / "deployment_dags").glob("*.py"):
            (dags / dag_file.name).symlink_to(dag_file)
        passwords = home / "passwords.json"
        passwords.write_text(json.dumps({ADMIN: PASSWORD}))
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))},
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": db_url,  # psycopg 3 is async too (no asyncpg)
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API_AUTH__JWT_SECRET": JWT_SECRET,
            "AIRFLOW__API__SECRET_KEY": "datumflow-deployment-test-key",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            # Two shared cores: an execution-API call can take many seconds; the defaults give up and kill the task.
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "120",
            "AIRFLOW__API__WORKER_TIMEOUT": "300",
            **(extra_env or {}),
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    # -- running -----------------------------------------------------------------------

    def cli(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"airflow {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
        return result

    def prepare(self, service_port: str, *, password: str | None = None, migrate_timeout: float = 600) -> None:
        """The metadata database migrated, and the ``datumflow_default`` connection to the service on loopback."""
        self.cli("db", "migrate", timeout=migrate_timeout)
        self.cli("connections", "add", "datumflow_default", "--conn-type", "datumflow", "--conn-host", "127.0.0.1",
                 "--conn-port", service_port, "--conn-schema", "http",
                 *(["--conn-password", password] if password is not None else []))

    def start(self, *names: str) -> None:
        for name in names or PROCESSES:
            log = open(self.home / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
            args = [AIRFLOW, name, *(["--port", str(self.port)] if name == "api-server" else [])]
            self.procs[name] = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)

    def stop(self, *names: str, timeout: float = 30) -> None:
        for name in names or list(self.procs):
            proc = self.procs.pop(name, None)
            if proc is None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(10)

    def alive(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def log(self, name: str) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- the REST API --------------------------------------------------------------------

    def token(self) -> str:
        answer = httpx.post(f"{self.url}/auth/token", json={"username": ADMIN, "password": PASSWORD}, timeout=120)
        answer.raise_for_status()
        return str(answer.json()["access_token"])

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token()}"}
        answer = httpx.request(method, f"{self.url}/api/v2{path}", headers=headers, timeout=120, **kwargs)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def wait_api(self, timeout: float = 180) -> None:
        wait_for(lambda: _up(self.url), timeout,
                 lambda: f"api-server did not answer:\n{self.log('api-server')[-3000:]}")

    def wait_dag(self, dag_id: str, timeout: float = 180) -> None:
        def parsed() -> bool:
            try:
                return bool(self.api("GET", f"/dags/{dag_id}"))
            except httpx.HTTPError:
                return False

        wait_for(parsed, timeout, lambda: f"{dag_id} was never parsed:\n{self.log('dag-processor')[-3000:]}")

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100})["dag_runs"])


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def emitted(db_url: str) -> str | None:
    """The newest commit the watcher emitted, from the asset's state store in the metadata database."""
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            query = sa.text("select value from asset_state_store where key = 'datumflow.emitted'")
            value = conn.execute(query).scalar()
    finally:
        engine.dispose()
    return json.loads(value) if value else None


def wait_for(check: Callable[[], Any], timeout: float, why: Callable[[], str], every: float = 0.5) -> Any:
    """:func:`~tests.helpers.waiting.until` with a loaded API server's timeouts counted as "not yet"."""
    return until(check, timeout, why, interval=every, ignoring=(httpx.HTTPError,))
