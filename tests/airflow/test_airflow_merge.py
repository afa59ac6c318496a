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
