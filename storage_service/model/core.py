"""Value objects of the store: frozen, typed, and able to serialize themselves.

``to_dict`` gives plain JSON-ready data (what the HTTP API and ``--json``
print); ``from_dict`` reads it back (what the client does).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any, TypeVar

__all__ = [
    "Branch",
    "BranchRef",
    "ChunkRef",
    "Commit",
    "CommitState",
    "DiffEntry",
    "FileInfo",
    "Origin",
    "ProvenanceEntry",
    "Repo",
]

T = TypeVar("T", bound="_Value")


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


class _Value:
    def to_dict(self) -> dict[str, Any]:
        plain: dict[str, Any] = _plain(asdict(self))  # type: ignore[call-overload]
        return plain

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


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
class ChunkRef(_Value):
    hash: str
    size: int


@dataclass(frozen=True)
class FileInfo(_Value):
    """A file or a folder of a commit."""

    path: str
    type: str  # "file" | "dir"
    size: int
    hash: str | None = None  # content identity (files only): see chunking.content_hash
    chunks: tuple[ChunkRef, ...] = field(default=(), repr=False)
    # Kept with the file version (S3: ETag, Content-Type, x-amz-meta-*, write time); see store.files.
    meta: dict[str, str] = field(default_factory=dict, hash=False, repr=False)

    @property
    def is_dir(self) -> bool:
        return self.type == "dir"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "type": self.type, "size": self.size}
        if self.hash is not None:
            out["hash"] = self.hash
        if self.meta:
            out["meta"] = dict(self.meta)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileInfo:
        return cls(
            path=data["path"],
            type=data.get("type", "file"),
            size=data.get("size", 0),
            hash=data.get("hash"),
            chunks=tuple(ChunkRef(**c) for c in data.get("chunks", ())),
            meta=dict(data.get("meta") or {}),
        )


@dataclass(frozen=True)
class DiffEntry(_Value):
    path: str
    change: str  # "added" | "deleted" | "modified"
    old: FileInfo | None
    new: FileInfo | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "change": self.change,
            "old": self.old.to_dict() if self.old else None,
            "new": self.new.to_dict() if self.new else None,
        }


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
