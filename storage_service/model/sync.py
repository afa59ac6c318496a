"""What a sync did (or, on a dry run, would do): the plan and its outcome, as one value."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datumflow.storage_service.model.core import _Value

__all__ = ["SyncResult"]


@dataclass(frozen=True)
class SyncResult(_Value):
    """The differences between a local folder and a commit, and what was done about them.

    ``direction`` is ``"up"`` (folder → branch: ``commit`` is the new commit, or
    None when nothing changed) or ``"down"`` (commit → folder: ``commit`` is the
    commit restored). Paths are relative to the synced folder; ``deleted`` is
    filled only when deletions were asked for. ``files_read`` counts the local
    files whose bytes had to be read to learn their hash (the stat cache spares
    the others); ``bytes`` is the size of what was transferred.
    """

    direction: str
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    deleted: tuple[str, ...] = ()
    unchanged: int = 0
    bytes: int = 0
    files_read: int = 0
    commit: str | None = None
    dry_run: bool = False

    @property
    def is_noop(self) -> bool:
        return not (self.added or self.changed or self.deleted)

    def counts(self) -> dict[str, Any]:
        """The numbers only (what ``--json`` prints)."""
        return {
            "direction": self.direction, "added": len(self.added), "changed": len(self.changed),
            "deleted": len(self.deleted), "unchanged": self.unchanged, "bytes": self.bytes,
            "files_read": self.files_read, "commit": self.commit, "dry_run": self.dry_run,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SyncResult:
        return cls(
            direction=data["direction"], added=tuple(data.get("added", ())), changed=tuple(data.get("changed", ())),
            deleted=tuple(data.get("deleted", ())), unchanged=data.get("unchanged", 0), bytes=data.get("bytes", 0),
            files_read=data.get("files_read", 0), commit=data.get("commit"), dry_run=data.get("dry_run", False),
        )
