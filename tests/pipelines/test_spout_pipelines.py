"""Spout pipelines (Pachyderm 2.x): a long-running transform that writes commits into its output repo.

Specs are Pachyderm's JSON (camelCase); the user code is a Python script that
writes through ``datumflow.connect()`` — the address and scoped token the
runner hands it — as spout101's ``client.commit(...)`` / ``put_file_bytes``
do. On the embedded store :func:`run_spout_here` acts as the cluster; a
downstream pipeline processes every commit the spout makes.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from datumflow.storage_service.errors import Unauthenticated
from datumflow.storage_service.model.core import Origin
from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.service.auth import pipeline_principal
from datumflow.storage_service.service.spout_host import run_spout_here
from datumflow.storage_service.store.store import Store

from tests.helpers.waiting import until

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap (Debian bubblewrap) is not installed")

# Writes N commits of one message each (as spout101's consumer), then waits to be stopped.
PRODUCER = r'''
import os, sys, time, datumflow
client = datumflow.connect()
repo = os.environ["PPS_PIPELINE_NAME"]
count = int(os.environ.get("MESSAGES", "3"))
for i in range(count):
    with client.writing(repo, "master") as commit:
        client.put_file(repo, commit.id, f"{os.environ.get('PREFIX', 'msg')}-{i}.txt", f"message {i}\n".encode())
print("wrote", count, flush=True)
time.sleep(3600)
'''

# Commits one file per run, then crashes: the runner restarts it with backoff.
CRASHER = r'''
import os, sys, datumflow
client = datumflow.connect()
repo = os.environ["PPS_PIPELINE_NAME"]
runs = len(list(client.list_commits(repo, "master")))
with client.writing(repo, "master") as commit:
    client.put_file(repo, commit.id, f"run-{runs}.txt", b"x")
sys.exit(3)
'''

# Finishes what it does when stopped: SIGTERM reaches the code inside the sandbox, as a pod's does.
GRACEFUL = r'''
import os, signal, sys, time, datumflow
client = datumflow.connect()
repo = os.environ["PPS_PIPELINE_NAME"]
def goodbye(*_):
    print("stopping", file=sys.stderr, flush=True)
    client.put_file(repo, "master", "goodbye.txt", b"bye")
    print("said goodbye", file=sys.stderr, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, goodbye)
client.put_file(repo, "master", "hello.txt", b"hi")
time.sleep(3600)
'''

# Tries to write somewhere else, records what happened (and its token) in its own repo.
TRESPASSER = r'''
import os, time, datumflow
from datumflow.storage_service.errors import DatumflowError
client = datumflow.connect()
repo = os.environ["PPS_PIPELINE_NAME"]
outcome = {}
for target in ("victim", "spout-sneak"):
    try:
        client.put_file(target, "master", "pwned.txt", b"x")
        outcome[target] = "written"
    except DatumflowError as exc:
        outcome[target] = type(exc).__name__
try:
    client.create_repo("spout-new")
    outcome["create_repo"] = "created"
except DatumflowError as exc:
    outcome["create_repo"] = type(exc).__name__
import json
with client.writing(repo, "master") as commit:
    client.put_file(repo, commit.id, "outcome.json", json.dumps(outcome).encode())
    client.put_file(repo, commit.id, "token", os.environ["DATUMFLOW_TOKEN"].encode())
time.sleep(3600)
'''


def _spout_spec(name: str, script: Path, **env: str) -> dict[str, Any]:
    return {"pipeline": {"name": name}, "spout": {}, "description": "a spout in Pachyderm's JSON",
            "parallelismSpec": {"constant": 1}, "resourceRequests": {"cpu": 0.5},
            "transform": {"image": "python:3.11-slim", "cmd": ["python3", str(script)], "env": env,
                          "workingDir": "/tmp"}}


@pytest.fixture
def code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "code"
    folder.mkdir()
    for name, text in (("producer.py", PRODUCER), ("crasher.py", CRASHER), ("trespasser.py", TRESPASSER),
                       ("graceful.py", GRACEFUL)):
        (folder / name).write_text(text)
    monkeypatch.setenv("DATUMFLOW_SANDBOX_BINDS", str(folder))
    monkeypatch.setenv("DATUMFLOW_SPOUT_BACKOFF", "0.2")
    monkeypatch.setenv("DATUMFLOW_SPOUT_GRACE", "2")
    return folder


@pytest.fixture
def host(store: Store) -> Iterator[Callable[[str], threading.Thread]]:
    """Runs a spout pipeline of the embedded store in a thread, as ``datumflow pipeline run`` does."""
    threads: list[threading.Thread] = []
    names: list[str] = []

    def start(name: str) -> threading.Thread:
        thread = threading.Thread(target=run_spout_here, args=(store, name), kwargs={"seconds": 120})
        thread.start()
        threads.append(thread)
        names.append(name)
        return thread

    yield start
    for name in names:
        if Pipelines(store).exists(name):
            Pipelines(store).stop_pipeline(name)
    for thread in threads:
        thread.join(timeout=30)


def _finished(store: Store, repo: str) -> list[Any]:
    return [c for c in store.list_commits(repo, "master") if c.is_finished]


def _files(store: Store, repo: str) -> list[str]:
    done = _finished(store, repo)
    return sorted(f.path for f in store.walk_files(repo, done[0].id)) if done else []


@pytest.mark.slow
def test_a_spout_writes_commits_with_the_spec_as_provenance_and_downstream_runs(
    store: Store, pipelines: Pipelines, code: Path, host: Callable[[str], threading.Thread]
) -> None:
    pipelines.create_pipeline(json.dumps(_spout_spec("events", code / "producer.py", MESSAGES="3")))
    pipelines.create_pipeline({
        "pipeline": {"name": "sizes"}, "input": {"pfs": {"repo": "events", "glob": "/*"}},
        "transform": {"image": "alpine:3", "cmd": ["sh", "-c", "wc -c < $events > /pfs/out/$(basename $events)"]},
    })
    spec_commit = pipelines.inspect_pipeline("events").spec_commit
    thread = host("events")
    until(lambda: len(_files(store, "events")) == 3)
    made = [c for c in _finished(store, "events") if c.origin is Origin.USER]
    assert len(made) == 3  # one commit per message, as the script made them
    assert all(spec_commit in c.provenance for c in made)  # the code is provenance
    status = pipelines.inspect_pipeline("events").spout
    assert status is not None and status["state"] == "running" and status["pid"]
    until(lambda: "wrote 3" in pipelines.inspect_pipeline("events").spout["log"])  # type: ignore[index]

    pipelines.stop_pipeline("events")  # the runner sees it and ends the process
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert pipelines.inspect_pipeline("events").spout["state"] == "stopped"  # type: ignore[index]
    # Every spout commit ran downstream (the last ones as the runner wound down).
    assert sorted(f.path for f in store.walk_files("sizes", "master")) == ["msg-0.txt", "msg-1.txt", "msg-2.txt"]
    assert store.get_file("sizes", "master", "msg-1.txt").strip() == b"10"


@pytest.mark.slow
def test_a_crashing_spout_is_restarted_with_backoff(
    store: Store, pipelines: Pipelines, code: Path, host: Callable[[str], threading.Thread]
) -> None:
    pipelines.create_pipeline(_spout_spec("flaky", code / "crasher.py"))
    host("flaky")
    until(lambda: len(_finished(store, "flaky")) >= 3)  # the spec's commit and two runs' commits
    status = until(lambda: (s := pipelines.inspect_pipeline("flaky").spout) and s["restarts"] >= 2 and s)
    assert status["last_exit"] == 3
    files = set(_files(store, "flaky"))
    assert {"run-1.txt", "run-2.txt"} <= files  # each run saw the commits of the runs before it


@pytest.mark.slow
def test_the_spout_token_writes_only_its_own_repo_and_dies_with_the_process(
    store: Store, pipelines: Pipelines, code: Path, host: Callable[[str], threading.Thread]
) -> None:
    store.create_repo("victim")
    pipelines.create_pipeline(_spout_spec("spout", code / "trespasser.py"))
    pipelines.create_pipeline(_spout_spec("spout-sneak", code / "producer.py", MESSAGES="0"))
    thread = host("spout")
    until(lambda: "outcome.json" in _files(store, "spout"))
    outcome = json.loads(store.get_file("spout", "master", "outcome.json"))
    assert outcome == {"victim": "Forbidden", "spout-sneak": "Forbidden", "create_repo": "Forbidden"}
    assert store.list_commits("victim") == [] and _finished(store, "spout-sneak")[0].file_count == 0
    token = store.get_file("spout", "master", "token").decode()
    assert pipeline_principal(store.engine, token).grants == {"spout": "writer"}

    pipelines.delete_pipeline("spout")  # deleting ends the process and revokes its token at once
    thread.join(timeout=60)
    assert not thread.is_alive()
    with pytest.raises(Unauthenticated):
        pipeline_principal(store.engine, token)


def test_one_supervisor_runs_a_spout_and_another_takes_over_when_its_lease_lapses(
    store: Store, pipelines: Pipelines, code: Path
) -> None:
    from datumflow.storage_service.pipelines.spout_runner import SpoutSupervisor

    pipelines.create_pipeline(_spout_spec("solo", code / "producer.py", MESSAGES="0"))
    first = SpoutSupervisor(store, pipelines.registry, address="http://127.0.0.1:9", lease_seconds=0.5)
    second = SpoutSupervisor(store, pipelines.registry, address="http://127.0.0.1:9", lease_seconds=0.5)
    try:
        first.step()
        second.step()
        assert first.running() == ["solo"] and second.running() == []  # one process among replicas
        time.sleep(0.7)  # the first one stops renewing (its service died, say)
        second.step()
        assert second.running() == ["solo"]
        first.step()  # it finds its lease gone and ends its own process
        assert first.running() == []
        assert pipelines.inspect_pipeline("solo").spout["state"] == "running"  # type: ignore[index]
    finally:
        first.stop_all()
        second.stop_all()
    assert pipelines.inspect_pipeline("solo").spout["state"] == "stopped"  # type: ignore[index]


@pytest.mark.slow
def test_stopping_a_spout_sends_its_code_sigterm_first(
    store: Store, pipelines: Pipelines, code: Path, host: Callable[[str], threading.Thread],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATUMFLOW_SPOUT_GRACE", "20")
    pipelines.create_pipeline(_spout_spec("polite", code / "graceful.py"))
    thread = host("polite")
    until(lambda: "hello.txt" in _files(store, "polite"))
    pipelines.stop_pipeline("polite")
    thread.join(timeout=60)
    status = pipelines.inspect_pipeline("polite").spout
    assert "goodbye.txt" in _files(store, "polite"), repr(status)  # its handler wrote before it exited
    assert pipelines.inspect_pipeline("polite").spout["last_exit"] == 0  # type: ignore[index]


@pytest.mark.slow
def test_updating_a_spout_restarts_it_on_the_new_spec(
    store: Store, pipelines: Pipelines, code: Path, host: Callable[[str], threading.Thread]
) -> None:
    pipelines.create_pipeline(_spout_spec("feed", code / "producer.py", MESSAGES="1"))
    host("feed")
    until(lambda: _files(store, "feed") == ["msg-0.txt"])
    pipelines.update_pipeline(_spout_spec("feed", code / "producer.py", MESSAGES="1", PREFIX="v2"))
    new_spec = pipelines.inspect_pipeline("feed").spec_commit
    until(lambda: _files(store, "feed") == ["msg-0.txt", "v2-0.txt"])
    status = pipelines.inspect_pipeline("feed").spout
    assert status is not None and status["spec_commit"] == new_spec and status["state"] == "running"
    newest = next(c for c in store.list_commits("feed", "master") if c.is_finished)
    assert new_spec in newest.provenance  # the new code is the provenance of what it wrote
