"""Sync a local folder and a branch, either way, moving only the differences.

Both work over any store object with ``walk_files``, ``put_files``,
``inspect_branch``, ``inspect_commit`` and ``diff`` (the embedded
:class:`Store` and the HTTP ``Client``):

* **up** (folder → branch): one commit holding exactly the files added or
  changed (and, with ``delete``, removing the files gone from the folder); no
  commit at all when nothing differs.
* **down** (commit → folder): the files that differ are written from the
  walked index entries; with ``delete``, local files absent from the commit
  are removed.

Differences are found by content hash: the commit's entries carry theirs,
local files get theirs from the stat cache or, failing that, by being read
(a file whose size differs from the other side's is known to differ without
being read). Unchanged files are neither read nor transferred.

The commit's side comes, cheapest first, from the stat cache's record of the
commit last synced: as it is when the head is still that commit (and then an
unchanged folder is known from its stats alone, in bulk), or moved on by a
diff from it, O(changes), when the branch moved; only without a usable record
(first sync, another repo or path, a commit the store does not know, no cache)
is the commit's index walked.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import Callable, Iterator
from functools import wraps
from typing import Any, NamedTuple

from datumflow.storage_service.core.chunking import SMALL_FILE, read_hashed
from datumflow.storage_service.errors import BranchNotFound, CommitNotFound, InvalidArgument, PathNotFound
from datumflow.storage_service.model.core import FileInfo
from datumflow.storage_service.model.sync import SyncResult
from datumflow.storage_service.names import is_commit_id, normalize_path
from datumflow.storage_service.sync.folder import LocalFolder, check_folder
from datumflow.storage_service.sync.restore import BatchReader, restore
from datumflow.storage_service.sync.statcache import Remote, StatCache, StatTuple, Synced

__all__ = ["sync_down", "sync_up"]

log = logging.getLogger(__name__)

_LOOKUPS = 256  # entries of files to restore looked up one by one; more: one walk of the commit


def _without_gc(fn: Callable[..., SyncResult]) -> Callable[..., SyncResult]:
    """Pause the cyclic collector for the call: a sync holds an object per file (no cycles among
    them), and collections would walk them all again and again as they are made."""

    @wraps(fn)
    def paused(*args: Any, **kwargs: Any) -> SyncResult:
        if not gc.isenabled():
            return fn(*args, **kwargs)
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.enable()

    return paused


@_without_gc
def sync_up(
    store: Any, local: str, repo: str, branch: str, path: str = "", *, delete: bool = False,
    dry_run: bool = False, description: str = "", progress: Any = None, cache: bool = True,
) -> SyncResult:
    folder = LocalFolder(check_folder(local, must_exist=True), StatCache(local, enabled=cache))
    prefix = normalize_path(path, allow_root=True)
    head = _head(store, repo, branch)
    if head is not None and folder.cache.unchanged(Synced(repo, prefix, head), folder.paths_blob, folder.stats,
                                                    remote_extra_ok=not delete):
        return SyncResult("up", unchanged=folder.count, commit=None, dry_run=dry_run)
    if head is not None:
        done = _up_in_place(store, folder, repo, branch, prefix, head, delete=delete, dry_run=dry_run,
                            description=description, progress=progress)
        if done is not None:
            return done
    side = _remote(store, folder.cache, repo, head, prefix)
    remote = side.files
    added, changed, unchanged = _compare(folder, remote, _settled(folder, side))
    deleted = sorted(remote.keys() - folder.files.keys()) if delete else []
    commit = None
    if not dry_run:
        if added or changed or deleted:
            items: list[tuple[str, Any]] = [(_join(prefix, rel), folder.abspath(rel)) for rel in added + changed]
            items += [(_join(prefix, rel), None) for rel in deleted]
            commit = store.put_files(repo, branch, items, description=description or _describe(added, changed, deleted),
                                     progress=progress).id
            after = _after(store, repo, head, commit, prefix, remote)
            remote = after.files
            touched = None if side.touched is None else after.touched | side.touched  # None: not known, compare
            for rel in added + changed:
                if rel in remote:
                    folder.learn(rel, remote[rel][1])
        else:
            touched = side.touched
        if commit or head:
            folder.cache.set_synced(Synced(repo, prefix, str(commit or head)), remote, touched)
    folder.finish()
    sent = sum(folder.files[rel][0] for rel in added + changed)
    return SyncResult("up", tuple(added), tuple(changed), tuple(deleted), unchanged, sent, folder.files_read,
                      commit, dry_run)


def _up_in_place(
    store: Any, folder: LocalFolder, repo: str, branch: str, prefix: str, head: str, *, delete: bool,
    dry_run: bool, description: str, progress: Any,
) -> SyncResult | None:
    """A re-sync of a folder holding the same files as when it last matched the branch head, some edited:
    by row, O(changes) (see :meth:`StatCache.in_place`). None: not that case, compare in full."""
    cache = folder.cache
    rows = cache.in_place(Synced(repo, prefix, head), folder.paths_blob, folder.stats, delete=delete)
    if rows is None:
        return None
    paths, stats = folder.paths, folder.stats
    changed: list[_Edited] = []
    read_at = folder.statted_ns
    held = 0  # bytes of edited files held to be sent as read
    for i in rows:
        rel = paths[i]
        stat: StatTuple = (stats[4 * i], stats[4 * i + 1], stats[4 * i + 2], stats[4 * i + 3])
        found = cache.remote_at(rel, i)
        if found is None:  # a clean cache knows the commit's side of every file; not so: compare in full
            return None
        size, remote_hash = found[1]
        if size != stat[0] and stat[0] > SMALL_FILE:  # changed; its hash is the store's to find
            changed.append(_Edited(i, rel, stat, None))
            continue
        content, read_size, data = read_hashed(folder.abspath(rel))
        folder.files_read += 1
        if read_size != stat[0]:  # it changed under us: its stat is stale, record nothing, send the file
            if content != remote_hash:
                changed.append(_Edited(i, rel, stat, None))
            continue
        cache.record_at(i, rel, stat, content, read_at)
        if content != remote_hash:
            kept = data if data is not None and held + len(data) <= _HELD else None
            held += len(kept or b"")
            changed.append(_Edited(i, rel, stat, kept))
    commit = None
    if changed and not dry_run:
        items = [(_join(prefix, edit.rel), folder.abspath(edit.rel) if edit.data is None else edit.data)
                 for edit in changed]
        what = description or _describe([], [edit.rel for edit in changed], [])
        commit = store.put_files(repo, branch, items, description=what, progress=progress).id
        moved = _stored_as_read(store, cache, repo, head, commit, changed)
        if moved is None:
            moved = _stored_by_diff(store, cache, repo, prefix, head, commit, changed, read_at)
        if moved is None:
            # Another writer moved the branch meanwhile: what it changed is not known here by row.
            # Forget the commit record (the next sync walks the commit once); entries stay right.
            cache.forget_synced()
        else:
            cache.advance_in_place(Synced(repo, prefix, commit), moved)
    cache.save()
    sent = sum(edit.stat[0] for edit in changed)
    return SyncResult("up", (), tuple(edit.rel for edit in changed), (), folder.count - len(changed), sent,
                      folder.files_read, commit, dry_run)


_HELD = 64 * 1024 * 1024  # bytes of small edited files a re-sync sends as it read them (more: by path)


class _Edited(NamedTuple):
    """A file of the in-place mode whose content differs from the commit's."""

    row: int  # in the scan and the cache's columns
    rel: str
    stat: StatTuple
    data: bytes | None  # its content as read after that stat, to send as it is (None: send the file)


def _stored_as_read(
    store: Any, cache: StatCache, repo: str, head: str, commit: str, changed: list[_Edited],
) -> dict[int, tuple[int, str]] | None:
    """The commit's rows of ``changed`` (row of the synced commit's files → (size, hash)) when the commit is
    ``head`` with exactly the contents read here: no diff needed.

    So it is when every edit was sent as the bytes read (and hashed) here, and the branch's new commit
    sits right on ``head``. None: not known so; the diff tells.
    """
    if any(edit.data is None for edit in changed) or store.inspect_commit(repo, commit).parent != head:
        return None
    moved = {}
    for edit in changed:
        found = cache.remote_at(edit.rel, edit.row)
        entry = cache.entry_at(edit.row)
        assert found is not None and entry is not None and edit.data is not None
        moved[found[0]] = (len(edit.data), entry[1])
    return moved


def _stored_by_diff(
    store: Any, cache: StatCache, repo: str, prefix: str, head: str, commit: str, changed: list[_Edited],
    read_at: int,
) -> dict[int, tuple[int, str]] | None:
    """The commit's rows of ``changed``, from a diff of ``head`` and ``commit``; None if it holds more."""
    under = prefix + "/" if prefix else ""
    ours = {edit.rel: edit for edit in changed}
    moved: dict[int, tuple[int, str]] = {}
    for entry in store.diff(repo, head, commit):
        rel = entry.path[len(under):] if entry.path.startswith(under) else ""
        if rel not in ours or entry.new is None:
            return None
        content = str(entry.new.hash)
        found = cache.remote_at(rel, ours[rel].row)
        assert found is not None
        moved[found[0]] = (entry.new.size, content)
        cache.record_at(ours[rel].row, rel, ours[rel].stat, content, read_at)  # the hash the store read
    return moved


@_without_gc
def sync_down(
    store: Any, repo: str, ref: str, path: str, local: str, read: BatchReader | None = None, *,
    delete: bool = False, dry_run: bool = False, progress: Any = None, cache: bool = True, verify: bool = False,
) -> SyncResult:
    """``read`` fetches entries' content; by default ``store.read_content`` (the embedded store's)."""
    root = check_folder(local, must_exist=False)
    commit = store.inspect_commit(repo, ref).id  # one snapshot, even if the branch moves meanwhile
    prefix = normalize_path(path, allow_root=True)
    folder = LocalFolder(root, StatCache(root, enabled=cache))
    synced = Synced(repo, prefix, commit)
    if folder.cache.unchanged(synced, folder.paths_blob, folder.stats, remote_extra_ok=False):
        return SyncResult("down", unchanged=folder.count, commit=commit, dry_run=dry_run)
    side = _remote(store, folder.cache, repo, commit, prefix, missing_ok=False)
    remote, infos = side.files, side.infos
    if not remote and prefix:
        raise PathNotFound(f"{repo}@{ref}: no file or folder {prefix!r}")
    settled = _settled(folder, side)
    local_side = {rel: remote[rel] for rel in (folder.files.keys() & remote.keys()) - settled}
    differs, same = _differing(folder, local_side)
    same += len(settled)
    added = sorted(remote.keys() - folder.files.keys())
    deleted = sorted(folder.files.keys() - remote.keys()) if delete else []
    wanted = sorted(added + differs)
    sent = sum(remote[rel][0] for rel in wanted)
    if not dry_run:
        infos = _entries_of(store, repo, commit, prefix, wanted, infos)
        for rel in deleted:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(root, rel))
        restore(root, [(rel, infos[rel]) for rel in wanted], read or _content_reader(store),
                cache=folder.cache if cache else None, verify=verify, progress=progress)
        folder.cache.forget_except((set(folder.files) - set(deleted)) | set(remote))
        folder.cache.set_synced(synced, remote, side.touched)
    folder.cache.save(folder.paths)
    return SyncResult("down", tuple(added), tuple(differs), tuple(deleted), same, sent, folder.files_read,
                      commit, dry_run)


def _content_reader(store: Any) -> BatchReader:
    def read(infos: Any) -> Iterator[Any]:
        return (store.read_content(info) for info in infos)

    return read


def _head(store: Any, repo: str, branch: str) -> str | None:
    try:
        head = store.inspect_branch(repo, branch).head
    except BranchNotFound:
        return None
    return str(head) if head else None


class _Side(NamedTuple):
    """The commit's side of a comparison."""

    files: Remote  # rel → (size, hash) of every file under the path
    infos: dict[str, FileInfo]  # the full entries of those the walk or diff returned
    touched: set[str] | None  # rels changed since the commit recorded in the cache (None: the record unused)


def _remote(
    store: Any, cache: StatCache, repo: str, commit: str | None, prefix: str, *, missing_ok: bool = True
) -> _Side:
    """The files under ``prefix`` in ``commit``.

    From the cache's record of the commit last synced where there is one for
    this repo and path (as it is, or moved on by a diff), else by a walk.
    """
    if commit is None:
        return _Side({}, {}, None)
    last = cache.synced
    if last is not None and (last.repo, last.prefix) == (repo, prefix) and is_commit_id(last.commit):
        if last.commit == commit:
            return _Side(cache.remote, {}, set())
        try:
            moved = _moved(store, repo, last.commit, commit, prefix, cache.remote)
            return _Side(moved.files, moved.infos, moved.touched)
        except CommitNotFound:  # the store does not have the commit recorded (another store, or a reset)
            log.info("%s@%s: the commit last synced (%s) is unknown here; walking the commit", repo, commit,
                     last.commit)
    try:
        infos = _walk(store, repo, commit, prefix)
    except BranchNotFound:
        if missing_ok:
            return _Side({}, {}, None)
        raise
    return _Side({rel: (info.size, str(info.hash)) for rel, info in infos.items()}, infos, None)


def _settled(folder: LocalFolder, side: _Side) -> set[str]:
    """Files known equal without a look at each: their stat is the one recorded when they matched the
    commit last synced, and the commit's side of them has not changed since."""
    if side.touched is None:
        return set()
    return folder.cache.settled(folder.paths, folder.stats) - side.touched


def _entries_of(
    store: Any, repo: str, commit: str, prefix: str, wanted: list[str], infos: dict[str, FileInfo]
) -> dict[str, FileInfo]:
    """The full entries of ``wanted``: those the diff gave, a few looked up by path, or else all by a walk."""
    missing = [rel for rel in wanted if rel not in infos]
    if not missing:
        return infos
    if len(missing) > _LOOKUPS:
        return _walk(store, repo, commit, prefix)
    return {**infos, **{rel: store.inspect_file(repo, commit, _join(prefix, rel)) for rel in missing}}


def _walk(store: Any, repo: str, ref: str, prefix: str) -> dict[str, FileInfo]:
    cut = len(prefix) + 1 if prefix else 0
    found = {}
    for info in store.walk_files(repo, ref, prefix):
        if info.path == prefix:
            raise InvalidArgument(f"{repo}@{ref}:{prefix} is a file; sync works on folders")
        found[info.path[cut:]] = info
    return found


class _Moved(NamedTuple):
    files: Remote
    infos: dict[str, FileInfo]  # the new entries of the files added or changed
    touched: set[str]  # those, and the files removed


def _moved(store: Any, repo: str, old: str | None, new: str, prefix: str, remote: Remote) -> _Moved:
    """``remote`` (the files of ``old`` under ``prefix``) moved on to ``new`` by a diff: O(changes)."""
    out, infos, gone = dict(remote), {}, set()
    under = prefix + "/" if prefix else ""
    for entry in store.diff(repo, old, new):
        if not entry.path.startswith(under):
            if entry.path == prefix and entry.new is not None:
                raise InvalidArgument(f"{repo}@{new}:{prefix} is a file; sync works on folders")
            continue
        rel = entry.path[len(under):]
        if entry.new is None:
            out.pop(rel, None)
            gone.add(rel)
        else:
            out[rel] = (entry.new.size, str(entry.new.hash))
            infos[rel] = entry.new
    return _Moved(out, infos, gone | infos.keys())


def _after(store: Any, repo: str, head: str | None, commit: str, prefix: str, remote: Remote) -> _Moved:
    """The files under ``prefix`` of the commit just made on top of ``head`` (or of whatever moved the branch)."""
    if head is not None:
        return _moved(store, repo, head, commit, prefix, remote)
    if store.inspect_commit(repo, commit).parent is None:  # the branch's first commit: a diff from nothing
        return _moved(store, repo, None, commit, prefix, {})
    files = {rel: (info.size, str(info.hash)) for rel, info in _walk(store, repo, commit, prefix).items()}
    return _Moved(files, {}, set(files) | set(remote))


def _compare(folder: LocalFolder, remote: Remote, settled: set[str]) -> tuple[list[str], list[str], int]:
    """(added, changed, unchanged count) of the folder's files against the commit's."""
    files = folder.files
    added = sorted(files.keys() - remote.keys())
    both = {rel: remote[rel] for rel in (files.keys() & remote.keys()) - settled}
    changed, same = _differing(folder, both)
    return added, changed, same + len(settled)


def _differing(folder: LocalFolder, both: Remote) -> tuple[list[str], int]:
    """The paths (present on both sides) whose content differs, and how many are the same."""
    files = folder.files
    sized = [rel for rel, (size, _) in both.items() if size == files[rel][0]]
    hashes = folder.hashes(sized)
    changed = sorted([rel for rel, (_, h) in both.items() if hashes.get(rel) != h])
    return changed, len(both) - len(changed)


def _join(prefix: str, rel: str) -> str:
    return f"{prefix}/{rel}" if prefix else rel


def _describe(added: list[str], changed: list[str], deleted: list[str]) -> str:
    return f"sync: {len(added)} added, {len(changed)} changed, {len(deleted)} deleted"
