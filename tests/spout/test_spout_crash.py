"""kill -9 a spout process again and again while a producer writes: still exactly once.

The spout runs as ``python -m datumflow.storage_service.cli.spout run`` and is
killed at points drawn from a seeded generator (some land while a batch is
being written, leaving an open commit). Every restart must resume exactly
after the last finished commit; a final run drains the topic.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from datumflow.storage_service import Store

from .conftest import Sent, as_sent, by_partition, history, ingested, kafka_meta

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

KILLS = 12
SEED = 20240601
PARTITIONS = 3


class Producer(threading.Thread):
    """Keeps producing numbered messages over all partitions until stopped."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic = bootstrap, topic
        self.sent: list[Sent] = []
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=0)
        try:
            i = 0
            while not self.done.is_set():
                value = f"message {i}".encode()
                meta = producer.send(self.topic, value=value, partition=i % PARTITIONS).get(10)
                self.sent.append(Sent(i % PARTITIONS, meta.offset, None, value))
                i += 1
                time.sleep(0.003)
        except BaseException as exc:
            self.error = exc
        finally:
            producer.close()


def spout_command(root: Path, bootstrap: str, topic: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "datumflow.storage_service.cli.spout", "--address", f"file://{root}",
        "run", "--bootstrap", bootstrap, "--topic", topic, "--repo", "events",
        "--batch-messages", "15", "--batch-seconds", "0.2", *extra,
    ]


def test_kill_9_at_random_points_loses_and_duplicates_nothing(
    tmp_path: Path, kafka_broker: str, kafka_topic: Callable[..., str]
) -> None:
    topic = kafka_topic(partitions=PARTITIONS)
    root = tmp_path / "store"
    rng = random.Random(SEED)
    producer = Producer(kafka_broker, topic)
    producer.start()
    try:
        for kill in range(KILLS):
            log = (tmp_path / f"run-{kill}.log").open("w")
            proc = subprocess.Popen(spout_command(root, kafka_broker, topic), stdout=log, stderr=log)
            time.sleep(rng.uniform(0.8, 3.0))
            assert proc.poll() is None, (tmp_path / f"run-{kill}.log").read_text()
            proc.kill()
            proc.wait()
    finally:
        producer.done.set()
        producer.join(timeout=30)
    assert producer.error is None, producer.error

    final = subprocess.run(
        spout_command(root, kafka_broker, topic, "--stop-after-idle", "2"),
        capture_output=True, text=True, timeout=300,
    )
    assert final.returncode == 0, final.stderr

    with Store(str(root)) as store:
        commits = history(store, "events")
        assert as_sent(ingested(store, "events", topic)) == by_partition(producer.sent)
        assert sum(kafka_meta(c)["messages"] for c in commits) == len(producer.sent)  # type: ignore[misc]
        assert_batches_are_contiguous(store, topic, commits)
        assert len(commits) > 10  # the killed runs did commit before dying


def assert_batches_are_contiguous(store: Store, topic: str, commits: list) -> None:  # type: ignore[type-arg]
    """Each commit adds, per partition, exactly the offsets from its parent's to its own."""
    before: set[str] = set()
    offsets = {p: 0 for p in range(PARTITIONS)}
    for commit in commits:
        files = {f.path for f in store.walk_files("events", commit.id, topic)}
        added = sorted(files - before)
        assert before <= files, f"commit {commit.id} dropped files"
        for path in added:
            _, partition, name = path.split("/")
            first, last = (int(x) for x in name.removesuffix(".jsonl").split("-"))
            assert first == offsets[int(partition)], f"{commit.id}: {path} does not follow offset {offsets}"
            offsets[int(partition)] = last + 1
        assert kafka_meta(commit)["offsets"] == {str(p): o for p, o in offsets.items()}
        before = files
