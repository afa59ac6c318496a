"""The file index of a commit: a content-addressed prolly tree of sorted paths.

Every commit's file index is a search tree whose leaves hold ``path -> entry``
in path order and whose inner nodes hold ``last key -> (child, files, bytes)``.
Node boundaries are decided by the keys alone (a node ends after a key whose
hash, salted by the level, hits 1 in ``FANOUT``), so the same set of paths
always gives the same tree, whatever the history — a *prolly tree*. Two
consequences carry the design:

* an edit of k paths rewrites only the nodes on their paths to the root,
  about O(k log N) nodes, and every other node is shared with the parent;
* two trees are diffed by dropping every subtree present in both (same hash),
  which costs about O(changes), whatever the sizes of the trees.

Nodes are stored in the metadata database (``df_nodes``) so that a commit and
its index become visible in one transaction.
"""

from __future__ import annotations

import functools
import itertools
import json
import operator
import threading
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import blake3
import orjson

__all__ = ["MAX_KEY", "Node", "NodeStore", "Tree", "encode_json"]

_FIRST, _SECOND, _THIRD = operator.itemgetter(0), operator.itemgetter(1), operator.itemgetter(2)
LEAF_FANOUT = 128
INNER_FANOUT = 64
MAX_KEY = "\U0010ffff"  # sorts after every path


@dataclass(frozen=True)
class Node:
    level: int
    keys: list[str]
    vals: list[Any]  # leaf: file entry; inner: [child hash, files, bytes]

    def encode(self) -> bytes:
        return encode_json([self.level, self.keys, self.vals])

    @classmethod
    def decode(cls, data: bytes) -> Node:
        try:
            level, keys, vals = orjson.loads(data)
        except orjson.JSONDecodeError:  # e.g. a path that is not UTF-8 (an escaped lone surrogate)
            level, keys, vals = json.loads(data)
        return cls(level, keys, vals)

    @functools.cached_property
    def children(self) -> tuple[str, ...]:
        """An inner node's child hashes, in order (made once per cached node: diffs expand them)."""
        return tuple(map(_FIRST, self.vals))

    def stats(self) -> tuple[int, int]:
        """(files, bytes) below this node."""
        if self.level == 0:
            return len(self.keys), sum(map(_FIRST, self.vals))
        return sum(map(_SECOND, self.vals)), sum(map(_THIRD, self.vals))


def encode_json(value: Any) -> bytes:
    """``json.dumps(value, separators=(",", ":"))`` as bytes, byte for byte (node hashes depend on it).

    orjson writes the same bytes for what nodes hold (lists, dicts of strings,
    strings, integers, None; never floats) whenever its output is printable
    ASCII with no ``\\u`` escape: it differs only in writing DEL and
    non-ASCII characters raw, and in refusing lone surrogates and integers
    beyond 64 bits. In those cases the standard encoder runs. (Reading, orjson
    would take an integer beyond 64 bits for a float; sizes and counts in
    nodes never come near.)
    """
    try:
        out = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        out = b""
    # (A one-byte search first: it is a memchr, where looking for two bytes at once took 15 times longer.)
    if not out or not out.isascii() or (b"\\" in out and b"\\u" in out) or b"\x7f" in out:
        return json.dumps(value, separators=(",", ":")).encode()
    return out


class NodeStore:
    """Where nodes live; the store layer gives one backed by SQL."""

    def __init__(self, load: Any, save: Any, cache_size: int = 4096) -> None:
        self._load = load  # hash -> bytes
        self._save = save  # list[(hash, bytes)] -> None
        self._cache: OrderedDict[str, Node] = OrderedDict()
        self._cache_size = cache_size
        self._pending: dict[str, bytes] = {}
        self._lock = threading.RLock()

    def get(self, h: str) -> Node:
        with self._lock:
            return self._get(h)

    def _get(self, h: str) -> Node:
        node = self._cache.get(h)
        if node is not None:
            self._cache.move_to_end(h)
            return node
        data = self._pending.get(h)
        if data is None:
            data = self._load(h)
        node = Node.decode(data)
        self._remember(h, node)
        return node

    def put(self, node: Node) -> str:
        data = node.encode()
        h = blake3.blake3(data).hexdigest()
        # Written even if cached: gc may have removed an unreachable node this process still
        # remembers, and a new tree must never count on it (the insert skips existing rows).
        self._pending[h] = data
        self._remember(h, node)
        return h

    def flush(self) -> list[tuple[str, bytes]]:
        """Hand the nodes written since the last flush to the saver."""
        rows = list(self._pending.items())
        if rows:
            self._save(rows)
        self._pending.clear()
        return rows

    def discard(self) -> None:
        for h in self._pending:
            self._cache.pop(h, None)
        self._pending.clear()

    def _remember(self, h: str, node: Node) -> None:
        with self._lock:
            self._cache[h] = node
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def _is_boundary(key: str, level: int) -> bool:
    digest = blake3.blake3(key.encode() + bytes((level,))).digest(4)
    fanout = LEAF_FANOUT if level == 0 else INNER_FANOUT
    return int.from_bytes(digest, "little") % fanout == 0


class _Cursor:
    """Walks the nodes of one level, left to right, through their ancestors."""

    def __init__(self, store: NodeStore, root: Node, level: int) -> None:
        self.store = store
        self.root = root
        self.level = level
        self.stack: list[list[Any]] = []
        self.node = root

    def seek(self, key: str) -> None:
        """Go to the first node whose last key is >= key (or the last node)."""
        node, stack = self.root, []
        while node.level > self.level:
            idx = min(bisect_left(node.keys, key), len(node.keys) - 1)
            stack.append([node, idx])
            node = self.store.get(node.vals[idx][0])
        self.stack, self.node = stack, node

    def has_next(self) -> bool:
        return any(idx + 1 < len(node.keys) for node, idx in self.stack)

    def advance(self) -> bool:
        i = len(self.stack) - 1
        while i >= 0 and self.stack[i][1] + 1 >= len(self.stack[i][0].keys):
            i -= 1
        if i < 0:
            return False
        self.stack[i][1] += 1
        del self.stack[i + 1:]
        parent, idx = self.stack[i]
        node = self.store.get(parent.vals[idx][0])
        while node.level > self.level:
            self.stack.append([node, 0])
            node = self.store.get(node.vals[0][0])
        self.node = node
        return True


class _Chunker:
    """Cuts a run of items into nodes of one level at key-decided boundaries."""

    def __init__(self, store: NodeStore, level: int) -> None:
        self.store, self.level = store, level
        self.keys: list[str] = []
        self.vals: list[Any] = []
        self.out: list[tuple[str, list[Any]]] = []  # (last key, [hash, files, bytes])

    def add(self, key: str, val: Any) -> None:
        self.keys.append(key)
        self.vals.append(val)
        if _is_boundary(key, self.level):
            self.cut()

    def extend(self, keys: list[str], vals: list[Any], boundaries: list[int]) -> None:
        """Add a run of items whose boundaries are known: the indexes in ``boundaries`` (ascending) and
        no others. Equal to :meth:`add` of each, without a hash per key."""
        start = 0
        for end in boundaries:
            self.keys.extend(keys[start:end + 1])
            self.vals.extend(vals[start:end + 1])
            self.cut()
            start = end + 1
        if start < len(keys):
            self.keys.extend(keys[start:])
            self.vals.extend(vals[start:])

    def cut(self) -> None:
        if not self.keys:
            return
        node = Node(self.level, self.keys, self.vals)
        files, size = node.stats()
        self.out.append((self.keys[-1], [self.store.put(node), files, size]))
        self.keys, self.vals = [], []

    @property
    def empty(self) -> bool:
        return not self.keys


def _merged(node: Node, edits: list[tuple[str, Any]], inserted: set[str] | None = None,
            ) -> tuple[list[str], list[Any], list[int]]:
    """The items of a stored node with sorted edits applied (None deletes), and where its boundaries are.

    A stored node was cut after a boundary key and holds no other one, so of
    its keys only the last can be a boundary; of the rest only keys the edits
    insert need their hash. A node with one edit in a hundred costs a few
    slices, not a hash per key. Keys the edits add (not replace) go into ``inserted``.
    """
    keys, vals = node.keys, node.vals
    out_keys: list[str] = []
    out_vals: list[Any] = []
    new_at: list[int] = []  # positions (in the output) of inserted keys
    i = 0
    for key, val in edits:
        j = bisect_left(keys, key, i)
        out_keys.extend(keys[i:j])
        out_vals.extend(vals[i:j])
        i = j
        if i < len(keys) and keys[i] == key:
            if val is not None:  # a replacement: the same key, so the same boundary as before
                out_keys.append(key)
                out_vals.append(val)
            i += 1
        elif val is not None:
            new_at.append(len(out_keys))
            out_keys.append(key)
            out_vals.append(val)
            if inserted is not None:
                inserted.add(key)
    out_keys.extend(keys[i:])
    out_vals.extend(vals[i:])
    if keys:  # the old last key, unless deleted, may be a boundary (it is not when its node ended the level)
        p = bisect_left(out_keys, keys[-1])
        if p < len(out_keys) and out_keys[p] == keys[-1]:
            new_at.append(p)
            new_at.sort()
    level = node.level
    return out_keys, out_vals, [p for p in new_at if _is_boundary(out_keys[p], level)]


class Tree:
    """Operations on trees held in a :class:`NodeStore`; roots are node hashes."""

    def __init__(self, store: NodeStore) -> None:
        self.store = store

    # -- building and editing -------------------------------------------------

    def build(self, items: Iterable[tuple[str, Any]]) -> str | None:
        """A tree from items sorted by key."""
        chunker = _Chunker(self.store, 0)
        for key, val in items:
            chunker.add(key, val)
        chunker.cut()
        return self._grow(chunker.out, 1)

    def edit(self, root: str | None, edits: dict[str, Any], inserted: set[str] | None = None) -> str | None:
        """Apply ``{path: entry or None}``; returns the new root (None if empty).

        ``inserted``, if given, receives the paths the edits added (that were not in the tree).
        """
        ordered = sorted(edits.items())
        if not ordered:
            return root
        if root is None:
            if inserted is not None:
                inserted.update(k for k, v in ordered if v is not None)
            return self.build((k, v) for k, v in ordered if v is not None)
        top = self.store.get(root)
        level_edits = ordered
        for level in range(top.level):
            up = self._rewrite_level(top, level, level_edits, inserted=inserted if level == 0 else None)
            level_edits = sorted(up.items())
        chunker = _Chunker(self.store, top.level)
        self._rewrite_level(top, top.level, level_edits, chunker, inserted=inserted if top.level == 0 else None)
        chunker.cut()
        new_root = self._grow(chunker.out, top.level + 1)
        return self._collapse(new_root)

    def _rewrite_level(
        self, top: Node, level: int, edits: list[tuple[str, Any]], chunker: _Chunker | None = None,
        inserted: set[str] | None = None,
    ) -> dict[str, Any]:
        cursor = _Cursor(self.store, top, level)
        up: dict[str, Any] = {}
        i = 0
        while i < len(edits):
            cursor.seek(edits[i][0])
            chunker = chunker or _Chunker(self.store, level)
            while True:
                node = cursor.node
                last = node.keys[-1]
                up.setdefault(last, None)
                is_last = not cursor.has_next()
                j = i
                while j < len(edits) and (is_last or edits[j][0] <= last):
                    j += 1
                chunker.extend(*_merged(node, edits[i:j], inserted))
                i = j
                if chunker.empty or not cursor.advance():
                    break
            if level < top.level:
                chunker.cut()
                for key, val in chunker.out:
                    up[key] = val
                chunker = None
        return up

    def _grow(self, items: list[tuple[str, list[Any]]], level: int) -> str | None:
        """Stack inner levels on a run of nodes until one node remains."""
        while len(items) > 1:
            chunker = _Chunker(self.store, level)
            for key, val in items:
                chunker.add(key, val)
            chunker.cut()
            items, level = chunker.out, level + 1
        return items[0][1][0] if items else None

    def _collapse(self, root: str | None) -> str | None:
        while root is not None:
            node = self.store.get(root)
            if node.level == 0 or len(node.keys) > 1:
                return root
            root = node.vals[0][0]
        return root

    # -- reading --------------------------------------------------------------

    def get(self, root: str | None, key: str) -> Any:
        if root is None:
            return None
        node = self.store.get(root)
        while node.level > 0:
            idx = bisect_left(node.keys, key)
            if idx == len(node.keys):
                return None
            node = self.store.get(node.vals[idx][0])
        idx = bisect_left(node.keys, key)
        if idx < len(node.keys) and node.keys[idx] == key:
            return node.vals[idx]
        return None

    def items(self, root: str | None, start: str = "", stop: str = MAX_KEY) -> Iterator[tuple[str, Any]]:
        """Items with start <= key < stop, in order."""
        for node, lo in self._leaves_from(root, start):
            for idx in range(lo, len(node.keys)):
                key = node.keys[idx]
                if key >= stop:
                    return
                yield key, node.vals[idx]

    def _leaves_from(self, root: str | None, start: str) -> Iterator[tuple[Node, int]]:
        if root is None:
            return
        cursor = _Cursor(self.store, self.store.get(root), 0)
        cursor.seek(start)
        yield cursor.node, bisect_left(cursor.node.keys, start)
        while cursor.advance():
            yield cursor.node, 0

    def seek_items(self, root: str | None) -> _Seeker:
        return _Seeker(self, root)

    def stats(self, root: str | None) -> tuple[int, int]:
        if root is None:
            return 0, 0
        return self.store.get(root).stats()

    def range_stats(self, root: str | None, lo: str, hi: str) -> tuple[int, int]:
        """(files, bytes) with lo <= key < hi, using the inner nodes' totals."""
        if root is None:
            return 0, 0
        return self._range_stats(self.store.get(root), lo, hi, None)

    def _range_stats(self, node: Node, lo: str, hi: str, prev: str | None) -> tuple[int, int]:
        files = size = 0
        if node.level == 0:
            for key, val in zip(node.keys, node.vals, strict=False):
                if lo <= key < hi:
                    files, size = files + 1, size + val[0]
            return files, size
        for key, val in zip(node.keys, node.vals, strict=False):
            first_possible = prev  # keys of this child are > prev
            if first_possible is not None and first_possible >= hi:
                break
            if key >= lo:
                inside = (first_possible is not None and first_possible >= lo) and key < hi
                if inside:
                    files, size = files + val[1], size + val[2]
                else:
                    f, s = self._range_stats(self.store.get(val[0]), lo, hi, prev)
                    files, size = files + f, size + s
            prev = key
        return files, size

    def diff(self, a: str | None, b: str | None) -> Iterator[tuple[str, Any, Any]]:
        """(key, old, new) for every key whose entry differs, in key order."""
        if a == b:
            return
        left = [a] if a else []
        right = [b] if b else []
        while True:
            left, right = self._drop_shared(left, right)
            lnodes = [self.store.get(h) for h in left]
            rnodes = [self.store.get(h) for h in right]
            level = max([n.level for n in lnodes + rnodes], default=0)
            if level == 0:
                break
            left = self._children(left, lnodes, level)
            right = self._children(right, rnodes, level)
        lkeys = list(itertools.chain.from_iterable(n.keys for n in lnodes))
        rkeys = list(itertools.chain.from_iterable(n.keys for n in rnodes))
        if lkeys == rkeys:  # the same paths on both sides (contents changed in place): compare in lockstep
            lvals = list(itertools.chain.from_iterable(n.vals for n in lnodes))
            rvals = list(itertools.chain.from_iterable(n.vals for n in rnodes))
            for i in itertools.compress(range(len(lkeys)), map(operator.ne, lvals, rvals)):
                yield lkeys[i], lvals[i], rvals[i]
            return
        old = {k: v for n in lnodes for k, v in zip(n.keys, n.vals, strict=False)}
        new = {k: v for n in rnodes for k, v in zip(n.keys, n.vals, strict=False)}
        for key in sorted(old.keys() | new.keys()):
            before, after = old.get(key), new.get(key)
            if before != after:
                yield key, before, after

    @staticmethod
    def _children(hashes: list[str], nodes: list[Node], level: int) -> list[str]:
        """Replace the nodes at ``level`` by their children; keep lower ones."""
        out: list[str] = []
        for h, node in zip(hashes, nodes, strict=False):
            if node.level == level:
                out.extend(node.children)
            else:
                out.append(h)
        return out

    @staticmethod
    def _drop_shared(left: list[str], right: list[str]) -> tuple[list[str], list[str]]:
        """Subtrees present on both sides hold the same items: they cannot differ."""
        common = set(left) & set(right)
        return [h for h in left if h not in common], [h for h in right if h not in common]


class _Seeker:
    """Ordered iteration that can jump forward (for folder listings and globs)."""

    def __init__(self, tree: Tree, root: str | None) -> None:
        self.tree, self.root = tree, root

    def scan(self, start: str, stop: str = MAX_KEY) -> Iterator[tuple[str, Any]]:
        return self.tree.items(self.root, start, stop)
