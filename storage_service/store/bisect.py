"""``Store.bisect``: the library call of ``datumflow bisect`` (the search is :mod:`..model.bisect`)."""

from __future__ import annotations

from datumflow.storage_service.model import bisect as search
from datumflow.storage_service.model.history import BisectResult
from datumflow.storage_service.store.base import StoreBase

__all__ = ["Bisecting"]


class Bisecting(StoreBase):
    def bisect(self, repo: str, good: str, bad: str, run: search.Run, *, path: str = "") -> BisectResult:
        """The first bad commit between ``good`` and ``bad``, running ``run`` on candidates' files.

        ``run`` is a command (exit 0 good, 125 skip, else bad; it runs in a folder
        holding the commit's files under ``path``, with ``DATUMFLOW_COMMIT`` set)
        or a function of a commit id returning such a status (or a bool).
        """
        return search.bisect(self, repo, good, bad, run, path)  # type: ignore[arg-type]
