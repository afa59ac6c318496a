"""CLI verbs ``serve`` and ``auth`` (defined in :mod:`.serve`, registered here by name)."""

from __future__ import annotations

from typing import Any

from datumflow.storage_service.service.serve import register as _register

__all__ = ["register"]


def register(commands: Any) -> None:
    _register(commands)
