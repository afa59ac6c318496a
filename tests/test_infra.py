"""The shared fixtures reach real servers: one small round trip each."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_free_tcp_port_can_be_bound(free_tcp_port: int) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_tcp_port))


@pytest.mark.postgres
def test_postgres_url_is_a_fresh_database(postgres_url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(postgres_url)
    try:
        with engine.begin() as conn:
            assert sa.inspect(conn).get_table_names() == []
            conn.execute(sa.text("CREATE TABLE t (id integer PRIMARY KEY, name text)"))
            conn.execute(sa.text("INSERT INTO t VALUES (1, 'one'), (2, 'two')"))
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id, name FROM t ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(1, "one"), (2, "two")]
    finally:
        engine.dispose()


@pytest.mark.s3
def test_s3_bucket_round_trips_with_boto3_and_fsspec(s3_server: str, s3_bucket: str) -> None:
    import boto3
    import fsspec

    pytest.importorskip("s3fs", reason="the s3 extra is not installed in this environment")

    bucket, prefix = s3_bucket.removeprefix("s3://").split("/", 1)
    client = boto3.client("s3", endpoint_url=s3_server)
    client.put_object(Bucket=bucket, Key=f"{prefix}/hello.txt", Body=b"hello")
    assert client.get_object(Bucket=bucket, Key=f"{prefix}/hello.txt")["Body"].read() == b"hello"
    with fsspec.open(f"{s3_bucket}/hello.txt", "rb") as f:
        assert f.read() == b"hello"


@pytest.mark.kafka
def test_kafka_broker_delivers_to_assigned_partitions(kafka_broker: str, kafka_topic: Callable[..., str]) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    topic = kafka_topic(partitions=2)
    producer = KafkaProducer(bootstrap_servers=kafka_broker)
    for i, partition in enumerate([0, 1, 0]):
        producer.send(topic, value=f"m{i}".encode(), partition=partition).get(timeout=10)
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=kafka_broker, group_id=None, enable_auto_commit=False)
    partitions = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    got: dict[int, list[bytes]] = {0: [], 1: []}
    deadline = time.monotonic() + 20
    while sum(map(len, got.values())) < 3 and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=500).items():
            got[tp.partition].extend(r.value for r in records)
    consumer.close()
    assert got == {0: [b"m0", b"m2"], 1: [b"m1"]}


@pytest.mark.browser
def test_headless_chromium_takes_a_screenshot(chromium_path: str, tmp_path: Path) -> None:
    shot = tmp_path / "x.png"
    subprocess.run(
        [
            chromium_path,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=400,300",
            "data:text/html,<h1>hi</h1>",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert shot.read_bytes().startswith(PNG_MAGIC)
