"""A Kafka spout's settings (what it reads, where it writes, when a batch closes) and its status."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import Any

from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.names import check_branch_name, check_repo_name

__all__ = ["RESETS", "Format", "Layout", "SpoutConfig", "SpoutStatus"]


class Format(str, Enum):
    JSONL = "jsonl"
    JSON_VALUES = "json-values"
    RAW = "raw"

    @property
    def extension(self) -> str:
        return "bin" if self is Format.RAW else "jsonl"


class Layout(str, Enum):
    PARTITION = "partition"
    KEY = "key"


RESETS = ("earliest", "latest")


@dataclass(frozen=True)
class SpoutConfig:
    """A spout's settings; ``to_dict``/``from_dict`` round-trip (the registry stores them).

    A batch closes as soon as one limit is reached: ``batch_messages``
    messages, ``batch_bytes`` bytes of keys and values (a batch never
    exceeds it, unless one message alone does), or ``batch_seconds`` since
    its first message arrived.
    """

    bootstrap: str
    topic: str
    repo: str
    branch: str = "master"
    batch_messages: int = 10_000
    batch_bytes: int = 64 * 1024 * 1024
    batch_seconds: float = 10.0
    format: Format = Format.JSONL
    layout: Layout = Layout.PARTITION
    reset_offsets: str | None = None  # "earliest" | "latest": ignore stored offsets on start
    commit_group: str | None = None  # best effort: also commit offsets to this consumer group
    connect_timeout: float = 10.0  # seconds to reach the bootstrap servers
    poll_seconds: float = 0.5  # longest single wait for messages

    def __post_init__(self) -> None:
        object.__setattr__(self, "format", Format(self.format))
        object.__setattr__(self, "layout", Layout(self.layout))
        check_repo_name(self.repo)
        check_branch_name(self.branch)
        if not self.bootstrap.strip():
            raise InvalidArgument("--bootstrap HOST:PORT is required")
        if not self.topic.strip():
            raise InvalidArgument("--topic is required")
        for name in ("batch_messages", "batch_bytes"):
            if getattr(self, name) < 1:
                raise InvalidArgument(f"{name} must be >= 1")
        for name in ("batch_seconds", "connect_timeout", "poll_seconds"):
            if getattr(self, name) <= 0:
                raise InvalidArgument(f"{name} must be > 0")
        if self.reset_offsets not in (None, *RESETS):
            raise InvalidArgument(f"reset_offsets must be one of {', '.join(RESETS)}, not {self.reset_offsets!r}")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["format"] = self.format.value
        out["layout"] = self.layout.value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SpoutConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class SpoutStatus:
    name: str
    config: SpoutConfig
    state: str  # running | stopped | failed | lost
    stop_requested: bool
    host: str
    pid: int | None
    started: float
    heartbeat: float
    last_commit: str | None
    messages: int
    commits: int
    error: str | None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["config"] = self.config.to_dict()
        return out
