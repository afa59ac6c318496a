"""A spout against a real broker and a real store: every message once, in order, resumable."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import pytest
from datumflow.storage_service import Commit, Origin, Store
from datumflow.storage_service.errors import Conflict
from datumflow.storage_service.spouts.config import SpoutConfig
from datumflow.storage_service.spouts.kafka import KafkaSpout
from datumflow.storage_service.spouts.layout import Format, Layout, read_raw

from .conftest import as_sent, by_partition, history, ingested, kafka_meta, produce

pytestmark = pytest.mark.kafka

TopicFactory = Callable[..., str]


def spread(n: int, partitions: int = 3, start: int = 0) -> list[tuple[int, bytes | None, bytes | None]]:
    """``n`` messages round-robin over partitions, keyed and numbered."""
    return [(i % partitions, f"k{i % 7}".encode(), f"message {i}".encode()) for i in range(start, start + n)]


def test_every_message_lands_once_in_partition_order(
    store: Store, config: SpoutConfig, kafka_topic: TopicFactory
) -> None:
    topic = kafka_topic(partitions=3)
    messages = [*spread(60), (1, None, b"\xff\xfe not utf-8"), (2, b"\x00\x01", None)]
    sent = produce(config.bootstrap, topic, messages, headers=(("trace", b"abc"), ("bin", b"\xff")))
    cfg = replace(config, topic=topic, batch_messages=25)

    commits = KafkaSpout(store, cfg).run(stop_after_idle=1.0)

    assert as_sent(ingested(store, "events", topic)) == by_partition(sent)
    assert sum(kafka_meta(c)["messages"] for c in commits) == len(messages)  # type: ignore[misc]
    assert all(c.origin is Origin.SPOUT and kafka_meta(c)["messages"] <= 25 for c in commits)
    last = kafka_meta(commits[-1])
    assert last["topic"] == topic
    assert last["offsets"] == {"0": 20, "1": 21, "2": 21}
    assert [c.id for c in history(store, "events")] == [c.id for c in commits]
    one = ingested(store, "events", topic)[1][0]
    assert one.headers == (("trace", b"abc"), ("bin", b"\xff"))


def test_restart_resumes_after_the_last_commit(store: Store, config: SpoutConfig, kafka_topic: TopicFactory) -> None:
    topic = kafka_topic(partitions=3)
    cfg = replace(config, topic=topic, batch_messages=10)
    first = produce(config.bootstrap, topic, spread(45))

    made = KafkaSpout(store, cfg).run(max_messages=20)
    assert sum(kafka_meta(c)["messages"] for c in made) == 20  # type: ignore[misc]
    second = produce(config.bootstrap, topic, spread(30, start=45))
    KafkaSpout(store, cfg).run(stop_after_idle=1.0)
    KafkaSpout(store, cfg).run(stop_after_idle=0.5)  # nothing new: no commit, no duplicate

    assert as_sent(ingested(store, "events", topic)) == by_partition(first + second)
    total = sum(kafka_meta(c)["messages"] for c in history(store, "events"))  # type: ignore[misc]
    assert total == 75


def test_batches_close_on_message_count(store: Store, config: SpoutConfig, kafka_topic: TopicFactory) -> None:
    topic = kafka_topic(partitions=1)
    produce(config.bootstrap, topic, spread(35, partitions=1))
    commits = KafkaSpout(store, replace(config, topic=topic, batch_messages=10)).run(stop_after_idle=1.0)
    assert [kafka_meta(c)["messages"] for c in commits] == [10, 10, 10, 5]
    paths = [f.path for f in store.walk_files("events", "master", topic)]
    assert paths[0] == f"{topic}/0/{0:020d}-{9:020d}.jsonl"
    assert paths == sorted(paths) and len(paths) == 4


def test_batches_close_on_bytes(store: Store, config: SpoutConfig, kafka_topic: TopicFactory) -> None:
    topic = kafka_topic(partitions=1)
    produce(config.bootstrap, topic, [(0, None, bytes([65 + i]) * 100) for i in range(10)])
    cfg = replace(config, topic=topic, batch_bytes=350)
    commits = KafkaSpout(store, cfg).run(stop_after_idle=1.0)
    assert [kafka_meta(c)["messages"] for c in commits] == [3, 3, 3, 1]
    assert all(c.size_bytes > 0 for c in commits)


def test_open_batch_is_committed_when_the_run_stops(
    store: Store, config: SpoutConfig, kafka_topic: TopicFactory
) -> None:
    topic = kafka_topic(partitions=2)
    sent = produce(config.bootstrap, topic, spread(7, partitions=2))
    commits = KafkaSpout(store, replace(config, topic=topic, batch_seconds=3600)).run(stop_after_idle=1.0)
    assert len(commits) == 1
    assert as_sent(ingested(store, "events", topic)) == by_partition(sent)


def test_json_values_send_bad_json_to_dead_letters(
    store: Store, config: SpoutConfig, kafka_topic: TopicFactory
) -> None:
    topic = kafka_topic(partitions=1)
    values = [b'{"a": 1}', b"not json", b"[1, 2]", b"\xff\xfe", b'"text"', b"{broken"]
    produce(config.bootstrap, topic, [(0, None, v) for v in values])
    commits = KafkaSpout(store, replace(config, topic=topic, format=Format.JSON_VALUES)).run(stop_after_idle=1.0)

    good = store.get_file("events", "master", f"{topic}/0/{0:020d}-{5:020d}.jsonl").splitlines()
    assert [(json.loads(line)["offset"], json.loads(line)["value"]) for line in good] == [
        (0, {"a": 1}), (2, [1, 2]), (4, "text")
    ]
    dead = store.get_file("events", "master", f"_dead_letter/{topic}/0/{0:020d}-{5:020d}.jsonl").splitlines()
    docs = [json.loads(line) for line in dead]
    assert [d["offset"] for d in docs] == [1, 3, 5]
    assert docs[0]["value"] == "not json" and docs[1]["value"] == {"base64": "//4="}
    assert all("not JSON" in d["error"] for d in docs)
    assert sum(kafka_meta(c)["dead_letters"] for c in commits) == 3  # type: ignore[misc]


def test_keyed_layout_keeps_the_latest_value_per_key(
    store: Store, config: SpoutConfig, kafka_topic: TopicFactory
) -> None:
    topic = kafka_topic(partitions=2)
    produce(config.bootstrap, topic, [
        (0, b"alpha", b"1"), (1, b"a/b", b"slash"), (0, b"gone", b"x"), (0, b"alpha", b"2"),
        (1, None, b"no key"),
    ])
    cfg = replace(config, topic=topic, layout=Layout.KEY, batch_messages=2)
    KafkaSpout(store, cfg).run(stop_after_idle=1.0)
    produce(config.bootstrap, topic, [(0, b"gone", None), (1, b"a/b", b"slash 2")])
    KafkaSpout(store, cfg).run(stop_after_idle=1.0)

    def value(path: str) -> str:
        (line,) = store.get_file("events", "master", path).splitlines()
        return str(json.loads(line)["value"])

    files = {f.path for f in store.walk_files("events", "master", topic)}
    assert value(f"{topic}/alpha.jsonl") == "2"
    assert value(f"{topic}/a%2Fb.jsonl") == "slash 2"
    assert f"{topic}/gone.jsonl" not in files  # the tombstone deleted it
    unkeyed = [p for p in files if p.startswith(f"{topic}/1/")]
    assert len(unkeyed) == 1 and value(unkeyed[0]) == "no key"


def test_raw_format_frames_values_with_offsets(store: Store, config: SpoutConfig, kafka_topic: TopicFactory) -> None:
    topic = kafka_topic(partitions=1)
    produce(config.bootstrap, topic, [(0, b"k", b"one"), (0, None, b"\x00\xff"), (0, b"k", None)])
    KafkaSpout(store, replace(config, topic=topic, format=Format.RAW)).run(stop_after_idle=1.0)
    data = store.get_file("events", "master", f"{topic}/0/{0:020d}-{2:020d}.bin")
    assert read_raw(data) == [(0, b"one"), (1, b"\x00\xff"), (2, None)]


def test_commits_without_kafka_metadata_are_walked_past(
    store: Store, config: SpoutConfig, kafka_topic: TopicFactory
) -> None:
    topic = kafka_topic(partitions=2)
    cfg = replace(config, topic=topic)
    first = produce(config.bootstrap, topic, spread(10, partitions=2))
    KafkaSpout(store, cfg).run(stop_after_idle=1.0)
    store.put_file("events", "master", "README.md", b"written by a person")
    other = replace(cfg, topic=kafka_topic(partitions=1))
    produce(config.bootstrap, other.topic, spread(3, partitions=1))
    KafkaSpout(store, other).run(stop_after_idle=1.0)  # another topic's offsets on the same branch
    second = produce(config.bootstrap, topic, spread(6, partitions=2, start=10))

    made = KafkaSpout(store, cfg).run(stop_after_idle=1.0)

    assert sum(kafka_meta(c)["messages"] for c in made) == 6  # type: ignore[misc]
    assert as_sent(ingested(store, "events", topic)) == by_partition(first + second)
    assert store.get_file("events", "master", "README.md") == b"written by a person"


def test_a_second_writer_of_the_same_topic_stops_the_first(
    store: Store, config: SpoutConfig, kafka_topic: TopicFactory
) -> None:
    topic = kafka_topic(partitions=1)
    sent = produce(config.bootstrap, topic, spread(30, partitions=1))
    cfg = replace(config, topic=topic, batch_messages=10)
    rival = KafkaSpout(store, cfg)

    def interfere(_commit: Commit) -> None:
        if not rival.offsets:
            rival.run(stop_after_idle=0.5)

    with pytest.raises(Conflict, match="another writer"):
        KafkaSpout(store, cfg, on_commit=interfere).run(stop_after_idle=1.0)
    assert as_sent(ingested(store, "events", topic)) == by_partition(sent)


def test_offsets_go_to_the_consumer_group_after_each_commit(
    store: Store, config: SpoutConfig, kafka_topic: TopicFactory
) -> None:
    topic = kafka_topic(partitions=2)
    sent = produce(config.bootstrap, topic, spread(12, partitions=2))
    cfg = replace(config, topic=topic, batch_messages=5, commit_group="lag-watchers")
    commits = KafkaSpout(store, cfg).run(stop_after_idle=1.0)
    assert as_sent(ingested(store, "events", topic)) == by_partition(sent)
    assert kafka_meta(commits[-1])["offsets"] == {"0": 6, "1": 6}
    assert group_offsets(config.bootstrap, "lag-watchers") == {0: 6, 1: 6}


def group_offsets(bootstrap: str, group: str) -> dict[int, int]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        if hasattr(admin, "list_group_offsets"):  # kafka-python 3.x
            found = admin.list_group_offsets(group)[group]
        else:
            found = admin.list_consumer_group_offsets(group)
        return {tp.partition: meta.offset for tp, meta in found.items()}
    finally:
        admin.close()
