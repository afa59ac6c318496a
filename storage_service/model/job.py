"""A pipeline job: its state and counters."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from datumflow.storage_service.model.value import _Value

__all__ = ["JobInfo", "JobState"]


class JobState(str, Enum):
    CREATED = "created"
    RUNNING = "running"
    SUCCESS = "success"
    FAILURE = "failure"
    KILLED = "killed"  # an input commit failed; nothing ran

    @property
    def done(self) -> bool:
        return self in (JobState.SUCCESS, JobState.FAILURE, JobState.KILLED)


@dataclass(frozen=True)
class JobInfo(_Value):
    id: str
    pipeline: str
    state: JobState
    output_commit: str
    commit_set: str
    spec_commit: str | None
    inputs: dict[str, str | None]
    reason: str | None
    reprocess: bool
    created: float
    started: float | None
    finished: float | None
    total: int = 0
    processed: int = 0  # ran successfully in this job
    skipped: int = 0  # reused from the datum cache
    failed: int = 0
    recovered: int = 0  # succeeded after a failed try
    base_job: str | None = None  # the job whose unchanged datums, outputs and lineage this one inherits
    external: bool = False  # planned by a driver outside the job loops (Airflow, KFP, pods), not by a loop

    @property
    def counters(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("total", "processed", "skipped", "failed", "recovered")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobInfo:
        return super().from_dict({**data, "state": JobState(data["state"])})
