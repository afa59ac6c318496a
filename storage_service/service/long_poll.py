"""Server-side waits: hold a request until a condition holds, for a bounded time.

A wait route answers as soon as its check returns something, or with
:class:`Timeout` after at most ``LONG_POLL_MAX`` seconds; clients repeat the
request for longer waits, so no request ties up a worker for long.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

from datumflow.storage_service.errors import Timeout
from starlette.concurrency import run_in_threadpool

__all__ = ["LONG_POLL_MAX", "long_poll"]

LONG_POLL_MAX = 20.0  # seconds one wait request may hold
_POLL = 0.05

T = TypeVar("T")


async def long_poll(check: Callable[[], T | None], timeout: float | None, what: str) -> T:
    """Run ``check`` (in a worker thread) until it returns a value or the budget is spent."""
    budget = LONG_POLL_MAX if timeout is None else min(timeout, LONG_POLL_MAX)
    deadline = time.monotonic() + budget
    while True:
        found = await run_in_threadpool(check)
        if found is not None:
            return found
        if time.monotonic() >= deadline:
            raise Timeout(f"{what} did not finish within {budget:g}s")
        await asyncio.sleep(_POLL)
