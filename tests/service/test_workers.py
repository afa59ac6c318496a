"""``serve --workers N``: N worker processes on one port, each a replica of the service, stopped together."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from datumflow.storage_service import errors
from datumflow.storage_service.client.http import Client

from .conftest import Service, init_auth, launch

WORKERS = 2
_STARTED = re.compile(r"Started server process \[(\d+)\]")


def _parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def _workers(svc: Service, count: int, timeout: float = 90.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted({int(p) for p in _STARTED.findall(svc.log.read_text(errors="replace"))})
        if len(found) >= count:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{count} workers did not start:\n{svc.log.read_text(errors='replace')[-3000:]}")


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_workers_start_serve_and_stop_together(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    db = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    root = tmp_path / "store"
    token = init_auth(root, db)
    svc = launch(root, token=token, db=db,
                 args=("--workers", str(WORKERS), "--log-level", "info", "--log-format", "text"))
    try:
        pids = _workers(svc, WORKERS)
        assert len(pids) == WORKERS
        assert all(_parent_of(pid) == svc.process.pid for pid in pids)  # children of the one supervisor
        repo = f"w-{uuid.uuid4().hex[:8]}"
        clients = [Client(svc.url, token=token) for _ in range(4)]  # several connections: any worker answers
        try:
            clients[0].create_repo(repo)
            for i, c in enumerate(clients):
                c.put_file(repo, "master", f"f{i}", f"content {i}".encode())
            for c in clients:  # every write is seen from every connection, whichever worker serves it
                assert sorted(f.path for f in c.list_files(repo, "master")) == [f"f{i}" for i in range(4)]
                assert c.get_file(repo, "master", "f3") == b"content 3"
            with Client(svc.url, token="dft_not-a-token") as stranger, pytest.raises(errors.Unauthenticated):
                stranger.list_repos()
        finally:
            for c in clients:
                c.close()
    finally:
        svc.process.send_signal(signal.SIGTERM)
        try:
            code = svc.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            svc.process.kill()
            raise
    assert code == 0
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)
    log = svc.log.read_text(errors="replace")
    # Each worker took the signal and shut its server down. (Whether it also logs the application's
    # shutdown is uvicorn's to decide: a worker told to stop twice skips it, which the job loop's leased
    # claims make safe; so that line is not counted here.)
    assert log.count("Shutting down") == WORKERS


def test_workers_must_be_positive(tmp_path: Path) -> None:
    from .conftest import run_cli

    done = run_cli("serve", "--root", str(tmp_path / "store"), "--workers", "0")
    assert done.returncode != 0 and "--workers must be at least 1" in done.stderr
