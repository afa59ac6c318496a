"""Repos, branches, commits and provenance entries."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from datumflow.storage_service.model.value import _Value

__all__ = ["Branch", "BranchRef", "Commit", "CommitState", "Origin", "ProvenanceEntry", "Repo"]


class Origin(str, Enum):
    """Who made a commit."""

    USER = "user"  # a person, a script, an operator
    AUTO = "auto"  # opened downstream by branch provenance
    PIPELINE = "pipeline"  # written by a pipeline job
    SPOUT = "spout"  # written by a spout (Kafka…)
    SPEC = "spec"  # a pipeline's spec commit


class CommitState(str, Enum):
    OPEN = "open"
    FINISHED = "finished"
    FAILED = "failed"  # finished with an error: readable, never a pipeline input


@dataclass(frozen=True)
class Repo(_Value):
    name: str
    description: str
    created: float
    branches: tuple[str, ...] = ()
    size_bytes: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Repo:
        return cls(
            name=data["name"],
            description=data.get("description", ""),
            created=data.get("created", 0.0),
            branches=tuple(data.get("branches", ())),
            size_bytes=data.get("size_bytes", 0),
        )


@dataclass(frozen=True)
class BranchRef(_Value):
    repo: str
    branch: str

    def __str__(self) -> str:
        return f"{self.repo}@{self.branch}"

    @classmethod
    def parse(cls, text: str) -> BranchRef:
        from datumflow.storage_service.errors import InvalidArgument
        from datumflow.storage_service.names import check_branch_name, check_repo_name

        repo, at, branch = text.partition("@")
        if not at:
            raise InvalidArgument(f"expected REPO@BRANCH, got {text!r}")
        return cls(check_repo_name(repo), check_branch_name(branch))


@dataclass(frozen=True)
class Branch(_Value):
    repo: str
    name: str
    head: str | None
    provenance: tuple[BranchRef, ...] = ()
    subvenance: tuple[BranchRef, ...] = ()
    owner: str | None = None  # the pipeline that writes this branch, if any

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Branch:
        return cls(
            repo=data["repo"],
            name=data["name"],
            head=data.get("head"),
            provenance=tuple(BranchRef(**b) for b in data.get("provenance", ())),
            subvenance=tuple(BranchRef(**b) for b in data.get("subvenance", ())),
            owner=data.get("owner"),
        )


@dataclass(frozen=True)
class Commit(_Value):
    id: str
    repo: str
    branch: str | None
    parent: str | None
    origin: Origin
    state: CommitState
    description: str
    metadata: dict[str, Any]
    started: float
    finished: float | None
    commit_set: str
    root: str | None
    size_bytes: int = 0
    file_count: int = 0
    provenance: tuple[str, ...] = ()  # ids of the commits this one was computed from
    error: str | None = None
    merge_parent: str | None = None  # a merge commit's second parent (the merged source)

    @property
    def is_finished(self) -> bool:
        return self.state is not CommitState.OPEN

    @property
    def parents(self) -> tuple[str, ...]:
        """First parent, then the merged one (a merge commit has two)."""
        return tuple(p for p in (self.parent, self.merge_parent) if p)

    def __str__(self) -> str:
        return f"{self.repo}@{self.id}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Commit:
        return cls(
            id=data["id"],
            repo=data["repo"],
            branch=data.get("branch"),
            parent=data.get("parent"),
            origin=Origin(data["origin"]),
            state=CommitState(data["state"]),
            description=data.get("description") or "",
            metadata=dict(data.get("metadata") or {}),
            started=data.get("started") or 0.0,
            finished=data.get("finished"),
            commit_set=data.get("commit_set") or data["id"],
            root=data.get("root"),
            size_bytes=data.get("size_bytes") or 0,
            file_count=data.get("file_count") or 0,
            provenance=tuple(data.get("provenance") or ()),
            error=data.get("error"),
            merge_parent=data.get("merge_parent"),
        )


@dataclass(frozen=True)
class ProvenanceEntry(_Value):
    """One commit reached by a provenance or subvenance query, at a depth."""

    repo: str
    commit: str
    branch: str | None
    depth: int
    origin: Origin

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProvenanceEntry:
        return cls(
            repo=data["repo"], commit=data["commit"], branch=data.get("branch"),
            depth=data["depth"], origin=Origin(data["origin"]),
        )
