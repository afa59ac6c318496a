"""Crash leftovers, corrupt offsets and bad settings: clear errors, never a guess."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from datumflow.storage_service import CommitState, Origin, Store
from datumflow.storage_service.errors import CommitNotFound, InvalidArgument, ServiceUnavailable
from datumflow.storage_service.spouts.config import SpoutConfig
from datumflow.storage_service.spouts.kafka import KafkaSpout
from datumflow.storage_service.spouts.offsets import CorruptOffsets, offsets_metadata
from datumflow.storage_service.spouts.source import TopicNotFound

from .conftest import as_sent, by_partition, ingested, kafka_meta, produce

pytestmark = pytest.mark.kafka

TopicFactory = Callable[..., str]


def test_open_commit_of_a_crashed_run_is_deleted(store: Store, config: SpoutConfig, kafka_topic: TopicFactory) -> None:
    topic = kafka_topic(partitions=2)
    sent = produce(config.bootstrap, topic, [(i % 2, None, f"m{i}".encode()) for i in range(8)])
    store.create_repo("events")
    # What a run killed between start_commit and finish_commit leaves behind.
    half = store.start_commit(
        "events", "master", origin=Origin.SPOUT, metadata=offsets_metadata(topic, {0: 4, 1: 4}, 8, 0)
    )
    store.put_file("events", half.id, f"{topic}/0/half-written.jsonl", b"{}\n")

    commits = KafkaSpout(store, replace(config, topic=topic)).run(stop_after_idle=1.0)

    with pytest.raises(CommitNotFound):
        store.inspect_commit("events", half.id)
    assert commits[0].parent is None
    assert as_sent(ingested(store, "events", topic)) == by_partition(sent)


def test_an_open_commit_of_another_writer_is_left_alone(
    store: Store, config: SpoutConfig, kafka_topic: TopicFactory
) -> None:
    topic = kafka_topic(partitions=1)
    store.create_repo("events")
    theirs = store.start_commit("events", "master", description="someone else's upload")
    sent = produce(config.bootstrap, topic, [(0, None, b"m0"), (0, None, b"m1")])
    commits = KafkaSpout(store, replace(config, topic=topic)).run(stop_after_idle=1.0)
    assert commits and all(c.state is CommitState.FINISHED for c in commits)  # beside theirs, not in it
    assert store.inspect_commit("events", theirs.id).state is CommitState.OPEN
    # Their commit was rebased onto the spout's (branch writes land beneath an open commit): it changes nothing.
    assert list(store.diff("events", None, theirs.id)) == []
    store.finish_commit("events", theirs.id)
    assert as_sent(ingested(store, "events", topic)) == by_partition(sent)


@pytest.mark.parametrize(
    "kafka",
    [
        "not an object",
        {"offsets": {"0": 3}},
        {"topic": "TOPIC", "offsets": [3]},
        {"topic": "TOPIC", "offsets": {"zero": 3}},
        {"topic": "TOPIC", "offsets": {"0": -1}},
        {"topic": "TOPIC", "offsets": {"0": "3"}},
    ],
)
def test_corrupt_offsets_are_refused_until_reset(
    store: Store, config: SpoutConfig, kafka_topic: TopicFactory, kafka: object
) -> None:
    topic = kafka_topic(partitions=1)
    sent = produce(config.bootstrap, topic, [(0, None, f"m{i}".encode()) for i in range(5)])
    store.create_repo("events")
    if isinstance(kafka, dict) and kafka.get("topic") == "TOPIC":
        kafka = {**kafka, "topic": topic}
    bad = store.start_commit("events", "master", origin=Origin.SPOUT, metadata={"kafka": kafka})
    store.finish_commit("events", bad.id)
    cfg = replace(config, topic=topic)

    with pytest.raises(CorruptOffsets, match=bad.id) as caught:
        KafkaSpout(store, cfg).run(stop_after_idle=0.5)
    assert "--reset-offsets" in str(caught.value)
    assert store.inspect_branch("events", "master").head == bad.id

    commits = KafkaSpout(store, replace(cfg, reset_offsets="earliest")).run(stop_after_idle=1.0)
    assert kafka_meta(commits[-1])["offsets"] == {"0": 5}
    assert as_sent(ingested(store, "events", topic)) == by_partition(sent)
    assert KafkaSpout(store, cfg).run(stop_after_idle=0.5) == []  # resumes normally afterwards


def test_reset_to_latest_skips_what_the_topic_holds(
    store: Store, config: SpoutConfig, kafka_topic: TopicFactory
) -> None:
    topic = kafka_topic(partitions=2)
    produce(config.bootstrap, topic, [(i % 2, None, b"old") for i in range(6)])
    spout = KafkaSpout(store, replace(config, topic=topic, reset_offsets="latest"))
    assert spout.run(stop_after_idle=0.5) == []
    assert spout.offsets == {0: 3, 1: 3}
    assert store.list_commits("events") == []


def test_unreachable_brokers_fail_within_the_connect_timeout(
    store: Store, config: SpoutConfig, free_tcp_port: int
) -> None:
    cfg = replace(config, bootstrap=f"127.0.0.1:{free_tcp_port}", topic="anything", connect_timeout=1.0)
    with pytest.raises(ServiceUnavailable, match=f"127.0.0.1:{free_tcp_port}"):
        KafkaSpout(store, cfg).run(stop_after_idle=1.0)


def test_missing_topic_is_an_error_and_is_not_created(store: Store, config: SpoutConfig) -> None:
    from kafka import KafkaAdminClient

    cfg = replace(config, topic="no-such-topic")
    with pytest.raises(TopicNotFound, match="no-such-topic"):
        KafkaSpout(store, cfg).run(stop_after_idle=0.5)
    admin = KafkaAdminClient(bootstrap_servers=config.bootstrap)
    try:
        assert "no-such-topic" not in admin.list_topics()
    finally:
        admin.close()


@pytest.mark.parametrize(
    "change",
    [{"batch_messages": 0}, {"batch_bytes": 0}, {"batch_seconds": 0}, {"reset_offsets": "middle"},
     {"repo": "no spaces"}, {"topic": ""}, {"format": "xml"}],
)
def test_bad_settings_are_rejected(config: SpoutConfig, change: dict[str, object]) -> None:
    with pytest.raises((InvalidArgument, ValueError)):
        replace(config, **change)


def _cli(address: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "datumflow.storage_service.cli.spout", "--address", f"file://{address}", *args],
        capture_output=True, text=True, timeout=120,
    )


def test_cli_exits_1_with_one_line_for_bad_input(tmp_path: Path, kafka_broker: str, free_tcp_port: int) -> None:
    unreachable = _cli(tmp_path, "run", "--bootstrap", f"127.0.0.1:{free_tcp_port}", "--topic", "t",
                       "--repo", "r", "--connect-timeout", "1")
    missing = _cli(tmp_path, "run", "--bootstrap", kafka_broker, "--topic", "absent-topic", "--repo", "r")
    for result, words in ((unreachable, "unreachable"), (missing, "does not exist")):
        assert result.returncode == 1, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("datumflow: error: ") and words in lines[0], result.stderr
