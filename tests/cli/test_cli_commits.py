"""commit, log and commit-set verbs through the CLI."""

from __future__ import annotations

from datumflow.storage_service.model.core import Commit, CommitState

from .conftest import Cli, Snapshot


def test_commit_start_put_finish_inspect(cli: Cli) -> None:
    cli.ok("repo", "create", "sales")
    commit_id = cli.ok("commit", "start", "sales@master", "-m", "batch 1",
                       "--meta", "dag_id=daily", "--meta", "run=a=b").strip()
    assert len(commit_id) == 32

    # A put to the branch is a commit of its own, never a write into someone's open commit:
    # it lands beneath the open commit, which shows it too.
    own = cli.ok("put", "sales@master:a.txt", "-", input=b"a").strip()
    assert own != commit_id
    assert Commit.from_dict(cli.json("commit", "inspect", f"sales@{own}")).state is CommitState.FINISHED
    assert cli.ok("put", f"sales@{commit_id}:b.txt", "-", input=b"b").strip() == commit_id
    assert Commit.from_dict(cli.json("commit", "inspect", "sales@master")).state is CommitState.OPEN

    finished = Commit.from_dict(cli.json("commit", "finish", f"sales@{commit_id}"))
    assert finished.state is CommitState.FINISHED
    assert finished.metadata == {"dag_id": "daily", "run": "a=b"}
    assert finished.description == "batch 1"
    assert finished.file_count == 2

    text = cli.ok("commit", "inspect", "sales@master")
    assert f"Commit:      sales@{commit_id}" in text
    assert "Meta dag_id: daily" in text
    assert Commit.from_dict(cli.json("commit", "wait", "sales@master", "--timeout", "5")) == finished


def test_commit_finish_with_error_fails_it_and_drops_its_data(cli: Cli) -> None:
    cli.ok("repo", "create", "sales")
    first = cli.ok("put", "sales@master:a.txt", "-", input=b"old").strip()
    second = cli.ok("commit", "start", "sales@master").strip()
    cli.ok("put", f"sales@{second}:a.txt", "-", input=b"half written")
    cli.ok("commit", "finish", f"sales@{second}", "--error", "upstream broke")

    failed = Commit.from_dict(cli.json("commit", "inspect", f"sales@{second}"))
    assert (failed.state, failed.error) == (CommitState.FAILED, "upstream broke")
    assert cli.json("branch", "inspect", "sales@master")["head"] == first
    assert cli.ok("get", "sales@master:a.txt") == "old"
    assert "Error:" in cli.ok("commit", "inspect", f"sales@{second}")


def test_commit_list_log_and_limits(cli: Cli) -> None:
    cli.ok("repo", "create", "sales")
    ids = [cli.ok("put", "sales@master:n", "-", "-m", f"v{i}", input=str(i).encode()).strip() for i in range(3)]
    cli.ok("put", "sales@dev:n", "-", input=b"dev")

    log = [Commit.from_dict(c) for c in cli.json("log", "sales@master")]
    assert [c.id for c in log] == ids[::-1]
    assert [c.description for c in log] == ["v2", "v1", "v0"]
    assert [c["id"] for c in cli.json("log", "sales@master", "--limit", "2")] == ids[:0:-1]

    table = cli.ok("log", "sales@master").splitlines()
    assert table[0].split() == ["COMMIT", "BRANCH", "STATE", "STARTED", "FILES", "SIZE", "PARENTS", "DESCRIPTION"]
    assert [row.split()[0] for row in table[1:]] == ids[::-1]
    assert table[1].split()[-1] == "v2"

    assert len(cli.json("commit", "list", "sales")) == 4
    assert [c["id"] for c in cli.json("commit", "list", "sales@master", "--limit", "1")] == [ids[2]]
    cli.ok("commit", "start", "sales@master")
    assert [c["state"] for c in cli.json("commit", "list", "sales", "--state", "open")] == ["open"]


def test_commit_delete(cli: Cli) -> None:
    cli.ok("repo", "create", "sales")
    first = cli.ok("put", "sales@master:a", "-", input=b"1").strip()
    second = cli.ok("put", "sales@master:a", "-", input=b"2").strip()
    assert "has children" in cli.fail("commit", "delete", f"sales@{first}")
    cli.ok("commit", "delete", "sales@master")
    assert cli.json("branch", "inspect", "sales@master")["head"] == first
    assert "not found" in cli.fail("commit", "inspect", f"sales@{second}")


def test_commit_set_inspect_and_wait(cli: Cli) -> None:
    cli.ok("repo", "create", "raw")
    cli.ok("repo", "create", "clean")
    cli.ok("branch", "create", "raw@master")
    cli.ok("branch", "create", "clean@master", "--provenance", "raw@master")
    origin = cli.ok("commit", "start", "raw@master").strip()

    open_set = cli.json("commit-set", "inspect", origin)
    assert [(c["repo"], c["state"]) for c in open_set] == [("raw", "open"), ("clean", "open")]
    assert "did not finish" in cli.fail("commit-set", "wait", origin, "--timeout", "0")

    cli.ok("commit", "finish", f"raw@{origin}")
    done = cli.json("commit-set", "wait", origin, "--timeout", "10")
    assert [(c["repo"], c["state"]) for c in done] == [("raw", "finished"), ("clean", "finished")]
    rows = cli.ok("commit-set", "inspect", origin).splitlines()
    assert rows[0].split() == ["REPO", "BRANCH", "COMMIT", "STATE", "ORIGIN"]
    assert rows[1].split() == ["raw", "master", origin, "finished", "user"]
    assert "not found" in cli.fail("commit-set", "inspect", "0" * 32)


def test_commit_bad_input_changes_nothing(cli: Cli, snapshot: Snapshot) -> None:
    cli.ok("repo", "create", "sales")
    done = cli.ok("put", "sales@master:a.txt", "-", input=b"kept").strip()
    before = snapshot()

    assert "already finished" in cli.fail("commit", "finish", f"sales@{done}")
    assert "writes need an open commit" in cli.fail("put", f"sales@{done}:b.txt", "-", input=b"x")
    assert "expected --meta KEY=VALUE" in cli.fail("commit", "start", "sales@master", "--meta", "novalue")
    assert "branch nope not found" in cli.fail("commit", "inspect", "sales@nope")
    assert "not found" in cli.fail("commit", "inspect", f"sales@{'f' * 32}")
    assert "invalid branch name" in cli.fail("commit", "inspect", "sales@master~x")
    assert "history has only" in cli.fail("commit", "inspect", "sales@master^^")
    assert "repo ghost not found" in cli.fail("log", "ghost@master")
    assert "expected REPO@REF" in cli.fail("commit", "inspect", "sales")
    assert "nothing after" in cli.fail("commit", "list", "sales@")

    assert snapshot() == before
    assert cli.ok("get", "sales@master:a.txt") == "kept"
