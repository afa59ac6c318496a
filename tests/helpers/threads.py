"""Running a test's workers on threads of their own, their errors collected for the test to assert on."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["threads_running"]


@contextmanager
def threads_running(target: Callable[[int], None], count: int) -> Iterator[list[BaseException]]:
    """``target(0)`` … ``target(count - 1)``, each on its own thread, running while the block runs; the
    threads are joined when it ends. Yields the list of what they raised (filled by the time it ends)."""
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # reported by the test, on its own thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    try:
        yield errors
    finally:
        for t in threads:
            t.join()
