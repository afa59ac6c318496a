"""Run the Kafka spout for a while: each batch becomes a commit with its offsets (exactly once)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datumflow.plugin._compat import deprecated_alias
from datumflow.plugin.stamped import StampedStore

from .base import DatumflowBaseOperator, with_conn_id

__all__ = [
    "DatumflowKafkaSpoutOperator",
    "KafkaSpoutOperator",
]


class DatumflowKafkaSpoutOperator(DatumflowBaseOperator):
    """Consume ``topic`` into ``repo@branch`` until idle for ``stop_after_idle`` s (or ``max_messages``).

    Returns the references of the commits made (``[]`` when nothing was new).
    A rerun resumes after the offsets stored in the last commit.
    """

    template_fields: Sequence[str] = with_conn_id("bootstrap", "topic", "repo", "branch")

    def __init__(self, *, bootstrap: str, topic: str, repo: str, branch: str = "master",
                 stop_after_idle: float = 5.0, max_messages: int | None = None,
                 spout_options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bootstrap, self.topic, self.repo, self.branch = bootstrap, topic, repo, branch
        self.stop_after_idle, self.max_messages = stop_after_idle, max_messages
        self.spout_options = spout_options or {}

    def execute(self, context: Any) -> list[dict[str, Any]]:
        from datumflow.storage_service.spouts.config import SpoutConfig
        from datumflow.storage_service.spouts.kafka import KafkaSpout

        config = SpoutConfig(bootstrap=self.bootstrap, topic=self.topic, repo=self.repo, branch=self.branch,
                             **self.spout_options)
        store = StampedStore(self.hook.get_conn(), self.metadata(context))
        commits = KafkaSpout(store, config).run(stop_after_idle=self.stop_after_idle,
                                                max_messages=self.max_messages)
        self.log.info("spout %s -> %s@%s: %d commit(s)", self.topic, self.repo, self.branch, len(commits))
        return [self.done(context, c) for c in commits]


KafkaSpoutOperator = deprecated_alias(DatumflowKafkaSpoutOperator, "KafkaSpoutOperator")
