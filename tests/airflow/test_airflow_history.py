"""The branch operators against the live service (the hook is real: ``datumflow_default``)."""

from __future__ import annotations

from unittest import mock

import pytest


def _context():
    return {"ti": mock.Mock(dag_id="d", run_id="r", task_id="t", try_number=1, map_index=-1, hostname="w")}


def test_read_the_file_and_the_commit_then_delete_the_branch(connections, client, repo_name):
    from datumflow.operators.branch import (
        DatumflowDeleteBranchOperator,
        DatumflowGetCommitOperator,
        DatumflowGetFileOperator,
    )

    client.create_repo(repo_name)
    base = client.put_file(repo_name, "master", "a.txt", b"one")
    client.create_branch(repo_name, "dev", head=base.id)
    made = client.put_file(repo_name, "dev", "b.txt", b"two")

    text = DatumflowGetFileOperator(task_id="get", repo=repo_name, ref="dev", path="b.txt").execute(_context())
    assert text == "two"
    ref = {"repo": repo_name, "commit": made.id}  # what an upstream operator returns
    info = DatumflowGetCommitOperator(task_id="inspect", repo=repo_name, ref=ref).execute(_context())
    assert info["commit"] == made.id and info["provenance"] == list(made.provenance)

    DatumflowDeleteBranchOperator(task_id="drop", repo=repo_name, branch="dev").execute(_context())
    assert "dev" not in {b.name for b in client.list_branches(repo_name)}
    DatumflowDeleteBranchOperator(task_id="again", repo=repo_name, branch="dev").execute(_context())  # a rerun


def test_get_file_refuses_a_file_too_big_for_xcom(connections, client, repo_name, tmp_path):
    from datumflow.operators.branch import DatumflowGetFileOperator
    from datumflow.plugin._compat import AirflowException

    client.create_repo(repo_name)
    client.put_file(repo_name, "master", "big.bin", b"x" * 2048)
    with pytest.raises(AirflowException, match="give dest="):
        DatumflowGetFileOperator(task_id="get", repo=repo_name, path="big.bin", max_bytes=1024).execute(_context())
    out = DatumflowGetFileOperator(task_id="copy", repo=repo_name, path="big.bin", dest=str(tmp_path / "b"),
                                   max_bytes=1024).execute(_context())
    assert (tmp_path / "b").read_bytes() == b"x" * 2048 and out["dest"] == str(tmp_path / "b")
