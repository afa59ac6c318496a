"""The ``@task.datum`` example DAG over the live service's HTTP API: dedup-aware reruns, failures, asset triggers.

Every run is a real ``dag.test()``; the datum task drives its job through
``client.pipelines`` (plan_job → fetch/upload or fail_datum → complete_job),
the service records the datums and writes (or fails) the output commit.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from tests.airflow.test_airflow_dags import load_dag, task_states, xcom

pytestmark = pytest.mark.slow

WHEN = dt.datetime(2026, 3, 1, tzinfo=dt.timezone.utc)


@pytest.fixture
def datums_dag(connections, dag_test_works, client, repo_name, monkeypatch):
    monkeypatch.setenv("DATUMFLOW_EXAMPLE_REPO", repo_name)  # the example reads its repo at parse time
    monkeypatch.setenv("DATUMFLOW_ADDRESS", connections[0])
    client.create_repo(repo_name)
    return load_dag("datumflow_datums")


def counts(client, repo: str, commit: str) -> dict[str, str]:
    return {f.path: client.get_file(repo, commit, f.path).decode() for f in client.glob_files(repo, commit, "/*")}


def test_rerun_on_the_same_commit_reuses_every_datum(datums_dag, client, repo_name):
    out = f"{repo_name}-counts"
    client.put_files(repo_name, "master", [("a.txt", b"one two"), ("b.txt", b"three"), ("c.txt", b"x y z")])

    first = datums_dag.test(logical_date=WHEN)
    assert str(first.state) == "success", task_states(first)
    done = xcom(first, "word_count")
    assert done["datums"] == {"total": 3, "processed": 3, "skipped": 0} and not done["reused"]
    assert counts(client, out, done["commit"]) == {"a.txt.count": "2", "b.txt.count": "1", "c.txt.count": "3"}
    commit = client.inspect_commit(out, done["commit"])
    assert commit.state.value == "finished" and not commit.error
    assert commit.metadata["datums"]["processed"] == 3

    again = datums_dag.test(logical_date=WHEN)  # the same logical date: the run is cleared and runs again
    assert str(again.state) == "success", task_states(again)
    redo = xcom(again, "word_count")
    assert redo["datums"] == {"total": 3, "processed": 0, "skipped": 3} and redo["reused"]
    assert redo["commit"] == done["commit"]

    client.put_file(repo_name, "master", "d.txt", b"four five six seven")
    third = datums_dag.test(logical_date=WHEN)
    grown = xcom(third, "word_count")
    assert grown["datums"] == {"total": 4, "processed": 1, "skipped": 3}
    assert grown["commit"] != done["commit"]
    assert counts(client, out, grown["commit"])["d.txt.count"] == "4"

    datums_dag.get_task("word_count").reprocess = True
    fourth = datums_dag.test(logical_date=WHEN)
    full = xcom(fourth, "word_count")
    assert full["datums"] == {"total": 4, "processed": 4, "skipped": 0}
    stamp = client.inspect_commit(out, full["commit"]).metadata["airflow"]  # a commit the task opened
    assert (stamp["dag_id"], stamp["run_id"], stamp["task_id"]) == ("datumflow_datums", fourth.run_id, "word_count")
    assert stamp["try_number"] == 1 and stamp["hostname"]


def test_a_failing_datum_fails_the_task_and_the_output_commit(datums_dag, client, repo_name, monkeypatch):
    from datumflow.operators.datum import DatumPythonOperator

    out = f"{repo_name}-counts"
    client.put_files(repo_name, "master", [("a.txt", b"one"), ("bad.txt", b"??")])
    raised: list[BaseException] = []
    fail = DatumPythonOperator.fail

    def recording(self, message):  # the task's failure, as raised
        raised.append(fail(self, message))
        return raised[-1]

    monkeypatch.setattr(DatumPythonOperator, "fail", recording)
    run = datums_dag.test(logical_date=WHEN)
    assert str(run.state) == "failed"
    assert task_states(run)["word_count"] == "failed"
    exc = next(e for e in raised if "datum(s) failed" in str(e))
    assert "1 of 2 datum(s) failed" in str(exc)
    assert "bad.txt" in str(exc) and "ValueError: bad.txt is not text we can count" in str(exc)
    commit = client.inspect_commit(out, re.search(rf"{out}@(\w+)", str(exc)).group(1))
    assert commit.state.value == "failed"  # the good datum's output never became visible
    job = client.pipelines.job_for_commit(commit.id)
    states = sorted(d.state.value for d in client.pipelines.list_datums(job.id))
    assert job.state.value == "failure" and states == ["failed", "success"]
    with pytest.raises(Exception, match="no commits"):
        client.resolve(out, "master")


def test_asset_event_triggers_the_run_on_the_event_commit(datums_dag, client, repo_name, monkeypatch):
    """The service's push (or the AssetWatcher) ends in Airflow's ``register_asset_change``: do exactly
    that, check Airflow queued this DAG for the asset, then run it as the scheduler would (the run
    consumes the queued event) under ``dag.test()``."""
    from airflow.assets.manager import AssetManager
    from airflow.models import dagrun as dagrun_module
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    first = client.put_file(repo_name, "master", "a.txt", b"one two")
    datums_dag.test(logical_date=WHEN - dt.timedelta(days=1))  # a run by hand registers the DAG and its asset
    client.put_file(repo_name, "master", "b.txt", b"three")  # the head moves on: the event names `first`
    uri = f"datumflow://{repo_name}@master"

    with create_session() as session:
        asset = session.scalar(select(AssetModel).where(AssetModel.uri == uri))
        assert asset is not None, "Airflow did not register the DAG's datumflow asset"
        event = AssetManager().register_asset_change(
            asset=asset, extra={"commit": first.id, "repo": repo_name, "branch": "master"}, source_is_api=True,
            session=session)
        queued = session.scalars(select(AssetDagRunQueue.target_dag_id).where(
            AssetDagRunQueue.asset_id == asset.id)).all()
        event_id = event.id
    assert "datumflow_datums" in queued

    create = dagrun_module.get_or_create_dagrun

    def consuming(**kwargs):  # what the scheduler does when it creates an asset-triggered run
        run = create(**kwargs)
        session = kwargs["session"]
        run.consumed_asset_events.append(session.get(AssetEvent, event_id))
        session.commit()
        return run

    monkeypatch.setattr(dagrun_module, "get_or_create_dagrun", consuming)
    run = datums_dag.test(logical_date=WHEN)
    assert str(run.state) == "success", task_states(run)
    assert xcom(run, "which_commit") == first.id
    done = xcom(run, "word_count")
    assert done["datums"]["total"] == 1  # a.txt only: the commit of the event, not the head
    assert client.inspect_commit(f"{repo_name}-counts", done["commit"]).provenance.count(first.id) == 1
