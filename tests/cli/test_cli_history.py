"""``datumflow merge|revert|tag|bisect`` and ``branch reset|protect``, as a user types them."""

from __future__ import annotations

import json
from typing import Any


def setup_fork(cli: Any) -> None:
    cli.ok("repo", "create", "sales")
    cli.ok("put", "sales@master:a", "-", input=b"1")
    cli.ok("branch", "create", "sales@dev", "--head", "master")


def test_merge_conflicts_strategies_and_log(cli: Any) -> None:
    setup_fork(cli)
    cli.ok("put", "sales@dev:a", "-", input=b"dev")
    cli.ok("put", "sales@master:b", "-", input=b"m")
    merged = cli.json("merge", "sales@dev", "master", "-m", "publish")
    assert merged["status"] == "merged" and merged["commit"]["description"] == "publish"
    assert len([c for c in cli.json("log", "sales@master")]) == 4
    assert len(cli.json("log", "sales@master", "--first-parent")) == 3
    assert "PARENTS" in cli.ok("log", "sales@master").splitlines()[0]
    cli.ok("put", "sales@dev:a", "-", input=b"dev2")
    cli.ok("put", "sales@master:a", "-", input=b"master2")
    before = cli.json("branch", "inspect", "sales@master")["head"]
    result = cli.run("merge", "sales@dev", "sales@master", "--json")
    assert result.rc == 1 and "conflicting path" in result.stderr
    body = json.loads(result.out)
    assert body["status"] == "conflict" and [c["path"] for c in body["conflicts"]] == ["a"]
    table = cli.run("merge", "sales@dev", "master")
    assert table.rc == 1 and table.out.splitlines()[0].split()[0] == "CONFLICT"
    assert cli.json("branch", "inspect", "sales@master")["head"] == before
    assert cli.json("merge", "sales@dev", "master", "--strategy", "theirs")["status"] == "merged"
    assert cli.ok("get", "sales@master:a") == "dev2"
    assert "one repo" in cli.fail("merge", "sales@dev", "other@master")


def test_tags_revert_reset_protect(cli: Any) -> None:
    setup_fork(cli)
    tag = cli.json("tag", "create", "sales@v1", "--commit", "master", "-m", "first")
    assert tag["commit"] == cli.json("branch", "inspect", "sales@master")["head"]
    assert [t["name"] for t in cli.json("tag", "list", "sales")] == ["v1"]
    assert cli.ok("get", "sales@v1:a") == "1"
    assert "read-only" in cli.fail("put", "sales@v1:x", "-", input=b"x")
    bad = cli.ok("put", "sales@master:a", "-", input=b"oops").strip()
    reverted = cli.json("revert", f"sales@{bad}")
    assert reverted["metadata"]["reverts"] == bad and cli.ok("get", "sales@master:a") == "1"
    assert "force" in cli.fail("branch", "reset", "sales@master", "--to", "v1")
    assert cli.json("branch", "reset", "sales@master", "--to", "v1", "--force")["head"] == tag["commit"]
    cli.ok("branch", "protect", "sales@master")
    assert "protected" in cli.fail("put", "sales@master:x", "-", input=b"x")
    assert [p["branch"] for p in cli.json("branch", "protections", "sales")] == ["master"]
    cli.ok("put", "sales@dev:x", "-", input=b"x")
    assert cli.json("merge", "sales@dev", "master")["status"] in ("merged", "fast-forward")
    cli.ok("branch", "unprotect", "sales@master")
    cli.ok("tag", "delete", "sales@v1")
    assert cli.json("tag", "list", "sales") == []


def test_bisect_prints_the_first_bad_commit_and_its_diff(cli: Any) -> None:
    cli.ok("repo", "create", "sales")
    ids = [cli.ok("put", "sales@master:n", "-", input=str(i).encode()).strip() for i in range(8)]
    out = cli.ok("bisect", f"sales@{ids[0]}", f"sales@{ids[-1]}", "--run", "sh -c 'test $(cat n) -lt 5'")
    assert f"{ids[5]} is the first bad commit" in out and "modified  n" in out
    found = cli.json("bisect", f"sales@{ids[0]}", f"sales@{ids[-1]}", "--run", "sh -c 'test $(cat n) -lt 5'")
    assert found["first_bad"] == ids[5] and found["runs"] <= 3
