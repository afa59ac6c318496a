"""The base of every value object: ``to_dict`` gives plain JSON-ready data (what the HTTP API and
``--json`` print), ``from_dict`` reads it back (what the client does)."""

from __future__ import annotations

from dataclasses import asdict, fields
from enum import Enum
from typing import Any, TypeVar

__all__ = ["_Value"]

T = TypeVar("T", bound="_Value")


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
