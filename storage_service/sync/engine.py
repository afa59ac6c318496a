"""Sync a local folder and a branch, either way, moving only the differences.

Both work over any store object with ``walk_files``, ``put_files`` and
``inspect_commit`` (the embedded :class:`Store` and the HTTP ``Client``):

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
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from datumflow.storage_service.errors import BranchNotFound, InvalidArgument, PathNotFound
from datumflow.storage_service.model.core import FileInfo
from datumflow.storage_service.model.sync import SyncResult
from datumflow.storage_service.names import normalize_path
from datumflow.storage_service.sync.folder import LocalFolder, check_folder
from datumflow.storage_service.sync.restore import BatchReader, restore
from datumflow.storage_service.sync.statcache import StatCache

__all__ = ["sync_down", "sync_up"]

_LEARN_BY_READING = 256  # uploaded files whose hash is learnt by reading them again; more: by a walk


def sync_up(
    store: Any, local: str, repo: str, branch: str, path: str = "", *, delete: bool = False,
    dry_run: bool = False, description: str = "", progress: Any = None, cache: bool = True,
) -> SyncResult:
    folder = LocalFolder(check_folder(local, must_exist=True), StatCache(local, enabled=cache))
    prefix = normalize_path(path, allow_root=True)
    remote = _remote(store, repo, branch, prefix, missing_ok=True)
    added, changed, unchanged = _compare(folder, remote)
    deleted = sorted(set(remote) - set(folder.files)) if delete else []
    commit = None
    if not dry_run and (added or changed or deleted):
        items: list[tuple[str, Any]] = [(_join(prefix, rel), folder.files[rel].path) for rel in added + changed]
        items += [(_join(prefix, rel), None) for rel in deleted]
        commit = store.put_files(repo, branch, items, description=description or _describe(added, changed, deleted),
                                 progress=progress).id
        _learn(store, folder, repo, commit, prefix, added + changed)
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
    remote = _remote(store, repo, commit, prefix, missing_ok=False)
    if not remote and prefix:
        raise PathNotFound(f"{repo}@{ref}: no file or folder {prefix!r}")
    folder = LocalFolder(root, StatCache(root, enabled=cache))
    local_side = {rel: info for rel, info in remote.items() if rel in folder.files}
    differs, same = _differing(folder, local_side)
    added = sorted(set(remote) - set(folder.files))
    deleted = sorted(set(folder.files) - set(remote)) if delete else []
    wanted = [(rel, remote[rel]) for rel in sorted(added + differs)]
    sent = sum(info.size for _, info in wanted)
    if not dry_run:
        for rel in deleted:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(root, rel))
        restore(root, wanted, read or _content_reader(store), cache=folder.cache, verify=verify, progress=progress)
        folder.cache.forget_except((set(folder.files) - set(deleted)) | set(remote))
        folder.cache.save()
    else:
        folder.cache.save()
    return SyncResult("down", tuple(added), tuple(differs), tuple(deleted), same, sent, folder.files_read,
                      commit, dry_run)


def _content_reader(store: Any) -> BatchReader:
    def read(infos: Any) -> Iterator[Any]:
        return (store.read_content(info) for info in infos)

    return read


def _remote(store: Any, repo: str, ref: str, prefix: str, *, missing_ok: bool) -> dict[str, FileInfo]:
    """rel → entry of every file under ``prefix`` in ``ref``."""
    try:
        infos = store.walk_files(repo, ref, prefix)
        cut = len(prefix) + 1 if prefix else 0
        found = {}
        for info in infos:
            if info.path == prefix:
                raise InvalidArgument(f"{repo}@{ref}:{prefix} is a file; sync works on folders")
            found[info.path[cut:]] = info
        return found
    except BranchNotFound:
        if missing_ok:
            return {}
        raise


def _compare(folder: LocalFolder, remote: dict[str, FileInfo]) -> tuple[list[str], list[str], int]:
    """(added, changed, unchanged count) of the folder's files against the commit's."""
    added = sorted(rel for rel in folder.files if rel not in remote)
    both = {rel: remote[rel] for rel in folder.files if rel in remote}
    changed, same = _differing(folder, both)
    return added, changed, same


def _differing(folder: LocalFolder, both: dict[str, FileInfo]) -> tuple[list[str], int]:
    """The paths (present on both sides) whose content differs, and how many are the same."""
    sized = [rel for rel, info in both.items() if info.size == folder.files[rel].stat.size]
    hashes = folder.hashes(sized)
    changed = sorted([rel for rel, info in both.items() if rel not in hashes or hashes[rel] != info.hash])
    return changed, len(both) - len(changed)


def _learn(store: Any, folder: LocalFolder, repo: str, commit: str, prefix: str, uploaded: list[str]) -> None:
    """Record the hashes of the files just uploaded, so the next sync does not read them."""
    unknown = [rel for rel in uploaded if folder.known_hash(rel) is None]
    if len(unknown) <= _LEARN_BY_READING:
        folder.hashes(unknown)
        return
    for rel, info in _remote(store, repo, commit, prefix, missing_ok=False).items():
        if info.hash:
            folder.learn(rel, info.hash)


def _join(prefix: str, rel: str) -> str:
    return f"{prefix}/{rel}" if prefix else rel


def _describe(added: list[str], changed: list[str], deleted: list[str]) -> str:
    return f"sync: {len(added)} added, {len(changed)} changed, {len(deleted)} deleted"
