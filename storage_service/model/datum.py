"""One datum of a job: its state, inputs, outputs, tries and log."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from datumflow.storage_service.model.value import _Value

__all__ = ["DatumInfo", "DatumState"]


class DatumState(str, Enum):
    PENDING = "pending"
    RUNNING = "running"  # claimed by a job loop (pipelines/leases.py)
    SUCCESS = "success"  # ran in this job
    SKIPPED = "skipped"  # an earlier run's output was reused
    FAILED = "failed"


@dataclass(frozen=True)
class DatumInfo(_Value):
    """``inputs`` are the datum's inputs as ``DatumInput.to_dict`` writes them (``pipelines.datums``)."""

    job: str
    id: str
    hash: str
    state: DatumState
    inputs: list[dict[str, Any]]
    outputs: list[str] = field(default_factory=list)
    reused_from: str | None = None
    tries: int = 0
    log: str | None = None
    error: str | None = None
    started: float | None = None
    finished: float | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatumInfo:
        return super().from_dict({**data, "state": DatumState(data["state"])})
