"""Files and folders of a commit, their chunks, and the entries of a diff."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datumflow.storage_service.model.value import _Value

__all__ = ["ChunkRef", "DiffEntry", "FileInfo"]


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
