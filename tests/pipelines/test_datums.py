"""Datums of each input combinator, computed from real commits (Pachyderm semantics)."""

from __future__ import annotations

from typing import Any

from datumflow.storage_service.pipelines.datums import compute_datums, datum_hash, input_branches
from datumflow.storage_service.pipelines.globs import compile_glob
from datumflow.storage_service.pipelines.spec import parse_spec
from datumflow.storage_service.store.store import Store


def _repo(store: Store, name: str, files: dict[str, bytes]) -> None:
    store.create_repo(name)
    store.put_files(name, "master", list(files.items()))


def _datums(store: Store, input: dict[str, Any]) -> list[list[tuple[str, str]]]:
    spec = parse_spec({"pipeline": {"name": "p"}, "input": input, "transform": {"cmd": ["true"]}})
    commits = {n: store.resolve(r, b) for n, (r, b) in input_branches(spec).items()}
    return sorted(sorted((i.name, i.path) for i in d.inputs) for d in compute_datums(store, spec, commits))


def test_pfs_glob_star_is_each_top_level_entry(store: Store) -> None:
    _repo(store, "r", {"a.txt": b"1", "b.txt": b"2", "dir/x": b"3", "dir/y/z": b"4"})
    assert _datums(store, {"pfs": {"repo": "r", "glob": "/*"}}) == [
        [("r", "a.txt")], [("r", "b.txt")], [("r", "dir")]
    ]
    assert _datums(store, {"pfs": {"repo": "r", "glob": "/"}}) == [[("r", "")]]
    assert _datums(store, {"pfs": {"repo": "r", "glob": "/dir/**"}}) == [
        [("r", "dir/x")], [("r", "dir/y")], [("r", "dir/y/z")]
    ]


def test_folder_datum_carries_every_file_under_it(store: Store) -> None:
    _repo(store, "r", {"dir/x": b"3", "dir/y/z": b"4"})
    spec = parse_spec({"pipeline": {"name": "p"}, "input": {"pfs": {"repo": "r", "glob": "/*"}},
                       "transform": {"cmd": ["true"]}})
    (datum,) = compute_datums(store, spec, {"r": store.resolve("r", "master")})
    assert [f.path for f in datum.inputs[0].files] == ["dir/x", "dir/y/z"]
    assert datum.inputs[0].files[0].hash == store.inspect_file("r", "master", "dir/x").hash


def test_cross_is_the_product_and_union_the_concatenation(store: Store) -> None:
    _repo(store, "a", {"1": b"a1", "2": b"a2"})
    _repo(store, "b", {"x": b"bx", "y": b"by", "z": b"bz"})
    crossed = _datums(store, {"cross": [{"pfs": {"repo": "a", "glob": "/*"}}, {"pfs": {"repo": "b", "glob": "/*"}}]})
    assert len(crossed) == 6
    assert [("a", "1"), ("b", "x")] in crossed
    union = _datums(store, {"union": [{"pfs": {"repo": "a", "glob": "/*"}}, {"pfs": {"repo": "b", "glob": "/*"}}]})
    assert union == [[("a", "1")], [("a", "2")], [("b", "x")], [("b", "y")], [("b", "z")]]


def test_cross_with_an_empty_input_has_no_datums(store: Store) -> None:
    _repo(store, "a", {"1": b"a1"})
    _repo(store, "b", {"dir/x": b"x"})
    assert _datums(store, {"cross": [{"pfs": {"repo": "a", "glob": "/*"}},
                                     {"pfs": {"repo": "b", "glob": "/nothing/*"}}]}) == []


def test_join_pairs_matching_capture_groups(store: Store) -> None:
    _repo(store, "left", {"1.csv": b"l1", "2.csv": b"l2", "3.csv": b"l3"})
    _repo(store, "right", {"1.json": b"r1", "2.json": b"r2", "4.json": b"r4"})
    inner = {"join": [{"pfs": {"repo": "left", "glob": "/(*).csv", "join_on": "$1"}},
                      {"pfs": {"repo": "right", "glob": "/(*).json", "join_on": "$1"}}]}
    assert _datums(store, inner) == [
        [("left", "1.csv"), ("right", "1.json")], [("left", "2.csv"), ("right", "2.json")]
    ]
    outer = {"join": [{"pfs": {"repo": "left", "glob": "/(*).csv", "join_on": "$1", "outer_join": True}},
                      {"pfs": {"repo": "right", "glob": "/(*).json", "join_on": "$1"}}]}
    assert _datums(store, outer) == [
        [("left", "1.csv"), ("right", "1.json")], [("left", "2.csv"), ("right", "2.json")], [("left", "3.csv")]
    ]


def test_group_collects_every_match_of_a_key(store: Store) -> None:
    _repo(store, "logs", {"a-mon.log": b"1", "b-mon.log": b"2", "c-tue.log": b"3"})
    _repo(store, "meta", {"mon.txt": b"m", "wed.txt": b"w"})
    grouped = _datums(store, {"group": [{"pfs": {"repo": "logs", "glob": "/*-(*).log", "group_by": "$1"}},
                                        {"pfs": {"repo": "meta", "glob": "/(*).txt", "group_by": "$1"}}]})
    assert grouped == [
        [("logs", "a-mon.log"), ("logs", "b-mon.log"), ("meta", "mon.txt")],
        [("logs", "c-tue.log")],
        [("meta", "wed.txt")],
    ]


def test_datum_id_names_paths_and_hash_follows_content_and_code(store: Store) -> None:
    _repo(store, "r", {"a": b"one"})
    spec = parse_spec({"pipeline": {"name": "p"}, "input": {"pfs": {"repo": "r", "glob": "/*"}},
                       "transform": {"cmd": ["true"]}})
    (first,) = compute_datums(store, spec, {"r": store.resolve("r", "master")})
    store.put_file("r", "master", "a", b"changed")
    (changed,) = compute_datums(store, spec, {"r": store.resolve("r", "master")})
    assert changed.id == first.id  # as Pachyderm's DatumID: input name, repo and path only
    assert datum_hash(changed, spec.transform, "") != datum_hash(first, spec.transform, "")
    other = parse_spec({**spec.to_dict(), "transform": {"cmd": ["false"]}})
    assert datum_hash(first, spec.transform, "") != datum_hash(first, other.transform, "")
    assert datum_hash(first, spec.transform, "") != datum_hash(first, spec.transform, "salt")


def test_glob_keeps_capture_groups() -> None:
    assert compile_glob("/data/(*)-(?).csv").match("data/sales-7.csv") == ("sales", "7")
    assert compile_glob("/*").match("a/b") is None
