"""The one place the spout talks to Kafka (kafka-python); its errors are mapped here.

No consumer group is joined: the source assigns every partition of the topic
itself and seeks each to the offset the repo says comes next, because the
repo, not the broker, is the record of what was ingested.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from datumflow.storage_service.errors import DatumflowError, InvalidArgument, ServiceUnavailable, TopicNotFound
from datumflow.storage_service.spouts.config import SpoutConfig
from datumflow.storage_service.spouts.layout import Message

__all__ = ["KafkaSource", "TopicNotFound"]

log = logging.getLogger(__name__)


class KafkaSource:
    """An assigned consumer over all partitions of one topic."""

    def __init__(self, config: SpoutConfig) -> None:
        self.config = config
        self._consumer = _open_consumer(config)
        try:
            self.partitions = self._partitions()
            self._assign()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        with _ignore_errors():
            self._consumer.close()

    def seek(self, offsets: dict[int, int], reset: str | None = None) -> dict[int, int]:
        """Position every partition; return where each one starts.

        With ``reset`` the stored offsets are ignored; otherwise a partition
        missing from ``offsets`` (never seen) starts at its earliest offset.
        """
        from kafka import TopicPartition

        with _kafka_errors(self.config):
            for partition in self.partitions:
                tp = TopicPartition(self.config.topic, partition)
                if reset == "latest":
                    self._consumer.seek_to_end(tp)
                elif reset == "earliest" or partition not in offsets:
                    self._consumer.seek_to_beginning(tp)
                else:
                    self._consumer.seek(tp, offsets[partition])
            return {p: self._consumer.position(TopicPartition(self.config.topic, p)) for p in self.partitions}

    def poll(self, timeout: float, max_records: int) -> list[Message]:
        """Fetched records (kafka-python's own, not copied), in offset order within each partition."""
        with _kafka_errors(self.config):
            fetched = self._consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
        out: list[Message] = []
        for _tp, messages in sorted(fetched.items(), key=lambda item: item[0].partition):
            out.extend(messages)
        return out

    def seek_to(self, partition: int, offset: int) -> None:
        """Rewind one partition (records fetched but not yet committed are read again)."""
        from kafka import TopicPartition

        with _kafka_errors(self.config):
            self._consumer.seek(TopicPartition(self.config.topic, partition), offset)

    def commit_group(self, offsets: dict[int, int]) -> None:
        """Best effort: tell the consumer group how far the repo got (for lag tools)."""
        from kafka import OffsetAndMetadata, TopicPartition

        try:
            self._consumer.commit(
                {TopicPartition(self.config.topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()}
            )
        except Exception as exc:  # the repo holds the truth; a broker without groups is fine
            log.warning("could not commit offsets to consumer group %s: %s", self.config.commit_group, exc)

    def _partitions(self) -> list[int]:
        with _kafka_errors(self.config):
            found = self._consumer.partitions_for_topic(self.config.topic)
        if not found:
            raise TopicNotFound(f"topic {self.config.topic!r} does not exist on {self.config.bootstrap}")
        return sorted(found)

    def _assign(self) -> None:
        from kafka import TopicPartition

        with _kafka_errors(self.config):
            self._consumer.assign([TopicPartition(self.config.topic, p) for p in self.partitions])


def _open_consumer(config: SpoutConfig) -> Any:
    try:
        from kafka import KafkaConsumer
    except ImportError as exc:
        raise InvalidArgument(f"Kafka spouts need kafka-python (pip install 'datumflow[kafka]'): {exc}") from exc
    timeout_ms = int(config.connect_timeout * 1000)
    options: dict[str, Any] = {
        "bootstrap_servers": config.bootstrap.split(","),
        "group_id": config.commit_group,
        "enable_auto_commit": False,
        "allow_auto_create_topics": False,
        "auto_offset_reset": "earliest",
        "api_version_auto_timeout_ms": timeout_ms,
        "bootstrap_timeout_ms": timeout_ms,  # kafka-python 3.x
        "request_timeout_ms": max(timeout_ms, 5000),
    }
    known = KafkaConsumer.DEFAULT_CONFIG
    with _kafka_errors(config):
        return KafkaConsumer(**{k: v for k, v in options.items() if k in known})


@contextmanager
def _kafka_errors(config: SpoutConfig) -> Iterator[None]:
    from kafka.errors import KafkaConfigurationError, KafkaError

    try:
        yield
    except DatumflowError:
        raise
    except KafkaConfigurationError as exc:
        raise InvalidArgument(f"bad Kafka settings for {config.bootstrap}: {exc}") from exc
    except (KafkaError, OSError) as exc:
        raise ServiceUnavailable(
            f"Kafka brokers at {config.bootstrap} are unreachable or failing: {exc}"
        ) from exc


@contextmanager
def _ignore_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        log.debug("ignored while closing the consumer: %s", exc)

