"""What a Kafka spout reads, where it writes, and when a batch closes (the value object lives in
:mod:`..model.spout`)."""

from __future__ import annotations

from datumflow.storage_service.model.spout import RESETS, SpoutConfig

__all__ = ["RESETS", "SpoutConfig"]
