"""The lineage of a file: the datum and input files it came from, upstream through every pipeline."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LineageNode"]


@dataclass(frozen=True)
class LineageNode:
    """A file and, if a pipeline wrote it, the datum and input files it came from."""

    repo: str
    commit: str
    path: str
    hash: str | None
    pipeline: str | None = None
    job: str | None = None
    datum: str | None = None
    inputs: tuple[LineageNode, ...] = field(default=())
    datums: tuple[str, ...] = field(default=())  # every datum that wrote a part of the file (merged outputs)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"repo": self.repo, "commit": self.commit, "path": self.path, "hash": self.hash}
        if self.pipeline is not None:
            out.update(pipeline=self.pipeline, job=self.job, datum=self.datum, datums=list(self.datums))
            out["inputs"] = [i.to_dict() for i in self.inputs]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LineageNode:
        return cls(
            repo=data["repo"], commit=data["commit"], path=data["path"], hash=data.get("hash"),
            pipeline=data.get("pipeline"), job=data.get("job"), datum=data.get("datum"),
            inputs=tuple(cls.from_dict(i) for i in data.get("inputs", ())),
            datums=tuple(data.get("datums", ())),
        )

    def walk(self) -> Iterable[tuple[int, LineageNode]]:
        stack: list[tuple[int, LineageNode]] = [(0, self)]
        while stack:
            depth, node = stack.pop()
            yield depth, node
            stack.extend((depth + 1, child) for child in reversed(node.inputs))
