"""Fixtures and helpers of the spout tests: a real store in ``tmp_path``, a real broker.

``kafka_broker`` and ``kafka_topic`` come from ``tests/conftest.py`` (tansu).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from datumflow.storage_service import Commit, Store
from datumflow.storage_service.spouts.config import SpoutConfig
from datumflow.storage_service.spouts.layout import Record, record_from_line

pytestmark = pytest.mark.kafka


@dataclass(frozen=True)
class Sent:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(str(tmp_path / "store"), fsync=False) as opened:
        yield opened


@pytest.fixture
def config(kafka_broker: str) -> SpoutConfig:
    """A config template; tests ``replace()`` the topic and the limits."""
    return SpoutConfig(bootstrap=kafka_broker, topic="unset", repo="events", batch_seconds=30.0, poll_seconds=0.2)


def produce(
    bootstrap: str, topic: str, messages: list[tuple[int, bytes | None, bytes | None]],
    headers: tuple[tuple[str, bytes | None], ...] = (),
) -> list[Sent]:
    """Send ``(partition, key, value)`` messages in order; return what the broker acknowledged."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    try:
        # One message per produce request: tansu reports a partition's end offset per
        # record batch, so "latest" would be wrong after multi-record batches.
        return [
            Sent(p, producer.send(topic, key=k, value=v, partition=p, headers=list(headers)).get(10).offset,
                 k, v, headers)
            for p, k, v in messages
        ]
    finally:
        producer.close()


def by_partition(sent: list[Sent]) -> dict[int, list[tuple[int, bytes | None, bytes | None]]]:
    out: dict[int, list[tuple[int, bytes | None, bytes | None]]] = {}
    for s in sorted(sent, key=lambda s: (s.partition, s.offset)):
        out.setdefault(s.partition, []).append((s.offset, s.key, s.value))
    return out


def ingested(store: Store, repo: str, topic: str, ref: str = "master") -> dict[int, list[Record]]:
    """Every record in the repo's ``/<topic>/<partition>/*.jsonl`` files, in path order."""
    out: dict[int, list[Record]] = {}
    for info in store.walk_files(repo, ref, topic):
        partition = int(info.path.split("/")[1])
        for line in store.get_file(repo, ref, info.path).splitlines():
            out.setdefault(partition, []).append(record_from_line(partition, line))
    return out


def as_sent(records: dict[int, list[Record]]) -> dict[int, list[tuple[int, bytes | None, bytes | None]]]:
    return {p: [(r.offset, r.key, r.value) for r in rs] for p, rs in sorted(records.items())}


def history(store: Store, repo: str, branch: str = "master") -> list[Commit]:
    """The branch's commits, oldest first."""
    return list(reversed(store.list_commits(repo, branch)))


def kafka_meta(commit: Commit) -> dict[str, object]:
    meta = commit.metadata["kafka"]
    assert isinstance(meta, dict)
    return meta
