"""A pipeline as the registry reports it (its spec as plain data; ``pipelines.spec.parse_spec`` reads it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datumflow.storage_service.model.value import _Value

__all__ = ["PipelineInfo"]


@dataclass(frozen=True)
class PipelineInfo(_Value):
    name: str
    description: str
    spec: dict[str, Any]
    spec_commit: str
    version: int
    created: float
    updated: float
    output_branch: str
    inputs: list[str]  # "repo@branch" of every input
    state: str = "running"  # "running", or "stopped" (``pipeline stop``: no jobs, ticks or spout until started)
    spout: dict[str, Any] | None = None  # a spout pipeline's process: state, pid, restarts, last exit, log
