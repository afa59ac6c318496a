"""Files of commits: put, get, list, glob, copy, delete, diff.

A file entry in the index is ``[size, hash]`` (one chunk, named by the
content hash) or ``[size, hash, [[chunk, length], ...]]``, optionally
followed by the file version's metadata, ``[size, hash, chunks | None,
{name: value}]`` (the S3 gateway keeps the ETag, Content-Type, ``x-amz-meta-*``
and the write time there: metadata is versioned with the bytes and moves with
a copy). Folders are implied by the paths under them, as in S3 and Pachyderm.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, BinaryIO, Union

from datumflow.storage_service.core import globs
from datumflow.storage_service.core.chunks import ChunkWriter
from datumflow.storage_service.core.index import MAX_KEY
from datumflow.storage_service.core.schema import commits
from datumflow.storage_service.errors import (
    CommitFinished,
    CommitNotFound,
    ConcurrentUpdate,
    InvalidArgument,
    PathNotFound,
)
from datumflow.storage_service.model.core import ChunkRef, Commit, CommitState, DiffEntry, FileInfo
from datumflow.storage_service.names import check_branch_name, is_commit_id, normalize_path
from datumflow.storage_service.store.base import StoreBase
from sqlalchemy import select, update

__all__ = ["FileOps", "MetaSource", "Precondition", "Source"]

Source = Union[bytes, bytearray, memoryview, BinaryIO, "os.PathLike[str]", None]
# A file version's metadata, or a function giving it once the source has been read (so it may
# hold digests of the bytes).
MetaSource = Mapping[str, str] | Callable[[], Mapping[str, str]]
# Called with the path's current version (None: absent) in the commit a write lands in; raises to refuse.
Precondition = Callable[[FileInfo | None], None]

MAX_META_BYTES = 8 * 1024

_EDIT_LOCK = threading.Lock()
_TURNS: dict[tuple[str, str], threading.Lock] = {}
_TURNS_LOCK = threading.Lock()


def _writer_turn(repo: str, target: str) -> threading.Lock:
    """Writers of single versions (the S3 gateway) on one branch take turns to commit in this process.

    Their bytes are already stored, so a turn is an index edit and one commit;
    without it, two of them would race to open the branch's next commit.
    """
    with _TURNS_LOCK:
        return _TURNS.setdefault((repo, target), threading.Lock())


def entry_of(size: int, h: str, refs: list[ChunkRef] | tuple[ChunkRef, ...],
             meta: Mapping[str, str] | None = None) -> list[Any]:
    single = len(refs) == 1 and refs[0].hash == h
    if meta:
        return [size, h, None if single else [[r.hash, r.size] for r in refs], dict(meta)]
    if single:
        return [size, h]
    return [size, h, [[r.hash, r.size] for r in refs]]


def chunks_of(entry: list[Any]) -> list[ChunkRef]:
    if len(entry) == 2 or entry[2] is None:
        return [ChunkRef(entry[1], entry[0])]
    return [ChunkRef(h, n) for h, n in entry[2]]


def meta_of(entry: list[Any]) -> dict[str, str]:
    return dict(entry[3]) if len(entry) > 3 else {}


def file_info(path: str, entry: list[Any]) -> FileInfo:
    return FileInfo(path=path, type="file", size=entry[0], hash=entry[1], chunks=tuple(chunks_of(entry)),
                    meta=meta_of(entry))


def check_meta(meta: Mapping[str, str]) -> dict[str, str]:
    """A file version's metadata: a small mapping of strings."""
    out = dict(meta)
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in out.items()):
        raise InvalidArgument("file metadata must map strings to strings")
    if sum(len(k.encode()) + len(v.encode()) for k, v in out.items()) > MAX_META_BYTES:
        raise InvalidArgument(f"file metadata is limited to {MAX_META_BYTES} bytes")
    return out


class FileOps(StoreBase):
    """File operations of :class:`Store` (a mixin; state lives on the store)."""

    # -- writing -----------------------------------------------------------------

    def put_file(
        self, repo: str, target: str, path: str, source: Source, *,
        append: bool = False, description: str = "",
    ) -> Commit:
        """Write one file into ``target`` (a branch, or an open commit id)."""
        return self.put_files(repo, target, [(path, source)], append=append, description=description)

    def put_files(
        self, repo: str, target: str, items: Iterable[tuple[str, Source]], *,
        append: bool = False, description: str = "", progress: Any = None,
    ) -> Commit:
        """Write many files as one change: one commit, unless ``target`` names an open one.

        Folders (``os.PathLike`` to a directory) are written recursively under
        the destination path; a source of ``None`` removes the file or folder
        at its path (if there is one) in the same change. ``progress(bytes)``
        is called as data is stored.
        """
        if isinstance(items, (list, tuple)):  # validate every path before opening a commit
            items = [_checked_item(normalize_path(dest, allow_root=True), src) for dest, src in items]
        else:  # a stream of items (e.g. the members of a tar upload): consumed one by one
            items = ((normalize_path(dest, allow_root=True), src) for dest, src in items)

        def store_items(commit_id: str) -> dict[str, Any]:
            edits: dict[str, Any] = {}
            with self.chunks.writer() as writer:
                for dest, src in items:
                    if src is None:  # a removal, in the same change
                        edits.update(dict.fromkeys(self._paths_under(self._root_of(commit_id), dest)))
                        continue
                    for path, entry in self._store_source(writer, dest, src, progress):
                        if append:
                            entry = self._appended(writer, repo, commit_id, path, entry)
                        edits[path] = entry
            return edits

        return self.write_entries(repo, target, store_items, verb="write", description=description)

    def delete_file(self, repo: str, target: str, path: str) -> Commit:
        """Delete a file, or a folder with everything under it."""
        path = normalize_path(path, allow_root=True)

        def doomed(commit_id: str) -> dict[str, Any]:
            found = {p: None for p in self._paths_under(self._root_of(commit_id), path)}
            if not found:
                raise PathNotFound(f"{repo}@{target}: no file or folder {path!r}")
            return found

        return self.write_entries(repo, target, doomed, verb="delete")

    def copy_file(
        self, src_repo: str, src_ref: str, src_path: str, dst_repo: str, dst_target: str, dst_path: str
    ) -> Commit:
        """Copy a file or folder; no bytes move, the entries share their chunks."""
        src_path = normalize_path(src_path, allow_root=True)
        dst_path = normalize_path(dst_path, allow_root=True)
        root = self._root_of(self.resolve(src_repo, src_ref))
        edits: dict[str, Any] = {}
        for key, entry in self._entries_under(root, src_path):
            rest = key[len(src_path):].lstrip("/") if src_path else key
            edits["/".join(p for p in (dst_path, rest) if p)] = entry
        if not edits:
            raise PathNotFound(f"{src_repo}@{src_ref}: no file or folder {src_path!r}")
        return self.write_entries(dst_repo, dst_target, lambda _: edits, verb="copy")

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
        if precondition is not None:  # refuse early, before the body is read
            precondition(self._version_at(self._current_root(repo, target), path))
        with self.chunks.writer() as writer:  # the bytes are stored before any commit is opened
            ((_, entry),) = self._store_source(writer, path, source, None)
        given = meta() if callable(meta) else meta
        entry = entry_of(entry[0], entry[1], chunks_of(entry), check_meta(given or {}))
        check = None if precondition is None else (lambda root: precondition(self._version_at(root, path)))
        with _writer_turn(repo, target):
            commit = self.write_entries(repo, target, lambda _: {path: entry}, description=description, check=check)
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
        with _writer_turn(dst_repo, dst_target):
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

        def doomed(commit_id: str) -> dict[str, Any]:
            root = self._root_of(commit_id)
            return {p: None for p in wanted if self.tree.get(root, p) is not None}

        with _writer_turn(repo, target):
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
        self, repo: str, target: str, edits_for: Callable[[str], dict[str, Any]], *,
        verb: str = "write", description: str = "", check: Callable[[str | None], None] | None = None,
    ) -> Commit:
        """Apply ``edits_for(commit_id)`` (``{path: entry or None}``) to ``target``.

        ``target`` is a branch (one new commit, finished here) or an open commit
        id. If anything fails, a commit opened here is failed with the error, so
        no partial change is ever visible. ``check(root)``, if given, runs in the
        transaction that applies the edits, on the root they apply to.
        """
        commit_id, auto = self._write_target(repo, target)
        if not auto:
            self._refuse_write_into(repo, commit_id)
        try:
            commit = self._apply_edits(repo, commit_id, edits_for(commit_id), check)
        except BaseException as exc:
            if auto:
                self.finish_commit(repo, commit_id, error=f"{verb} failed: {exc}")
            raise
        return self.finish_commit(repo, commit_id, description=description or None) if auto else commit

    def _write_target(self, repo: str, target: str) -> tuple[str, bool]:
        """(open commit id, whether we opened it ourselves)."""
        if is_commit_id(target):
            commit = self.inspect_commit(repo, target)
            if commit.is_finished:
                raise CommitFinished(f"commit {repo}@{target} is {commit.state.value}; writes need an open commit")
            return commit.id, False
        check_branch_name(target)
        with self.engine.connect() as conn:
            self._require_repo(conn, repo)
            row = self._branch_row(conn, repo, target)
            head = row.head if row else None
            state = conn.execute(select(commits.c.state).where(commits.c.id == head)).scalar() if head else None
        if head and state == CommitState.OPEN.value:
            return head, False
        return self.start_commit(repo, target).id, True

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
            h, refs, size = writer.add_stream(src)
            _tick(progress, size)
            yield _need_path(dest), entry_of(size, h, refs)
        else:
            raise InvalidArgument(f"cannot store a {type(src).__name__}: give bytes, a file object or a path")

    def _store_folder(
        self, writer: ChunkWriter, dest: str, folder: str, progress: Any
    ) -> Iterator[tuple[str, list[Any]]]:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames.sort()
            rel = os.path.relpath(dirpath, folder)
            for name in sorted(filenames):
                local = os.path.join(dirpath, name)
                if not os.path.isfile(local):
                    continue
                parts = [p for p in (dest, "" if rel == "." else rel, name) if p]
                h, refs, size = writer.add_file(local)
                _tick(progress, size)
                yield normalize_path("/".join(parts)), entry_of(size, h, refs)

    def _appended(
        self, writer: ChunkWriter, repo: str, commit_id: str, path: str, entry: list[Any]
    ) -> list[Any]:
        old = self.tree.get(self._root_of(commit_id), path)
        if old is None:
            return entry
        # The new chunks may still sit in the writer's buffer or unsealed pack: publish them first.
        writer.close()
        data = b"".join(self.chunks.read_all(chunks_of(old))) + b"".join(self.chunks.read_all(chunks_of(entry)))
        h, refs = writer.add_bytes(data)
        return entry_of(len(data), h, refs)

    def _apply_edits(
        self, repo: str, commit_id: str, edits: dict[str, Any], check: Callable[[str | None], None] | None = None,
    ) -> Commit:
        """Move the open commit's root by compare-and-swap, in one transaction."""
        with _EDIT_LOCK, self.engine.begin() as conn:
            query = select(commits.c.root, commits.c.state).where(commits.c.id == commit_id)
            if self.engine.dialect.name == "postgresql":
                query = query.with_for_update()
            row = conn.execute(query).one()
            if row.state != CommitState.OPEN.value:
                raise CommitFinished(f"commit {repo}@{commit_id} was finished before the write landed")
            if check is not None:
                check(row.root)
            try:
                new_root = self.tree.edit(row.root, edits)
                _refuse_file_folder_clash(self.tree, row.root, new_root, edits)
                files, size = self.tree.stats(new_root)
                self._write_nodes(conn)
            except BaseException:
                self.nodes.discard()
                raise
            moved = conn.execute(
                update(commits)
                .where(commits.c.id == commit_id, commits.c.state == CommitState.OPEN.value,
                       commits.c.root.is_(None) if row.root is None else commits.c.root == row.root)
                .values(root=new_root, file_count=files, size_bytes=size)
            ).rowcount
            if moved != 1:
                raise ConcurrentUpdate(f"commit {repo}@{commit_id} changed during the write; retry")
        return self.inspect_commit(repo, commit_id)

    # -- reading -----------------------------------------------------------------

    def _root_of(self, commit_id: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(select(commits.c.root).where(commits.c.id == commit_id)).scalar()

    def _root(self, repo: str, ref: str) -> str | None:
        return self._root_of(self.resolve(repo, ref))

    def inspect_file(self, repo: str, ref: str, path: str) -> FileInfo:
        path = normalize_path(path, allow_root=True)
        root = self._root(repo, ref)
        if path:
            entry = self.tree.get(root, path)
            if entry is not None:
                return file_info(path, entry)
        files, size = self._dir_stats(root, path)
        if files == 0 and path:
            raise PathNotFound(f"{repo}@{ref}: no file or folder {path!r}")
        return FileInfo(path=path, type="dir", size=size)

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
        path = normalize_path(path, allow_root=True)
        root = self._root(repo, ref)
        if path and (entry := self.tree.get(root, path)) is not None:
            return [file_info(path, entry)]
        prefix = f"{path}/" if path else ""
        out: list[FileInfo] = []
        pos = prefix + (start_after or "")
        stop = prefix + MAX_KEY
        while limit is None or len(out) < limit:
            nxt = next(iter(self.tree.items(root, pos, stop)), None)
            if nxt is None:
                break
            key, entry = nxt
            name = key[len(prefix):].split("/", 1)[0]
            if name == start_after:
                pos = prefix + name + ("/" + MAX_KEY if "/" in key[len(prefix):] else "\x00")
                continue
            if "/" in key[len(prefix):]:
                folder = prefix + name
                _files, size = self._dir_stats(root, folder)
                out.append(FileInfo(path=folder, type="dir", size=size))
                pos = folder + "/" + MAX_KEY
            else:
                out.extend(self._file_run(root, key, stop, prefix, limit, out))
                pos = out[-1].path + "\x00"
        if not out and path and start_after is None:
            raise PathNotFound(f"{repo}@{ref}: no file or folder {path!r}")
        return out

    def _file_run(self, root: str | None, start: str, stop: str, prefix: str,
                  limit: int | None, sofar: list[FileInfo]) -> list[FileInfo]:
        """Consecutive plain files of a folder, read in one pass."""
        run: list[FileInfo] = []
        for key, entry in self.tree.items(root, start, stop):
            if "/" in key[len(prefix):] or (limit is not None and len(sofar) + len(run) >= limit):
                break
            run.append(file_info(key, entry))
        return run

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
        if not path:
            return self.tree.stats(root)
        return self.tree.range_stats(root, path + "/", path + "/" + MAX_KEY)


def _refuse_file_folder_clash(tree: Any, old: str | None, new: str | None, edits: dict[str, Any]) -> None:
    """A path is a file or a folder, never both: ``a`` and ``a/b`` cannot sit in one commit.

    Cheap for the common writes: one lookup per folder the edits touch, and a
    per-file lookup only for a new file in a folder that existed before.
    """
    added = [p for p, entry in edits.items() if entry is not None]
    parents = {p.rsplit("/", 1)[0] if "/" in p else "" for p in added}
    folders = set()
    for folder in parents:
        while folder and folder not in folders:
            folders.add(folder)
            folder = folder.rsplit("/", 1)[0] if "/" in folder else ""
    for folder in folders:
        if tree.get(new, folder) is not None:
            raise InvalidArgument(f"{folder!r} is a file: it cannot also be a folder")
    existed = {f for f in parents if f == "" or _has_under(tree, old, f)}
    for path in added:
        parent = path.rsplit("/", 1)[0] if "/" in path else ""
        clash = path in folders or (parent in existed and _has_under(tree, new, path))
        if clash:
            raise InvalidArgument(f"{path!r} is a folder: it cannot also be a file")


def _has_under(tree: Any, root: str | None, folder: str) -> bool:
    return next(tree.items(root, folder + "/", folder + "/" + MAX_KEY), None) is not None


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


