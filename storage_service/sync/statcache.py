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
temporary name and renamed, with a BLAKE3 checksum of its body. A re-sync that
changed a few rows of a folder holding the same files (the in-place mode, see
:meth:`StatCache.in_place`) appends those rows instead, as a *patch* record
chained to the body's checksum (as git's split index keeps a shared base and
a small delta): the file costs what changed, not what exists, until the patches
outgrow a sixteenth of the body and the next save writes it whole again. A
patch torn by a crash fails its checksum and is ignored, with the ones after it.

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
import bisect
import contextlib
import fcntl
import functools
import hashlib
import itertools
import json
import logging
import mmap
import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import blake3

__all__ = ["SEP", "Remote", "Stat", "StatCache", "Synced", "cache_dir", "cache_file"]

log = logging.getLogger(__name__)

_FINE_WINDOW = 100_000_000  # ns: a coarse kernel clock (jiffies) and clock reads, with room to spare
_COARSE_WINDOW = 2_000_000_000  # ns: whole-second (or FAT's two-second) timestamps
_MAGIC = b"datumflow stat cache 4\n"
_DIGEST = 32
_LEN = struct.Struct("<Q")
SEP = _SEP = "\0"  # never in a file name, nor in a hash
_BLOCK = 32  # entries compared at once by the bulk compare
_WIDTH = 2 * _DIGEST + 1  # a hex digest and its separator, in a column of hashes
_PATCHES = 16  # patch records appended before the file is written whole again
# ... or once they hold a sixteenth of the body's bytes: every read applies them all (about 1.5 ms per
# thousand files edited), a rewrite costs about as much as reading 15,000 rows of patches. For edits of
# 1 % of a folder, every seventh re-sync writes the file whole.
_PATCH_SHARE = 16

Buffer = bytes | bytearray | memoryview
"""A column: bytes, or a view of the file as mapped."""

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


StatTuple = tuple[int, int, int, int]
"""A :class:`Stat` as a plain tuple (what scans and the cache hold: no object per file)."""

Entry = tuple[StatTuple, str, int]
"""(stat, content hash, statted_ns): the hash of the content as of a stat taken at statted_ns."""


def _trusted(stat: StatTuple, statted_ns: int) -> bool:
    _, mtime_ns, _, ctime_ns = stat
    coarse = mtime_ns % 1_000_000_000 == 0 or ctime_ns % 1_000_000_000 == 0
    limit = statted_ns - (_COARSE_WINDOW if coarse else _FINE_WINDOW)
    return mtime_ns < limit and ctime_ns < limit


class _Damaged(Exception):
    pass


class _OtherVersion(Exception):
    pass


class _Patch(NamedTuple):
    """Rows of the columns replaced, in the in-place mode: what a patch record holds."""

    header: dict[str, Any]  # the header's keys that change ("synced", "clean")
    local: dict[int, tuple[StatTuple, int, str, int]]  # row → (stat, statted_ns, hash, clean flag)
    remote: dict[int, tuple[int, str]]  # row of the synced commit's files → (size, hash)


class _Tail(NamedTuple):
    """Where the file read ends, for a patch appended to it: it must still be that very file, that long."""

    ino: int
    end: int  # bytes of the file up to the last good patch
    digest: bytes  # the checksum the next patch chains to
    patches: int
    patch_bytes: int
    body: int  # bytes of the body the patches are to


class _Saved:
    """The cache file as read: columns, decoded into maps only when something asks for them.

    The columns of hashes stay where they were read (a mapping of the file):
    rows that patches replaced are looked up in ``_replaced`` first.
    """

    def __init__(self, header: dict[str, Any], columns: list[Buffer]) -> None:
        self.header = header
        self.tail: _Tail | None = None
        paths, stats, statted, hashes, flags, remote_paths, remote_sizes, remote_hashes = columns
        self.paths_blob = bytes(paths)
        self.stats = _ints(stats)
        self.flags = bytearray(flags)
        remote_paths = bytes(remote_paths)  # counted, compared and decoded: copied out of the mapping once
        self._raw = {"statted": statted, "hashes": hashes, "remote_paths": remote_paths,
                     "remote_sizes": remote_sizes, "remote_hashes": remote_hashes}
        self._replaced: dict[str, dict[int, str]] = {"hashes": {}, "remote_hashes": {}}
        n, m = len(self.stats) // 4, len(remote_sizes) // 8
        # Lengths are checked now, without decoding what an unchanged re-sync never needs.
        if (_count(self.paths_blob), len(statted), _strings_of(hashes, n), len(flags)) != (n, 8 * n, n, n) or (
            (_count(remote_paths), _strings_of(remote_hashes, m)) != (m, m)
        ):
            raise _Damaged("columns of different lengths")

    @functools.cached_property
    def paths(self) -> list[str]:
        return _strings(self.paths_blob)

    @functools.cached_property
    def fixed(self) -> bool:
        """Every hash (of both hash columns) is a hex digest of the usual width: item i is at a fixed offset."""
        n, m = len(self.flags), len(self._raw["remote_sizes"]) // 8
        return all(len(blob) == (count * _WIDTH - 1 if count else 0)
                   for blob, count in ((self._raw["hashes"], n), (self._raw["remote_hashes"], m)))

    def _hash(self, column: str, i: int) -> str:
        found = self._replaced[column].get(i)
        return found if found is not None else str(self._raw[column][_WIDTH * i:_WIDTH * i + _WIDTH - 1], "ascii")

    def hash_at(self, i: int) -> str:
        """The recorded hash of entry ``i`` (needs :attr:`fixed`)."""
        return self._hash("hashes", i)

    @functools.cached_property
    def same_order(self) -> bool:
        """The synced commit's files are the entries' paths, row for row (as after a sync of a whole folder)."""
        return self._raw["remote_paths"] == self.paths_blob

    def remote_at(self, path: str, row: int | None = None) -> tuple[int, tuple[int, str]] | None:
        """(row, (size, hash)) of ``path`` among the synced commit's files (needs :attr:`fixed`).

        ``row``: the entry's row of ``path``, if the caller knows it (then, in the same order, no search).
        """
        if row is not None and self.same_order:
            j = row
        else:
            paths = self.remote_paths
            j = bisect.bisect_left(paths, path)
            if j == len(paths) or paths[j] != path:
                return None
        return j, (self.remote_sizes[j], self._hash("remote_hashes", j))

    @functools.cached_property
    def statted(self) -> array.array[int]:
        return _ints(self._raw["statted"])

    @functools.cached_property
    def hashes(self) -> list[str]:
        return self._strings_replaced("hashes")

    @functools.cached_property
    def remote_paths(self) -> list[str]:
        return _strings(self._raw["remote_paths"])

    @functools.cached_property
    def remote_sizes(self) -> array.array[int]:
        return _ints(self._raw["remote_sizes"])

    @functools.cached_property
    def remote_hashes(self) -> list[str]:
        return self._strings_replaced("remote_hashes")

    def _strings_replaced(self, column: str) -> list[str]:
        out = _strings(self._raw[column])
        for i, value in self._replaced[column].items():
            out[i] = value
        return out

    def stat_tuples(self) -> Iterator[StatTuple]:
        s = self.stats
        return zip(s[0::4], s[1::4], s[2::4], s[3::4], strict=True)

    def entries(self) -> dict[str, Entry]:
        return dict(zip(self.paths, zip(self.stat_tuples(), self.hashes, self.statted, strict=True), strict=True))

    def clean(self) -> dict[str, StatTuple]:
        """path → stat of the entries that were trusted and held the synced commit's content."""
        return dict(itertools.compress(zip(self.paths, self.stat_tuples(), strict=True), self.flags))

    def entry(self, i: int) -> Entry:
        s = self.stats
        return (s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]), self.hashes[i], self.statted[i]

    def remote(self) -> Remote:
        return dict(zip(self.remote_paths, zip(self.remote_sizes, self.remote_hashes, strict=True), strict=True))

    def apply(self, patch: _Patch) -> None:
        """Replace the rows ``patch`` gives (read from a patch record, or just appended as one)."""
        n, m = len(self.flags), len(self._raw["remote_sizes"]) // 8
        if not self.fixed or not all(0 <= i < n for i in patch.local) or not all(0 <= j < m for j in patch.remote):
            raise _Damaged("a patch of rows that are not there")
        stats, statted, flags, sizes = self.stats, self.statted, self.flags, self.remote_sizes
        hashes, remote_hashes = self._replaced["hashes"], self._replaced["remote_hashes"]
        for i, (stat, when, content, flag) in patch.local.items():
            stats[4 * i:4 * i + 4] = array.array("q", stat)
            statted[i], flags[i], hashes[i] = when, flag, content
        for j, (size, content) in patch.remote.items():
            sizes[j], remote_hashes[j] = size, content
        for decoded in ("hashes", "remote_hashes"):  # decoded before: stale now
            self.__dict__.pop(decoded, None)
        self.header = {**self.header, **patch.header}

    def columns(self) -> list[Buffer]:
        """The columns, as the file's body holds them."""
        raw = self._raw
        return [self.paths_blob, self.stats.tobytes(), self.statted.tobytes(), self._column("hashes"), self.flags,
                raw["remote_paths"], self.remote_sizes.tobytes(), self._column("remote_hashes")]

    def _column(self, name: str) -> Buffer:
        replaced = self._replaced[name]
        if not replaced:
            return self._raw[name]
        out = bytearray(self._raw[name])
        for i, value in replaced.items():
            out[_WIDTH * i:_WIDTH * i + _WIDTH - 1] = value.encode()
        return out


def _strings(blob: Buffer) -> list[str]:
    return str(blob, "utf-8", "surrogateescape").split(_SEP) if len(blob) else []


def _count(blob: Buffer) -> int:
    """How many strings :func:`_strings` would give."""
    return bytes(blob).count(_SEP.encode()) + 1 if len(blob) else 0


def _strings_of(blob: Buffer, expected: int) -> int:
    """How many strings a column of hashes holds: at once when all are hex digests of the usual width."""
    if expected and len(blob) == expected * _WIDTH - 1:
        return expected  # as many separators as that width implies; the checksum vouches for the rest
    return _count(blob)


def _ints(blob: Buffer) -> array.array[int]:
    if len(blob) % 8:
        raise _Damaged("a column of integers has a partial item")
    out = array.array("q")
    out.frombytes(blob)
    return out


def _blob(strings: Iterable[str]) -> bytes:
    return _SEP.join(strings).encode("utf-8", "surrogateescape")


class StatCache:
    """The cache of one folder: read whole on open, written back by :meth:`save` when it changed.

    What was read stays in columns; what changes since is an overlay (by path),
    so that a sync which records a few files writes the columns back patched,
    not rebuilt from an object per file.
    """

    def __init__(self, folder: str, *, enabled: bool = True) -> None:
        self.path = cache_file(folder)
        self.enabled = enabled
        self._saved: _Saved | None = self._read() if enabled else None
        self._index_of: dict[str, int] | None = None
        self._overlay: dict[str, Entry | None] = {}  # recorded (or, None, forgotten) since read
        self._synced: Synced | None = self._saved_synced()
        self._remote: Remote | None = None
        self._remote_moved: set[str] = set()  # paths whose entry in the synced commit changed since read
        # The in-place mode (see in_place): entries recorded by row, and the synced commit's rows replaced.
        self._at: dict[int, Entry] = {}
        self._at_paths: dict[int, str] = {}
        self._remote_at: dict[int, tuple[int, str]] = {}
        self._dirty = False

    # -- reading -----------------------------------------------------------------

    def _read(self) -> _Saved | None:
        try:
            with open(self.path, "rb") as fh:
                st = os.fstat(fh.fileno())
                # Mapped, not read: a large folder's cache is tens of MB, of which a re-sync decodes little.
                # The file is never truncated in place (written anew, or appended to), so the view holds.
                data: bytes | mmap.mmap = (mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if st.st_size
                                           else b"")
                ino = st.st_ino
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("cannot read the sync stat cache %s (%s); files will be hashed again", self.path, exc)
            return None
        try:
            return _parse(data, ino)
        except _OtherVersion:  # written by another version of datumflow: not damage, just not ours to read
            log.info("the sync stat cache %s has another format; starting afresh", self.path)
            return None
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
    def _index(self) -> dict[str, int]:
        if self._index_of is None:
            paths = self._saved.paths if self._saved else []
            self._index_of = dict(zip(paths, range(len(paths)), strict=True))
        return self._index_of

    @property
    def synced(self) -> Synced | None:
        """The commit the folder was last made equal to (None: unknown)."""
        return self._synced

    @property
    def remote(self) -> Remote:
        """The files of :attr:`synced` under its path (empty when it is None)."""
        if self._remote is None:
            self._remote = self._saved.remote() if self._saved and self._synced else {}
            if self._remote_at:
                assert self._saved is not None
                paths = self._saved.remote_paths
                for j, entry in self._remote_at.items():
                    self._remote[paths[j]] = entry
        return self._remote

    def unchanged(self, synced: Synced, paths: bytes, stats: array.array[int], *,
                  remote_extra_ok: bool) -> bool:
        """True if the folder, scanned as (``paths`` joined by NUL, flat ``stats``), still equals ``synced``.

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
        return saved.paths_blob == paths and saved.stats == stats

    def in_place(self, synced: Synced, paths: bytes, stats: array.array[int], *, delete: bool) -> list[int] | None:
        """The rows whose stat moved, when the folder holds the very files it held when it was last made
        equal to ``synced`` (None otherwise: compare in full).

        That is the common re-sync after a few edits: same paths, every entry
        clean then, the branch still at that commit. Its work is then by row,
        in O(changes): :meth:`record_at`, :meth:`remote_at`,
        :meth:`advance_in_place`, and a save that patches the columns read.
        With ``delete``, the commit must hold no file the folder lacks.
        """
        saved = self._saved
        if (saved is None or self._dirty or self._overlay or self._synced != synced
                or not saved.header.get("clean") or saved.paths_blob != paths or not saved.fixed):
            return None
        if delete and saved.header.get("remote_only", 1):
            return None
        old = saved.stats
        if len(old) != len(stats):
            return None
        rows: list[int] = []
        for first in range(0, len(stats) // 4, _BLOCK):
            lo, hi = 4 * first, 4 * (first + _BLOCK)
            if stats[lo:hi] != old[lo:hi]:
                rows.extend(i for i in range(first, min(first + _BLOCK, len(stats) // 4))
                            if stats[4 * i:4 * i + 4] != old[4 * i:4 * i + 4])
        return rows

    def remote_at(self, path: str, row: int | None = None) -> tuple[int, tuple[int, str]] | None:
        """(row, (size, hash)) of ``path`` in the synced commit, in the in-place mode (``row``: its entry's)."""
        assert self._saved is not None
        found = self._saved.remote_at(path, row)
        if found is not None and found[0] in self._remote_at:
            return found[0], self._remote_at[found[0]]
        return found

    def entry_at(self, row: int) -> Entry | None:
        """What :meth:`record_at` recorded for ``row``, in the in-place mode (None: nothing)."""
        return self._at.get(row)

    def record_at(self, row: int, path: str, stat: StatTuple, content_hash: str, statted_ns: int) -> None:
        """:meth:`record` of the entry in ``row`` (of ``path``), in the in-place mode."""
        self._at[row] = (tuple(stat), content_hash, statted_ns)  # type: ignore[assignment]
        self._at_paths[row] = path
        self._dirty = True

    def advance_in_place(self, synced: Synced, moved: dict[int, tuple[int, str]]) -> None:
        """The folder now equals ``synced``, whose files are the last synced commit's with the rows in
        ``moved`` (of that commit's files) replaced by new (size, hash)."""
        self._remote_at.update(moved)
        self._synced = synced
        self._remote = None
        self._dirty = True

    def forget_synced(self) -> None:
        """The folder's match with any commit is no longer known (its entries, by row, stay)."""
        self._synced, self._remote = None, None
        self._remote_at.clear()
        self._dirty = True

    def settled(self, paths: list[str], stats: array.array[int]) -> set[str]:
        """The files (of a scan) whose stat is the one recorded when they were found to hold the content
        :attr:`synced` has for them (and were trusted then). Empty once anything was recorded."""
        saved = self._saved
        if saved is None or self._synced is None or self._dirty:
            return set()
        if saved.paths != paths:  # files came or went: compare by path
            files = dict(zip(paths, zip(stats[0::4], stats[1::4], stats[2::4], stats[3::4], strict=True),
                             strict=True))
            return {rel for rel, _ in files.items() & saved.clean().items()}
        mask = bytearray(saved.flags)
        old = saved.stats
        if stats != old:  # same files: compare in blocks, then within the blocks that differ
            for first in range(0, len(paths), _BLOCK):
                lo, hi = 4 * first, 4 * (first + _BLOCK)
                if stats[lo:hi] != old[lo:hi]:
                    for i in range(first, min(first + _BLOCK, len(paths))):
                        if stats[4 * i:4 * i + 4] != old[4 * i:4 * i + 4]:
                            mask[i] = 0
        return set(itertools.compress(paths, mask))

    def _entry(self, path: str) -> Entry | None:
        if path in self._overlay:
            return self._overlay[path]
        i = self._index.get(path)
        if i is not None and i in self._at:
            return self._at[i]
        return None if i is None or self._saved is None else self._saved.entry(i)

    def lookup(self, path: str, stat: StatTuple) -> str | None:
        """The recorded hash of ``path``, if its stat is unchanged and was not racy when recorded."""
        found = self._entry(path)
        if found is None or found[0] != stat or not _trusted(stat, found[2]):
            return None
        return found[1]

    # -- changing ----------------------------------------------------------------

    def record(self, path: str, stat: StatTuple, content_hash: str, statted_ns: int) -> None:
        """``content_hash`` is the file's content as of (or after) a stat taken at ``statted_ns``."""
        entry: Entry = (tuple(stat), content_hash, statted_ns)  # type: ignore[assignment]
        if self._entry(path) != entry:
            self._overlay[path] = entry
            self._dirty = True

    def forget_except(self, present: set[str] | list[str]) -> None:
        """Drop the entries of files that no longer exist (``present``: a set, or a scan's paths)."""
        if isinstance(present, list):
            if self._saved is not None and self._saved.paths == present and self._overlay.keys() <= self._index.keys():
                return  # the very files read: nothing is gone
            present = set(present)
        gone = (self._index.keys() - present) | {p for p, e in self._overlay.items() if e and p not in present}
        for path in gone:
            if self._entry(path) is not None:
                self._overlay[path] = None
                self._dirty = True

    def set_synced(self, synced: Synced | None, remote: Remote, moved: set[str] | None = None) -> None:
        """The folder has just been made equal to ``synced``, whose files under its path are ``remote``.

        ``moved``: the paths whose entry differs from :attr:`remote`'s, if the caller knows (from a diff).
        """
        if moved is None or self._synced is None or not (self._saved and self._saved.header.get("synced")):
            moved = {p for p, _ in remote.items() ^ self.remote.items()}
        if synced != self._synced or moved:
            self._synced, self._remote = synced, remote
            self._remote_moved |= moved
            self._dirty = True

    def save(self, order: Sequence[str] = ()) -> None:
        """Write the cache back if it changed; entries in ``order`` first (the scan's), for the bulk compare."""
        if not self.enabled or not self._dirty:
            return
        saved = self._saved
        if saved is not None and (self._at or self._remote_at) and not self._overlay and not self._remote_moved:
            patch = self._row_patch()
            if self._appended(patch):
                self._dirty = False
                return
            saved.apply(patch)
            data = _render_columns(saved.header, saved.columns())
        else:
            same_files = (saved is not None and all(self._overlay.values())
                          and self._overlay.keys() <= self._index.keys() and list(order) == saved.paths)
            data = self._patched() if same_files else self._rendered(order)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            part = self.path.with_name(f"{self.path.name}.{os.getpid()}.part")
            with open(part, "wb") as fh:
                fh.writelines(data)
            # Out of the way first: renamed over a file, ext4 allocates and starts writing the new one's
            # blocks in the rename (tens of milliseconds for a large folder). A crash between the two
            # leaves no cache, which costs one sync its speed, never a result.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            os.replace(part, self.path)
        except OSError as exc:  # a cache that cannot be written costs time next run, never correctness
            log.warning("cannot write the sync stat cache %s (%s)", self.path, exc)
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
        self._dirty = False

    def _row_patch(self) -> _Patch:
        """The rows the in-place mode changed: O(changes)."""
        saved = self._saved
        assert saved is not None and saved.fixed
        local: dict[int, tuple[StatTuple, int, str, int]] = {}
        for i, entry in self._at.items():
            found = self.remote_at(self._at_paths[i], i)
            local[i] = (entry[0], entry[2], entry[1], _clean(entry, found[1] if found else None))
        # Rows of the commit replaced without a local entry recorded: their entry no longer matches.
        if self._remote_at:
            at_rows = {found[0] for i, p in self._at_paths.items() if (found := saved.remote_at(p, i))}
            for j in set(self._remote_at) - at_rows:
                row = j if saved.same_order else self._index.get(saved.remote_paths[j])
                if row is not None:
                    entry = self._entry(saved.remote_paths[j]) or saved.entry(row)
                    local[row] = (entry[0], entry[2], entry[1], _clean(entry, self._remote_at[j]))
        flags = saved.flags
        unclean = flags.count(0) + sum(bool(flags[i]) - bool(row[3]) for i, row in local.items())
        header = {"synced": list(self._synced) if self._synced else None,
                  "clean": self._synced is not None and unclean == 0}
        return _Patch(header, local, dict(self._remote_at))

    def _appended(self, patch: _Patch) -> bool:
        """Append ``patch`` to the file read, if it is still that file and the patches stay small."""
        saved = self._saved
        tail = saved.tail if saved else None
        if saved is None or tail is None or tail.patches >= _PATCHES:
            return False
        payload = _encode_patch(patch)
        record_len = _LEN.size + _DIGEST + len(payload)
        if tail.patch_bytes + record_len > tail.body // _PATCH_SHARE:
            return False
        digest = blake3.blake3(tail.digest)
        digest.update(payload)
        mark = digest.digest()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # two appenders: the second finds the file longer, and writes it whole
            st = os.fstat(fd)
            if (st.st_ino, st.st_size) != (tail.ino, tail.end):
                return False
            if os.write(fd, b"".join((_LEN.pack(len(payload)), mark, payload))) != record_len:
                return False  # a torn record (a full disk): ignored when read; the file is written whole now
        except OSError:
            return False
        finally:
            os.close(fd)
        saved.apply(patch)
        saved.tail = tail._replace(end=tail.end + record_len, digest=mark, patches=tail.patches + 1,
                                   patch_bytes=tail.patch_bytes + record_len)
        return True

    def _patched(self) -> list[Buffer]:
        """The columns as read, with the entries recorded since (and flags of paths whose commit side moved)."""
        saved = self._saved
        assert saved is not None
        stats, statted = array.array("q", saved.stats), array.array("q", saved.statted)
        hashes, flags = list(saved.hashes), bytearray(saved.flags)
        remote = self.remote
        for path in self._overlay.keys() | self._remote_moved:
            i = self._index.get(path)
            entry = self._entry(path)
            if i is None or entry is None:
                continue
            stats[4 * i:4 * i + 4] = array.array("q", entry[0])
            statted[i], hashes[i] = entry[2], entry[1]
            flags[i] = _clean(entry, remote.get(path))
        header = self._header(flags, self._index.keys())
        return _render(header, saved.paths, stats, statted, hashes, bytes(flags), self._remote_columns())

    def _rendered(self, order: Sequence[str]) -> list[Buffer]:
        known = self._saved.entries() if self._saved else {}
        for path, entry in self._overlay.items():
            if entry is None:
                known.pop(path, None)
            else:
                known[path] = entry
        listed = set(order)
        paths = [p for p in order if p in known] + sorted(p for p in known if p not in listed)
        entries = [known[p] for p in paths]
        remote = self.remote
        flags = bytes(_clean(e, remote.get(p)) for p, e in zip(paths, entries, strict=True))
        stats = array.array("q", [x for e in entries for x in e[0]])
        statted = array.array("q", [e[2] for e in entries])
        return _render(self._header(flags, known.keys()), paths, stats, statted, [e[1] for e in entries], flags,
                       self._remote_columns())

    def _remote_columns(self) -> tuple[list[str], array.array[int], list[str]]:
        """(paths, sizes, hashes) of :attr:`remote`: the columns read, patched, when only contents moved."""
        remote = self.remote if self._synced else {}
        saved = self._saved
        if saved is not None and saved.header.get("synced") and self._synced:
            index = dict(zip(saved.remote_paths, range(len(saved.remote_paths)), strict=True))
            if all((p in index) == (p in remote) for p in self._remote_moved):
                sizes, hashes = array.array("q", saved.remote_sizes), list(saved.remote_hashes)
                for p in self._remote_moved:
                    i = index.get(p)
                    if i is not None:
                        sizes[i], hashes[i] = remote[p]
                return saved.remote_paths, sizes, hashes
        paths = sorted(remote)
        return paths, array.array("q", [remote[p][0] for p in paths]), [remote[p][1] for p in paths]

    def _header(self, flags: bytes | bytearray, known: Iterable[str]) -> dict[str, Any]:
        remote = self.remote if self._synced else {}
        return {"synced": list(self._synced) if self._synced else None,
                "clean": self._synced is not None and all(flags),
                "remote_only": len(remote.keys() - known)}


def _clean(entry: Entry, remote: tuple[int, str] | None) -> int:
    return int(remote is not None and remote[1] == entry[1] and _trusted(entry[0], entry[2]))


def _render(header: dict[str, Any], paths: list[str], stats: array.array[int], statted: array.array[int],
            hashes: list[str], flags: bytes, remote: tuple[list[str], array.array[int], list[str]]) -> list[Buffer]:
    remote_paths, remote_sizes, remote_hashes = remote
    return _render_columns(header, [
        _blob(paths), stats.tobytes(), statted.tobytes(), _blob(hashes), flags,
        _blob(remote_paths), remote_sizes.tobytes(), _blob(remote_hashes),
    ])


def _render_columns(header: dict[str, Any], columns: list[Buffer]) -> list[Buffer]:
    """The file's pieces, in order (written one after the other: no copy of the whole).

    The file: the magic line, the body's checksum and length, the body (the
    header and the columns, each after its length), then any patch records.
    """
    body = [x for c in [json.dumps(header).encode(), *columns] for x in (_LEN.pack(len(c)), c)]
    digest = blake3.blake3(max_threads=blake3.blake3.AUTO)
    for piece in body:
        digest.update(piece)
    return [_MAGIC, digest.digest(), _LEN.pack(sum(map(len, body))), *body]


def _encode_patch(patch: _Patch) -> bytes:
    """A patch record's payload: the header's changes, then the local rows and the commit's rows, as columns."""
    rows = sorted(patch.local)
    local = [patch.local[i] for i in rows]
    remote_rows = sorted(patch.remote)
    remote = [patch.remote[j] for j in remote_rows]
    header = json.dumps(patch.header).encode()
    return b"".join((
        _LEN.pack(len(header)), header,
        _LEN.pack(len(rows)), array.array("q", rows).tobytes(),
        array.array("q", [x for row in local for x in row[0]]).tobytes(),
        array.array("q", [row[1] for row in local]).tobytes(),
        "".join(row[2] for row in local).encode(), bytes(row[3] for row in local),
        _LEN.pack(len(remote_rows)), array.array("q", remote_rows).tobytes(),
        array.array("q", [row[0] for row in remote]).tobytes(), "".join(row[1] for row in remote).encode(),
    ))


def _decode_patch(data: memoryview) -> _Patch:
    at = 0

    def take(n: int) -> bytes:
        nonlocal at
        if at + n > len(data):
            raise _Damaged("a truncated patch")
        at += n
        return bytes(data[at - n:at])

    def count() -> int:
        return int(_LEN.unpack(take(_LEN.size))[0])

    header = json.loads(take(count()))
    if not isinstance(header, dict) or not header.keys() <= {"synced", "clean"}:
        raise _Damaged("a patch with no header")
    width = _WIDTH - 1
    n = count()
    rows, stats, statted = _ints(take(8 * n)), _ints(take(32 * n)), _ints(take(8 * n))
    hashes, flags = take(width * n).decode("ascii"), take(n)
    m = count()
    remote_rows, sizes, remote_hashes = _ints(take(8 * m)), _ints(take(8 * m)), take(width * m).decode("ascii")
    if at != len(data) or not set(flags) <= {0, 1}:
        raise _Damaged("a patch of another shape")
    local = {rows[k]: ((stats[4 * k], stats[4 * k + 1], stats[4 * k + 2], stats[4 * k + 3]), statted[k],
                       hashes[width * k:width * k + width], flags[k]) for k in range(n)}
    remote = {remote_rows[k]: (sizes[k], remote_hashes[width * k:width * k + width]) for k in range(m)}
    return _Patch(header, local, remote)


def _parse(data: bytes | mmap.mmap, ino: int = 0) -> _Saved:
    if data[:len(_MAGIC)] != _MAGIC:
        if data[:len(_MAGIC) - 3] == _MAGIC[:-3]:
            raise _OtherVersion()
        raise _Damaged("not a stat cache")
    start = len(_MAGIC) + _DIGEST + _LEN.size
    if len(data) < start:
        raise _Damaged("truncated")
    digest = data[len(_MAGIC):len(_MAGIC) + _DIGEST]
    (length,) = _LEN.unpack_from(data, len(_MAGIC) + _DIGEST)
    if start + length > len(data):
        raise _Damaged("truncated")
    body = memoryview(data)[start:start + length]
    if blake3.blake3(body, max_threads=blake3.blake3.AUTO).digest() != digest:
        raise _Damaged("checksum mismatch")
    columns: list[Buffer] = []
    offset = 0
    while offset < len(body):
        (size,) = _LEN.unpack_from(body, offset)
        offset += _LEN.size
        if offset + size > len(body):
            raise _Damaged("truncated")
        columns.append(body[offset:offset + size])
        offset += size
    if len(columns) != 9:
        raise _Damaged(f"{len(columns)} columns")
    header = json.loads(bytes(columns[0]))
    if not isinstance(header, dict):
        raise _Damaged("no header")
    saved = _Saved(header, columns[1:])
    # The patch records, each chained to the checksum before it; a torn or foreign one ends them.
    at, chained, patches = start + length, digest, 0
    while at + _LEN.size + _DIGEST <= len(data):
        (size,) = _LEN.unpack_from(data, at)
        payload = memoryview(data)[at + _LEN.size + _DIGEST:at + _LEN.size + _DIGEST + size]
        mark = blake3.blake3(chained)
        mark.update(payload)
        if len(payload) != size or mark.digest() != data[at + _LEN.size:at + _LEN.size + _DIGEST]:
            break
        saved.apply(_decode_patch(payload))
        at, chained, patches = at + _LEN.size + _DIGEST + size, mark.digest(), patches + 1
    saved.tail = _Tail(ino, at, chained, patches, at - start - length, length)
    return saved
