"""Named spouts: the registry's states, and `spout run --name` stopped by `spout stop`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from datumflow.storage_service import Store
from datumflow.storage_service.errors import AlreadyExists, NotFound
from datumflow.storage_service.spouts.config import SpoutConfig
from datumflow.storage_service.spouts.registry import (
    STALE_SECONDS,
    claim,
    get_spout,
    heartbeat,
    list_spouts,
    release,
    request_stop,
    stop_requested,
)

from .conftest import produce

WAIT_SECONDS = 60.0


def test_registry_lifecycle(store: Store, config: SpoutConfig) -> None:
    engine = store.engine
    status = claim(engine, "clicks", config)
    assert (status.state, status.stop_requested, status.commits) == ("running", False, 0)
    assert status.config == config
    with pytest.raises(AlreadyExists, match="already running"):
        claim(engine, "clicks", config)

    heartbeat(engine, "clicks", commit="a" * 32, messages=7)
    heartbeat(engine, "clicks", commit="b" * 32, messages=5)
    assert not stop_requested(engine, "clicks")
    assert request_stop(engine, "clicks").stop_requested
    assert stop_requested(engine, "clicks")
    release(engine, "clicks")

    done = get_spout(engine, "clicks")
    assert (done.state, done.last_commit, done.messages, done.commits) == ("stopped", "b" * 32, 12, 2)
    assert json.loads(json.dumps(done.to_dict()))["config"]["topic"] == config.topic
    release(engine, "clicks", error="boom")
    assert (get_spout(engine, "clicks").state, get_spout(engine, "clicks").error) == ("failed", "boom")
    with pytest.raises(NotFound):
        request_stop(engine, "nobody")


def test_a_spout_without_heartbeat_is_lost_and_can_be_reclaimed(store: Store, config: SpoutConfig) -> None:
    claim(store.engine, "old", config, now=time.time() - STALE_SECONDS - 1)
    assert [s.state for s in list_spouts(store.engine)] == ["lost"]
    assert claim(store.engine, "old", replace(config, topic="other")).config.topic == "other"


def _cli(root: Path, *args: str, module: str = "cli.spout") -> list[str]:
    return [sys.executable, "-m", f"datumflow.storage_service.{module}", "--address", f"file://{root}", *args]


def _listed(root: Path) -> dict[str, dict[str, object]]:
    out = subprocess.run(_cli(root, "spout", "list", "--json", module="cli"),
                         capture_output=True, text=True, check=True, timeout=60)
    return {s["name"]: s for s in json.loads(out.stdout)}


@pytest.mark.kafka
def test_spout_stop_ends_a_named_run_after_its_batch(
    tmp_path: Path, kafka_broker: str, kafka_topic: Callable[..., str]
) -> None:
    topic = kafka_topic(partitions=2)
    sent = produce(kafka_broker, topic, [(i % 2, None, f"m{i}".encode()) for i in range(20)])
    root = tmp_path / "store"
    run = subprocess.Popen(
        _cli(root, "run", "--name", "ingest", "--bootstrap", kafka_broker, "--topic", topic, "--repo", "events",
             "--batch-messages", "8", "--json"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline and _listed(root).get("ingest", {}).get("messages") != len(sent):
            assert run.poll() is None, run.communicate()[1]
            time.sleep(0.2)
        assert _listed(root)["ingest"]["state"] == "running"
        stopped = subprocess.run(_cli(root, "stop", "ingest"), capture_output=True, text=True, timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        out, err = run.communicate(timeout=WAIT_SECONDS)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, err
    printed = json.loads(out)
    assert printed["messages"] == 20 and printed["offsets"] == {"0": 10, "1": 10}
    status = _listed(root)["ingest"]
    with Store(str(root)) as store:
        head = store.inspect_branch("events", "master").head
    assert (status["state"], status["last_commit"], status["commits"]) == ("stopped", head, 3)
