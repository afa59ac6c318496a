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
import logging
import os
from collections.abc import Iterator
from typing import Any

from datumflow.storage_service.errors import BranchNotFound, CommitNotFound, InvalidArgument, PathNotFound
from datumflow.storage_service.model.core import FileInfo
from datumflow.storage_service.model.sync import SyncResult
from datumflow.storage_service.names import normalize_path
from datumflow.storage_service.sync.folder import LocalFolder, check_folder
from datumflow.storage_service.sync.restore import BatchReader, restore
from datumflow.storage_service.sync.statcache import Remote, StatCache, Synced

__all__ = ["sync_down", "sync_up"]

log = logging.getLogger(__name__)


def sync_up(
    store: Any, local: str, repo: str, branch: str, path: str = "", *, delete: bool = False,
    dry_run: bool = False, description: str = "", progress: Any = None, cache: bool = True,
) -> SyncResult:
    folder = LocalFolder(check_folder(local, must_exist=True), StatCache(local, enabled=cache))
    prefix = normalize_path(path, allow_root=True)
    head = _head(store, repo, branch)
    if head is not None and folder.cache.unchanged(Synced(repo, prefix, head), folder.paths, folder.stats,
                                                    remote_extra_ok=not delete):
        return SyncResult("up", unchanged=len(folder.paths), commit=None, dry_run=dry_run)
    remote, _ = _remote(store, folder.cache, repo, head, prefix)
    added, changed, unchanged = _compare(folder, remote)
    deleted = sorted(set(remote) - set(folder.files)) if delete else []
    commit = None
    if not dry_run:
        if added or changed or deleted:
            items: list[tuple[str, Any]] = [(_join(prefix, rel), folder.files[rel].path) for rel in added + changed]
            items += [(_join(prefix, rel), None) for rel in deleted]
            commit = store.put_files(repo, branch, items, description=description or _describe(added, changed, deleted),
                                     progress=progress).id
            remote = _after(store, repo, head, commit, prefix, remote)
            for rel in added + changed:
                if rel in remote:
                    folder.learn(rel, remote[rel][1])
        if commit or head:
            folder.cache.set_synced(Synced(repo, prefix, str(commit or head)), remote)
    folder.finish()
    sent = sum(folder.files[rel].stat.size for rel in added + changed)
    return SyncResult("up", tuple(added), tuple(changed), tuple(deleted), unchanged, sent, folder.files_read,
                      commit, dry_run)


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
    if folder.cache.unchanged(synced, folder.paths, folder.stats, remote_extra_ok=False) and not delete:
        return SyncResult("down", unchanged=len(folder.paths), commit=commit, dry_run=dry_run)
    remote, infos = _remote(store, folder.cache, repo, commit, prefix, missing_ok=False)
    if not remote and prefix:
        raise PathNotFound(f"{repo}@{ref}: no file or folder {prefix!r}")
    local_side = {rel: entry for rel, entry in remote.items() if rel in folder.files}
    differs, same = _differing(folder, local_side)
    added = sorted(set(remote) - set(folder.files))
    deleted = sorted(set(folder.files) - set(remote)) if delete else []
    wanted = sorted(added + differs)
    sent = sum(remote[rel][0] for rel in wanted)
    if not dry_run:
        if wanted and not all(rel in infos for rel in wanted):
            infos = _walk(store, repo, commit, prefix)
        for rel in deleted:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(root, rel))
        restore(root, [(rel, infos[rel]) for rel in wanted], read or _content_reader(store),
                cache=folder.cache if cache else None, verify=verify, progress=progress)
        folder.cache.forget_except((set(folder.files) - set(deleted)) | set(remote))
        folder.cache.set_synced(synced, remote)
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


def _remote(
    store: Any, cache: StatCache, repo: str, commit: str | None, prefix: str, *, missing_ok: bool = True
) -> tuple[Remote, dict[str, FileInfo]]:
    """rel → (size, hash) of every file under ``prefix`` in ``commit``, and the full entries of those it has.

    From the cache's record of the commit last synced where there is one for
    this repo and path (as it is, or moved on by a diff), else by a walk.
    """
    if commit is None:
        return {}, {}
    last = cache.synced
    if last is not None and (last.repo, last.prefix) == (repo, prefix):
        if last.commit == commit:
            return dict(cache.remote), {}
        try:
            return _moved(store, repo, last.commit, commit, prefix, cache.remote)
        except CommitNotFound:  # the store does not have the commit recorded (another store, or a reset)
            log.info("%s@%s: the commit last synced (%s) is unknown here; walking the commit", repo, commit,
                     last.commit)
    try:
        infos = _walk(store, repo, commit, prefix)
    except BranchNotFound:
        if missing_ok:
            return {}, {}
        raise
    return {rel: (info.size, str(info.hash)) for rel, info in infos.items()}, infos


def _walk(store: Any, repo: str, ref: str, prefix: str) -> dict[str, FileInfo]:
    cut = len(prefix) + 1 if prefix else 0
    found = {}
    for info in store.walk_files(repo, ref, prefix):
        if info.path == prefix:
            raise InvalidArgument(f"{repo}@{ref}:{prefix} is a file; sync works on folders")
        found[info.path[cut:]] = info
    return found


def _moved(
    store: Any, repo: str, old: str | None, new: str, prefix: str, remote: Remote
) -> tuple[Remote, dict[str, FileInfo]]:
    """``remote`` (the files of ``old`` under ``prefix``) moved on to ``new`` by a diff: O(changes)."""
    out, infos = dict(remote), {}
    under = prefix + "/" if prefix else ""
    for entry in store.diff(repo, old, new):
        if not entry.path.startswith(under):
            if entry.path == prefix and entry.new is not None:
                raise InvalidArgument(f"{repo}@{new}:{prefix} is a file; sync works on folders")
            continue
        rel = entry.path[len(under):]
        if entry.new is None:
            out.pop(rel, None)
        else:
            out[rel] = (entry.new.size, str(entry.new.hash))
            infos[rel] = entry.new
    return out, infos


def _after(store: Any, repo: str, head: str | None, commit: str, prefix: str, remote: Remote) -> Remote:
    """The files under ``prefix`` of the commit just made on top of ``head`` (or of whatever moved the branch)."""
    if head is not None:
        return _moved(store, repo, head, commit, prefix, remote)[0]
    if store.inspect_commit(repo, commit).parent is None:  # the branch's first commit: a diff from nothing
        return _moved(store, repo, None, commit, prefix, {})[0]
    return {rel: (info.size, str(info.hash)) for rel, info in _walk(store, repo, commit, prefix).items()}


def _compare(folder: LocalFolder, remote: Remote) -> tuple[list[str], list[str], int]:
    """(added, changed, unchanged count) of the folder's files against the commit's."""
    added = sorted(rel for rel in folder.files if rel not in remote)
    both = {rel: remote[rel] for rel in folder.files if rel in remote}
    changed, same = _differing(folder, both)
    return added, changed, same


def _differing(folder: LocalFolder, both: Remote) -> tuple[list[str], int]:
    """The paths (present on both sides) whose content differs, and how many are the same."""
    files = folder.files
    sized = [rel for rel, (size, _) in both.items() if size == files[rel].stat.size]
    hashes = folder.hashes(sized)
    changed = sorted([rel for rel, (_, h) in both.items() if hashes.get(rel) != h])
    return changed, len(both) - len(changed)


def _join(prefix: str, rel: str) -> str:
    return f"{prefix}/{rel}" if prefix else rel


def _describe(added: list[str], changed: list[str], deleted: list[str]) -> str:
    return f"sync: {len(added)} added, {len(changed)} changed, {len(deleted)} deleted"
