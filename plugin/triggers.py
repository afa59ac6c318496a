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
import time
from collections.abc import AsyncIterator
from typing import Any

from ._compat import BaseEventTrigger, BaseTrigger, TriggerEvent
from .refs import commit_ref

DEFAULT_CONN_ID = "datumflow_default"

__all__ = [
    "CommitEventTrigger", "CommitFinishedTrigger", "CommitSetTrigger", "CommitTrigger", "FileTrigger", "open_client",
]

_MODULE = __name__


def _hook(conn_id: str) -> Any:
    from .hooks import DatumflowHook

    return DatumflowHook(datumflow_conn_id=conn_id)


async def open_client(conn_id: str) -> Any:
    """An async client of the store named by ``conn_id``, resolved from the triggerer (never from kwargs)."""
    hook = _hook(conn_id)
    await hook.aresolve()
    return hook.async_client()


def _error(exc: BaseException) -> TriggerEvent:
    return TriggerEvent({"status": "error", "message": f"{type(exc).__name__}: {exc}"})


class _Polling(BaseTrigger):
    """Poll ``check()`` every ``poll_interval`` seconds until it returns an event payload.

    The store is named by ``datumflow_conn_id``; its token is read from the
    connection in the triggerer, so no secret is ever serialized with the trigger.
    ``deadline`` (epoch seconds): past it, a ``{"status": "timeout"}`` event —
    the trigger keeps the sensor's timeout itself, wherever it runs.
    """

    def __init__(self, *, datumflow_conn_id: str = DEFAULT_CONN_ID, poll_interval: float = 2.0,
                 deadline: float | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.datumflow_conn_id = datumflow_conn_id
        self.poll_interval = poll_interval
        self.deadline = deadline

    def _kwargs(self) -> dict[str, Any]:
        return {"datumflow_conn_id": self.datumflow_conn_id, "poll_interval": self.poll_interval,
                "deadline": self.deadline}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{_MODULE}.{type(self).__name__}", self._kwargs()

    async def check(self, client: Any) -> dict[str, Any] | None:
        raise NotImplementedError

    def describe(self) -> str:
        return type(self).__name__

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from datumflow.storage_service.errors import DatumflowError

        try:
            client = await open_client(self.datumflow_conn_id)
        except Exception as exc:
            yield _error(exc)
            return
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
                left = None if self.deadline is None else self.deadline - time.time()
                if left is not None and left <= 0:
                    yield TriggerEvent({"status": "timeout", "message": f"{self.describe()}: nothing within the "
                                        "timeout"})
                    return
                await asyncio.sleep(self.poll_interval if left is None else min(self.poll_interval, left))
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

    def describe(self) -> str:
        return f"a new commit on {self.repo}@{self.branch}"

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

    def describe(self) -> str:
        return f"commit {self.repo}@{self.commit} to finish"

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

    def describe(self) -> str:
        return f"a file {self.pattern} in {self.repo}@{self.branch}"

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

    def describe(self) -> str:
        return f"commit set {self.commit_set} to finish"

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


class CommitEventTrigger(BaseEventTrigger):
    """An ``AssetWatcher`` trigger: exactly one event per new finished commit on ``repo@branch``.

    Commits are emitted oldest first, each once, whatever their pace: the
    trigger walks the branch history back to the last commit it emitted. That
    cursor lives in the watched asset's state store (``datumflow.emitted``), so
    a restarted triggerer resumes after it and a commit made while it was
    down still gets its event. After each event it waits (at most
    ``ack_timeout`` seconds) until a DAG run has consumed it — the plugin's
    listener writes ``datumflow.consumed`` — because Airflow folds every event
    queued between two scheduler loops into a single run.

    ``after``: the commit to start after when no cursor is stored yet (default:
    the head when the watcher first starts; history before it is not replayed).
    """

    EMITTED_KEY = "datumflow.emitted"
    HISTORY = 1000  # commits looked back through per poll, at most

    def __init__(self, *, repo: str, branch: str = "master", datumflow_conn_id: str = DEFAULT_CONN_ID,
                 after: str | None = None, poll_interval: float = 5.0, ack_timeout: float = 300.0) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.repo, self.branch, self.datumflow_conn_id = repo, branch, datumflow_conn_id
        self.after, self.poll_interval, self.ack_timeout = after, poll_interval, ack_timeout
        self._memory: dict[str, Any] = {}  # the cursor where Airflow gives the trigger no state store

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return f"{_MODULE}.CommitEventTrigger", {
            "repo": self.repo, "branch": self.branch, "datumflow_conn_id": self.datumflow_conn_id,
            "after": self.after, "poll_interval": self.poll_interval, "ack_timeout": self.ack_timeout,
        }

    # -- the cursor --------------------------------------------------------------------------

    def _state(self) -> Any:
        return getattr(self, "asset_state_store", None)

    async def _get(self, key: str) -> str | None:
        state = self._state()
        if state is None:
            return self._memory.get(key)
        value = await state.aget(key)
        return str(value) if value else None

    async def _set(self, key: str, value: str) -> None:
        state = self._state()
        if state is None:
            self._memory[key] = value
        else:
            await state.aset(key, value)

    # -- the loop ------------------------------------------------------------------------------

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from datumflow.storage_service.errors import DatumflowError

        client = await open_client(self.datumflow_conn_id)
        try:
            cursor = await self._get(self.EMITTED_KEY) or self.after
            if cursor is None:
                cursor = await self._head(client)
                if cursor:
                    await self._set(self.EMITTED_KEY, cursor)
            while True:
                try:
                    fresh = await self.new_commits(client, cursor)
                except DatumflowError as exc:  # the service may be restarting; keep watching
                    self.log.warning("datumflow: cannot read %s@%s: %s", self.repo, self.branch, exc)
                    fresh = []
                for commit in fresh:
                    cursor = commit.id
                    await self._set(self.EMITTED_KEY, cursor)
                    yield TriggerEvent({**commit_ref(commit), "uri": f"datumflow://{self.repo}@{self.branch}"})
                    await self._wait_consumed(cursor)
                if not fresh:
                    await asyncio.sleep(self.poll_interval)
        finally:
            await client.aclose()

    async def new_commits(self, client: Any, cursor: str | None) -> list[Any]:
        """The finished, successful commits of the branch after ``cursor``, oldest first."""
        from datumflow.storage_service.errors import BranchNotFound, RepoNotFound

        try:
            history = await client.list_commits(self.repo, self.branch, limit=self.HISTORY)
        except (BranchNotFound, RepoNotFound):
            return []
        newer = []
        for commit in history:  # newest first
            if commit.id == cursor:
                break
            newer.append(commit)
        else:
            if cursor is not None and newer:  # the cursor left the branch (a reset): only the head is news
                newer = newer[:1]
        while newer and not newer[0].is_finished:  # an open head: its turn comes when it finishes
            newer.pop(0)
        return [c for c in reversed(newer) if c.is_finished and not c.error]

    async def _wait_consumed(self, commit: str) -> None:
        from .listener import CONSUMED_KEY

        if self._state() is None or self.ack_timeout <= 0:
            return
        deadline = asyncio.get_running_loop().time() + self.ack_timeout
        while await self._get(CONSUMED_KEY) != commit:
            if asyncio.get_running_loop().time() > deadline:
                self.log.warning("datumflow: no DAG run consumed %s@%s within %.0fs; emitting the next commit",
                                 self.repo, commit, self.ack_timeout)
                return
            await asyncio.sleep(min(self.poll_interval, 1.0))

    async def _head(self, client: Any) -> str | None:
        from datumflow.storage_service.errors import BranchNotFound, RepoNotFound

        try:
            return (await client.inspect_branch(self.repo, self.branch)).head  # type: ignore[no-any-return]
        except (BranchNotFound, RepoNotFound):
            return None
