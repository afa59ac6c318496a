"""Running a test's workers on threads of their own, their errors collected for the test to assert on."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["all_at_once", "threads_running"]


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


def all_at_once(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Each call on its own thread, all released from one barrier (to make them race); what each
    returned, or the exception it raised, in the order of ``calls``."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = calls[i]()
        except BaseException as exc:  # the caller looks at it
            outcomes[i] = exc

    with threads_running(run, len(calls)) as errors:
        pass
    assert not errors, errors
    return outcomes
