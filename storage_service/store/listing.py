"""Listing a commit's files from its index alone: what ``ls`` and ``inspect`` answer.

Nothing here touches the metadata database: every function takes the
:class:`~datumflow.storage_service.core.index.Tree` and the root hash of one
commit's index, so the same code serves the :class:`Store` and the CLI's
read-only path over the standard library's ``sqlite3``
(:mod:`.local_read`), which never imports SQLAlchemy. ``path`` is always
normalized (:func:`~datumflow.storage_service.names.normalize_path`) by the
caller, which refuses a bad path before it resolves the ref.
"""

from __future__ import annotations

from typing import Any

from datumflow.storage_service.core.index import MAX_KEY, Tree
from datumflow.storage_service.errors import PathNotFound
from datumflow.storage_service.model.core import ChunkRef, FileInfo

__all__ = ["chunks_of", "dir_stats", "file_info", "inspect_entry", "list_entries", "meta_of"]


def chunks_of(entry: list[Any]) -> list[ChunkRef]:
    if len(entry) == 2 or entry[2] is None:
        return [ChunkRef(entry[1], entry[0])]
    return [ChunkRef(h, n) for h, n in entry[2]]


def meta_of(entry: list[Any]) -> dict[str, str]:
    return dict(entry[3]) if len(entry) > 3 else {}


def file_info(path: str, entry: list[Any]) -> FileInfo:
    return FileInfo(path=path, type="file", size=entry[0], hash=entry[1], chunks=tuple(chunks_of(entry)),
                    meta=meta_of(entry))


def dir_stats(tree: Tree, root: str | None, path: str) -> tuple[int, int]:
    """(files, bytes) under the folder ``path`` ("" for the whole commit)."""
    if not path:
        return tree.stats(root)
    return tree.range_stats(root, path + "/", path + "/" + MAX_KEY)


def inspect_entry(tree: Tree, root: str | None, path: str, where: str) -> FileInfo:
    """The file or folder at ``path``; ``where`` (``repo@ref``) names the commit in the error."""
    if path:
        entry = tree.get(root, path)
        if entry is not None:
            return file_info(path, entry)
    files, size = dir_stats(tree, root, path)
    if files == 0 and path:
        raise PathNotFound(f"{where}: no file or folder {path!r}")
    return FileInfo(path=path, type="dir", size=size)


def list_entries(
    tree: Tree, root: str | None, path: str, where: str, *,
    start_after: str | None = None, limit: int | None = None,
) -> list[FileInfo]:
    """The files and folders directly inside ``path`` (a file lists itself), in name order.

    ``start_after`` resumes after an entry name (paging), ``limit`` caps the
    answer; a folder costs one walk of the inner nodes for its totals.
    """
    if path and (entry := tree.get(root, path)) is not None:
        return [file_info(path, entry)]
    prefix = f"{path}/" if path else ""
    out: list[FileInfo] = []
    pos = prefix + (start_after or "")
    stop = prefix + MAX_KEY
    while limit is None or len(out) < limit:
        nxt = next(iter(tree.items(root, pos, stop)), None)
        if nxt is None:
            break
        key, entry = nxt
        name = key[len(prefix):].split("/", 1)[0]
        if name == start_after:
            pos = prefix + name + ("/" + MAX_KEY if "/" in key[len(prefix):] else "\x00")
            continue
        if "/" in key[len(prefix):]:
            folder = prefix + name
            _files, size = dir_stats(tree, root, folder)
            out.append(FileInfo(path=folder, type="dir", size=size))
            pos = folder + "/" + MAX_KEY
        else:
            out.extend(_file_run(tree, root, key, stop, prefix, limit, len(out)))
            pos = out[-1].path + "\x00"
    if not out and path and start_after is None:
        raise PathNotFound(f"{where}: no file or folder {path!r}")
    return out


def _file_run(tree: Tree, root: str | None, start: str, stop: str, prefix: str,
              limit: int | None, before: int) -> list[FileInfo]:
    """Consecutive plain files of a folder, read in one pass."""
    run: list[FileInfo] = []
    for key, entry in tree.items(root, start, stop):
        if "/" in key[len(prefix):] or (limit is not None and before + len(run) >= limit):
            break
        run.append(file_info(key, entry))
    return run
