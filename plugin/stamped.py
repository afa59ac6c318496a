"""A store whose commits are stamped with Airflow metadata.

Engines that make commits themselves (the pipelines engine, the Kafka spout)
are given this wrapper instead of the store, so every commit they start or
finish for an Airflow task also records the task (``airflow`` key).
"""

from __future__ import annotations

from typing import Any

__all__ = ["StampedStore"]


class StampedStore:
    def __init__(self, store: Any, metadata: dict[str, Any]) -> None:
        self._store = store
        self._stamp = metadata

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def start_commit(self, repo: str, branch: str, **kwargs: Any) -> Any:
        kwargs["metadata"] = {**(kwargs.get("metadata") or {}), **self._stamp}
        return self._store.start_commit(repo, branch, **kwargs)

    def writing(self, repo: str, branch: str, **kwargs: Any) -> Any:
        """The store's commit lifecycle, with this wrapper's start and finish (so both are stamped)."""
        from datumflow.storage_service.model.lifecycle import writing

        return writing(self, repo, branch, **kwargs)

    def finish_commit(self, repo: str, ref: str, **kwargs: Any) -> Any:
        kwargs["metadata"] = {**(kwargs.get("metadata") or {}), **self._stamp}
        return self._store.finish_commit(repo, ref, **kwargs)
