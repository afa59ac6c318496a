"""Property-based: the store agrees with a dict model; the index tree is history independent."""

from __future__ import annotations

import itertools
import tempfile
from typing import Any

from datumflow.storage_service import Store
from datumflow.storage_service.core.index import MAX_KEY, NodeStore, Tree
from hypothesis import given, settings
from hypothesis import strategies as st

# -- the store against a dict -------------------------------------------------------------

PATHS = st.sampled_from(["a", "b", "d/x", "d/y", "d/e/z", "f.csv"])
DATA = st.binary(max_size=64)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("put"), PATHS, DATA),
        st.tuples(st.just("delete"), PATHS, st.just(b"")),
        st.tuples(st.just("commit"), st.just(""), st.just(b"")),
    ),
    min_size=1,
    max_size=25,
)


def contents(store: Store, commit: str) -> dict[str, bytes]:
    return {f.path: store.get_file("data", commit, f.path) for f in store.walk_files("data", commit)}


@settings(max_examples=25, deadline=None)
@given(ops=OPS)
def test_store_agrees_with_a_dict(ops: list[tuple[str, str, bytes]]) -> None:
    with tempfile.TemporaryDirectory() as root, Store(root, fsync=False) as store:
        store.create_repo("data")
        model: dict[str, bytes] = {}
        seen: dict[str, dict[str, bytes]] = {}
        commit = store.start_commit("data", "master").id
        for op, path, data in [*ops, ("commit", "", b"")]:
            if op == "put":
                store.put_file("data", commit, path, data)
                model[path] = data
            elif op == "delete" and path in model:
                store.delete_file("data", commit, path)
                del model[path]
            elif op == "commit":
                done = store.finish_commit("data", commit)
                assert (done.file_count, done.size_bytes) == (len(model), sum(map(len, model.values())))
                seen[commit] = dict(model)
                commit = store.start_commit("data", "master").id
        for commit_id, expected in seen.items():
            assert contents(store, commit_id) == expected
        for a, b in itertools.permutations(list(seen)[-4:], 2):
            applied = dict(seen[a])
            for d in store.diff("data", a, b):
                if d.change == "deleted":
                    del applied[d.path]
                else:
                    applied[d.path] = store.get_file("data", b, d.path)
            assert applied == seen[b]


# -- the index tree -----------------------------------------------------------------------

KEYS = [f"{d}/{n:04d}.bin" for d in ("a", "b/c", "z") for n in range(150)]
ENTRY = st.integers(min_value=0, max_value=10_000).map(lambda n: [n, f"{n:064x}"])
BATCH = st.dictionaries(st.sampled_from(KEYS), st.one_of(st.none(), ENTRY), max_size=120)


def memory_tree() -> Tree:
    nodes: dict[str, bytes] = {}
    store = NodeStore(nodes.__getitem__, lambda rows: nodes.update(rows))
    return Tree(store)


def apply(model: dict[str, Any], edits: dict[str, Any]) -> dict[str, Any]:
    out = dict(model)
    for k, v in edits.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


@settings(max_examples=30, deadline=None)
@given(batches=st.lists(BATCH, min_size=1, max_size=5))
def test_tree_is_history_independent(batches: list[dict[str, Any]]) -> None:
    tree = memory_tree()
    model: dict[str, Any] = {k: [len(k), "h"] for k in KEYS[::2]}  # enough keys for inner nodes
    root = tree.build(sorted(model.items()))
    assert tree.store.get(root).level >= 1
    for edits in batches:
        inserted: set[str] = set()
        root = tree.edit(root, edits, inserted)  # type: ignore[assignment]
        assert inserted == {k for k, v in edits.items() if v is not None and k not in model}
        model = apply(model, edits)
        assert root == tree.build(sorted(model.items()))
        assert list(tree.items(root)) == sorted(model.items())
        assert tree.stats(root) == (len(model), sum(v[0] for v in model.values()))


def test_big_tree_has_several_levels() -> None:
    tree = memory_tree()
    root = tree.build((k, [1, "h"]) for k in sorted(KEYS))
    assert root is not None and tree.store.get(root).level >= 1


@settings(max_examples=30, deadline=None)
@given(base=BATCH, edits=BATCH)
def test_tree_diff_equals_dict_difference(base: dict[str, Any], edits: dict[str, Any]) -> None:
    tree = memory_tree()
    old = apply({k: [len(k), "h"] for k in KEYS[::2]}, base)
    new = apply(old, edits)
    a, b = tree.build(sorted(old.items())), tree.build(sorted(new.items()))
    expected = [(k, old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
    assert list(tree.diff(a, b)) == expected
    assert list(tree.diff(b, a)) == [(k, n, o) for k, o, n in expected]


@settings(max_examples=30, deadline=None)
@given(base=BATCH, bounds=st.lists(st.sampled_from(["", "a", "a/0100", "b/", "b/c/0149.bin", "z/", MAX_KEY]),
                                    min_size=2, max_size=2))
def test_range_stats_equals_brute_force(base: dict[str, Any], bounds: list[str]) -> None:
    tree = memory_tree()
    model = {k: v for k, v in base.items() if v is not None}
    model.update({k: [len(k), "h"] for k in KEYS[::3]})  # enough keys for inner nodes
    root = tree.build(sorted(model.items()))
    lo, hi = sorted(bounds)
    inside = [v for k, v in model.items() if lo <= k < hi]
    assert tree.range_stats(root, lo, hi) == (len(inside), sum(v[0] for v in inside))


@settings(max_examples=60, deadline=None)
@given(step=st.integers(min_value=1, max_value=40), first=st.integers(min_value=0, max_value=39),
       drop_last=st.booleans())
def test_spread_edits_of_every_leaf_match_a_rebuild(step: int, first: int, drop_last: bool) -> None:
    """Edits spread over every leaf (a 1 % re-sync's shape): replaced in place, with the last key of the
    level deleted or a key inserted after it; the tree equals the one built afresh, and the diff says
    exactly what changed."""
    tree = memory_tree()
    model: dict[str, Any] = {k: [len(k), "h"] for k in KEYS[::2]}
    root = tree.build(sorted(model.items()))
    keys = sorted(model)
    edits: dict[str, Any] = {k: [7, f"{i:064x}"] for i, k in enumerate(keys[first::step])}
    if drop_last:
        edits[keys[-1]] = None
    else:
        edits["zz/after-the-last"] = [1, "n"]
    new_root = tree.edit(root, edits)
    new = apply(model, edits)
    assert new_root == tree.build(sorted(new.items()))
    expected = [(k, model.get(k), new.get(k)) for k in sorted(model.keys() | new.keys()) if model.get(k) != new.get(k)]
    assert list(tree.diff(root, new_root)) == expected


def test_replacing_values_in_place_diffs_in_lockstep() -> None:
    tree = memory_tree()
    model: dict[str, Any] = {k: [1, "h"] for k in KEYS}
    root = tree.build(sorted(model.items()))
    edits = {k: [2, "g"] for k in KEYS[::3]}
    new_root = tree.edit(root, edits)
    assert list(tree.diff(root, new_root)) == [(k, [1, "h"], [2, "g"]) for k in sorted(edits)]
    assert list(tree.diff(new_root, root)) == [(k, [2, "g"], [1, "h"]) for k in sorted(edits)]


_ODD = st.sampled_from(["\udcff", "\x00", "\x1f", "\x7f", "\\", '"', "/", "\u2028", "é", "\n", "\\u00e9"])
_TEXT = st.lists(st.characters(codec="utf-8") | _ODD, max_size=8).map("".join)
_INT = st.integers(min_value=0, max_value=2**63 - 1)
_CHUNKS = st.none() | st.lists(st.tuples(_TEXT, _INT).map(list))
_ENTRY = st.one_of(
    st.tuples(_INT, _TEXT).map(list),
    st.tuples(_INT, _TEXT, _CHUNKS, st.dictionaries(_TEXT, _TEXT)).map(list),
)


@settings(max_examples=300, deadline=None)
@given(level=st.integers(min_value=0, max_value=5), items=st.lists(st.tuples(_TEXT, _ENTRY), max_size=8))
def test_node_bytes_are_the_standard_encoders_byte_for_byte(level: int, items: list[tuple[str, Any]]) -> None:
    """Node hashes are hashes of these bytes: the fast encoder must never change one, and decoding gives
    back what was encoded."""
    import json

    from datumflow.storage_service.core.index import Node, encode_json

    value = [level, [k for k, _ in items], [v for _, v in items]]
    assert encode_json(value) == json.dumps(value, separators=(",", ":")).encode()
    assert encode_json([2**70]) == b"[1180591620717411303424]"  # beyond orjson: the standard encoder
    node = Node(level, value[1], value[2])
    assert Node.decode(node.encode()) == node
