"""The spout registry over HTTP: routes, roles, and ``spout run|list|stop`` with ``--address http://…``.

A spout process against a service claims, beats and releases its row through
the service (``Client.spouts``); ``spout list|stop`` read and flag it there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from datumflow.storage_service import errors
from datumflow.storage_service.client.http import Client
from datumflow.storage_service.spouts.config import SpoutConfig
from datumflow.storage_service.spouts.registry import SpoutNotFound

from .conftest import Service
from .test_pipelines_http import new_user

API = "/api/v1"
WAIT_SECONDS = 60.0


def cli(service: Service, *args: str, token: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_argv(service, *args), capture_output=True, text=True, timeout=60,
                          env=_env(token or service.token))


def _argv(service: Service, *args: str) -> list[str]:
    return [sys.executable, "-m", "datumflow.storage_service.cli.main", "--address", service.url, "spout", *args]


def _env(token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATUMFLOW_")}
    env["DATUMFLOW_TOKEN"] = token or ""
    return env


def listed(service: Service, token: str | None = None) -> dict[str, dict[str, object]]:
    done = cli(service, "list", "--json", token=token)
    assert done.returncode == 0, done.stderr
    return {s["name"]: s for s in json.loads(done.stdout)}


@pytest.fixture
def spout_name() -> str:
    return f"s-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def config(repo_name: str) -> SpoutConfig:
    return SpoutConfig(bootstrap="127.0.0.1:9", topic="clicks", repo=repo_name)


def test_lifecycle_through_the_service_and_the_cli(
    service: Service, client: Client, spout_name: str, config: SpoutConfig
) -> None:
    status = client.spouts.claim(spout_name, config)
    assert (status.state, status.config, status.stop_requested) == ("running", config, False)
    with pytest.raises(errors.AlreadyExists, match="already running"):
        client.spouts.claim(spout_name, config)
    client.spouts.heartbeat(spout_name, commit="a" * 32, messages=7)

    row = listed(service)[spout_name]
    assert (row["state"], row["messages"], row["commits"], row["last_commit"]) == ("running", 7, 1, "a" * 32)
    assert not client.spouts.stop_requested(spout_name)

    stopped = cli(service, "stop", spout_name, "--json")
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads(stopped.stdout)["stop_requested"] is True
    assert client.spouts.stop_requested(spout_name)

    client.spouts.release(spout_name, error="broker went away")
    done = client.spouts.get_spout(spout_name)
    assert (done.state, done.error) == ("failed", "broker went away")
    human = cli(service, "list")
    assert human.returncode == 0 and f"{spout_name}\tfailed\tclicks -> {config.repo}@master" in human.stdout


def test_unknown_spout_and_bad_config(service: Service, client: Client, config: SpoutConfig) -> None:
    answer = httpx.get(f"{service.url}{API}/spouts/nobody", headers={"Authorization": f"Bearer {service.token}"})
    assert (answer.status_code, answer.json()["error"]["type"]) == (404, "SpoutNotFound")
    with pytest.raises(SpoutNotFound, match="spout nobody not found"):
        client.spouts.request_stop("nobody")
    with pytest.raises(SpoutNotFound):
        client.spouts.heartbeat("nobody")

    stop = cli(service, "stop", "nobody")
    assert stop.returncode == 1
    assert stop.stderr.strip() == "datumflow: error: spout nobody not found"

    bad = httpx.put(f"{service.url}{API}/spouts/x", json={"config": {**config.to_dict(), "batch_messages": 0}},
                    headers={"Authorization": f"Bearer {service.token}"})
    assert bad.status_code == 400 and "batch_messages must be >= 1" in bad.json()["error"]["message"]
    missing = httpx.put(f"{service.url}{API}/spouts/x", json={"config": {"topic": "t"}},
                        headers={"Authorization": f"Bearer {service.token}"})
    assert missing.status_code == 400 and "bootstrap" in missing.json()["error"]["message"]


def test_roles_follow_the_spout_repo(service: Service, client: Client, spout_name: str, config: SpoutConfig) -> None:
    client.spouts.claim(spout_name, config)
    try:
        _, _, stranger = new_user(service)
        assert spout_name not in listed(service, stranger)
        with Client(service.url, token=stranger, retries=0) as other, pytest.raises(errors.Forbidden):
            other.spouts.get_spout(spout_name)

        _, _, reader = new_user(service, {config.repo: "reader"})
        assert listed(service, reader)[spout_name]["state"] == "running"
        denied = cli(service, "stop", spout_name, token=reader)
        assert denied.returncode == 1 and f"needs role writer on repo {config.repo}" in denied.stderr
        assert not client.spouts.stop_requested(spout_name)
        with Client(service.url, token=reader, retries=0) as mine, pytest.raises(errors.Forbidden):
            mine.spouts.claim(f"{spout_name}-2", config)
    finally:
        client.spouts.release(spout_name)


@pytest.mark.kafka
def test_spout_run_against_the_service_is_stopped_by_spout_stop(
    service: Service, client: Client, spout_name: str, repo_name: str,
    kafka_broker: str, kafka_topic: Callable[..., str],
) -> None:
    from tests.spout.conftest import produce

    topic = kafka_topic(partitions=1)
    produce(kafka_broker, topic, [(0, None, f"m{i}".encode()) for i in range(12)])
    run = subprocess.Popen(
        _argv(service, "run", "--name", spout_name, "--bootstrap", kafka_broker, "--topic", topic,
              "--repo", repo_name, "--batch-messages", "5", "--json"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(service.token),
    )
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline and listed(service).get(spout_name, {}).get("messages") != 12:
            assert run.poll() is None, run.communicate()[1]
            time.sleep(0.2)
        assert listed(service)[spout_name]["state"] == "running"
        assert cli(service, "stop", spout_name).returncode == 0
        out, err = run.communicate(timeout=WAIT_SECONDS)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err
    assert json.loads(out)["messages"] == 12
    status = client.spouts.get_spout(spout_name)
    head = client.inspect_branch(repo_name, "master").head
    assert (status.state, status.last_commit, status.commits) == ("stopped", head, 3)
    assert status.config.topic == topic
