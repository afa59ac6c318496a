"""Specs as Pachyderm users write them: protojson camelCase, several per file, stdin; globs as ohmyglob."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.pipelines.datums import compute_datums, input_branches
from datumflow.storage_service.pipelines.globs import compile_glob, expand
from datumflow.storage_service.pipelines.spec import load_specs, parse_spec
from datumflow.storage_service.store.store import Store

CAMEL = {
    "pipeline": {"name": "joined", "project": {"name": "default"}},
    "description": "camelCase everywhere, as pachctl inspect pipeline --raw prints it",
    "input": {"join": [
        {"pfs": {"repo": "a", "glob": "/(*).csv", "joinOn": "$1", "outerJoin": True, "emptyFiles": True,
                 "lazy": True, "project": "default"}},
        {"pfs": {"repo": "b", "glob": "/(*).json", "joinOn": "$1", "name": "bee"}},
    ]},
    "transform": {
        "cmd": ["sh"], "workingDir": "/pfs", "acceptReturnCode": [3],
        "env": {"myVar": "kept as written", "PACH_X": "1"},
        "secrets": [{"name": "s", "key": "token", "envVar": "TOKEN"}, {"name": "s", "mountPath": "/secrets"}],
        "imagePullSecrets": ["reg"],
    },
    "parallelismSpec": {"constant": 2},
    "resourceLimits": {"memory": "1Gi", "cpu": 1},
    "resourceRequests": {"memory": "64M"},
    "datumTries": 2, "datumTimeout": "30s", "outputBranch": "out", "reprocessSpec": "every_job",
    "egress": {"URL": "file:///tmp/somewhere"},
}


def test_camel_case_spec_means_the_same_as_snake_case() -> None:
    s = parse_spec(CAMEL)
    assert s.parallelism == 2 and s.datum_tries == 2 and s.output_branch == "out"
    assert s.transform.accept_return_code == [3] and s.transform.working_dir == "/pfs"
    assert s.transform.env == {"myVar": "kept as written", "PACH_X": "1"}  # env names are the user's
    assert [x.mount_path for x in s.transform.secrets] == [None, "/secrets"]
    assert s.input is not None and s.input.join is not None
    first = s.input.join[0].pfs
    assert first is not None and (first.join_on, first.outer_join, first.empty_files) == ("$1", True, True)
    assert s.egress is not None and s.egress.URL == "file:///tmp/somewhere"
    assert parse_spec(s.to_dict()) == s


def test_both_spellings_of_one_field_is_an_error() -> None:
    with pytest.raises(InvalidArgument, match="given twice"):
        parse_spec({**CAMEL, "parallelism_spec": {"constant": 1}})


def test_several_documents_per_file_and_stdin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one = json.dumps({"pipeline": {"name": "a"}, "input": {"pfs": {"repo": "r", "glob": "/*"}},
                      "transform": {"cmd": ["true"]}}, indent=2)
    two = one.replace('"a"', '"b"')
    # JSON documents between '---' lines, with a tab YAML refuses (as Pachyderm's tensorflow example).
    path = tmp_path / "two.json"
    path.write_text(one.replace('"true"', '"true"\t') + "\n---\n" + two + "\n")
    assert [s.name for s in load_specs(path)] == ["a", "b"]
    monkeypatch.setattr("sys.stdin", io.StringIO(one + "\n---\n" + two))
    assert [s.name for s in load_specs("-")] == ["a", "b"]


@pytest.mark.parametrize(("patch", "needle"), [
    ({"input": {"pfs": {"repo": "r", "glob": "/[a"}}}, "never closed"),
    ({"input": {"pfs": {"repo": "r", "glob": "/(a"}}}, "never closed"),
    ({"input": {"join": [{"pfs": {"repo": "r", "glob": "/(*)", "join_on": "$2"}},
                         {"pfs": {"repo": "s", "glob": "/(*)", "join_on": "$1"}}]}}, "has 1 capture group"),
    ({"input": {"group": [{"pfs": {"repo": "r", "glob": "/*", "groupBy": "$1"}}]}}, "has 0 capture groups"),
    ({"input": {"pfs": {"repo": "r", "glob": "/*", "project": "staging"}}}, "one project, 'default'"),
    ({"input": {"cross": [{"pfs": {"repo": "r", "glob": "/*"}}, {"pfs": {"repo": "r", "glob": "/"}}]}},
     "unique within a cross"),
    ({"input": None, "spout": None}, "input: required"),
    ({"spout": {}}, "has no input"),
    ({"transform": {"cmd": ["x"], "secrets": [{"name": "s", "mountPath": "rel"}]}}, "absolute"),
    ({"egress": {"URL": "nowhere"}}, "protocol"),
])
def test_bad_specs_are_refused_with_the_reason(patch: dict, needle: str) -> None:
    base = {"pipeline": {"name": "p"}, "input": {"pfs": {"repo": "r", "glob": "/*"}}, "transform": {"cmd": ["true"]}}
    spec = {k: v for k, v in {**base, **patch}.items() if v is not None}
    with pytest.raises(InvalidArgument) as info:
        parse_spec(spec)
    assert needle in str(info.value)


def test_union_inputs_may_share_a_name_and_one_branch_may_be_read_twice(store: Store) -> None:
    store.create_repo("images")
    store.create_repo("more")
    store.put_files("images", "master", [("a.png", b"a")])
    store.put_files("more", "master", [("b.png", b"b")])
    union = parse_spec({"pipeline": {"name": "edges"}, "transform": {"cmd": ["true"]}, "input": {"union": [
        {"pfs": {"repo": "images", "glob": "/*"}}, {"pfs": {"repo": "more", "glob": "/*", "name": "images"}}]}})
    commits = {k: store.resolve(r, b) for k, (r, b) in input_branches(union).items()}
    assert len(commits) == 2
    assert sorted((i.name, i.repo, i.path) for d in compute_datums(store, union, commits) for i in d.inputs) == [
        ("images", "images", "a.png"), ("images", "more", "b.png")]
    self_join = parse_spec({"pipeline": {"name": "pairs"}, "transform": {"cmd": ["true"]}, "input": {"cross": [
        {"pfs": {"repo": "images", "glob": "/*", "name": "left"}},
        {"pfs": {"repo": "images", "glob": "/*", "name": "right"}}]}})
    commits = {k: store.resolve(r, b) for k, (r, b) in input_branches(self_join).items()}
    (datum,) = compute_datums(store, self_join, commits)
    assert [i.name for i in datum.inputs] == ["left", "right"]


TREE = ["a.txt", "b.txt", "c.txt", "d/e.txt", "d/f.txt", "d/g/h.txt", "apple", "banana", "cherry", "x.csv"]


@pytest.mark.parametrize(("pattern", "matches"), [
    ("/**.txt", ["a.txt", "b.txt", "c.txt", "d/e.txt", "d/f.txt", "d/g/h.txt"]),  # 6, as Pachyderm
    ("/**/*.txt", ["d/e.txt", "d/f.txt", "d/g/h.txt"]),  # 3: needs a folder
    ("/*", ["a.txt", "apple", "b.txt", "banana", "c.txt", "cherry", "d", "x.csv"]),
    ("/d/*", ["d/e.txt", "d/f.txt", "d/g"]),
    ("/@(apple|banana)", ["apple", "banana"]),
    ("/(apple|cherry)", ["apple", "cherry"]),
    ("/!(apple)", ["a.txt", "b.txt", "banana", "c.txt", "cherry", "d", "x.csv"]),
    ("/+(a|p)le", ["apple"]),
    ("/?(x).csv", ["x.csv"]),
    ("/[a-b].txt", ["a.txt", "b.txt"]),
    ("/[!a].txt", ["b.txt", "c.txt"]),
    ("/{a,c}.txt", ["a.txt", "c.txt"]),
    ("/", [""]),
])
def test_glob_table(store: Store, pattern: str, matches: list[str]) -> None:
    store.create_repo("r")
    store.put_files("r", "master", [(p, p.encode()) for p in TREE])
    spec = parse_spec({"pipeline": {"name": "p"}, "transform": {"cmd": ["true"]},
                       "input": {"pfs": {"repo": "r", "glob": pattern}}})
    datums = compute_datums(store, spec, {"r": store.resolve("r", "master")})
    assert sorted(d.inputs[0].path for d in datums) == matches


def test_capture_groups_and_templates() -> None:
    g = compile_glob("/@(jan|feb)-(*)/+(0|1)")
    assert g.groups == 3
    assert g.match("feb-sales/0101") == ("feb", "sales", "0101")
    assert expand("$2/${1}-$3", g.match("jan-x/1") or ()) == "x/jan-1"
    assert expand("$9", ("a",)) == ""
