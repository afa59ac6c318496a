"""Waiting in tests: poll a check until it gives a true value, or fail with what it gave last."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["until"]


def until(
    what: Callable[[], Any],
    timeout: float = 90.0,
    message: str | Callable[[], str] | None = None,
    *,
    interval: float = 0.2,
    ignoring: tuple[type[BaseException], ...] = (),
) -> Any:
    """``what()``'s first true value, asked every ``interval`` seconds for ``timeout`` seconds.

    An exception of a type in ``ignoring`` counts as a false answer (a loaded server timing out:
    ask again). On timeout the AssertionError carries ``message`` (a string, or a function called
    then) and the last value seen.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = what()
        except ignoring as exc:
            found = exc
        else:
            if found:
                return found
        if time.monotonic() > deadline:
            text = message() if callable(message) else message or "timed out"
            raise AssertionError(f"{text}\n(last seen: {found!r:.2000})")
        time.sleep(interval)
