"""The local object folder's open packs are shared by the threads of a process (request threads, the
read-ahead pool): reads racing the eviction of idle descriptors, and deletes, still get their own bytes."""

from __future__ import annotations

import random
import threading
from pathlib import Path

from datumflow.storage_service.core.objects import LocalObjects
from datumflow.storage_service.errors import ObjectNotFound

from tests.helpers.threads import threads_running

OBJECTS = 600  # more than the descriptors kept open, so readers keep evicting each other's


def _content(i: int) -> bytes:
    return (b"%05d:" % i) * 200


def test_threads_reading_while_descriptors_are_evicted_get_their_bytes(tmp_path: Path) -> None:
    objects = LocalObjects(str(tmp_path / "objects"))
    for i in range(OBJECTS):
        objects.put_bytes(f"packs/{i}", _content(i))

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(3000):
            i = rng.randrange(OBJECTS)
            start = rng.randrange(0, 900)
            got = objects.read_range(f"packs/{i}", start, 100)
            assert got == _content(i)[start:start + 100], f"object {i}: other bytes"

    with threads_running(reader, 8) as errors:
        pass
    objects.close()
    assert errors == []


def test_a_delete_under_concurrent_reads_closes_nothing_in_use(tmp_path: Path) -> None:
    objects = LocalObjects(str(tmp_path / "objects"))
    for i in range(20):
        objects.put_bytes(f"packs/{i}", _content(i))
    stop = threading.Event()

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            i = rng.randrange(10, 20)  # the kept ones
            assert objects.read_range(f"packs/{i}", 0, 6) == b"%05d:" % i
            try:  # the deleted ones: their bytes, or not found; never another object's
                j = rng.randrange(10)
                assert objects.read_range(f"packs/{j}", 0, 6) == b"%05d:" % j
            except ObjectNotFound:
                pass

    with threads_running(reader, 6) as errors:
        for i in range(10):
            objects.delete(f"packs/{i}")
        for _ in range(10):  # drop every open pack behind the readers' backs, again and again
            objects.close()
        stop.set()
    objects.close()
    assert errors == []
