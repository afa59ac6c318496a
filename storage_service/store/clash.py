"""A path is a file or a folder, never both: the check every write's index edit passes."""

from __future__ import annotations

from typing import Any

from datumflow.storage_service.core.index import MAX_KEY
from datumflow.storage_service.errors import InvalidArgument

__all__ = ["refuse_file_folder_clash"]


def refuse_file_folder_clash(
    tree: Any, old: str | None, new: str | None, edits: dict[str, Any], inserted: set[str] | None = None
) -> None:
    """A path is a file or a folder, never both: ``a`` and ``a/b`` cannot sit in one commit.

    Cheap for the common writes: one lookup per folder the edits touch, and a
    per-file lookup only for a new file in a folder that existed before.
    ``inserted`` (from the edit, when known): the paths that were not in
    ``old``. The others replaced a file there, which had nothing under it, so
    only the edits could put something under them (``path in folders``).
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
        clash = path in folders or (parent in existed and (inserted is None or path in inserted)
                                    and _has_under(tree, new, path))
        if clash:
            raise InvalidArgument(f"{path!r} is a folder: it cannot also be a file")


def _has_under(tree: Any, root: str | None, folder: str) -> bool:
    return next(tree.items(root, folder + "/", folder + "/" + MAX_KEY), None) is not None
