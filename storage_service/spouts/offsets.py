"""Kafka offsets kept in commit metadata: where a spout resumes.

Every spout commit carries, in the same commit as its data::

    {"kafka": {"topic": T, "offsets": {"<partition>": <next offset>, ...},
               "messages": n, "dead_letters": n}}

``offsets`` holds the next offset to read for *every* partition consumed so
far (not only those of this batch), so the newest such commit on the branch
is the whole resume point. Partition numbers are strings because JSON keys
are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from datumflow.storage_service.errors import BranchNotFound, CorruptOffsets
from datumflow.storage_service.model.core import Branch, Commit, CommitState, Origin

__all__ = [
    "CorruptOffsets",
    "ResumePoint",
    "abort_open_head",
    "find_resume_point",
    "offsets_metadata",
]


class CommitReader(Protocol):
    def inspect_branch(self, repo: str, name: str) -> Branch: ...
    def inspect_commit(self, repo: str, ref: str) -> Commit: ...
    def delete_commit(self, repo: str, ref: str) -> None: ...


@dataclass(frozen=True)
class ResumePoint:
    """The newest finished commit holding offsets for the topic (None: never ingested)."""

    commit: str | None
    offsets: dict[int, int]


def offsets_metadata(topic: str, offsets: dict[int, int], messages: int, dead_letters: int) -> dict[str, Any]:
    return {
        "kafka": {
            "topic": topic,
            "offsets": {str(p): o for p, o in sorted(offsets.items())},
            "messages": messages,
            "dead_letters": dead_letters,
        }
    }


def branch_head(store: CommitReader, repo: str, branch: str) -> str | None:
    try:
        return store.inspect_branch(repo, branch).head
    except BranchNotFound:
        return None


def find_resume_point(store: CommitReader, repo: str, branch: str, topic: str) -> ResumePoint:
    """Walk back from the head, past commits without this topic's offsets."""
    cursor = branch_head(store, repo, branch)
    while cursor is not None:
        commit = store.inspect_commit(repo, cursor)
        if commit.state is CommitState.FINISHED:
            offsets = _topic_offsets(commit, topic)
            if offsets is not None:
                return ResumePoint(commit.id, offsets)
        cursor = commit.parent
    return ResumePoint(None, {})


def abort_open_head(store: CommitReader, repo: str, branch: str, topic: str) -> str | None:
    """Delete the open head commit a crashed spout of this topic left; return its id.

    An open head that some other writer owns is not ours to drop: it is left
    alone, and the spout's commits land beside it (docs/concurrency.md).
    """
    head = branch_head(store, repo, branch)
    if head is None:
        return None
    commit = store.inspect_commit(repo, head)
    if commit.state is not CommitState.OPEN:
        return None
    if commit.origin is not Origin.SPOUT or _declared_topic(commit) != topic:
        return None
    store.delete_commit(repo, commit.id)
    return commit.id


def _declared_topic(commit: Commit) -> str | None:
    kafka = commit.metadata.get("kafka")
    topic = kafka.get("topic") if isinstance(kafka, dict) else None
    return topic if isinstance(topic, str) else None


def _topic_offsets(commit: Commit, topic: str) -> dict[int, int] | None:
    if "kafka" not in commit.metadata:
        return None
    kafka = commit.metadata["kafka"]
    if not isinstance(kafka, dict) or not isinstance(kafka.get("topic"), str):
        raise _corrupt(commit, "'kafka' must be an object with a string 'topic'")
    if kafka["topic"] != topic:
        return None
    raw = kafka.get("offsets")
    if not isinstance(raw, dict):
        raise _corrupt(commit, "'kafka.offsets' must be an object of partition -> next offset")
    offsets: dict[int, int] = {}
    for partition, offset in raw.items():
        if not (isinstance(partition, str) and partition.isdigit()):
            raise _corrupt(commit, f"partition {partition!r} is not a partition number")
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise _corrupt(commit, f"offset {offset!r} of partition {partition} is not a non-negative integer")
        offsets[int(partition)] = offset
    return offsets


def _corrupt(commit: Commit, why: str) -> CorruptOffsets:
    return CorruptOffsets(
        f"commit {commit.repo}@{commit.id} has corrupt Kafka offsets metadata: {why}; refusing to guess "
        "where to resume (rerun with --reset-offsets earliest|latest to choose explicitly)"
    )
