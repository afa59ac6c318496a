"""The Kafka spout against a bare kafka-python consumer on the same topic of the same broker.

Figures (the spout issue's goal, ≥ 0.7x the bare consumer):

* messages/s from a pre-produced topic into commits, for 100-byte messages
  (100,000; 20,000 small) and for 10 KiB messages (3,000; 2,000 small);
* (diagnostic) the same spout runs against the bare consumer with
  ``check_crcs=False``: kafka-python checks each record batch's CRC32C in pure
  Python unless the ``crc32c`` package is installed, and that check is most
  of a consumer's time on large messages, on both sides.

A tansu broker (in memory, started here) holds one topic per message size,
with 2 partitions, filled before anything is timed. Messages are ASCII text
of exactly the given size, all different (the store deduplicates equal
bytes). Each repetition times, alternately:

* the bare consumer: ``KafkaConsumer(group_id=None)`` created, every partition
  ``assign()``-ed and sought to the beginning (tansu has no consumer groups),
  ``poll(max_records=500)`` until every message was seen, values touched;
* the spout: ``KafkaSpout(Store(fresh folder), SpoutConfig(...)).run(max_messages=N)``
  with the default batch limits (10,000 messages or 64 MiB a commit), format
  jsonl, layout partition; the store has its default settings (fsync on). It
  starts from an empty repo, so it reads from offset 0 too.

Both are timed end to end, consumer creation included; neither waits for an
idle timeout (the spout stops at ``max_messages``, the consumer at the count).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from ._procs import tansu_binary, tansu_broker

if TYPE_CHECKING:
    from .run import Context

PARTITIONS = 2
POLL_RECORDS = 500  # what the spout asks for per poll


@dataclass(frozen=True)
class Sizes:
    small_msgs: int  # 100-byte messages
    big_msgs: int  # 10 KiB messages
    reps: int


FULL = Sizes(small_msgs=100_000, big_msgs=3_000, reps=2)
SMALL = Sizes(small_msgs=20_000, big_msgs=2_000, reps=2)


def run(ctx: Context) -> list[dict[str, Any]]:
    sizes = ctx.pick(FULL, SMALL)
    binary = tansu_binary()
    if binary is None:
        return [ctx.figure(f"spout.{label}_vs_consumer", None, "msg/s", peer="tansu not found",
                           ratio=None, goal="≥ 0.7x bare consumer", met=None)
                for label in ("100b", "10kib")]
    out = []
    with tansu_broker(binary, ctx.workdir / "tansu.log") as bootstrap:
        for label, size, count in (("100b", 100, sizes.small_msgs), ("10kib", 10 * 1024, sizes.big_msgs)):
            topic = f"bench-{label}"
            ctx.log(f"producing {count} messages of {size} bytes to {topic}")
            _create_topic(bootstrap, topic)
            _produce(bootstrap, topic, size, count)
            bare, nocrc, spout = [], [], []
            for rep in range(sizes.reps):
                ctx.log(f"{topic} rep {rep + 1}/{sizes.reps}")
                bare.append(ctx.timed(partial(_consume, bootstrap, topic, count)))
                spout.append(_spout(ctx, bootstrap, topic, count, rep))
                nocrc.append(ctx.timed(partial(_consume, bootstrap, topic, count, check_crcs=False)))
            rate, peer = count / ctx.median(spout), count / ctx.median(bare)
            bare_nocrc = count / ctx.median(nocrc)
            what = f"{count:,} x {size} B, {PARTITIONS} partitions"
            out.append(ctx.figure(
                f"spout.{label}_vs_consumer", rate, "msg/s", peer=f"bare consumer {peer:.0f} msg/s ({what})",
                ratio=rate / peer, goal="≥ 0.7x bare consumer", met=rate / peer >= 0.7,
            ))
            out.append(ctx.figure(
                f"spout.{label}_vs_consumer_nocrc", rate, "msg/s",
                peer=f"bare consumer, check_crcs=False {bare_nocrc:.0f} msg/s ({what})",
                ratio=rate / bare_nocrc, goal="diagnostic: kafka-python's pure-Python CRC32C", met=None,
            ))
    return out


def _create_topic(bootstrap: str, topic: str) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            (meta,) = admin.describe_topics([topic])
            if not meta.get("error_code") and len(meta.get("partitions", [])) == PARTITIONS:
                return
            time.sleep(0.1)
        raise RuntimeError(f"topic {topic} did not show {PARTITIONS} partitions")
    finally:
        admin.close()


def _produce(bootstrap: str, topic: str, size: int, count: int) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20,
                             batch_size=512 * 1024, max_request_size=16 * 1024 * 1024)
    try:
        pad = os.urandom(size).hex().encode()  # ASCII, so that jsonl keeps values as text
        for i in range(count):
            head = b"%d:" % i
            value = head + pad[(i * 7) % size:][: size - len(head)]
            value += pad[: size - len(value)]
            producer.send(topic, value=value, partition=i % PARTITIONS)
        producer.flush(timeout=120)
    finally:
        producer.close()


def _consume(bootstrap: str, topic: str, count: int, *, check_crcs: bool = True) -> None:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", request_timeout_ms=10000, check_crcs=check_crcs)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(parts)
        for tp in parts:
            consumer.seek_to_beginning(tp)
        seen = size = 0
        deadline = time.monotonic() + 300
        while seen < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"bare consumer saw {seen} of {count} messages")
            for messages in consumer.poll(timeout_ms=500, max_records=POLL_RECORDS).values():
                seen += len(messages)
                size += sum(len(m.value) for m in messages)
        if seen != count:
            raise AssertionError(f"bare consumer saw {seen} messages, expected {count}")
    finally:
        consumer.close()


def _spout(ctx: Context, bootstrap: str, topic: str, count: int, rep: int) -> float:
    from datumflow.storage_service.spouts.config import SpoutConfig
    from datumflow.storage_service.spouts.kafka import KafkaSpout
    from datumflow.storage_service.store.store import Store

    root = ctx.workdir / f"store-{topic}-{rep}"  # fresh: a second ingest of equal bytes would dedup
    with Store(str(root)) as store:
        spout = KafkaSpout(store, SpoutConfig(bootstrap=bootstrap, topic=topic, repo="ingest"))
        commits: list[Any] = []
        seconds = ctx.timed(lambda: commits.extend(spout.run(max_messages=count)))
        got = sum(spout.offsets.values())
        if got != count:
            raise AssertionError(f"spout committed offsets up to {got} messages, expected {count}")
        if not commits:
            raise AssertionError("spout made no commit")
    shutil.rmtree(root, ignore_errors=True)
    return seconds
