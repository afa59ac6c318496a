"""Cutting and hashing at once gives exactly the chunks and hashes of doing one after the other.

Content identity depends on it: equal bytes must get equal hashes whichever
path stored them (a file on disk, a buffer, a stream), and stores written
before the pipelined path must deduplicate against puts made with it.
"""

from __future__ import annotations

import mmap
import os
import random
import threading
import time
from pathlib import Path

import pytest
from datumflow.storage_service import Store
from datumflow.storage_service.core import chunking
from datumflow.storage_service.core.chunking import (
    MAX_CHUNK,
    MIN_CHUNK,
    SMALL_FILE,
    chunk_bytes,
    content_hash,
    cut_file,
    file_hash,
    hash_bytes,
    hashed_cuts,
    mapped,
)
from datumflow.storage_service.errors import CorruptObject
from datumflow.storage_service.model.core import ChunkRef

from .conftest import pack_bytes

SIZES = [
    1, MIN_CHUNK - 1, MIN_CHUNK, MIN_CHUNK + 1, SMALL_FILE, SMALL_FILE + 1,
    MAX_CHUNK - 1, MAX_CHUNK, MAX_CHUNK + 1, MIN_CHUNK + MAX_CHUNK, 3 * MAX_CHUNK + 17, 9 * 1024 * 1024 + 5,
]


def _reference(path: Path) -> list[tuple[int, int, str]]:
    """Cut the whole file, then hash each chunk: the pass every stored hash was made with."""
    return [(c.offset, c.length, hash_bytes(c.data)) for c in cut_file(str(path))]


def _pipelined(path: Path) -> list[tuple[int, int, str]]:
    with open(path, "rb") as fh, mapped(fh.fileno(), path.stat().st_size) as view:
        return [tuple(cut) for cut in hashed_cuts(view)]  # type: ignore[misc]


@pytest.mark.parametrize("size", SIZES)
def test_pipelined_cuts_equal_the_reference(tmp_path: Path, size: int) -> None:
    path = tmp_path / "f"
    path.write_bytes(random.Random(size).randbytes(size))
    assert _pipelined(path) == _reference(path)


@pytest.mark.parametrize("size", [MAX_CHUNK * 3 + 1, 5 * 1024 * 1024])
def test_pipelined_cuts_of_uniform_bytes(tmp_path: Path, size: int) -> None:
    """Zeros never hit the mask: every chunk is cut at the maximum size."""
    path = tmp_path / "zeros"
    path.write_bytes(bytes(size))
    cuts = _pipelined(path)
    assert cuts == _reference(path)
    assert [length for _, length, _ in cuts[:-1]] == [MAX_CHUNK] * (len(cuts) - 1)


def test_a_known_content_keeps_its_hash() -> None:
    """The hash of a fixed content, as the store has always named it: a change here breaks dedup."""
    data = random.Random(2026).randbytes(5 * 1024 * 1024 + 123)
    sizes = [len(p) for p in chunk_bytes(data)]
    assert sizes == [723670, 1011506, 1195119, 630993, 750123, 694940, 236652]
    refs = [ChunkRef(hash_bytes(p), len(p)) for p in chunk_bytes(data)]
    assert content_hash(refs) == "1f12ff33681c78d351a989b451fe33964cd85f75c73790f6a93921a631d8fcff"


def test_a_file_and_its_bytes_are_one_content(tmp_path: Path) -> None:
    """A buffer put before (cut in memory) and the same bytes put as a file dedup to nothing new."""
    data = random.Random(5).randbytes(4 * 1024 * 1024 + 99)
    path = tmp_path / "f"
    path.write_bytes(data)
    with Store(str(tmp_path / "store"), fsync=False) as store:
        store.create_repo("r")
        store.put_file("r", "master", "as-bytes", data)
        stored = pack_bytes(store)
        store.put_files("r", "master", [("as-file", path)])
        assert pack_bytes(store) == stored == len(data)
        as_bytes = store.inspect_file("r", "master", "as-bytes")
        as_file = store.inspect_file("r", "master", "as-file")
        assert (as_file.hash, as_file.chunks) == (as_bytes.hash, as_bytes.chunks)
        assert as_file.hash == file_hash(str(path))[0]
        assert [(r.hash, r.size) for r in as_file.chunks] == [(h, n) for _, n, h in _reference(path)]
        assert store.get_file("r", "master", "as-file") == data


def test_a_slow_reader_gets_the_same_cuts_hashed_by_the_cutter(tmp_path: Path) -> None:
    """A reader that lags (it is copying) has the cutter hash the chunks itself: the cuts stay the reference's.

    The reader waits on its first cut until every chunk is cut, so all but
    the first few are hashed by the cutter, not the pool; the test checks
    that it happened, then that nothing differs.
    """
    path = tmp_path / "f"
    path.write_bytes(random.Random(11).randbytes(40 * MAX_CHUNK))
    reference = _reference(path)
    assert len(reference) > 3 * chunking._HASH_INLINE_BEHIND
    pooled = 0
    real = chunking._hashers

    class CountingPool:
        def submit(self, *args: object) -> object:
            nonlocal pooled
            pooled += 1
            return real().submit(*args)

    with (
        open(path, "rb") as fh, mapped(fh.fileno(), path.stat().st_size) as view, pytest.MonkeyPatch.context() as patch,
    ):
        patch.setattr(chunking, "_hashers", CountingPool)
        cuts = hashed_cuts(view)
        first = next(cuts)
        deadline = time.monotonic() + 30  # the cutter runs to the end while the reader holds back
        while _cutting() and time.monotonic() < deadline:
            time.sleep(0.01)
        got = [tuple(first), *(tuple(cut) for cut in cuts)]
    assert got == reference
    assert pooled <= chunking._HASH_INLINE_BEHIND + 1  # the rest were hashed by the cutter


def _cutting() -> bool:
    return any(t.name == "datumflow-cut" and t.is_alive() for t in threading.enumerate())


def test_closing_early_frees_the_buffer(tmp_path: Path) -> None:
    """Once the iterator is closed (or the reader raised), nothing holds the mapping: it closes cleanly."""
    path = tmp_path / "f"
    path.write_bytes(os.urandom(8 * MAX_CHUNK))
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    view = memoryview(mm)
    cuts = hashed_cuts(view)
    first = next(cuts)
    cuts.close()
    assert first == tuple(_reference(path)[0])
    with pytest.raises(RuntimeError, match="stop"):
        for _ in hashed_cuts(view):
            raise RuntimeError("stop")
    view.release()
    mm.close()  # BufferError if a cutter or hasher still held a slice


def test_a_large_file_read_ahead_is_checked(tmp_path: Path) -> None:
    """Chunks read a few ahead on a pool are still checked: a flipped byte fails the read, in order."""
    data = random.Random(9).randbytes(12 * 1024 * 1024)
    with Store(str(tmp_path / "store"), fsync=False) as store:
        store.create_repo("r")
        store.put_file("r", "master", "big", data)
        assert store.get_file("r", "master", "big") == data
        refs = store.inspect_file("r", "master", "big").chunks
        assert len(refs) >= 8
        (pack,) = [p for p in (tmp_path / "store").rglob("*") if p.is_file() and p.parent.parent.name == "packs"]
        flipped = bytearray(pack.read_bytes())
        at = sum(r.size for r in refs[:5]) + 7  # inside the sixth chunk
        flipped[at] ^= 0xFF
        pack.write_bytes(bytes(flipped))
        store.objects.close()
        got = []
        with pytest.raises(CorruptObject, match="does not match its hash"):
            for piece in store.open_file("r", "master", "big"):
                got.append(piece)
        assert b"".join(got) == data[:sum(r.size for r in refs[:5])]  # every chunk before the bad one, whole
