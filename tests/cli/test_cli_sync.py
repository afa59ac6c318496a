"""``datumflow sync`` both ways, as a user runs it: the embedded store and a ``serve`` process.

"Reads no file" is checked from outside the code under test: the command runs in
a fresh interpreter whose ``sitecustomize`` records, through an audit hook, every
file opened under the synced folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.service.conftest import Service, launch

from .conftest import MODULE, Cli

_AUDIT = '''
import atexit, os, sys
_watch, _log = os.environ.get("DFTEST_WATCH"), os.environ.get("DFTEST_OPEN_LOG")
if _watch and _log:
    _seen = []
    def _hook(event, args):
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.path.abspath(os.fsdecode(args[0]))
            if path.startswith(_watch + os.sep):
                _seen.append(path)
    sys.addaudithook(_hook)
    atexit.register(lambda: open(_log, "w").write("\\n".join(_seen)))
'''


@pytest.fixture(scope="module")
def _http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = launch(tmp_path_factory.mktemp("sync-svc") / "store", token=None)
    yield svc
    svc.stop()


@pytest.fixture(params=["embedded", "http"])
def user(request: pytest.FixtureRequest, cli: Cli, tmp_path: Path) -> Cli:
    if request.param == "http":
        cli.env["DATUMFLOW_ADDRESS"] = request.getfixturevalue("_http").url
    cli.env["DATUMFLOW_SYNC_CACHE"] = str(tmp_path / "cache")
    return cli


@pytest.fixture
def repo(user: Cli) -> str:
    name = f"s{uuid.uuid4().hex[:8]}"
    user.ok("repo", "create", name)
    return name


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _make(root: Path, count: int = 200) -> dict[str, bytes]:
    files = {f"d{i // 50}/f{i:04d}.bin": os.urandom(1024) for i in range(count)}
    files["big.bin"] = os.urandom(3_000_000)  # several chunks
    files["empty"] = b""
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    time.sleep(0.3)  # older than the racy window: the cache may trust what it records now
    return files


def _sync(user: Cli, *args: str) -> dict[str, Any]:
    return user.json("sync", *args)


def _commits(user: Cli, repo: str) -> int:
    return len(user.json("commit", "list", repo))


def _opened_by(user: Cli, tmp_path: Path, watch: Path, *args: str) -> list[str]:
    """Run ``datumflow ARGS`` in a fresh interpreter; the files it opened under ``watch``."""
    hook = tmp_path / "audit"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(_AUDIT)
    log = tmp_path / "opened.log"
    env = {**user.env, "PYTHONPATH": str(hook), "DFTEST_WATCH": str(watch.resolve()), "DFTEST_OPEN_LOG": str(log)}
    done = subprocess.run([sys.executable, *MODULE, *args], cwd=user.cwd, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return [line for line in log.read_text().splitlines() if line]


def test_first_sync_then_an_unchanged_one_commits_nothing_and_reads_no_file(
    user: Cli, repo: str, tmp_path: Path
) -> None:
    src = user.cwd / "src"
    files = _make(src)
    first = _sync(user, "src", f"{repo}@master:data")
    assert (first["added"], first["changed"], first["deleted"]) == (len(files), 0, 0)
    assert first["commit"]
    user.ok("get", f"{repo}@master:data", "-r", "-o", "check")
    assert _tree(user.cwd / "check") == files
    commits = _commits(user, repo)

    again = _sync(user, "src", f"{repo}@master:data")
    assert (again["added"], again["changed"], again["unchanged"], again["commit"]) == (0, 0, len(files), None)
    assert again["files_read"] == 0
    assert _commits(user, repo) == commits
    assert _opened_by(user, tmp_path, src, "sync", "src", f"{repo}@master:data") == []
    # The watcher does see reads: without the cache every file is opened.
    shutil.rmtree(tmp_path / "cache")
    opened = _opened_by(user, tmp_path, src, "sync", "src", f"{repo}@master:data")
    assert len(set(opened)) == len(files)
    assert _commits(user, repo) == commits


def test_one_percent_changed_commits_exactly_those(user: Cli, repo: str) -> None:
    src = user.cwd / "src"
    files = _make(src)
    time.sleep(0.5)  # older than the racy window when first cached: the second sync may trust every entry
    _sync(user, "src", f"{repo}@master")
    edits = ["d0/f0003.bin", "d3/f0170.bin"]
    (src / edits[0]).write_bytes(os.urandom(1024))  # same size
    (src / edits[1]).write_bytes(os.urandom(10))  # other size
    (src / "new.txt").write_bytes(b"new\n")
    result = _sync(user, "src", f"{repo}@master")
    assert (result["added"], result["changed"], result["deleted"], result["unchanged"]) == (1, 2, 0, len(files) - 2)
    # Read: the same-size edit (to see it changed) and the three files sent; no unchanged file.
    assert result["files_read"] <= 4
    diff = user.json("diff", f"{repo}@master")
    assert sorted((d["change"], d["path"]) for d in diff) == [
        ("added", "new.txt"), ("modified", edits[0]), ("modified", edits[1]),
    ]


def test_a_same_size_edit_keeping_the_mtime_is_found(user: Cli, repo: str) -> None:
    src = user.cwd / "src"
    (src / "a").mkdir(parents=True)
    target = src / "a" / "x.csv"
    target.write_bytes(b"1,2,3\n")
    _sync(user, "src", f"{repo}@master")  # recorded while racy: written moments ago
    st = target.stat()
    target.write_bytes(b"4,5,6\n")  # same size, same second
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the very same mtime
    result = _sync(user, "src", f"{repo}@master")
    assert result["changed"] == 1
    assert user.ok("get", f"{repo}@master:a/x.csv") == "4,5,6\n"


def test_delete_removes_what_the_folder_lost_and_only_with_delete(user: Cli, repo: str) -> None:
    src = user.cwd / "src"
    _make(src, count=10)
    _sync(user, "src", f"{repo}@master")
    (src / "d0" / "f0001.bin").unlink()
    kept = _sync(user, "src", f"{repo}@master")
    assert (kept["deleted"], kept["commit"]) == (0, None)
    removed = _sync(user, "src", f"{repo}@master", "--delete")
    assert removed["deleted"] == 1
    assert [d["path"] for d in user.json("diff", f"{repo}@master")] == ["d0/f0001.bin"]
    assert "d0/f0001.bin" in user.fail("get", f"{repo}@master:d0/f0001.bin")


def test_dry_run_prints_the_plan_and_changes_nothing(user: Cli, repo: str) -> None:
    src = user.cwd / "src"
    _make(src, count=10)
    _sync(user, "src", f"{repo}@master")
    commits = _commits(user, repo)
    (src / "d0" / "f0001.bin").unlink()
    (src / "d0" / "f0002.bin").write_bytes(b"changed")
    (src / "fresh").write_bytes(b"x")
    out = user.ok("sync", "src", f"{repo}@master", "--delete", "--dry-run")
    assert out.splitlines() == [
        "add    fresh", "change d0/f0002.bin", "delete d0/f0001.bin",
        "would sync: 1 added, 1 changed, 1 deleted, 10 unchanged",
    ]
    plan = _sync(user, "src", f"{repo}@master", "--delete", "--dry-run")
    assert plan["plan"] == {"added": ["fresh"], "changed": ["d0/f0002.bin"], "deleted": ["d0/f0001.bin"]}
    assert (plan["dry_run"], plan["commit"]) == (True, None)
    assert _commits(user, repo) == commits
    down = user.ok("sync", f"{repo}@master", "src", "--delete", "--dry-run")
    assert "add    d0/f0001.bin" in down and "delete fresh" in down
    assert (src / "fresh").exists() and not (src / "d0" / "f0001.bin").exists()


def test_sync_down_restores_and_then_writes_only_differences(user: Cli, repo: str) -> None:
    files = _make(user.cwd / "src")
    _sync(user, "src", f"{repo}@master:in")
    out = user.cwd / "out"
    first = _sync(user, f"{repo}@master:in", "out")
    assert (first["added"], first["changed"]) == (len(files), 0)
    assert _tree(out) == files
    assert not list(out.rglob("*.datumflow-part"))
    time.sleep(0.2)
    again = _sync(user, f"{repo}@master:in", "out")
    assert (again["added"], again["changed"], again["bytes"]) == (0, 0, 0)
    (out / "d1" / "f0060.bin").write_bytes(b"local edit")  # restored
    (out / "d2" / "f0101.bin").unlink()  # restored
    (out / "extra").write_bytes(b"mine")  # kept, unless --delete
    fixed = _sync(user, f"{repo}@master:in", "out")
    assert (fixed["added"], fixed["changed"], fixed["deleted"]) == (1, 1, 0)
    assert _tree(out) == {**files, "extra": b"mine"}
    cleaned = _sync(user, f"{repo}@master:in", "out", "--delete")
    assert cleaned["deleted"] == 1
    assert _tree(out) == files
    # The restored folder syncs back up as unchanged, without reading what was just written.
    time.sleep(0.2)
    up = _sync(user, "out", f"{repo}@master:in")
    assert (up["commit"], up["unchanged"]) == (None, len(files))


def test_deleting_the_cache_changes_no_result(user: Cli, repo: str, tmp_path: Path) -> None:
    src = user.cwd / "src"
    _make(src, count=20)
    _sync(user, "src", f"{repo}@master")
    (src / "d0" / "f0004.bin").write_bytes(os.urandom(1024))
    plan_cached = _sync(user, "src", f"{repo}@master", "--dry-run")
    shutil.rmtree(tmp_path / "cache")
    plan_cold = _sync(user, "src", f"{repo}@master", "--dry-run")
    assert plan_cold["plan"] == plan_cached["plan"] == {"added": [], "changed": ["d0/f0004.bin"], "deleted": []}
    assert plan_cold["files_read"] == 22 and plan_cached["files_read"] == 1
    done = _sync(user, "src", f"{repo}@master")
    assert done["changed"] == 1
    shutil.rmtree(tmp_path / "cache")
    assert _sync(user, "src", f"{repo}@master")["commit"] is None


def test_a_damaged_cache_is_ignored(user: Cli, repo: str, tmp_path: Path) -> None:
    src = user.cwd / "src"
    _make(src, count=5)
    _sync(user, "src", f"{repo}@master")
    for cache in (tmp_path / "cache").iterdir():
        cache.write_bytes(b"not a database at all" * 10)
    (src / "d0" / "f0002.bin").write_bytes(os.urandom(1024))
    damaged = user.run("sync", "src", f"{repo}@master", "--json")
    assert damaged.rc == 0
    assert damaged.stderr.startswith("datumflow: warning: the sync stat cache") and "damaged" in damaged.stderr
    assert json.loads(damaged.out)["changed"] == 1
    assert _sync(user, "src", f"{repo}@master")["commit"] is None  # a fresh cache, written by that run


def test_bad_arguments_get_one_line(user: Cli, repo: str) -> None:
    (user.cwd / "a").mkdir()
    (user.cwd / "b").mkdir()
    assert "one local folder" in user.fail("sync", "a", "b")
    assert "one local folder" in user.fail("sync", f"{repo}@master", f"{repo}@other")
    assert "does not exist" in user.fail("sync", "missing", f"{repo}@master")
    assert "not found" in user.fail("sync", f"{repo}@master", "a")  # no commit yet
    user.ok("put", f"{repo}@master:x", "-", input=b"x")
    assert "no file or folder" in user.fail("sync", f"{repo}@master:nothing/here", "a")
    (user.cwd / "plain").write_text("x")
    assert "not a folder" in user.fail("sync", "plain", f"{repo}@master")
