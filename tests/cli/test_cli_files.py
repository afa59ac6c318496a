"""put, get, ls, glob, diff, rm and cp through the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

from datumflow.storage_service.model.core import DiffEntry, FileInfo

from .conftest import Cli, Snapshot


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _make_tree(root: Path) -> dict[str, bytes]:
    files = {
        "a.csv": b"id,v\n1,2\n",
        "bin/blob.bin": bytes(range(256)) * 300 + b"\x00\xff",
        "bin/empty.bin": b"",
        "deep/x/y/z.dat": os.urandom(200_000),
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def test_put_folder_recursive_and_get_tree_round_trip(cli: Cli) -> None:
    files = _make_tree(cli.cwd / "src")
    cli.ok("repo", "create", "data")
    commit = cli.ok("put", "data@master:raw", "src", "-r", "-m", "import").strip()
    info = cli.json("commit", "inspect", f"data@{commit}")
    assert (info["file_count"], info["description"]) == (4, "import")

    cli.ok("get", "data@master:raw", "-r", "-o", "out")
    assert _tree(cli.cwd / "out") == files
    cli.ok("get", "data@master:raw/bin", "-r", "-o", "only-bin")
    assert _tree(cli.cwd / "only-bin") == {k[4:]: v for k, v in files.items() if k.startswith("bin/")}
    assert not list((cli.cwd / "out").rglob("*datumflow-part"))

    result = cli.run("get", "data@master:raw/bin/blob.bin")  # stdout, bytes as stored
    assert (result.rc, result.stdout) == (0, files["bin/blob.bin"])
    cli.ok("get", "data@master:raw/deep/x/y/z.dat", "-o", "z.dat")
    assert (cli.cwd / "z.dat").read_bytes() == files["deep/x/y/z.dat"]


def test_put_files_into_a_folder_from_stdin_and_append(cli: Cli) -> None:
    cli.ok("repo", "create", "sales")
    (cli.cwd / "jan.csv").write_text("jan\n")
    (cli.cwd / "feb.csv").write_text("feb\n")
    one = cli.ok("put", "sales@master:2026/", "jan.csv", "feb.csv", "-m", "months").strip()
    assert [f["path"] for f in cli.json("ls", "sales@master:2026")] == ["2026/feb.csv", "2026/jan.csv"]

    cli.ok("put", "sales@master:notes/readme.txt", "-", input=b"line 1\n")
    cli.ok("put", "sales@master:notes/readme.txt", "-", "--append", input=b"line 2\n")
    assert cli.ok("get", "sales@master:notes/readme.txt") == "line 1\nline 2\n"
    cli.ok("put", "sales@master:single.csv", "jan.csv")
    assert cli.ok("get", "sales@master:single.csv") == "jan\n"
    cli.ok("put", "sales@master", "feb.csv")  # no destination: its own name at the root
    assert cli.ok("get", "sales@master:feb.csv") == "feb\n"
    assert len(cli.json("log", "sales@master")) == 5
    assert cli.json("log", "sales@master")[-1]["id"] == one


def test_put_bad_input_changes_nothing(cli: Cli, snapshot: Snapshot) -> None:
    cli.ok("repo", "create", "sales")
    cli.ok("put", "sales@master:a.txt", "-", input=b"kept")
    (cli.cwd / "folder").mkdir()
    (cli.cwd / "folder" / "f").write_text("f")
    before = snapshot()

    assert "does not exist" in cli.fail("put", "sales@master:x", "missing.csv")
    assert "use -r" in cli.fail("put", "sales@master:x", "folder")
    assert "'..'" in cli.fail("put", "sales@master:../escape.txt", "-", input=b"x")
    assert "'..'" in cli.fail("put", "sales@master:a/../../b", "-", input=b"x")
    assert "needs a file destination" in cli.fail("put", "sales@master", "-", input=b"x")
    assert "invalid branch name" in cli.fail("put", "sales@bad.branch:x", "-", input=b"x")
    assert "repo nope not found" in cli.fail("put", "nope@master:x", "-", input=b"x")
    assert "cannot write" in cli.fail("put", "sales@master^:x", "-", input=b"x")

    assert snapshot() == before
    assert cli.ok("get", "sales@master:a.txt") == "kept"


def test_ancestry_refs_read_older_commits(cli: Cli) -> None:
    cli.ok("repo", "create", "sales")
    for i in range(3):
        cli.ok("put", "sales@master:v.txt", "-", input=f"version {i}".encode())
    assert cli.ok("get", "sales@master:v.txt") == "version 2"
    assert cli.ok("get", "sales@master^:v.txt") == "version 1"
    assert cli.ok("get", "sales@master~2:v.txt") == "version 0"
    assert cli.ok("get", "sales@master^^:v.txt") == "version 0"
    assert FileInfo.from_dict(cli.json("ls", "sales@master~1:v.txt")[0]).size == len("version 1")


def test_ls_paging_and_glob(cli: Cli) -> None:
    cli.ok("repo", "create", "logs")
    cli.ok("commit", "start", "logs@master")  # one commit for all the puts below
    for name in ("a", "b", "c", "d"):
        cli.ok("put", f"logs@master:day/{name}.log", "-", input=name.encode() * 3)
    cli.ok("put", "logs@master:day/sub/e.csv", "-", input=b"e")
    cli.ok("commit", "finish", "logs@master")

    listed = [FileInfo.from_dict(f) for f in cli.json("ls", "logs@master:day")]
    assert [(f.path, f.type) for f in listed] == [
        ("day/a.log", "file"), ("day/b.log", "file"), ("day/c.log", "file"), ("day/d.log", "file"), ("day/sub", "dir"),
    ]
    page1 = cli.json("ls", "logs@master:day", "--limit", "2")
    page2 = cli.json("ls", "logs@master:day", "--limit", "2", "--start-after", "b.log")
    assert [f["path"] for f in page1 + page2] == ["day/a.log", "day/b.log", "day/c.log", "day/d.log"]
    table = cli.ok("ls", "logs@master").splitlines()
    assert table == ["PATH  TYPE  SIZE", "day/  dir   13 B"]

    assert [f["path"] for f in cli.json("glob", "logs@master:day/*.log")] == [f"day/{n}.log" for n in "abcd"]
    assert [f["path"] for f in cli.json("glob", "logs@master:**/*.csv")] == ["day/sub/e.csv"]
    assert [f["path"] for f in cli.json("glob", "logs@master:day/{a,c}.log")] == ["day/a.log", "day/c.log"]
    assert "no file or folder 'nothing/here'" in cli.fail("ls", "logs@master:nothing/here")


def test_diff_against_parent_and_between_two_refs(cli: Cli) -> None:
    cli.ok("repo", "create", "sales")
    cli.ok("put", "sales@master:keep.txt", "-", input=b"same")
    cli.ok("put", "sales@master:change.txt", "-", input=b"old")
    batch = cli.ok("commit", "start", "sales@master").strip()
    cli.ok("put", f"sales@{batch}:change.txt", "-", input=b"new content")
    cli.ok("put", f"sales@{batch}:added.txt", "-", input=b"+")
    cli.ok("rm", f"sales@{batch}:keep.txt")
    cli.ok("commit", "finish", f"sales@{batch}")

    entries = [DiffEntry.from_dict(e) for e in cli.json("diff", "sales@master")]
    assert [(e.path, e.change) for e in entries] == [
        ("added.txt", "added"), ("change.txt", "modified"), ("keep.txt", "deleted"),
    ]
    lines = cli.ok("diff", "sales@master").splitlines()
    assert lines[0].split() == ["CHANGE", "PATH", "OLD", "NEW"]
    assert lines[2].split() == ["modified", "change.txt", "3", "B", "11", "B"]

    two = cli.json("diff", "sales@master~2", "sales@master")
    assert [(e["path"], e["change"]) for e in two] == [
        ("added.txt", "added"), ("change.txt", "added"), ("keep.txt", "deleted"),
    ]
    assert cli.json("diff", "sales@master", "sales@master") == []
    assert "one reference" in cli.fail("diff", "sales@master", "sales@master", "sales@master")
    assert cli.json("diff", "sales@master:x") == []  # a :PATH keeps the changes under it (none here)


def test_rm_and_cp(cli: Cli, snapshot: Snapshot) -> None:
    cli.ok("repo", "create", "raw")
    cli.ok("repo", "create", "backup")
    cli.ok("put", "raw@master:dir/a", "-", input=b"A")
    cli.ok("put", "raw@master:dir/b", "-", input=b"B")

    cli.ok("cp", "raw@master:dir", "backup@master:copy")
    assert cli.ok("get", "backup@master:copy/b") == "B"
    cli.ok("cp", "raw@master:dir/a", "raw@master:a-again")
    assert cli.ok("get", "raw@master:a-again") == "A"

    commit = cli.ok("rm", "raw@master:dir").strip()
    assert cli.json("commit", "inspect", "raw@master")["id"] == commit
    assert [f["path"] for f in cli.json("ls", "raw@master")] == ["a-again"]
    assert cli.ok("get", "raw@master~1:dir/a") == "A"

    before = snapshot()
    assert "no path to delete" in cli.fail("rm", "raw@master")
    assert "no file or folder" in cli.fail("cp", "raw@master:ghost", "backup@master:x")
    assert snapshot() == before
    # A write that cannot land makes no commit: the branch and its files stay as they were.
    assert "no file or folder" in cli.fail("rm", "raw@master:dir")
    assert snapshot() == before
    assert cli.json("commit", "inspect", "raw@master")["id"] == commit
    assert cli.ok("get", "raw@master:a-again") == "A"


def test_get_errors(cli: Cli) -> None:
    cli.ok("repo", "create", "sales")
    cli.ok("put", "sales@master:dir/a", "-", input=b"A")
    assert "is a folder" in cli.fail("get", "sales@master:dir")
    assert "needs -o" in cli.fail("get", "sales@master:dir", "-r")
    assert "no file or folder" in cli.fail("get", "sales@master:nope", "-o", "x")
    assert "'..'" in cli.fail("get", "sales@master:dir/../../etc/passwd")
    assert "expected REPO@REF:PATH" in cli.fail("get", "sales@master")
    assert "branch dev not found" in cli.fail("get", "sales@dev:dir/a")
    assert not (cli.cwd / "x").exists()


_DIES_MID_COMMIT = """
import sys, time
from datumflow.storage_service import Store

store = Store(sys.argv[1], fsync=False)
with store.writing("data", "master") as commit:
    store.put_file("data", commit.id, "half.txt", b"half")
    print(commit.id, flush=True)
    time.sleep(600)
"""


def test_ls_after_a_writer_died_mid_commit_shows_the_branch_rolled_back(cli: Cli) -> None:
    """A killed writer's open commit is failed when a store next opens, before ``ls`` reads the branch."""
    import signal
    import subprocess
    import sys

    cli.ok("repo", "create", "data")
    cli.ok("put", "data@master:kept.txt", "-", input=b"kept")
    proc = subprocess.Popen([sys.executable, "-c", _DIES_MID_COMMIT, str(cli.cwd / ".datumflow")],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    opened = proc.stdout.readline().strip()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    listed = cli.run("ls", "data@master", "--json")
    assert listed.rc == 0 and "failed abandoned commit" in listed.stderr  # the store's warning, as before
    assert [f["path"] for f in json.loads(listed.out)] == ["kept.txt"]
    dead = cli.json("commit", "inspect", f"data@{opened}")
    assert dead["state"] == "failed" and "abandoned" in dead["error"]
