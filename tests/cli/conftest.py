"""Fixtures of the command-line tests: the CLI as a process, in a fresh folder.

``cli`` runs ``datumflow ARGS`` in a child process whose working folder is a
new temporary folder, so the default address (``file://./.datumflow``) is an
empty embedded store. Commands are forked from one process that imported the
CLI once (see ``_forkserver.py``); ``DATUMFLOW_TEST_SPAWN=1`` starts every
command with ``python -m datumflow.storage_service.cli.main`` instead (slower, same
results). A few tests in ``test_cli_main.py`` always start real interpreters.

=============  ========  =====================================================
fixture        scope     what it gives
=============  ========  =====================================================
``cli``        test      a :class:`Cli` in ``tmp_path/work``
``snapshot``   test      ``snapshot() -> dict``: every metadata row and pack
                         key of that store ("unchanged" = equal snapshots)
=============  ========  =====================================================
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from datumflow.storage_service import Store
from datumflow.storage_service.core.schema import metadata
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select

Snapshot = Callable[[], dict[str, Any]]

FORKSERVER = Path(__file__).with_name("_forkserver.py")
MODULE = ["-m", "datumflow.storage_service.cli.main"]


@dataclass
class Result:
    rc: int
    stdout: bytes
    stderr: str

    @property
    def out(self) -> str:
        return self.stdout.decode()


def base_env() -> dict[str, str]:
    """The caller's environment without datumflow settings; fast, unsynced writes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATUMFLOW_")}
    env["DATUMFLOW_FSYNC"] = "0"
    return env


class _ForkServer:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(FORKSERVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            env=base_env(), text=True,
        )
        self.lock = threading.Lock()

    def run(self, request: dict[str, Any]) -> int:
        assert self.proc.stdin and self.proc.stdout
        with self.lock:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            reply = self.proc.stdout.readline()
        if not reply:
            raise RuntimeError("the CLI fork server died")
        return int(json.loads(reply)["rc"])

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def _forkserver() -> Iterator[_ForkServer | None]:
    if os.environ.get("DATUMFLOW_TEST_SPAWN"):
        yield None
        return
    server = _ForkServer()
    yield server
    server.close()


class Cli:
    """``datumflow`` in one working folder: ``run`` any command, or ``ok``/``json``/``fail`` checked."""

    def __init__(self, cwd: Path, io_dir: Path, server: _ForkServer | None) -> None:
        self.cwd = cwd
        self.io_dir = io_dir
        self.server = server
        self.env = base_env()
        self._n = 0

    @property
    def root(self) -> Path:
        return self.cwd / ".datumflow"

    def run(self, *args: str, input: bytes = b"", env: dict[str, str] | None = None) -> Result:
        self._n += 1
        paths = {name: self.io_dir / f"{self._n}.{name}" for name in ("stdin", "stdout", "stderr")}
        paths["stdin"].write_bytes(input)
        full_env = {**self.env, **(env or {})}
        if self.server is None:
            with open(paths["stdin"], "rb") as fin, open(paths["stdout"], "wb") as fout, \
                    open(paths["stderr"], "wb") as ferr:
                rc = subprocess.run([sys.executable, *MODULE, *args], stdin=fin, stdout=fout, stderr=ferr,
                                    cwd=self.cwd, env=full_env, check=False).returncode
        else:
            for name in ("stdout", "stderr"):
                paths[name].write_bytes(b"")
            rc = self.server.run({"argv": list(args), "cwd": str(self.cwd), "env": full_env,
                                  **{k: str(v) for k, v in paths.items()}})
        return Result(rc, paths["stdout"].read_bytes(), paths["stderr"].read_text())

    def ok(self, *args: str, input: bytes = b"") -> str:
        """Run; require exit 0 and a silent stderr; return stdout."""
        result = self.run(*args, input=input)
        assert result.rc == 0, f"datumflow {' '.join(args)} -> {result.rc}: {result.stderr}"
        assert result.stderr == ""
        return result.out

    def json(self, *args: str) -> Any:
        """Run with ``--json``; the whole stdout must be one JSON document."""
        return json.loads(self.ok(*args, "--json"))

    def fail(self, *args: str, rc: int = 1, input: bytes = b"") -> str:
        """Run; require exit ``rc`` and exactly one ``datumflow: error:`` line; return the message."""
        result = self.run(*args, input=input)
        assert result.rc == rc, f"datumflow {' '.join(args)} -> {result.rc}, wanted {rc}: {result.stderr}"
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("datumflow: error: "), lines[0]
        return lines[0][len("datumflow: error: "):]


@pytest.fixture
def cli(tmp_path: Path, _forkserver: _ForkServer | None) -> Cli:
    work = tmp_path / "work"
    io_dir = tmp_path / "io"
    work.mkdir()
    io_dir.mkdir()
    return Cli(work, io_dir, _forkserver)


def store_snapshot(root: Path) -> dict[str, Any]:
    """Every metadata row and every pack key with its size.

    The tables are those this test process knows of (parts such as the S3 gateway register theirs when
    imported); one the store's own processes never made counts as empty.
    """
    with Store(str(root), fsync=False) as store:
        out: dict[str, Any] = {}
        with store.engine.connect() as conn:
            present = set(sa_inspect(conn).get_table_names())
            for table in metadata.sorted_tables:
                rows = conn.execute(select(table)) if table.name in present else []
                out[table.name] = sorted(tuple(repr(v) for v in row) for row in rows)
        out["packs"] = sorted(store.objects.list("packs"))
    return out


@pytest.fixture
def snapshot(cli: Cli) -> Snapshot:
    return lambda: store_snapshot(cli.root)


SERVE_DEADLINE = 60.0


@pytest.fixture
def http_service(cli: Cli, tmp_path: Path, free_tcp_port: int) -> Iterator[tuple[str, str]]:
    """``datumflow serve`` (started through this CLI) with auth on: (url, admin token)."""
    root = tmp_path / "served"
    token = cli.ok("auth", "init", "--root", str(root)).strip()
    port = free_tcp_port
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([sys.executable, *MODULE, "serve", "--root", str(root), "--port", str(port),
                             "--log-level", "warning"], env=base_env(), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url, token
    finally:
        proc.terminate()
        proc.wait(timeout=SERVE_DEADLINE)
        log.close()


def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + SERVE_DEADLINE
    while time.monotonic() < deadline:
        assert proc.poll() is None, "serve exited"
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("serve did not answer")
