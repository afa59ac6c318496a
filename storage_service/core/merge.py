"""Three-way merge of two file indexes against their merge base.

Both sides are diffed against the base with :meth:`Tree.diff`, which skips
every subtree the two trees share, so the work is about O(changes on both
sides), whatever the number of files. A path changed on one side only takes
that side's entry; a path both sides changed to the same entry is no
conflict; a path both sides changed differently (including modify/delete)
is a conflict, which a strategy settles (``ours`` keeps the destination's
entry, ``theirs`` takes the source's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datumflow.storage_service.core.index import Tree
from datumflow.storage_service.errors import InvalidArgument

__all__ = ["STRATEGIES", "ThreeWay", "three_way"]

STRATEGIES = ("ours", "theirs")


@dataclass
class ThreeWay:
    """Edits to apply to the destination's index, and the conflicts as (path, base, ours, theirs)."""

    edits: dict[str, Any] = field(default_factory=dict)
    conflicts: list[tuple[str, Any, Any, Any]] = field(default_factory=list)


def three_way(tree: Tree, base: str | None, ours: str | None, theirs: str | None,
              strategy: str | None = None) -> ThreeWay:
    """How to bring ``theirs`` into ``ours`` (roots of index trees; None is empty)."""
    if strategy is not None and strategy not in STRATEGIES:
        raise InvalidArgument(f"unknown merge strategy {strategy!r}: use ours or theirs")
    mine = {key: new for key, _, new in tree.diff(base, ours)}
    out = ThreeWay()
    for key, old, new in tree.diff(base, theirs):
        if key not in mine:
            out.edits[key] = new
        elif mine[key] != new:
            out.conflicts.append((key, old, mine[key], new))
            if strategy == "theirs":
                out.edits[key] = new
    return out
