"""Merge, revert, reset, tags, protection and bisect of :class:`~.http.Client` (a mixin).

Same signatures as the :class:`Store` methods (a test checks it). ``bisect``
runs its command here, on the caller's machine, reading each candidate
commit through the service.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from datumflow.storage_service.client.bodies import _q
from datumflow.storage_service.model import bisect as search
from datumflow.storage_service.model.core import Branch, Commit
from datumflow.storage_service.model.history import BisectResult, MergeResult, Protection, Tag

__all__ = ["HistoryCalls"]


class HistoryCalls:
    def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        raise NotImplementedError  # the Client's transport

    def merge(
        self, repo: str, source: str, dest: str, *, strategy: str | None = None, message: str = "",
        author: str | None = None, metadata: dict[str, Any] | None = None, checks: Sequence[str] = (),
        dry_run: bool = False, fast_forward: bool = True,
    ) -> MergeResult:
        body = {"source": source, "dest": dest, "strategy": strategy, "message": message, "author": author,
                "metadata": metadata or {}, "checks": list(checks), "dry_run": dry_run,
                "fast_forward": fast_forward}
        return MergeResult.from_dict(self._json("POST", f"/repos/{_q(repo)}/merge", json=body))

    def merge_base(self, repo: str, a: str, b: str) -> str | None:
        found = self._json("GET", f"/repos/{_q(repo)}/merge-base", params={"a": a, "b": b})["id"]
        return str(found) if found else None

    def revert(self, repo: str, ref: str, *, branch: str | None = None, message: str = "") -> Commit:
        body = {"branch": branch, "message": message}
        return Commit.from_dict(self._json("POST", f"/repos/{_q(repo)}/commits/{_q(ref)}/revert", json=body))

    def reset_branch(self, repo: str, branch: str, to: str, *, force: bool = False) -> Branch:
        body = {"to": to, "force": force}
        return Branch.from_dict(self._json("POST", f"/repos/{_q(repo)}/branches/{_q(branch)}/reset", json=body))

    def create_tag(self, repo: str, name: str, ref: str, *, message: str = "", creator: str | None = None) -> Tag:
        # The service records the authenticated caller as the creator.
        body = {"name": name, "ref": ref, "message": message}
        return Tag.from_dict(self._json("POST", f"/repos/{_q(repo)}/tags", json=body))

    def inspect_tag(self, repo: str, name: str) -> Tag:
        return Tag.from_dict(self._json("GET", f"/repos/{_q(repo)}/tags/{_q(name)}"))

    def list_tags(self, repo: str) -> list[Tag]:
        return [Tag.from_dict(t) for t in self._json("GET", f"/repos/{_q(repo)}/tags")]

    def delete_tag(self, repo: str, name: str) -> None:
        self._json("DELETE", f"/repos/{_q(repo)}/tags/{_q(name)}")

    def protect_branch(self, repo: str, branch: str, *, checks: Sequence[str] = ()) -> Protection:
        url = f"/repos/{_q(repo)}/branches/{_q(branch)}/protection"
        return Protection.from_dict(self._json("PUT", url, json={"checks": list(checks)}))

    def unprotect_branch(self, repo: str, branch: str) -> None:
        self._json("DELETE", f"/repos/{_q(repo)}/branches/{_q(branch)}/protection")

    def list_protections(self, repo: str) -> list[Protection]:
        return [Protection.from_dict(p) for p in self._json("GET", f"/repos/{_q(repo)}/protections")]

    def bisect(self, repo: str, good: str, bad: str, run: search.Run, *, path: str = "") -> BisectResult:
        return search.bisect(self, repo, good, bad, run, path)  # type: ignore[arg-type]
