"""A local stat cache: (path, size, mtime_ns, inode, ctime_ns) → content hash, and the commit last synced.

A file whose stat is unchanged since its hash was recorded is not read again.
Next to those entries the cache keeps what the folder was last made equal to
(repo, path in it, commit id) and that commit's (size, hash) of every file
under the path, so a sync whose branch head is still that commit needs no
walk of the commit's index (and a moved head only a diff from it). When every
entry matched that commit and was trusted, the cache says so (``clean``): a
re-sync then only compares the folder's stats with the recorded ones, in bulk.

The cache is an optimisation only: any miss, doubt or damage means files are
hashed again and the commit walked, so deleting the cache (or finding it
corrupt, which is reported as a warning) changes no result. Commits are
immutable, so a recorded commit's files are a fact about it forever; a cache
written for another repo, path or store simply does not match.

Where: one file per local folder, under ``$DATUMFLOW_SYNC_CACHE`` or
``$XDG_CACHE_HOME/datumflow/sync`` (``~/.cache/datumflow/sync``), named by a
hash of the folder's real path, so the synced folder itself holds nothing of
ours. Moving or copying a folder gives it new inodes and a new name: it is
hashed once again, never trusted by mistake. The file is written whole under a
temporary name and renamed, with a BLAKE3 checksum of its body.

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

import array
import contextlib
import hashlib
import json
import logging
import os
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import blake3

__all__ = ["Remote", "Stat", "StatCache", "Synced", "cache_dir", "cache_file"]

log = logging.getLogger(__name__)

_FINE_WINDOW = 100_000_000  # ns: a coarse kernel clock (jiffies) and clock reads, with room to spare
_COARSE_WINDOW = 2_000_000_000  # ns: whole-second (or FAT's two-second) timestamps
_MAGIC = b"datumflow stat cache 2\n"
_DIGEST = 32
_LEN = struct.Struct("<Q")
_SEP = "\0"  # never in a file name, nor in a hash

Remote = dict[str, tuple[int, str]]
"""rel → (size, content hash) of a commit's files under the synced path."""


class Stat(NamedTuple):
    size: int
    mtime_ns: int
    ino: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Stat:
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


class Synced(NamedTuple):
    """What a folder was last made equal to: the files under ``prefix`` of ``repo`` at ``commit``."""

    repo: str
    prefix: str
    commit: str


def cache_dir() -> Path:
    explicit = os.environ.get("DATUMFLOW_SYNC_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "datumflow" / "sync"


def cache_file(folder: str) -> Path:
    """The cache of ``folder``: named by its real path."""
    key = hashlib.sha256(os.path.realpath(folder).encode()).hexdigest()[:32]
    return cache_dir() / f"{key}.cache"


def _trusted(stat: Stat, statted_ns: int) -> bool:
    coarse = stat.mtime_ns % 1_000_000_000 == 0 or stat.ctime_ns % 1_000_000_000 == 0
    limit = statted_ns - (_COARSE_WINDOW if coarse else _FINE_WINDOW)
    return stat.mtime_ns < limit and stat.ctime_ns < limit


class _Damaged(Exception):
    pass


class _Saved:
    """The cache file as read: columns, decoded into maps only when something asks for them."""

    def __init__(self, header: dict[str, Any], columns: list[bytes]) -> None:
        self.header = header
        paths, stats, statted, hashes, remote_paths, remote_sizes, remote_hashes = columns
        self.paths = _strings(paths)
        self.stats = _ints(stats)
        self.statted = _ints(statted)
        self.hashes = _strings(hashes)
        self.remote_paths = _strings(remote_paths)
        self.remote_sizes = _ints(remote_sizes)
        self.remote_hashes = _strings(remote_hashes)
        n, m = len(self.paths), len(self.remote_paths)
        if (len(self.stats), len(self.statted), len(self.hashes)) != (4 * n, n, n) or (
            (len(self.remote_sizes), len(self.remote_hashes)) != (m, m)
        ):
            raise _Damaged("columns of different lengths")

    def entries(self) -> dict[str, tuple[Stat, str, int]]:
        s = self.stats
        return {
            path: (Stat(s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]), self.hashes[i], self.statted[i])
            for i, path in enumerate(self.paths)
        }

    def remote(self) -> Remote:
        return dict(zip(self.remote_paths, zip(self.remote_sizes, self.remote_hashes, strict=True), strict=True))


def _strings(blob: bytes) -> list[str]:
    return blob.decode("utf-8", "surrogateescape").split(_SEP) if blob else []


def _ints(blob: bytes) -> array.array[int]:
    if len(blob) % 8:
        raise _Damaged("a column of integers has a partial item")
    out = array.array("q")
    out.frombytes(blob)
    return out


def _blob(strings: Iterable[str]) -> bytes:
    return _SEP.join(strings).encode("utf-8", "surrogateescape")


class StatCache:
    """The cache of one folder: read whole on open, written back whole by :meth:`save` when it changed."""

    def __init__(self, folder: str, *, enabled: bool = True) -> None:
        self.path = cache_file(folder)
        self.enabled = enabled
        self._saved: _Saved | None = self._read() if enabled else None
        self._known: dict[str, tuple[Stat, str, int]] | None = None
        self._synced: Synced | None = self._saved_synced()
        self._remote: Remote | None = None
        self._dirty = False

    # -- reading -----------------------------------------------------------------

    def _read(self) -> _Saved | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cannot read the sync stat cache %s (%s); files will be hashed again", self.path, exc)
            return None
        try:
            return _parse(data)
        except (_Damaged, ValueError, UnicodeDecodeError, struct.error) as exc:
            log.warning("the sync stat cache %s is damaged (%s); ignoring it: files will be hashed again",
                        self.path, exc)
            with contextlib.suppress(OSError):
                self.path.unlink()
            return None

    def _saved_synced(self) -> Synced | None:
        found = self._saved.header.get("synced") if self._saved else None
        if not isinstance(found, list) or len(found) != 3 or not all(isinstance(x, str) for x in found):
            return None
        return Synced(*found)

    @property
    def synced(self) -> Synced | None:
        """The commit the folder was last made equal to (None: unknown)."""
        return self._synced

    @property
    def remote(self) -> Remote:
        """The files of :attr:`synced` under its path (empty when it is None)."""
        if self._remote is None:
            self._remote = self._saved.remote() if self._saved and self._synced else {}
        return self._remote

    def unchanged(self, synced: Synced, paths: Sequence[str], stats: array.array[int], *,
                  remote_extra_ok: bool) -> bool:
        """True if the folder, scanned as (``paths``, flat ``stats``), still equals ``synced``.

        That is: the cache was written right after a sync with that very commit,
        every entry then was trusted and held the commit's content, and no stat
        moved since. ``remote_extra_ok``: files of the commit missing locally do
        not count (a sync up without delete leaves them alone).
        """
        saved = self._saved
        if saved is None or self._dirty or self._synced != synced or not saved.header.get("clean"):
            return False
        if not remote_extra_ok and saved.header.get("remote_only", 1):
            return False
        return saved.paths == list(paths) and saved.stats == stats

    def _entries(self) -> dict[str, tuple[Stat, str, int]]:
        if self._known is None:
            self._known = self._saved.entries() if self._saved else {}
        return self._known

    def lookup(self, path: str, stat: Stat) -> str | None:
        """The recorded hash of ``path``, if its stat is unchanged and was not racy when recorded."""
        found = self._entries().get(path)
        if found is None or found[0] != stat or not _trusted(stat, found[2]):
            return None
        return found[1]

    # -- changing ----------------------------------------------------------------

    def record(self, path: str, stat: Stat, content_hash: str, statted_ns: int) -> None:
        """``content_hash`` is the file's content as of (or after) a stat taken at ``statted_ns``."""
        entry = (stat, content_hash, statted_ns)
        known = self._entries()
        if known.get(path) != entry:
            known[path] = entry
            self._dirty = True

    def forget_except(self, present: set[str]) -> None:
        """Drop the entries of files that no longer exist."""
        known = self._entries()
        gone = [p for p in known if p not in present]
        for path in gone:
            del known[path]
        self._dirty = self._dirty or bool(gone)

    def set_synced(self, synced: Synced | None, remote: Remote) -> None:
        """The folder has just been made equal to ``synced``, whose files under its path are ``remote``."""
        if synced != self._synced or remote != self.remote:
            self._synced, self._remote = synced, remote
            self._dirty = True

    def save(self, order: Sequence[str] = ()) -> None:
        """Write the cache back if it changed; entries in ``order`` first (the scan's), for the bulk compare."""
        if not self.enabled or not self._dirty:
            return
        known = self._entries()
        listed = set(order)
        paths = [p for p in order if p in known] + sorted(p for p in known if p not in listed)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            part = self.path.with_name(f"{self.path.name}.{os.getpid()}.part")
            part.write_bytes(_render(self._header(known, paths), known, paths, self._synced, self.remote))
            os.replace(part, self.path)
        except OSError as exc:  # a cache that cannot be written costs time next run, never correctness
            log.warning("cannot write the sync stat cache %s (%s)", self.path, exc)
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
        self._dirty = False

    def _header(self, known: dict[str, tuple[Stat, str, int]], paths: list[str]) -> dict[str, Any]:
        remote = self.remote if self._synced else {}
        clean = self._synced is not None and all(
            (r := remote.get(p)) is not None and r[1] == e[1] and _trusted(e[0], e[2])
            for p in paths for e in (known[p],)
        )
        return {"synced": list(self._synced) if self._synced else None, "clean": clean,
                "remote_only": sum(1 for p in remote if p not in known)}


def _render(header: dict[str, Any], known: dict[str, tuple[Stat, str, int]], paths: list[str],
            synced: Synced | None, remote: Remote) -> bytes:
    entries = [known[p] for p in paths]
    stats = array.array("q", [x for e in entries for x in e[0]])
    statted = array.array("q", [e[2] for e in entries])
    remote_paths = sorted(remote) if synced else []
    columns = [
        json.dumps(header).encode(), _blob(paths), stats.tobytes(), statted.tobytes(), _blob(e[1] for e in entries),
        _blob(remote_paths), array.array("q", [remote[p][0] for p in remote_paths]).tobytes(),
        _blob(remote[p][1] for p in remote_paths),
    ]
    body = b"".join(_LEN.pack(len(c)) + c for c in columns)
    return _MAGIC + blake3.blake3(body).digest() + body


def _parse(data: bytes) -> _Saved:
    if not data.startswith(_MAGIC):
        raise _Damaged("not a stat cache of this version")
    digest, body = data[len(_MAGIC):len(_MAGIC) + _DIGEST], memoryview(data)[len(_MAGIC) + _DIGEST:]
    if blake3.blake3(body).digest() != digest:
        raise _Damaged("checksum mismatch")
    columns: list[bytes] = []
    offset = 0
    while offset < len(body):
        (size,) = _LEN.unpack_from(body, offset)
        offset += _LEN.size
        if offset + size > len(body):
            raise _Damaged("truncated")
        columns.append(bytes(body[offset:offset + size]))
        offset += size
    if len(columns) != 8:
        raise _Damaged(f"{len(columns)} columns")
    header = json.loads(columns[0])
    if not isinstance(header, dict):
        raise _Damaged("no header")
    return _Saved(header, columns[1:])
