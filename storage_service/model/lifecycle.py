"""The commit lifecycle, written once: open a commit, do the work, finish it or fail it.

Used by every writer that needs several writes in one commit — the S3
gateway's DeleteObjects, the Airflow operators, the Kubeflow components, the
Kafka spout, cron ticks, pipeline spec uploads — over the embedded store and
the HTTP client alike (both have ``writing``)::

    with store.writing("sales", "master", description="nightly") as open_:
        store.put_file("sales", open_.id, "a.csv", data)
        store.delete_file("sales", open_.id, "old.csv")
    open_.finished  # the finished Commit

One failure policy: if the block raises, the commit is *failed* with the
error (its record kept for inspection, its content dropped, its branch rolled
back) and the exception propagates. The commit is tied to this process
(:func:`process_owner`): if the process dies inside the block, the store fails
the commit at its next start on this host, or when its lease runs out.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from datumflow.storage_service.errors import DatumflowError
from datumflow.storage_service.model.core import Commit, Origin

__all__ = ["CommitWriter", "OpenCommit", "process_owner", "writing"]

log = logging.getLogger(__name__)


class CommitWriter(Protocol):
    def start_commit(
        self, repo: str, branch: str, *, parent: str | None = ..., description: str = ...,
        metadata: dict[str, Any] | None = ..., origin: Origin | str = ..., provenance: Iterable[str] = ...,
        owner: str | None = ..., lease: float | None = ...,
    ) -> Commit: ...

    def finish_commit(
        self, repo: str, ref: str, *, description: str | None = ..., metadata: dict[str, Any] | None = ...,
        error: str | None = ...,
    ) -> Commit: ...


class OpenCommit:
    """The commit a ``writing`` block writes into; set ``metadata``/``description`` to add them at finish."""

    def __init__(self, commit: Commit) -> None:
        self.commit = commit
        self.id = commit.id
        self.metadata: dict[str, Any] = {}
        self.description: str | None = None
        self.finished: Commit | None = None


def _start_ticks(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def process_owner(pid: int | None = None) -> str:
    """A process as an owner of writes and commits: ``host:pid:start`` (a reused pid differs in start)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid)}"


@contextmanager
def writing(
    writer: CommitWriter, repo: str, branch: str, *, description: str = "",
    metadata: dict[str, Any] | None = None, origin: Origin | str = Origin.USER,
    provenance: Iterable[str] = (), what: str = "write",
) -> Iterator[OpenCommit]:
    """Open a commit on ``branch`` for this block alone; finish it, or fail it if the block raises."""
    opened = writer.start_commit(
        repo, branch, description=description, metadata=metadata or {}, origin=origin,
        provenance=list(provenance), owner=process_owner(),
    )
    handle = OpenCommit(opened)
    try:
        yield handle
    except BaseException as exc:
        try:
            writer.finish_commit(repo, opened.id, error=f"{what} failed: {type(exc).__name__}: {exc}")
        except DatumflowError as again:  # e.g. already failed as abandoned: the original error matters
            log.warning("could not fail commit %s@%s: %s", repo, opened.id, again)
        raise
    handle.finished = writer.finish_commit(
        repo, opened.id, description=handle.description, metadata=handle.metadata or None
    )
