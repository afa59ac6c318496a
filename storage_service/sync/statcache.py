"""A local stat cache: (path, size, mtime_ns, inode, ctime_ns) → content hash.

A file whose stat is unchanged since its hash was recorded is not read again.
The cache is an optimisation only: any miss, doubt or damage means the file is
hashed again, so deleting the cache (or finding it corrupt) changes no result.

Where: one SQLite file per local folder, under ``$DATUMFLOW_SYNC_CACHE`` or
``$XDG_CACHE_HOME/datumflow/sync`` (``~/.cache/datumflow/sync``), named by a
hash of the folder's real path, so the synced folder itself holds nothing of
ours. Moving or copying a folder gives it new inodes and a new name: it is
hashed once again, never trusted by mistake.

Racy entries (as git has them): a file changed again within the timestamp
granularity of the moment its stat was taken can keep the same size, mtime
and ctime. So an entry is trusted only when the file's mtime and ctime are
older than the time of that stat by more than the granularity (0.1 s, or 2 s
when the timestamps are whole seconds, as on FAT, SMB or older filesystems);
otherwise the file is hashed again next time, and then recorded as trusted.
A file stamped in the future is always hashed. Clocks of network filesystems
that run behind this machine's by more than the window defeat this check.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import time
from pathlib import Path
from typing import NamedTuple

__all__ = ["Stat", "StatCache", "cache_dir", "cache_file"]

_FINE_WINDOW = 100_000_000  # ns: a coarse kernel clock (jiffies) and clock reads, with room to spare
_COARSE_WINDOW = 2_000_000_000  # ns: whole-second (or FAT's two-second) timestamps
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
    " ino INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, hash TEXT NOT NULL, statted_ns INTEGER NOT NULL)"
)


class Stat(NamedTuple):
    size: int
    mtime_ns: int
    ino: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Stat:
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def cache_dir() -> Path:
    explicit = os.environ.get("DATUMFLOW_SYNC_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "datumflow" / "sync"


def cache_file(folder: str) -> Path:
    """The cache of ``folder``: named by its real path."""
    key = hashlib.sha256(os.path.realpath(folder).encode()).hexdigest()[:32]
    return cache_dir() / f"{key}.db"


def _trusted(stat: Stat, statted_ns: int) -> bool:
    coarse = stat.mtime_ns % 1_000_000_000 == 0 or stat.ctime_ns % 1_000_000_000 == 0
    limit = statted_ns - (_COARSE_WINDOW if coarse else _FINE_WINDOW)
    return stat.mtime_ns < limit and stat.ctime_ns < limit


class StatCache:
    """The cache of one folder: loaded whole on open, changes written back by :meth:`save`."""

    def __init__(self, folder: str, *, enabled: bool = True) -> None:
        self.path = cache_file(folder)
        self.enabled = enabled
        self._known: dict[str, tuple[Stat, str, int]] = {}
        self._dirty: dict[str, tuple[Stat, str, int] | None] = {}
        if enabled:
            self._known = self._load()

    def _load(self) -> dict[str, tuple[Stat, str, int]]:
        if not self.path.exists():
            return {}
        try:
            with contextlib.closing(sqlite3.connect(self.path)) as db:
                rows = db.execute("SELECT path, size, mtime_ns, ino, ctime_ns, hash, statted_ns FROM entries")
                return {r[0]: (Stat(r[1], r[2], r[3], r[4]), r[5], r[6]) for r in rows}
        except sqlite3.Error:  # damaged or foreign: start afresh (it only ever saves work)
            self.path.unlink(missing_ok=True)
            return {}

    def lookup(self, path: str, stat: Stat) -> str | None:
        """The recorded hash of ``path``, if its stat is unchanged and was not racy when recorded."""
        found = self._known.get(path)
        if found is None or found[0] != stat or not _trusted(stat, found[2]):
            return None
        return found[1]

    def record(self, path: str, stat: Stat, content_hash: str, statted_ns: int) -> None:
        """``content_hash`` is the file's content as of (or after) a stat taken at ``statted_ns``."""
        entry = (stat, content_hash, statted_ns)
        if self._known.get(path) != entry:
            self._known[path] = entry
            self._dirty[path] = entry

    def forget_except(self, present: set[str]) -> None:
        """Drop the entries of files that no longer exist."""
        for path in [p for p in self._known if p not in present]:
            del self._known[path]
            self._dirty[path] = None

    def save(self) -> None:
        if not self.enabled or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with contextlib.closing(sqlite3.connect(self.path)) as db, db:
                db.execute(_SCHEMA)
                gone = [(p,) for p, e in self._dirty.items() if e is None]
                db.executemany("DELETE FROM entries WHERE path = ?", gone)
                db.executemany(
                    "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(p, *e[0], e[1], e[2]) for p, e in self._dirty.items() if e is not None],
                )
        except sqlite3.Error:  # a cache that cannot be written costs time next run, never correctness
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
        self._dirty.clear()


def now_ns() -> int:
    return time.time_ns()
