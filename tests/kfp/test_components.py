"""The components under kfp.local, against a live service: read, write, wait and bad input."""

import json
import threading
import time
from pathlib import Path

import pytest
from datumflow.kfp_components import component_options, read_commit, wait_for_commit, write_commit
from kfp import dsl


@dsl.component(**component_options(needs_datumflow=False))
def make_artifact(kind: str, out: dsl.Output[dsl.Artifact]) -> None:
    """kind: 'folder' (two files), 'file' (one), 'empty' (an empty folder) or 'nothing'."""
    import os

    if kind == "folder":
        os.makedirs(os.path.join(out.path, "sub"))
        with open(os.path.join(out.path, "a.txt"), "w") as fh:
            fh.write("alpha")
        with open(os.path.join(out.path, "sub", "b.txt"), "w") as fh:
            fh.write("beta")
    elif kind == "file":
        with open(out.path, "w") as fh:
            fh.write("just one")
    elif kind == "empty":
        os.makedirs(out.path)


@dsl.pipeline(name="kfp-write-test")
def write_pipeline(kind: str, repo: str, provenance: list) -> str:  # type: ignore[type-arg]
    made = make_artifact(kind=kind)
    return write_commit(data=made.outputs["out"], repo=repo, branch="master", provenance=provenance,
                        description="from a test").output


def _seed(client, repo: str) -> str:  # type: ignore[no-untyped-def]
    client.create_repo(repo)
    commit = client.put_files(repo, "master", [("data/one.csv", b"x,y\n1,2\n"), ("data/two.csv", b"x,y\n2,4\n"),
                                               ("README", b"hello")])
    return str(commit.id)


def _files(folder: str) -> dict[str, bytes]:
    root = Path(folder)
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_read_commit_gives_the_files_and_the_resolved_commit(secret_env, client, repo_name):  # type: ignore[no-untyped-def]
    head = _seed(client, repo_name)
    task = read_commit(ref=f"{repo_name}@master")
    assert task.outputs["commit"] == head
    data = task.outputs["data"]
    assert _files(data.path) == {"data/one.csv": b"x,y\n1,2\n", "data/two.csv": b"x,y\n2,4\n", "README": b"hello"}
    assert data.metadata["commit"] == head
    assert data.metadata["repo"] == repo_name and data.metadata["files"] == 3


def test_read_commit_of_a_folder_and_of_one_file(secret_env, client, repo_name):  # type: ignore[no-untyped-def]
    head = _seed(client, repo_name)
    client.put_files(repo_name, "master", [("data/three.csv", b"x,y\n3,6\n")])
    folder = read_commit(ref=f"{repo_name}@master^:data")  # the first commit, by ancestry
    assert folder.outputs["commit"] == head
    assert sorted(_files(folder.outputs["data"].path)) == ["one.csv", "two.csv"]
    one = read_commit(ref=f"{repo_name}@{head}:data/two.csv")
    assert _files(one.outputs["data"].path) == {"two.csv": b"x,y\n2,4\n"}


def test_write_commit_records_provenance_and_the_kfp_run(secret_env, client, repo_name):  # type: ignore[no-untyped-def]
    source = f"{repo_name}-in"
    upstream = _seed(client, source)
    run = write_pipeline(kind="folder", repo=repo_name, provenance=[upstream])
    commit = client.inspect_commit(repo_name, run.output)
    assert commit.id == client.resolve(repo_name, "master")
    assert commit.error is None and commit.is_finished
    assert commit.provenance == (upstream,)
    assert commit.metadata["kfp_pipeline"].startswith("kfp-write-test")
    assert commit.metadata["kfp_task"] == "write-commit"
    assert commit.metadata["kfp_run_id"] and not commit.metadata["kfp_run_id"].startswith("{{")
    assert client.get_file(repo_name, commit.id, "a.txt") == b"alpha"
    assert client.get_file(repo_name, commit.id, "sub/b.txt") == b"beta"


def test_write_commit_of_a_single_file_keeps_its_name(secret_env, client, repo_name):  # type: ignore[no-untyped-def]
    run = write_pipeline(kind="file", repo=repo_name, provenance=[])
    assert [f.path for f in client.walk_files(repo_name, run.output)] == ["out"]
    assert client.get_file(repo_name, run.output, "out") == b"just one"


def test_wait_for_commit_blocks_until_the_branch_head_finishes(secret_env, client, repo_name):  # type: ignore[no-untyped-def]
    client.create_repo(repo_name)
    opened: list[str] = []

    def later() -> None:
        time.sleep(1.0)
        commit = client.start_commit(repo_name, "master")
        opened.append(commit.id)
        client.put_file(repo_name, commit.id, "x", b"1")
        time.sleep(1.0)
        client.finish_commit(repo_name, commit.id)

    writer = threading.Thread(target=later)
    writer.start()
    started = time.monotonic()
    task = wait_for_commit(repo=repo_name, branch="master", timeout=60)
    writer.join()
    assert task.output == opened[0]
    assert time.monotonic() - started >= 2.0
    assert client.inspect_commit(repo_name, task.output).is_finished


# -- bad input: a clear message, and no commit ------------------------------------------


def _log(capfd) -> str:  # type: ignore[no-untyped-def]
    """What the failed task printed (kfp.local streams it to stdout)."""
    captured = capfd.readouterr()
    return str(captured.out + captured.err)


def _commit_count(client, repo: str) -> int:  # type: ignore[no-untyped-def]
    return len(client.list_commits(repo))


def test_read_of_a_ref_that_does_not_exist_fails_clearly(secret_env, client, repo_name, capfd):  # type: ignore[no-untyped-def]
    _seed(client, repo_name)
    with pytest.raises(RuntimeError):
        read_commit(ref=f"{repo_name}@no-such-branch")
    assert "branch no-such-branch not found" in _log(capfd)


def test_wait_for_a_branch_that_never_gets_a_commit_times_out(secret_env, client, repo_name, capfd):  # type: ignore[no-untyped-def]
    client.create_repo(repo_name)
    with pytest.raises(RuntimeError):
        wait_for_commit(repo=repo_name, branch="master", timeout=1)
    assert "got no commit within 1.0s" in _log(capfd)


@pytest.mark.parametrize(("kind", "message"), [("empty", "is empty: nothing to commit"),
                                                ("nothing", "has no file at")])
def test_write_of_an_empty_artifact_fails_and_commits_nothing(secret_env, client, repo_name, capfd, kind, message):  # type: ignore[no-untyped-def]
    _seed(client, repo_name)
    before = _commit_count(client, repo_name)
    with pytest.raises(RuntimeError):
        write_pipeline(kind=kind, repo=repo_name, provenance=[])
    assert message in _log(capfd)
    assert _commit_count(client, repo_name) == before


def test_write_with_unknown_provenance_commits_nothing(secret_env, client, repo_name, capfd):  # type: ignore[no-untyped-def]
    _seed(client, repo_name)
    before = _commit_count(client, repo_name)
    with pytest.raises(RuntimeError):
        write_pipeline(kind="folder", repo=repo_name, provenance=["0" * 32])
    assert "0" * 32 in _log(capfd)
    assert _commit_count(client, repo_name) == before


def test_missing_secret_fails_with_a_clear_message_and_commits_nothing(no_secret, client, repo_name, capfd):  # type: ignore[no-untyped-def]
    _seed(client, repo_name)
    before = _commit_count(client, repo_name)
    with pytest.raises(RuntimeError):
        read_commit(ref=f"{repo_name}@master")
    assert "DATUMFLOW_ADDRESS is not set: mount the 'datumflow' Secret" in _log(capfd)
    with pytest.raises(RuntimeError):
        write_pipeline(kind="folder", repo=repo_name, provenance=[])
    assert "DATUMFLOW_ADDRESS is not set" in _log(capfd)
    assert _commit_count(client, repo_name) == before


def test_a_wrong_token_is_refused(secret_env, client, repo_name, capfd, monkeypatch):  # type: ignore[no-untyped-def]
    _seed(client, repo_name)
    monkeypatch.setenv("DATUMFLOW_TOKEN", "not-a-token")
    with pytest.raises(RuntimeError):
        read_commit(ref=f"{repo_name}@master")
    assert "Unauthenticated" in _log(capfd)


def test_the_artifact_metadata_is_json(secret_env, client, repo_name):  # type: ignore[no-untyped-def]
    _seed(client, repo_name)
    data = read_commit(ref=f"{repo_name}@master").outputs["data"]
    assert json.loads(json.dumps(data.metadata))["uri"].startswith(f"datumflow://{repo_name}@")


def test_merge_branch_publishes_with_the_run_recorded(secret_env, client, repo_name):  # type: ignore[no-untyped-def]
    from datumflow.kfp_components import merge_branch

    client.create_repo(repo_name)
    first = client.put_file(repo_name, "master", "a", b"1").id
    client.create_branch(repo_name, "staging", head="master")
    client.put_file(repo_name, "staging", "b", b"2")
    task = merge_branch(repo=repo_name, source="staging", dest="master", message="publish from KFP")
    head = client.inspect_commit(repo_name, "master")
    assert task.output == head.id and head.parent == first and head.merge_parent
    assert head.description == "publish from KFP" and "kfp" in json.dumps(head.metadata)
    client.put_file(repo_name, "staging", "a", b"theirs")
    client.put_file(repo_name, "master", "a", b"ours")
    before = client.resolve(repo_name, "master")
    with pytest.raises(RuntimeError):  # kfp.local: the task failed on the conflict
        merge_branch(repo=repo_name, source="staging", dest="master")
    assert client.resolve(repo_name, "master") == before  # nothing moved
