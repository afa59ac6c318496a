"""The entry point itself: real interpreters, exit codes, addresses, the verb registry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from datumflow.storage_service import Store
from datumflow.storage_service.cli import main as cli
from datumflow.storage_service.model.core import CommitState

from .conftest import MODULE, Cli, base_env

SCRIPT = Path(sys.executable).with_name("datumflow")
DEADLINE = 60.0


def _spawn(cwd: Path, *args: str, env: dict[str, str] | None = None,
           input: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, *MODULE, *args], cwd=cwd, env={**base_env(), **(env or {})},
                          input=input, capture_output=True, timeout=DEADLINE, check=False)


def test_installed_script_runs_a_store_command(tmp_path: Path) -> None:
    assert SCRIPT.exists()
    env = base_env()
    assert subprocess.run([str(SCRIPT), "repo", "create", "sales"], cwd=tmp_path, env=env, check=False).returncode == 0
    listed = subprocess.run([str(SCRIPT), "repo", "list", "--json"], cwd=tmp_path, env=env, capture_output=True,
                            check=False)
    assert [r["name"] for r in json.loads(listed.stdout)] == ["sales"]


def test_module_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    bad = _spawn(tmp_path, "repo", "inspect", "nope")
    assert bad.returncode == 1
    assert bad.stderr.decode() == "datumflow: error: repo nope not found\n"
    usage = _spawn(tmp_path, "repo", "frobnicate")
    assert usage.returncode == 2
    lines = usage.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("datumflow: error: argument") and "repo --help" in lines[0]


def test_usage_errors_exit_2_with_one_line(cli: Cli) -> None:
    assert cli.run("--version").out.startswith("datumflow ")
    assert "required" in cli.fail(rc=2)
    assert "invalid choice: 'nope'" in cli.fail("nope", rc=2)
    assert "invalid int value" in cli.fail("ls", "a@master", "--limit", "many", rc=2)
    assert "the following arguments are required: REPO@BRANCH" in cli.fail("commit", "start", rc=2)
    assert "unrecognized arguments: --bogus" in cli.fail("repo", "list", "--bogus", rc=2)
    assert not cli.root.exists()  # usage errors never touch the store


def test_address_option_and_environment(cli: Cli, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    cli.ok("--address", f"file://{elsewhere}", "repo", "create", "a")
    cli.ok("--address", str(elsewhere), "repo", "create", "b")  # a plain path works too
    via_env = cli.run("repo", "list", "--json", env={"DATUMFLOW_ADDRESS": f"file://{elsewhere}"})
    assert [r["name"] for r in json.loads(via_env.stdout)] == ["a", "b"]
    assert cli.json("repo", "list") == []  # the default store, ./.datumflow, is another one
    assert "unsupported address" in cli.fail("--address", "ftp://host/x", "repo", "list")


def test_nul_in_a_path_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    # An OS refuses NUL inside argv, so this one runs main() in this process.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATUMFLOW_FSYNC", "0")
    monkeypatch.delenv("DATUMFLOW_ADDRESS", raising=False)
    assert cli.main(["repo", "create", "r"]) == 0
    (tmp_path / "f.txt").write_text("f")
    assert cli.main(["put", "r@master:a\x00b", "f.txt"]) == 1
    assert cli.main(["ls", "r@master:a\x00b"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all("contains a NUL byte" in line for line in err)
    with Store(str(tmp_path / ".datumflow"), fsync=False) as store:
        assert store.list_commits("r") == []


def test_a_verb_module_that_does_not_exist_is_a_bug_not_a_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "VERB_MODULES", (*cli.VERB_MODULES, "cli_not_written_yet"))
    with pytest.raises(ImportError):
        cli.build_parser()
    assert cli.build_parser("repo").parse_args(["repo", "list"]).run.__name__ == "repo_list"


def test_interrupt_exits_130_and_keeps_the_branch(tmp_path: Path) -> None:
    with Store(str(tmp_path / ".datumflow"), fsync=False) as store:
        store.create_repo("sales")
        store.put_file("sales", "master", "a.txt", b"before")
    proc = subprocess.Popen([sys.executable, *MODULE, "put", "sales@master:b.txt", "-"], cwd=tmp_path,
                            env=base_env(), stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdin is not None
        proc.stdin.write(b"partial")
        proc.stdin.flush()
        _wait_for_the_write(tmp_path / ".datumflow", proc)  # the put is reading stdin now
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert err.decode() == "datumflow: error: interrupted\n"
    with Store(str(tmp_path / ".datumflow"), fsync=False) as store:
        assert store.get_file("sales", "master", "a.txt") == b"before"
        assert [f.path for f in store.walk_files("sales", "master")] == ["a.txt"]
        assert [c.state for c in store.list_commits("sales")] == [CommitState.FINISHED]  # nothing landed
        assert store.chunks.pins.count() == 0  # the interrupted write released its pins


def _wait_for_the_write(root: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + DEADLINE
    with Store(str(root), fsync=False) as store:
        while not store.chunks.pins.count():  # the put registered its write: it is storing bytes
            assert proc.poll() is None, "the put ended before it was interrupted"
            assert time.monotonic() < deadline, "the put never started writing"
            time.sleep(0.05)


def test_same_verbs_against_the_http_service(cli: Cli, http_service: tuple[str, str]) -> None:
    url, token = http_service
    cli.env["DATUMFLOW_ADDRESS"] = url
    assert "bearer token is required" in cli.fail("repo", "list")
    cli.env["DATUMFLOW_TOKEN"] = token
    cli.ok("repo", "create", "sales")
    data = os.urandom(100_000)
    commit = cli.ok("put", "sales@master:blob.bin", "-", input=data).strip()
    assert cli.run("get", "sales@master:blob.bin").stdout == data
    assert cli.json("ls", "sales@master")[0]["size"] == len(data)
    assert cli.json("log", "sales@master")[0]["id"] == commit
    assert "no file or folder 'missing'" in cli.fail("get", "sales@master:missing")
    assert not cli.root.exists()  # nothing was written to a local store


def test_large_put_shows_progress_on_a_terminal_only(tmp_path: Path) -> None:
    import pty

    (tmp_path / "big.bin").write_bytes(os.urandom(1 << 20) * 33)  # over the 32 MiB threshold
    with Store(str(tmp_path / ".datumflow"), fsync=False) as store:
        store.create_repo("r")
    leader, follower = pty.openpty()
    try:
        done = subprocess.run([sys.executable, *MODULE, "put", "r@master:big.bin", "big.bin"], cwd=tmp_path,
                              env=base_env(), stdout=subprocess.PIPE, stderr=follower, timeout=DEADLINE, check=False)
        os.close(follower)
        shown = _drain(leader)
    finally:
        os.close(leader)
    assert done.returncode == 0
    assert len(done.stdout.strip()) == 32  # stdout: the commit id alone
    assert b"uploading" in shown
    assert b"34.6/34.6 MB" in shown  # the bar reached the total


def _drain(fd: int) -> bytes:
    out = b""
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # the terminal closed
            return out
        if not data:
            return out
        out += data
