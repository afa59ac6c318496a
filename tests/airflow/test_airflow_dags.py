"""Example and purpose-built DAGs run for real with ``dag.test()`` against the live service."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "dags_examples"


def load_dag(name: str):
    folder = EXAMPLES if name.startswith("datumflow_") else Path(__file__).parent / "dags"
    spec = importlib.util.spec_from_file_location(f"dag_{name}", folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def task_states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("datumflow_*.py")), ids=lambda p: p.name)
def test_examples_parse_fast_with_the_service_down(path, monkeypatch):
    import airflow.sdk  # noqa: F401  (the Airflow import itself is not the example's cost)

    monkeypatch.setenv("DATUMFLOW_ADDRESS", "http://127.0.0.1:9")
    started = time.monotonic()
    spec = importlib.util.spec_from_file_location(f"parse_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert time.monotonic() - started < 1.0
    assert module.dag.tasks


def test_ingest_example_commits_with_airflow_metadata(connections, dag_test_works, client, repo_name):
    dag = load_dag("datumflow_ingest")
    run = dag.test(run_conf={"repo": repo_name, "orders": [{"id": 1}]})
    assert str(run.state) == "success", task_states(run)
    head = client.inspect_commit(repo_name, "master")
    assert head.state.value == "finished"
    stamp = head.metadata["airflow"]
    assert (stamp["dag_id"], stamp["run_id"], stamp["task_id"]) == ("datumflow_ingest", run.run_id, "start_commit")
    assert stamp["try_number"] == 1 and stamp["hostname"]
    assert head.metadata["airflow_finish"]["task_id"] == "finish_commit"
    [found] = client.glob_files(repo_name, "master", "/orders/*.json")
    assert json.loads(client.get_file(repo_name, "master", found.path)) == [{"id": 1}]


def test_failed_run_aborts_its_open_commit(connections, dag_test_works, client, repo_name):
    client.create_repo(repo_name)
    run = load_dag("df_test_abort").test(run_conf={"repo": repo_name})
    assert str(run.state) == "failed"
    [commit] = client.list_commits(repo_name)
    assert commit.state.value == "failed"
    assert run.run_id in commit.error
    with pytest.raises(Exception, match="no commits"):
        client.resolve(repo_name, "master")  # the failed commit left no head behind


def test_commit_sensor_defers_and_its_trigger_fires(connections, dag_test_works, client, repo_name):
    client.create_repo(repo_name)
    before = client.put_file(repo_name, "master", "a.csv", b"1")
    dag = load_dag("df_test_sensor")
    made: list[str] = []

    def commit_later():
        time.sleep(3)  # long after the sensor's first check: it must have deferred
        made.append(client.put_file(repo_name, "master", "b.csv", b"2").id)

    thread = threading.Thread(target=commit_later)
    thread.start()
    run = dag.test(run_conf={"repo": repo_name, "after": before.id})
    thread.join()
    assert str(run.state) == "success", task_states(run)
    [ti] = run.get_task_instances()
    assert ti.next_method == "execute_complete"  # it resumed from the trigger's event
    from airflow.models import XCom

    value = XCom.get_many(run_id=run.run_id, dag_ids=dag.dag_id, task_ids="wait").first().value
    assert made[0] in json.dumps(value)
