"""Pipeline specs: Pachyderm's format is accepted as is, and every bad field is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.pipelines.spec import load_specs, parse_duration, parse_spec

FULL = """
pipeline:
  name: edges
  project: {name: default}
description: A pipeline that performs image edge detection.
input:
  cross:
    - pfs: {repo: images, glob: "/*", lazy: true, empty_files: false}
    - join:
        - pfs: {repo: a, glob: "/(*).csv", join_on: "$1", outer_join: true}
        - pfs: {repo: b, branch: dev, glob: "/(*).json", join_on: "$1", name: bee}
    - group:
        - pfs: {repo: logs, glob: "/*-(*).log", group_by: "$1"}
    - union:
        - pfs: {repo: u1, glob: /}
        - cron: {name: tick, spec: "@every 30s"}
transform:
  image: pachyderm/opencv:1.0
  cmd: [python3, /edges.py]
  stdin: [echo hi]
  env: {MODE: fast}
  secrets: [{name: creds, key: token, env_var: TOKEN}]
  working_dir: /pfs
  image_pull_secrets: [regcred]
parallelism_spec: {constant: 4}
resource_requests: {cpu: 0.5, memory: 64M, gpu: {type: nvidia.com/gpu, number: 1}}
resource_limits: {cpu: 1, memory: 1Gi}
datum_tries: 2
datum_timeout: 1m30s
reprocess_spec: every_job
pod_patch: '[{"op": "add", "path": "/spec/priorityClassName", "value": "high"}]'
salt: abc
output_branch: out
autoscaling: true
"""


def test_full_pachyderm_spec_parses() -> None:
    s = parse_spec(FULL)
    assert s.name == "edges"
    assert s.parallelism == 4
    assert s.timeout_seconds == 90
    assert s.resource_requests is not None and s.resource_requests.gpu is not None
    assert s.resource_requests.gpu.number == 1
    assert [leaf.name for leaf in s.input.leaves()] == ["images", "a", "bee", "logs", "u1", "tick"]
    assert s.cron_repo(s.input.cross[3].union[1].cron) == "edges_tick"  # type: ignore[index,union-attr,arg-type]
    again = parse_spec(s.to_dict())
    assert again == s


def test_defaults_follow_pachyderm() -> None:
    s = parse_spec({"pipeline": {"name": "p"}, "input": {"pfs": {"repo": "r", "glob": "/*"}},
                    "transform": {"cmd": ["true"]}})
    assert s.input.pfs is not None
    assert (s.input.pfs.branch, s.input.pfs.name) == ("master", "r")
    assert (s.datum_tries, s.output_branch, s.reprocess_spec, s.parallelism) == (3, "master", "until_success", 1)


def test_every_bad_field_is_reported_once_in_one_error() -> None:
    bad = {
        "pipeline": {"name": "p"},
        "input": {"pfs": {"repo": "r"}},
        "transform": {"cmd": "not a list", "bogus": 1, "err_cmd": ["x"]},
        "egress": {"URL": "s3://x", "sqlDatabase": {"url": "snowflake://x"}},
        "datum_timeout": "soon",
        "reprocess_spec": "sometimes",
    }
    with pytest.raises(InvalidArgument) as info:
        parse_spec(bad)
    lines = str(info.value).splitlines()
    assert lines[0] == "invalid pipeline spec p:"
    assert any(line.startswith("  egress.sql_database: not supported by datumflow: SQL egress") for line in lines)
    assert any(line.startswith("  transform.err_cmd: not supported by datumflow: ") for line in lines)
    assert "  transform.bogus: unknown field (not part of the pipeline spec)" in lines
    assert "  input.pfs.glob: required" in lines
    assert any(line.startswith("  transform.cmd:") for line in lines)
    assert any(line.startswith("  datum_timeout:") and "'soon'" in line for line in lines)
    assert any(line.startswith("  reprocess_spec:") for line in lines)
    assert len(lines) == 8


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"input": {"pfs": {"repo": "r", "glob": "/*"}, "cross": []}}, "exactly one"),
        ({"input": {"join": [{"pfs": {"repo": "r", "glob": "/*"}}]}}, "join_on"),
        ({"input": {"cross": [{"pfs": {"repo": "r", "glob": "/*"}}, {"pfs": {"repo": "r", "glob": "/"}}]}},
         "unique"),
        ({"input": {"pfs": {"repo": "out", "glob": "/*"}}}, "'out' is reserved"),
        ({"input": {"pfs": {"repo": "p", "glob": "/*"}}}, "its own output"),
        ({"output_branch": "spec"}, "reserved"),
        ({"pod_patch": "{not json"}, "pod_patch"),
        ({"resource_requests": {"memory": "lots"}}, "quantity"),
        ({"input": {"cron": {"name": "c", "spec": "every tuesday"}}}, "schedule"),
        ({"pipeline": {"name": "bad name!"}}, "pipeline.name"),
        ({"pipeline": {"name": "p", "project": {"name": "other"}}}, "default"),
        ({"transform": {"cmd": []}}, "transform.cmd is required"),
        ({"parallelism_spec": {"coefficient": 2}}, "parallelism_spec.coefficient: not supported"),
    ],
)
def test_invalid_specs_name_the_problem(patch: dict, needle: str) -> None:
    base = {"pipeline": {"name": "p"}, "input": {"pfs": {"repo": "r", "glob": "/*"}},
            "transform": {"cmd": ["true"]}}
    with pytest.raises(InvalidArgument, match="invalid pipeline spec") as info:
        parse_spec({**base, **patch})
    assert needle in str(info.value)


def test_json_and_multi_document_files(tmp_path: Path) -> None:
    one = {"pipeline": {"name": "a"}, "input": {"pfs": {"repo": "r", "glob": "/*"}}, "transform": {"cmd": ["true"]}}
    two = {**one, "pipeline": {"name": "b"}}
    path = tmp_path / "specs.json"
    path.write_text(json.dumps(one, indent=2) + "\n" + json.dumps(two))
    assert [s.name for s in load_specs(path)] == ["a", "b"]
    yml = tmp_path / "specs.yaml"
    yml.write_text("pipeline: {name: a}\ninput: {pfs: {repo: r, glob: /}}\ntransform: {cmd: [x]}\n---\n"
                   "pipeline: {name: b}\ninput: {pfs: {repo: r, glob: /}}\ntransform: {cmd: [x]}\n")
    assert [s.name for s in load_specs(yml)] == ["a", "b"]
    with pytest.raises(InvalidArgument, match="cannot read"):
        load_specs(tmp_path / "missing.yaml")


def test_durations() -> None:
    assert parse_duration("30s") == 30
    assert parse_duration("1h30m") == 5400
    assert parse_duration("500ms") == 0.5
    for bad in ("", "30", "1d", "s30"):
        with pytest.raises(ValueError):
            parse_duration(bad)
