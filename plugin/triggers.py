"""Triggers: poll the store (over ``AsyncClient``) until a declared state, then fire once.

Each trigger keeps only plain arguments, so ``serialize()`` round-trips:
``Trigger(**trigger.serialize()[1])`` is the same trigger. Events carry
``{"status": "success", ...}`` or ``{"status": "error", "message": ...}``;
the sensor or operator that deferred turns an error into a task failure.

``CommitEventTrigger`` is the event trigger behind an ``AssetWatcher``: it
fires once per new finished commit on a branch, for ever.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ._compat import BaseEventTrigger, BaseTrigger, TriggerEvent
from .refs import commit_ref

__all__ = ["CommitEventTrigger", "CommitFinishedTrigger", "CommitSetTrigger", "CommitTrigger", "FileTrigger"]

_MODULE = __name__


class _EmbeddedAsync:
    """The AsyncClient calls over an embedded store, each run in a thread."""

    def __init__(self, address: str) -> None:
        import datumflow

        self._store = datumflow.connect(address)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(method, *args, **kwargs)

        return call

    async def aclose(self) -> None:
        self._store.close()


def async_client(address: str, token: str | None) -> Any:
    if address.startswith("file://"):
        return _EmbeddedAsync(address)
    from datumflow.storage_service.client.http import AsyncClient

    return AsyncClient(address, token=token)


def _error(exc: BaseException) -> TriggerEvent:
    return TriggerEvent({"status": "error", "message": f"{type(exc).__name__}: {exc}"})


class _Polling(BaseTrigger):
    """Poll ``check()`` every ``poll_interval`` seconds until it returns an event payload."""

    def __init__(self, *, address: str, token: str | None = None, poll_interval: float = 2.0) -> None:
        super().__init__()
        self.address = address
        self.token = token
        self.poll_interval = poll_interval

    def _kwargs(self) -> dict[str, Any]:
        return {"address": self.address, "token": self.token, "poll_interval": self.poll_interval}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{_MODULE}.{type(self).__name__}", self._kwargs()

    async def check(self, client: Any) -> dict[str, Any] | None:
        raise NotImplementedError

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from datumflow.storage_service.errors import DatumflowError

        client = async_client(self.address, self.token)
        try:
            while True:
                try:
                    payload = await self.check(client)
                except DatumflowError as exc:
                    yield _error(exc)
                    return
                if payload is not None:
                    yield TriggerEvent({"status": "success", **payload})
                    return
                await asyncio.sleep(self.poll_interval)
        finally:
            await client.aclose()


async def _glob_snapshot(client: Any, repo: str, ref: str | None, pattern: str) -> dict[str, str | None]:
    if ref is None:
        return {}
    return {f.path: f.hash for f in await client.glob_files(repo, ref, pattern)}


class CommitTrigger(_Polling):
    """Fires on the first finished head of ``repo@branch`` other than ``after``.

    With ``path_glob``, only a commit whose files matching the glob differ
    from ``after``'s counts.
    """

    def __init__(self, *, repo: str, branch: str, after: str | None = None, path_glob: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.repo, self.branch, self.after, self.path_glob = repo, branch, after, path_glob
        self._baseline: dict[str, str | None] | None = None

    def _kwargs(self) -> dict[str, Any]:
        extra = {"repo": self.repo, "branch": self.branch, "after": self.after, "path_glob": self.path_glob}
        return {**super()._kwargs(), **extra}

    async def check(self, client: Any) -> dict[str, Any] | None:
        from datumflow.storage_service.errors import BranchNotFound

        try:
            head = (await client.inspect_branch(self.repo, self.branch)).head
        except BranchNotFound:
            return None
        if head is None or head == self.after:
            return None
        commit = await client.inspect_commit(self.repo, head)
        if not commit.is_finished:
            return None
        if self.path_glob:
            if self._baseline is None:
                self._baseline = await _glob_snapshot(client, self.repo, self.after, self.path_glob)
            if await _glob_snapshot(client, self.repo, head, self.path_glob) == self._baseline:
                return None
        return {"commit": commit_ref(commit)}


class CommitFinishedTrigger(_Polling):
    """Fires when one commit is finished; an error event if it failed."""

    def __init__(self, *, repo: str, commit: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.repo, self.commit = repo, commit

    def _kwargs(self) -> dict[str, Any]:
        return {**super()._kwargs(), "repo": self.repo, "commit": self.commit}

    async def check(self, client: Any) -> dict[str, Any] | None:
        commit = await client.inspect_commit(self.repo, self.commit)
        if not commit.is_finished:
            return None
        if commit.error:
            return {"status": "error", "message": f"commit {commit} failed: {commit.error}",
                    "commit": commit_ref(commit)}
        return {"commit": commit_ref(commit)}


class FileTrigger(_Polling):
    """Fires when ``pattern`` (a path or a glob) matches a file of ``repo@branch``'s head."""

    def __init__(self, *, repo: str, branch: str, pattern: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.repo, self.branch, self.pattern = repo, branch, pattern

    def _kwargs(self) -> dict[str, Any]:
        return {**super()._kwargs(), "repo": self.repo, "branch": self.branch, "pattern": self.pattern}

    async def check(self, client: Any) -> dict[str, Any] | None:
        from datumflow.storage_service.errors import BranchNotFound, CommitNotFound

        try:
            head = (await client.inspect_branch(self.repo, self.branch)).head
            if head is None:
                return None
            commit = await client.inspect_commit(self.repo, head)
            found = [f.path for f in await client.glob_files(self.repo, head, self.pattern)]
        except (BranchNotFound, CommitNotFound):
            return None
        if not found or not commit.is_finished:
            return None
        return {"commit": commit_ref(commit), "paths": found}


class CommitSetTrigger(_Polling):
    """Fires when every commit of a commit set has finished; an error event naming the first failed one."""

    def __init__(self, *, commit_set: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commit_set = commit_set

    def _kwargs(self) -> dict[str, Any]:
        return {**super()._kwargs(), "commit_set": self.commit_set}

    async def check(self, client: Any) -> dict[str, Any] | None:
        found = await client.commit_set(self.commit_set)
        failed = [c for c in found if c.error]
        if failed:
            first = failed[0]
            return {"status": "error", "message": f"commit {first} failed: {first.error}",
                    "commit": commit_ref(first)}
        if all(c.is_finished for c in found):
            return {"commits": [commit_ref(c) for c in found]}
        return None


class CommitEventTrigger(BaseEventTrigger):  # type: ignore[misc,valid-type]
    """An ``AssetWatcher`` trigger: one event per new finished commit on ``repo@branch``.

    ``after``: the commit already seen (default: the head when the trigger starts).
    """

    def __init__(self, *, repo: str, branch: str = "master", address: str, token: str | None = None,
                 after: str | None = None, poll_interval: float = 5.0) -> None:
        super().__init__()
        self.repo, self.branch, self.address, self.token = repo, branch, address, token
        self.after, self.poll_interval = after, poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{_MODULE}.CommitEventTrigger", {
            "repo": self.repo, "branch": self.branch, "address": self.address, "token": self.token,
            "after": self.after, "poll_interval": self.poll_interval,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from datumflow.storage_service.errors import DatumflowError

        client = async_client(self.address, self.token)
        seen = self.after
        try:
            if seen is None:
                seen = await self._head(client)
            while True:
                try:
                    head = await self._head(client)
                except DatumflowError:
                    head = None  # the service may be restarting; keep watching
                if head and head != seen:
                    commit = await client.inspect_commit(self.repo, head)
                    if commit.is_finished:
                        seen = head
                        ref = commit_ref(commit)
                        yield TriggerEvent({**ref, "uri": f"datumflow://{self.repo}@{self.branch}"})
                await asyncio.sleep(self.poll_interval)
        finally:
            await client.aclose()

    async def _head(self, client: Any) -> str | None:
        from datumflow.storage_service.errors import BranchNotFound

        try:
            return (await client.inspect_branch(self.repo, self.branch)).head  # type: ignore[no-any-return]
        except BranchNotFound:
            return None
