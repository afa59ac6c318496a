"""repo and branch verbs, provenance and subvenance, through the CLI."""

from __future__ import annotations

from datumflow.storage_service.model.core import Branch, BranchRef, ProvenanceEntry, Repo

from .conftest import Cli, Snapshot


def test_repo_create_list_inspect_delete(cli: Cli) -> None:
    assert cli.ok("repo", "create", "sales", "-d", "daily sales") == ""
    created = Repo.from_dict(cli.json("repo", "create", "models"))
    assert created.name == "models"

    table = cli.ok("repo", "list").splitlines()
    assert table[0].split() == ["NAME", "BRANCHES", "SIZE", "CREATED", "DESCRIPTION"]
    assert [line.split()[0] for line in table[1:]] == ["models", "sales"]
    assert [Repo.from_dict(r).name for r in cli.json("repo", "list")] == ["models", "sales"]

    inspected = Repo.from_dict(cli.json("repo", "inspect", "sales"))
    assert inspected.description == "daily sales"
    assert "Description: daily sales" in cli.ok("repo", "inspect", "sales")

    assert cli.ok("repo", "delete", "models") == ""
    assert [r["name"] for r in cli.json("repo", "list")] == ["sales"]
    assert "repo models not found" in cli.fail("repo", "inspect", "models")


def test_repo_create_twice_and_bad_names_fail_cleanly(cli: Cli) -> None:
    cli.ok("repo", "create", "sales")
    assert "already exists" in cli.fail("repo", "create", "sales")
    assert "invalid repo name" in cli.fail("repo", "create", "bad name")
    assert "invalid repo name" in cli.fail("repo", "create", "a.b")
    assert [r["name"] for r in cli.json("repo", "list")] == ["sales"]


def test_branch_create_with_head_ancestry_list_inspect_delete(cli: Cli) -> None:
    cli.ok("repo", "create", "sales")
    ids = [cli.ok("put", "sales@master:n.txt", "-", input=f"v{i}".encode()).strip() for i in range(3)]

    old = Branch.from_dict(cli.json("branch", "create", "sales@old", "--head", "master~2"))
    assert old.head == ids[0]
    cli.ok("branch", "create", "sales@prev", "--head", "master^")
    assert Branch.from_dict(cli.json("branch", "inspect", "sales@prev")).head == ids[1]
    assert cli.ok("get", "sales@old:n.txt") == "v0"

    listed = {b["name"]: b["head"] for b in cli.json("branch", "list", "sales")}
    assert listed == {"master": ids[2], "old": ids[0], "prev": ids[1]}
    rows = cli.ok("branch", "list", "sales").splitlines()
    assert rows[0].split() == ["BRANCH", "HEAD", "PROVENANCE", "SUBVENANCE"]
    assert rows[1].split()[:2] == ["master", ids[2]]

    cli.ok("branch", "delete", "sales@old")
    assert sorted(b["name"] for b in cli.json("branch", "list", "sales")) == ["master", "prev"]
    assert cli.ok("get", f"sales@{ids[0]}:n.txt") == "v0"  # its commits stay


def test_branch_bad_input(cli: Cli, snapshot: Snapshot) -> None:
    cli.ok("repo", "create", "sales")
    cli.ok("put", "sales@master:a", "-", input=b"a")
    before = snapshot()
    assert "invalid branch name" in cli.fail("branch", "create", "sales@has.dot")
    assert "expected REPO@BRANCH" in cli.fail("branch", "create", "sales")
    assert "not found" in cli.fail("branch", "create", "sales@x", "--head", "nope")
    assert "history has only" in cli.fail("branch", "create", "sales@x", "--head", "master~5")
    assert "not found" in cli.fail("branch", "inspect", "sales@nope")
    assert "not found" in cli.fail("branch", "create", "sales@x", "--provenance", "ghost@master")
    assert snapshot() == before


def test_branch_provenance_then_provenance_and_subvenance(cli: Cli) -> None:
    for repo in ("raw", "clean", "model"):
        cli.ok("repo", "create", repo)
    cli.ok("branch", "create", "raw@master")
    cli.ok("branch", "create", "clean@master", "--provenance", "raw@master")
    branch = Branch.from_dict(cli.json("branch", "create", "model@master", "--provenance", "clean@master"))
    assert branch.provenance == (BranchRef("clean", "master"),)
    assert Branch.from_dict(cli.json("branch", "inspect", "raw@master")).subvenance == (BranchRef("clean", "master"),)

    raw = cli.ok("put", "raw@master:data.csv", "-", input=b"1,2\n").strip()
    model = cli.json("commit", "list", "model@master")[0]
    assert model["commit_set"] == raw  # one commit set: the upstream commit and all it caused

    prov = [ProvenanceEntry.from_dict(e) for e in cli.json("provenance", f"model@{model['id']}")]
    assert [(e.repo, e.depth) for e in prov] == [("clean", 1), ("raw", 2)]
    assert prov[1].commit == raw
    direct = cli.json("provenance", "model@master", "--depth", "1")
    assert [e["repo"] for e in direct] == ["clean"]

    sub = cli.ok("subvenance", f"raw@{raw}").splitlines()
    assert sub[0].split() == ["DEPTH", "REPO", "BRANCH", "COMMIT", "ORIGIN"]
    assert [line.split()[:2] for line in sub[1:]] == [["1", "clean"], ["2", "model"]]


def test_deleting_a_branch_others_are_provenant_on_fails_and_keeps_it(cli: Cli, snapshot: Snapshot) -> None:
    cli.ok("repo", "create", "raw")
    cli.ok("repo", "create", "clean")
    cli.ok("put", "raw@master:a.txt", "-", input=b"keep me")
    cli.ok("branch", "create", "clean@master", "--provenance", "raw@master")
    before = snapshot()

    message = cli.fail("branch", "delete", "raw@master")
    assert "is provenance of clean@master" in message
    assert "is provenance of" in cli.fail("repo", "delete", "raw")

    assert snapshot() == before
    assert cli.ok("get", "raw@master:a.txt") == "keep me"
    cli.ok("branch", "delete", "raw@master", "--force")
    assert Branch.from_dict(cli.json("branch", "inspect", "clean@master")).provenance == ()
