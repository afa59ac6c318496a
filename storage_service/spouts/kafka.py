"""The Kafka spout: consume a topic, write each batch as one commit with its offsets.

Exactly-once into the repo rests on one rule: a batch's data and the offsets
that follow it land in the same commit, and that commit becomes visible in
one transaction (``finish_commit``). On start the spout

1. deletes an open head commit a crashed run of this spout left behind,
2. reads the offsets of the newest finished commit for the topic,
3. seeks every partition there (earliest for partitions never seen),

so whatever was consumed but not committed is read again, and nothing that
was committed is read twice. See ``docs/spouts.md``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

from datumflow.storage_service.errors import Conflict, InvalidArgument, PathNotFound
from datumflow.storage_service.model.core import Commit, Origin, Repo
from datumflow.storage_service.model.lifecycle import OpenCommit
from datumflow.storage_service.spouts.config import SpoutConfig
from datumflow.storage_service.spouts.layout import Message, layout_batch, record_size
from datumflow.storage_service.spouts.offsets import CommitReader, abort_open_head, find_resume_point, offsets_metadata
from datumflow.storage_service.spouts.source import KafkaSource
from datumflow.storage_service.store.files import Source

__all__ = ["KafkaSpout", "SpoutStore"]

log = logging.getLogger(__name__)

_POLL_RECORDS = 500
_RESET = "reset"  # stands for "whatever the branch held before --reset-offsets"


class SpoutStore(CommitReader, Protocol):
    """The store methods a spout uses (the embedded Store and the HTTP client both have them)."""

    def create_repo(self, name: str, description: str = "", *, exist_ok: bool = False) -> Repo: ...
    def writing(
        self, repo: str, branch: str, *, description: str = "", metadata: dict[str, Any] | None = None,
        origin: Origin | str = Origin.USER, provenance: Iterable[str] = (), what: str = "write",
    ) -> AbstractContextManager[OpenCommit]: ...
    def put_files(self, repo: str, target: str, items: Iterable[tuple[str, Source]]) -> Commit: ...
    def delete_file(self, repo: str, target: str, path: str) -> Commit: ...
    def finish_commit(self, repo: str, ref: str, *, error: str | None = None) -> Commit: ...


@dataclass
class _Batch:
    records: list[Message] = field(default_factory=list)
    size: int = 0
    opened: float = 0.0  # monotonic time its first record arrived

    def fill(self, pending: deque[Message], max_records: int, max_bytes: int) -> int:
        """Move records from ``pending`` while the batch has room; return how many.

        At most ``max_records`` in the batch; ``max_bytes`` of keys and values
        unless the batch is empty (one message alone may exceed it).
        """
        records, size, moved = self.records, self.size, 0
        room = max_records - len(records)
        while moved < room and pending:
            record = pending[0]
            grown = size + len(record.key or b"") + len(record.value or b"")
            if records and grown > max_bytes:
                break
            if not records:
                self.opened = time.monotonic()
            records.append(pending.popleft())
            size, moved = grown, moved + 1
        self.size = size
        return moved


class KafkaSpout:
    """``KafkaSpout(store, config).run(...)`` → the commits it made.

    ``should_stop`` is asked between polls (a registry's stop flag, a signal);
    ``on_commit`` hears of each commit; ``on_tick`` is called every loop turn
    (heartbeats). A stop flushes the open batch first.
    """

    def __init__(
        self,
        store: SpoutStore,
        config: SpoutConfig,
        *,
        should_stop: Callable[[], bool] | None = None,
        on_commit: Callable[[Commit], None] | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self._should_stop = should_stop or (lambda: False)
        self._on_commit = on_commit or (lambda _commit: None)
        self._on_tick = on_tick or (lambda: None)
        self._offsets: dict[int, int] = {}
        self._last_commit: str | None = None
        self._source: KafkaSource | None = None

    def run(
        self,
        *,
        stop_after_idle: float | None = None,
        max_messages: int | None = None,
        deadline: float | None = None,
    ) -> list[Commit]:
        """Consume and commit until a limit is hit or ``should_stop`` says so.

        ``stop_after_idle``: seconds without a new message; ``max_messages``:
        messages in all; ``deadline``: a ``time.time()`` instant. With none of
        them the spout runs until stopped.
        """
        if max_messages is not None and max_messages < 1:
            raise InvalidArgument("max_messages must be >= 1")
        source = self._source = self._start()
        try:
            return self._loop(source, stop_after_idle, max_messages, deadline)
        finally:
            self._source = None
            source.close()

    @property
    def offsets(self) -> dict[int, int]:
        """The next offset of each partition, as of the last commit (or the start)."""
        return dict(self._offsets)

    # -- start -------------------------------------------------------------------

    def _start(self) -> KafkaSource:
        cfg = self.config
        self.store.create_repo(cfg.repo, exist_ok=True)
        aborted = abort_open_head(self.store, cfg.repo, cfg.branch, cfg.topic)
        if aborted:
            log.warning("deleted open commit %s@%s left by an interrupted run", cfg.repo, aborted)
        if cfg.reset_offsets:
            stored: dict[int, int] = {}
            self._last_commit = _RESET
        else:
            resume = find_resume_point(self.store, cfg.repo, cfg.branch, cfg.topic)
            stored, self._last_commit = resume.offsets, resume.commit
        source = KafkaSource(cfg)
        try:
            self._offsets = source.seek(stored, cfg.reset_offsets)
        except BaseException:
            source.close()
            raise
        log.info("spout %s -> %s@%s starts at offsets %s", cfg.topic, cfg.repo, cfg.branch, self._offsets)
        return source

    # -- the loop ------------------------------------------------------------------

    def _loop(
        self, source: KafkaSource, idle_limit: float | None, max_messages: int | None, deadline: float | None
    ) -> list[Commit]:
        cfg = self.config
        commits: list[Commit] = []
        pending: deque[Message] = deque()
        batch = _Batch()
        taken = 0
        last_message = time.monotonic()
        while True:
            self._on_tick()
            if batch.records and (self._full(batch, pending) or self._window_over(batch)):
                commits.append(self._commit(batch.records))
                batch = _Batch()
            if (
                (max_messages is not None and taken >= max_messages)
                or (deadline is not None and time.time() >= deadline)
                or (idle_limit is not None and not pending and time.monotonic() - last_message >= idle_limit)
                or self._should_stop()
            ):
                break
            if not pending:
                wanted = _POLL_RECORDS if max_messages is None else min(_POLL_RECORDS, max_messages - taken)
                fetched = source.poll(self._wait(batch, idle_limit, last_message, deadline), wanted)
                if fetched:
                    last_message = time.monotonic()
                pending.extend(fetched)
            if pending:
                limit = cfg.batch_messages if max_messages is None else min(
                    cfg.batch_messages, len(batch.records) + max_messages - taken
                )
                taken += batch.fill(pending, limit, cfg.batch_bytes)
        if batch.records:
            commits.append(self._commit(batch.records))
        return commits

    def _full(self, batch: _Batch, pending: deque[Message]) -> bool:
        if len(batch.records) >= self.config.batch_messages:
            return True
        return bool(batch.records and pending and batch.size + record_size(pending[0]) > self.config.batch_bytes)

    def _window_over(self, batch: _Batch) -> bool:
        return time.monotonic() - batch.opened >= self.config.batch_seconds

    def _wait(self, batch: _Batch, idle_limit: float | None, last_message: float, deadline: float | None) -> float:
        now = time.monotonic()
        waits = [self.config.poll_seconds]
        if batch.records:
            waits.append(batch.opened + self.config.batch_seconds - now)
        if idle_limit is not None:
            waits.append(last_message + idle_limit - now)
        if deadline is not None:
            waits.append(deadline - time.time())
        return max(0.0, min(waits))

    # -- one commit ------------------------------------------------------------------

    def _commit(self, records: list[Message]) -> Commit:
        cfg = self.config
        self._check_sole_writer()
        files = layout_batch(cfg.topic, records, cfg.format, cfg.layout)
        offsets = {**self._offsets, **{r.partition: r.offset + 1 for r in records}}
        with self.store.writing(
            cfg.repo, cfg.branch, origin=Origin.SPOUT, what="spout batch",
            description=f"kafka {cfg.topic}: {len(records)} messages",
            metadata=offsets_metadata(cfg.topic, offsets, len(records), files.dead_letters),
        ) as commit:
            if files.puts:
                self.store.put_files(cfg.repo, commit.id, sorted(files.puts.items()))
            for path in files.deletes:
                self._delete_if_present(commit.id, path)
        finished = commit.finished
        assert finished is not None
        self._offsets, self._last_commit = offsets, finished.id
        log.info("committed %s: %d messages, offsets %s", finished, len(records), offsets)
        if cfg.commit_group and self._source is not None:  # only after the commit: the repo is the truth
            self._source.commit_group(offsets)
        self._on_commit(finished)
        return finished

    def _delete_if_present(self, commit_id: str, path: str) -> None:
        with suppress(PathNotFound):  # a tombstone for a key never written
            self.store.delete_file(self.config.repo, commit_id, path)

    def _check_sole_writer(self) -> None:
        """Refuse to commit if another writer stored offsets for this topic meanwhile."""
        cfg = self.config
        if self._last_commit == _RESET:
            return
        newest = find_resume_point(self.store, cfg.repo, cfg.branch, cfg.topic).commit
        if newest != self._last_commit:
            raise Conflict(
                f"another writer committed offsets of topic {cfg.topic} to {cfg.repo}@{cfg.branch} "
                f"(commit {newest}) while this spout ran; run one spout per topic and branch"
            )
