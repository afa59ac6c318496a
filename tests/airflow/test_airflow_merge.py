"""The write-audit-publish example DAG under ``dag.test()``, and the merge and tag operators in it."""

from __future__ import annotations

import json

import pytest
from test_airflow_dags import load_dag, task_states, xcom


def seeded(client, repo: str) -> str:
    client.create_repo(repo)
    return client.put_file(repo, "master", "README", b"sales, published daily").id


def test_write_audit_publish_publishes_a_valid_load(connections, dag_test_works, client, repo_name):
    first = seeded(client, repo_name)
    rows = [{"id": 1, "amount": 10}, {"id": 2, "amount": 5}]
    run = load_dag("datumflow_write_audit_publish").test(run_conf={"repo": repo_name, "rows": rows})
    assert str(run.state) == "success", task_states(run)
    head = client.inspect_commit(repo_name, "master")
    assert head.parent == first and head.merge_parent  # a merge commit, both parents
    assert head.metadata["airflow"]["task_id"] == "publish" and head.metadata["airflow"]["run_id"] == run.run_id
    [orders] = client.glob_files(repo_name, "master", "orders/*.json")
    assert json.loads(client.get_file(repo_name, "master", orders.path)) == rows
    published = xcom(run, "publish")
    assert published["commit"] == head.id and published["status"] == "merged"
    [tag] = client.list_tags(repo_name)
    assert tag.commit == head.id
    with pytest.raises(PermissionError):  # master is protected now: merges only
        client.put_file(repo_name, "master", "x", b"x")


def test_a_failed_audit_leaves_master_untouched(connections, dag_test_works, client, repo_name):
    first = seeded(client, repo_name)
    run = load_dag("datumflow_write_audit_publish").test(
        run_conf={"repo": repo_name, "rows": [{"id": 1, "amount": -3}]})
    assert str(run.state) == "failed"
    states = task_states(run)
    assert states["validate"] == "failed" and states["publish"] != "success", states
    assert client.resolve(repo_name, "master") == first
    assert client.list_tags(repo_name) == []


# -- the operators with only the hook mocked ---------------------------------------------------


@pytest.fixture
def hook():
    from unittest import mock

    fake = mock.Mock(console_url="http://df:8765/console", address="http://df:8765", embedded=False)
    with mock.patch("datumflow.operators.base.DatumflowBaseOperator.hook", new_callable=mock.PropertyMock,
                    return_value=fake):
        yield fake


def _ti():
    from unittest import mock

    return mock.Mock(dag_id="d", run_id="r", task_id="t", try_number=1, map_index=-1, hostname="w")


def test_merge_operator_fails_the_task_on_conflicts(hook):
    from datumflow.operators.merge import DatumflowMergeOperator
    from datumflow.plugin._compat import AirflowException
    from datumflow.storage_service.errors import MergeConflict

    hook.get_conn().merge.side_effect = MergeConflict("2 conflicting path(s): a, b; nothing moved")
    op = DatumflowMergeOperator(task_id="t", repo="sales", source="etl", checks=["true"])
    with pytest.raises(AirflowException, match="conflicting"):
        op.execute({"ti": _ti()})
    call = hook.get_conn().merge.call_args
    assert call.args == ("sales", "etl", "master")
    assert call.kwargs["fast_forward"] is False and call.kwargs["checks"] == ["true"]
    assert call.kwargs["metadata"]["airflow"]["dag_id"] == "d"


def test_revert_and_tag_operators_take_xcom_commit_refs(hook):
    from types import SimpleNamespace

    from datumflow.operators.merge import DatumflowCreateTagOperator, DatumflowRevertCommitOperator
    from datumflow.storage_service.model.core import CommitState

    made = SimpleNamespace(repo="sales", branch="master", id="c2", commit_set="c2", state=CommitState.FINISHED)
    hook.get_conn().revert.return_value = made
    out = DatumflowRevertCommitOperator(task_id="t", repo="sales", commit={"commit": "c1"}).execute({"ti": _ti()})
    hook.get_conn().revert.assert_called_once_with("sales", "c1", branch=None, message="")
    assert out["commit"] == "c2"
    hook.get_conn().create_tag.return_value = SimpleNamespace(repo="sales", name="v1", commit="c2")
    tag = DatumflowCreateTagOperator(task_id="t", repo="sales", tag="v1", ref={"commit": "c2"})
    tagged = tag.execute({"ti": _ti()})
    hook.get_conn().create_tag.assert_called_once_with("sales", "v1", "c2", message="")
    assert tagged == {"repo": "sales", "tag": "v1", "commit": "c2"}
