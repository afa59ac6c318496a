"""Files of commits: put, get, list, glob, copy, delete, diff.

A file entry in the index is ``[size, hash]`` (one chunk, named by the
content hash) or ``[size, hash, [[chunk, length], ...]]``, optionally
followed by the file version's metadata, ``[size, hash, chunks | None,
{name: value}]`` (the S3 gateway keeps the ETag, Content-Type, ``x-amz-meta-*``
and the write time there: metadata is versioned with the bytes and moves with
a copy). Folders are implied by the paths under them, as in S3 and Pachyderm.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO, Union, cast

from datumflow.storage_service.core.chunks import ChunkWriter
from datumflow.storage_service.core.index import MAX_KEY
from datumflow.storage_service.core.inflight import gc_lock
from datumflow.storage_service.core.schema import commits
from datumflow.storage_service.errors import (
    CommitFinished,
    CommitNotFound,
    ConcurrentUpdate,
    InvalidArgument,
    PathNotFound,
    ProtectedBranch,
)
from datumflow.storage_service.model.core import ChunkRef, Commit, CommitState, DiffEntry, FileInfo
from datumflow.storage_service.names import check_branch_name, is_commit_id, normalize_path
from datumflow.storage_service.store import lookup
from datumflow.storage_service.store.clash import refuse_file_folder_clash
from datumflow.storage_service.store.leases import Leases, _Abandoned
from datumflow.storage_service.store.listing import chunks_of, dir_stats, file_info, inspect_entry, list_entries
from datumflow.storage_service.store.outputs import OutputBranches, forcing
from datumflow.storage_service.store.publish import Edits, Publishing, _OutsideWork
from sqlalchemy import Connection, select, update

if TYPE_CHECKING:
    from datumflow.storage_service.core import globs

__all__ = ["FileOps", "MetaSource", "Precondition", "Source"]

Source = Union[bytes, bytearray, memoryview, BinaryIO, "os.PathLike[str]", None]
# A file version's metadata, or a function giving it once the source has been read (so it may
# hold digests of the bytes).
MetaSource = Mapping[str, str] | Callable[[], Mapping[str, str]]
# Called with the path's current version (None: absent) in the commit a write lands in; raises to refuse.
Precondition = Callable[[FileInfo | None], None]

MAX_META_BYTES = 8 * 1024

WRITE_TTL = 24 * 3600.0  # a write's pins outlive a dead writer this long at most (less on this host)
Check = Callable[[str | None], None]  # runs on the root an edit applies to, in its transaction


def entry_of(size: int, h: str, refs: list[ChunkRef] | tuple[ChunkRef, ...],
             meta: Mapping[str, str] | None = None) -> list[Any]:
    single = len(refs) == 1 and refs[0].hash == h
    if meta:
        return [size, h, None if single else [[r.hash, r.size] for r in refs], dict(meta)]
    if single:
        return [size, h]
    return [size, h, [[r.hash, r.size] for r in refs]]


def check_meta(meta: Mapping[str, str]) -> dict[str, str]:
    """A file version's metadata: a small mapping of strings."""
    out = dict(meta)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in out.items()):
        raise InvalidArgument("file metadata must map strings to strings")
    if sum(len(k.encode()) + len(v.encode()) for k, v in out.items()) > MAX_META_BYTES:
        raise InvalidArgument(f"file metadata is limited to {MAX_META_BYTES} bytes")
    return out


class FileOps(Publishing, Leases, OutputBranches):
    """File operations of :class:`Store` (a mixin; state lives on the store)."""

    # -- writing -----------------------------------------------------------------

    def put_file(
        self, repo: str, target: str, path: str, source: Source, *,
        append: bool = False, description: str = "", force: bool = False,
    ) -> Commit:
        """Write one file into ``target`` (a branch, or an open commit id).

        ``force``: an owner's repair of a pipeline's output branch (see :mod:`.outputs`).
        """
        return self.put_files(repo, target, [(path, source)], append=append, description=description, force=force)

    def put_files(
        self, repo: str, target: str, items: Iterable[tuple[str, Source]], *,
        append: bool = False, description: str = "", progress: Any = None, force: bool = False,
    ) -> Commit:
        """Write many files as one change: a commit of its own, unless ``target`` is an open commit id.

        Folders (``os.PathLike`` to a directory) are written recursively under
        the destination path; a source of ``None`` removes the file or folder
        at its path (if there is one) in the same change. ``progress(bytes)``
        is called as data is stored.
        The bytes are stored first (pinned against gc); the commit comes after.
        """
        with forcing(force):
            return self._put_files(repo, target, items, append=append, description=description, progress=progress)

    def _put_files(
        self, repo: str, target: str, items: Iterable[tuple[str, Source]], *,
        append: bool, description: str, progress: Any,
    ) -> Commit:
        self._check_target(repo, target)
        if isinstance(items, (list, tuple)):  # validate every path before storing anything
            items = [_checked_item(normalize_path(dest, allow_root=True), src) for dest, src in items]
        else:  # a stream of items (e.g. the members of a tar upload): consumed one by one
            items = ((normalize_path(dest, allow_root=True), src) for dest, src in items)
        with self._in_flight() as write_id:
            edits: dict[str, Any] = {}
            removed: list[str] = []
            with self.chunks.writer(write_id=write_id) as writer:
                for dest, src in items:
                    if src is None:  # a removal, in the same change (of what the root it lands on holds)
                        removed.append(dest)
                        continue
                    for path, entry in self._store_source(writer, dest, src, progress):
                        edits[path] = entry
            stored = self._appending(edits, write_id) if append else (lambda _root: edits)

            def edits_for(root: str | None) -> dict[str, Any]:
                gone = {p: None for dest in removed for p in self._paths_under(root, dest)}
                return {**gone, **stored(root)}

            return self.write_entries(repo, target, edits_for, verb="write", description=description)

    def _check_target(self, repo: str, target: str) -> None:
        """Refuse a write that cannot land before storing its bytes."""
        if is_commit_id(target):
            commit = self.inspect_commit(repo, target)
            if commit.is_finished:
                raise CommitFinished(f"commit {repo}@{target} is {commit.state.value}; writes need an open commit")
            return
        check_branch_name(target)
        with self.engine.connect() as conn:
            self._require_repo(conn, repo)
            self._refuse_direct(conn, repo, target, "a direct write")
            self._refuse_output(conn, repo, target, "write")
            if self._branch_row(conn, repo, target) is None and self._tag_row(conn, repo, target) is not None:
                raise ProtectedBranch(f"{repo}@{target} is a tag: tags are read-only")

    @contextmanager
    def _in_flight(self, ttl: float = WRITE_TTL) -> Iterator[str]:
        """Register a write (its id pins what it stores or finds stored) for the ``with`` block."""
        write_id = self.chunks.pins.begin(ttl)
        try:
            yield write_id
        finally:
            self.chunks.pins.release(write_id)

    def delete_file(self, repo: str, target: str, path: str, *, force: bool = False) -> Commit:
        """Delete a file, or a folder with everything under it (``force``: see :meth:`put_file`)."""
        path = normalize_path(path, allow_root=True)

        def doomed(root: str | None) -> dict[str, Any]:
            found = {p: None for p in self._paths_under(root, path)}
            if not found:
                raise PathNotFound(f"{repo}@{target}: no file or folder {path!r}")
            return found

        with forcing(force):
            return self.write_entries(repo, target, doomed, verb="delete")

    def copy_file(
        self, src_repo: str, src_ref: str, src_path: str, dst_repo: str, dst_target: str, dst_path: str, *,
        force: bool = False,
    ) -> Commit:
        """Copy a file or folder; no bytes move, the entries share their chunks.

        The source is read inside the destination's write transaction, so gc
        (which waits for it) sees the copy or finds the source still there.
        """
        src_path = normalize_path(src_path, allow_root=True)
        dst_path = normalize_path(dst_path, allow_root=True)
        src_root = self._root_of(self.resolve(src_repo, src_ref))

        def copied(_root: str | None) -> dict[str, Any]:
            edits: dict[str, Any] = {}
            for key, entry in self._entries_under(src_root, src_path):
                rest = key[len(src_path):].lstrip("/") if src_path else key
                edits["/".join(p for p in (dst_path, rest) if p)] = entry
            if not edits:
                raise PathNotFound(f"{src_repo}@{src_ref}: no file or folder {src_path!r}")
            return edits

        with forcing(force):
            return self.write_entries(dst_repo, dst_target, copied, verb="copy")

    # -- in-process writes of single versions (the S3 gateway) --------------------------

    def write_file(
        self, repo: str, target: str, path: str, source: Source, *,
        meta: MetaSource | None = None, precondition: Precondition | None = None, description: str = "",
    ) -> tuple[Commit, FileInfo]:
        """Write one file version with its metadata; (commit, the version written).

        ``meta`` may be a function, called once the source has been read (a
        checksum of the bytes can be part of it, and a reader that raises at its
        end refuses the write). ``precondition`` sees the path's current version
        in the commit the write lands in, in the transaction that applies it.
        """
        path = _need_path(normalize_path(path))
        self._check_target(repo, target)
        if precondition is not None:  # refuse early, before the body is read
            precondition(self._version_at(self._current_root(repo, target), path))
        with self._in_flight() as write_id:
            with self.chunks.writer(write_id=write_id) as writer:
                ((_, entry),) = self._store_source(writer, path, source, None)
            given = meta() if callable(meta) else meta
            entry = entry_of(entry[0], entry[1], chunks_of(entry), check_meta(given or {}))
            check = None if precondition is None else (lambda root: precondition(self._version_at(root, path)))
            commit = self.write_entries(repo, target, lambda _root: {path: entry}, verb="write",
                                        description=description, check=check)
        return commit, file_info(path, entry)

    def copy_version(
        self, version: FileInfo, dst_repo: str, dst_target: str, dst_path: str, *,
        meta: Mapping[str, str] | None = None, precondition: Precondition | None = None,
    ) -> tuple[Commit, FileInfo]:
        """Copy one file version (as inspected) to ``dst_path``; ``meta`` replaces its metadata."""
        dst_path = _need_path(normalize_path(dst_path))
        if version.is_dir or version.hash is None:
            raise InvalidArgument(f"{version.path} is a folder, not a file version")
        entry = entry_of(version.size, version.hash, version.chunks,
                         check_meta(version.meta if meta is None else meta))
        check = None if precondition is None else (lambda root: precondition(self._version_at(root, dst_path)))
        with self._in_flight() as write_id:  # the version's chunks are pinned until the copy lands
            refs = chunks_of(entry)
            if len(self.chunks.locate_pinned((r.hash for r in refs), write_id)) < len({r.hash for r in refs}):
                raise PathNotFound(f"{version.path}: the version's content is no longer stored")
            commit = self.write_entries(dst_repo, dst_target, lambda _: {dst_path: entry}, verb="copy", check=check)
        return commit, file_info(dst_path, entry)

    def remove_files(self, repo: str, target: str, paths: Iterable[str]) -> Commit | None:
        """Delete exactly these files (never a folder under the same name) in one change.

        Absent paths are skipped; if none was there, nothing is written and None is returned.
        """
        wanted = [normalize_path(p) for p in paths]
        head = self._current_root(repo, target)
        if not any(self.tree.get(head, p) is not None for p in wanted):
            return None

        def doomed(root: str | None) -> dict[str, Any]:
            return {p: None for p in wanted if self.tree.get(root, p) is not None}

        return self.write_entries(repo, target, doomed, verb="delete", check=None)

    def _version_at(self, root: str | None, path: str) -> FileInfo | None:
        entry = self.tree.get(root, path)
        return None if entry is None else file_info(path, entry)

    def _current_root(self, repo: str, target: str) -> str | None:
        try:
            return self._root(repo, target)
        except CommitNotFound:  # an empty branch
            return None

    def write_entries(
        self, repo: str, target: str, edits_for: Edits, *,
        verb: str = "write", description: str = "", check: Check | None = None,
    ) -> Commit:
        """Apply ``edits_for(root)`` (``{path: entry or None}``) to ``target``.

        ``target`` is a branch (a new commit of this write alone, see
        :mod:`.publish`) or an open commit id the caller holds. ``edits_for``
        gets the root the edit applies to and may be called again if another
        writer moved it first. If anything fails, nothing is visible.
        ``check(root)``, if given, runs in the transaction that applies the
        edits, on the root they apply to.
        """
        self._check_target(repo, target)
        if is_commit_id(target):
            self._refuse_write_into(repo, target)
            self._refuse_job_output(repo, target, verb)
            return self._apply_edits(repo, target, edits_for, check)
        return self._publish_edits(repo, target, edits_for, description=description, check=check)

    def _store_source(
        self, writer: ChunkWriter, dest: str, src: Source, progress: Any
    ) -> Iterator[tuple[str, list[Any]]]:
        if isinstance(src, (bytes, bytearray, memoryview)):
            h, refs = writer.add_bytes(bytes(src))
            _tick(progress, len(src))
            yield _need_path(dest), entry_of(len(src), h, refs)
        elif isinstance(src, (str, os.PathLike)):
            local = os.fspath(src)
            if os.path.isdir(local):
                yield from self._store_folder(writer, dest, local, progress)
            elif os.path.isfile(local):
                h, refs, size = writer.add_file(local)
                _tick(progress, size)
                yield _need_path(dest), entry_of(size, h, refs)
            else:
                raise PathNotFound(f"local path {local} does not exist")
        elif hasattr(src, "read"):
            h, refs, size = writer.add_stream(cast(BinaryIO, src))
            _tick(progress, size)
            yield _need_path(dest), entry_of(size, h, refs)
        else:
            raise InvalidArgument(f"cannot store a {type(src).__name__}: give bytes, a file object or a path")

    def _store_folder(
        self, writer: ChunkWriter, dest: str, folder: str, progress: Any
    ) -> Iterator[tuple[str, list[Any]]]:
        for rel, local in _walk_files(folder):
            h, refs, size = writer.add_file(local)
            _tick(progress, size)
            yield normalize_path(f"{dest}/{rel}" if dest else rel), entry_of(size, h, refs)

    def _appending(self, edits: dict[str, Any], write_id: str) -> Edits:
        """Edits that append each entry to the file already at its path (in the root they apply to)."""
        joined: dict[tuple[str, str], list[Any]] = {}

        def edits_for(root: str | None) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for path, entry in edits.items():
                old = self.tree.get(root, path)
                if old is None:
                    out[path] = entry
                elif (path, old[1]) in joined:
                    out[path] = joined[(path, old[1])]
                else:  # storing bytes needs its own transactions: done outside this one, then again
                    raise _OutsideWork(functools.partial(self._join_into, joined, path, old, entry, write_id))
            return out

        return edits_for

    def _join_into(self, joined: dict[tuple[str, str], list[Any]], path: str, old: list[Any], new: list[Any],
                   write_id: str) -> None:
        joined[(path, old[1])] = self._joined(old, new, write_id)

    def _joined(self, old: list[Any], new: list[Any], write_id: str) -> list[Any]:
        data = b"".join(self.chunks.read_all(chunks_of(old))) + b"".join(self.chunks.read_all(chunks_of(new)))
        with self.chunks.writer(write_id=write_id) as writer:
            h, refs = writer.add_bytes(data)
        return entry_of(len(data), h, refs)

    def _apply_edits(self, repo: str, commit_id: str, edits_for: Edits, check: Check | None = None) -> Commit:
        """Edit an open commit the caller holds: move its root by compare-and-swap."""

        def once(conn: Connection) -> None:
            gc_lock(conn, exclusive=False)
            query = select(commits).where(commits.c.id == commit_id)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).first()
            if row is None or row.repo != repo:
                raise CommitNotFound(f"commit {commit_id} not found in repo {repo}")
            if row.state != CommitState.OPEN.value:
                raise CommitFinished(f"commit {repo}@{commit_id} is {row.state}; writes need an open commit")
            self._renew_lease(conn, commit_id)
            if check is not None:
                check(row.root)
            edits = edits_for(row.root)
            new_root = self.tree.edit(row.root, edits)
            refuse_file_folder_clash(self.tree, row.root, new_root, edits)
            files, size = self.tree.stats(new_root)
            moved = conn.execute(
                update(commits)
                .where(commits.c.id == commit_id, commits.c.state == CommitState.OPEN.value,
                       commits.c.root.is_(None) if row.root is None else commits.c.root == row.root)
                .values(root=new_root, file_count=files, size_bytes=size)
            ).rowcount
            if moved != 1:
                raise ConcurrentUpdate(f"commit {repo}@{commit_id} changed during the write; retrying")

        try:
            return self._transact(repo, commit_id, once, finished=False)
        except _Abandoned as exc:
            self._fail_abandoned(repo, commit_id, str(exc))
            raise CommitFinished(
                f"commit {repo}@{commit_id} was abandoned ({exc}) and has been failed; nothing was written"
            ) from None

    # -- reading -----------------------------------------------------------------

    def _root_of(self, commit_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(commits.c.root).where(commits.c.id == commit_id)).scalar()

    def _root(self, repo: str, ref: str) -> str | None:
        found = lookup.root_of(self.engine, repo, ref)  # a branch head or commit id: one query
        return found[0] if found is not None else self._root_of(self.resolve(repo, ref))

    def inspect_file(self, repo: str, ref: str, path: str) -> FileInfo:
        path = normalize_path(path, allow_root=True)  # a bad path is refused before the ref is resolved
        return inspect_entry(self.tree, self._root(repo, ref), path, f"{repo}@{ref}")

    def get_file(self, repo: str, ref: str, path: str) -> bytes:
        return b"".join(self.open_file(repo, ref, path))

    def open_file(self, repo: str, ref: str, path: str) -> Iterator[bytes]:
        """The content of a file, streamed chunk by chunk (hashes checked)."""
        return self.read_content(self._file(repo, ref, path))

    def read_range(self, repo: str, ref: str, path: str, start: int, length: int | None = None) -> bytes:
        """Bytes [start, start+length) of a file, reading only the chunks they span."""
        return b"".join(self.read_content(self._file(repo, ref, path), start, length))

    def read_content(self, info: FileInfo, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The bytes of a file already inspected (all, or a range), chunk by chunk.

        Serving a file from one :class:`FileInfo` means its headers (size, hash)
        and its bytes come from the same commit, even if the branch moves.
        """
        end = info.size if length is None else min(info.size, start + length)
        if start < 0 or start > info.size:
            raise InvalidArgument(f"range start {start} is outside {info.path} ({info.size} bytes)")
        if start == 0 and end == info.size:
            return self.chunks.read_all(info.chunks)
        return self._slice(info, start, end)

    def _slice(self, info: FileInfo, start: int, end: int) -> Iterator[bytes]:
        offset = 0
        wanted = []
        for ref in info.chunks:
            if offset + ref.size > start and offset < end:
                wanted.append((offset, ref))
            offset += ref.size
        for (chunk_start, _), data in zip(wanted, self.chunks.read_all(r for _, r in wanted), strict=True):
            yield data[max(start - chunk_start, 0):min(end - chunk_start, len(data))]

    def _file(self, repo: str, ref: str, path: str) -> FileInfo:
        info = self.inspect_file(repo, ref, path)
        if info.is_dir:
            raise InvalidArgument(f"{repo}@{ref}:{info.path} is a folder, not a file")
        return info

    def list_files(
        self, repo: str, ref: str, path: str = "", *,
        start_after: str | None = None, limit: int | None = None,
    ) -> list[FileInfo]:
        """The files and folders directly inside ``path`` (a file lists itself)."""
        path = normalize_path(path, allow_root=True)  # a bad path is refused before the ref is resolved
        return list_entries(self.tree, self._root(repo, ref), path, f"{repo}@{ref}",
                            start_after=start_after, limit=limit)

    def walk_files(self, repo: str, ref: str, path: str = "") -> Iterator[FileInfo]:
        """Every file under ``path``, recursively, in path order."""
        path = normalize_path(path, allow_root=True)
        root = self._root(repo, ref)
        for key, entry in self._entries_under(root, path):
            yield file_info(key, entry)

    def glob_files(self, repo: str, ref: str, pattern: str) -> list[FileInfo]:
        """Files and folders matching a glob (``*``, ``?``, ``[..]``, ``{a,b}``, ``**``)."""
        return self.glob_root(self._root(repo, ref), pattern)

    def glob_root(self, root: str | None, pattern: str) -> list[FileInfo]:
        return [
            file_info(path, entry) if entry is not None
            else FileInfo(path=path, type="dir", size=self._dir_stats(root, path)[1])
            for path, entry in self._glob_entries(root, pattern)
        ]

    def _glob_entries(self, root: str | None, pattern: str) -> list[tuple[str, Any]]:
        """What ``glob_root`` matches, as (path, index entry) for a file and (path, None) for a folder.

        For callers that want only paths and content hashes (a pipeline's datums): no
        ``FileInfo`` and no folder totals are built.
        """
        from datumflow.storage_service.core import globs  # re2 loads with the first glob, not with every store

        segments = globs.segments(pattern)
        if not segments:
            files, _ = self.tree.stats(root)
            return [("", None)] if files else []
        regex = globs.compile_glob(pattern)
        prefix = globs.literal_prefix(pattern)
        deep = any(s == "**" for s in segments)
        return (self._glob_deep if deep else self._glob_fixed)(root, regex, prefix, len(segments))

    def _glob_fixed(
        self, root: str | None, regex: globs.Matcher, prefix: str, depth: int
    ) -> list[tuple[str, Any]]:
        # One ordered walk of the index; it re-seeks only to jump over a matched folder's contents.
        out: list[tuple[str, Any]] = []
        stop = prefix + MAX_KEY if prefix else MAX_KEY
        items = self.tree.items(root, prefix, stop)
        while True:
            nxt = next(items, None)
            if nxt is None:
                return out
            key = nxt[0]
            comps = key.split("/")
            if len(comps) < depth:
                continue
            if len(comps) == depth:  # a file at the glob's depth
                if regex.fullmatch(key):
                    out.append(nxt)
                continue
            candidate = "/".join(comps[:depth])
            if regex.fullmatch(candidate):
                out.append((candidate, None))
            items = self.tree.items(root, candidate + "/" + MAX_KEY, stop)

    def _glob_deep(self, root: str | None, regex: globs.Matcher, prefix: str, _: int) -> list[tuple[str, Any]]:
        found: dict[str, Any] = {}
        for key, entry in self.tree.items(root, prefix, prefix + MAX_KEY if prefix else MAX_KEY):
            comps = key.split("/")
            for i in range(1, len(comps)):
                folder = "/".join(comps[:i])
                if folder not in found and regex.fullmatch(folder):
                    found[folder] = None
            if regex.fullmatch(key):
                found[key] = entry
        return [(k, found[k]) for k in sorted(found)]

    def diff(
        self, repo: str, old_ref: str | None, new_ref: str, *, old_repo: str | None = None
    ) -> Iterator[DiffEntry]:
        """What changed from ``old_ref`` to ``new_ref`` (old defaults to new's parent)."""
        new = self.inspect_commit(repo, new_ref)
        if old_ref is None:
            old_root = self._root_of(new.parent) if new.parent else None
        else:
            old_root = self._root(old_repo or repo, old_ref)
        for key, before, after in self.tree.diff(old_root, new.root):
            change = "added" if before is None else "deleted" if after is None else "modified"
            yield DiffEntry(
                path=key,
                change=change,
                old=file_info(key, before) if before is not None else None,
                new=file_info(key, after) if after is not None else None,
            )

    # -- helpers -------------------------------------------------------------------

    def _entries_under(self, root: str | None, path: str) -> Iterator[tuple[str, Any]]:
        if path:
            entry = self.tree.get(root, path)
            if entry is not None:
                yield path, entry
                return
            yield from self.tree.items(root, path + "/", path + "/" + MAX_KEY)
        else:
            yield from self.tree.items(root)

    def _paths_under(self, root: str | None, path: str) -> list[str]:
        return [k for k, _ in self._entries_under(root, path)]

    def _dir_stats(self, root: str | None, path: str) -> tuple[int, int]:
        return dir_stats(self.tree, root, path)


def _checked_item(dest: str, src: Source) -> tuple[str, Source]:
    """Refuse what can never be stored before a commit is opened for it."""
    if src is None:
        _need_path(dest)  # removing everything is delete_file's business, not a side effect
    elif isinstance(src, (str, os.PathLike)):
        if not os.path.isdir(src):
            _need_path(dest)
    elif isinstance(src, (bytes, bytearray, memoryview)) or hasattr(src, "read"):
        _need_path(dest)
    else:
        raise InvalidArgument(f"cannot store a {type(src).__name__}: give bytes, a file object or a path")
    return dest, src


def _need_path(dest: str) -> str:
    if not dest:
        raise InvalidArgument("a destination file path is required")
    return dest


def _tick(progress: Any, n: int) -> None:
    if progress is not None:
        progress(n)




def _walk_files(folder: str, rel: str = "") -> Iterator[tuple[str, str]]:
    """(path relative to ``folder``, local path) of every file under it: a folder's files by name, then its
    folders by name, as ``os.walk`` goes; links to files are files, links to folders are not followed.

    One ``scandir`` per folder and no ``stat`` per file (the directory entry says what it is).
    """
    try:
        with os.scandir(folder) as found:
            entries = sorted(found, key=lambda e: e.name)
    except OSError:  # unreadable or vanished, as os.walk skips it
        return
    folders = []
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            folders.append(entry)
        elif entry.is_file():
            yield f"{rel}{entry.name}", entry.path
    for entry in folders:
        yield from _walk_files(entry.path, f"{rel}{entry.name}/")
