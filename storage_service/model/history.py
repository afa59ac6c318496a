"""Value objects of history operations: tags, protections, merges and bisects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datumflow.storage_service.model.core import Commit, FileInfo, _Value

__all__ = ["BisectResult", "BisectStep", "MergeResult", "PathConflict", "Protection", "Tag"]


@dataclass(frozen=True)
class Tag(_Value):
    """An immutable name of a commit: ``repo@v1`` reads it, nothing writes through it."""

    repo: str
    name: str
    commit: str
    message: str = ""
    creator: str | None = None
    created: float = 0.0


@dataclass(frozen=True)
class Protection(_Value):
    """A protected branch: merges only; ``checks`` (commands) must pass on every merge result."""

    repo: str
    branch: str
    checks: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Protection:
        return cls(data["repo"], data["branch"], tuple(data.get("checks") or ()))


@dataclass(frozen=True)
class PathConflict(_Value):
    """A path both sides changed differently since the merge base (None: absent on that side)."""

    path: str
    base: FileInfo | None
    ours: FileInfo | None  # the destination's version
    theirs: FileInfo | None  # the source's version

    def to_dict(self) -> dict[str, Any]:
        side = {k: getattr(self, k) for k in ("base", "ours", "theirs")}
        return {"path": self.path, **{k: v.to_dict() if v else None for k, v in side.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PathConflict:
        def info(key: str) -> FileInfo | None:
            return FileInfo.from_dict(data[key]) if data.get(key) else None

        return cls(data["path"], info("base"), info("ours"), info("theirs"))


@dataclass(frozen=True)
class MergeResult(_Value):
    """What a merge did. ``status``: merged, fast-forward, up-to-date, or conflict (a dry run only)."""

    status: str
    repo: str
    source: str  # the source commit id
    dest: str  # the destination branch
    base: str | None  # the merge base commit id
    commit: Commit | None  # the destination's head after the merge (None: a dry run)
    conflicts: tuple[PathConflict, ...] = ()
    changed: int = 0  # paths the merge changed on the destination
    strategy: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "repo": self.repo, "source": self.source, "dest": self.dest,
            "base": self.base, "commit": self.commit.to_dict() if self.commit else None,
            "conflicts": [c.to_dict() for c in self.conflicts], "changed": self.changed,
            "strategy": self.strategy,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MergeResult:
        return cls(
            status=data["status"], repo=data["repo"], source=data["source"], dest=data["dest"],
            base=data.get("base"), commit=Commit.from_dict(data["commit"]) if data.get("commit") else None,
            conflicts=tuple(PathConflict.from_dict(c) for c in data.get("conflicts") or ()),
            changed=data.get("changed", 0), strategy=data.get("strategy"),
        )


@dataclass(frozen=True)
class BisectStep(_Value):
    commit: str
    verdict: str  # good | bad | skip
    exit_code: int


@dataclass(frozen=True)
class BisectResult(_Value):
    """The first bad commit on the first-parent line from good to bad, and how it was found."""

    repo: str
    good: str
    bad: str
    first_bad: str | None  # None: only skipped commits were left to blame
    candidates: tuple[str, ...]  # skipped commits that may be the first bad one, when first_bad is None
    steps: tuple[BisectStep, ...]
    changes: tuple[dict[str, Any], ...] = ()  # the first bad commit's diff (DiffEntry.to_dict)

    @property
    def runs(self) -> int:
        return len(self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo, "good": self.good, "bad": self.bad, "first_bad": self.first_bad,
            "candidates": list(self.candidates), "steps": [s.to_dict() for s in self.steps],
            "runs": self.runs, "changes": list(self.changes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BisectResult:
        return cls(
            repo=data["repo"], good=data["good"], bad=data["bad"], first_bad=data.get("first_bad"),
            candidates=tuple(data.get("candidates") or ()),
            steps=tuple(BisectStep(**s) for s in data.get("steps") or ()),
            changes=tuple(data.get("changes") or ()),
        )
