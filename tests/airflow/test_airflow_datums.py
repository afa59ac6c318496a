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
    from datumflow.operators.datum import DatumflowDatumPythonOperator

    out = f"{repo_name}-counts"
    client.put_files(repo_name, "master", [("a.txt", b"one"), ("bad.txt", b"??")])
    raised: list[BaseException] = []
    fail = DatumflowDatumPythonOperator.fail

    def recording(self, message):  # the task's failure, as raised
        raised.append(fail(self, message))
        return raised[-1]

    monkeypatch.setattr(DatumflowDatumPythonOperator, "fail", recording)
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


def test_a_changed_templated_argument_reruns_every_datum(connections, dag_test_works, client, repo_name):
    """``currency="EUR"`` then ``"USD"``: nothing of the EUR run may be reused for USD, and back again all is."""
    client.create_repo(repo_name)
    client.put_files(repo_name, "master", [("a", b"2"), ("b", b"4")])
    dag = load_dag("df_test_currency")
    out = f"{repo_name}-priced"
    seen = {}
    for currency, processed in (("EUR", 2), ("USD", 2), ("EUR", 0)):
        run = dag.test(run_conf={"repo": repo_name, "currency": currency})
        assert str(run.state) == "success", task_states(run)
        done = xcom(run, "convert")
        assert done["datums"]["processed"] == processed, (currency, done)
        values = {f.path.strip("/"): client.get_file(out, done["commit"], f.path).decode()
                  for f in client.glob_files(out, done["commit"], "/*")}
        assert all(v.endswith(currency) for v in values.values()), values  # never a mix
        seen.setdefault(currency, values)
    assert seen["USD"] == {"a": "3.00 USD", "b": "6.00 USD"}


def test_the_code_hash_covers_the_project_helpers_a_function_calls(tmp_path, monkeypatch):
    import importlib
    import sys

    from datumflow.storage_service.pipelines.code import arguments_hash, code_hash

    monkeypatch.syspath_prepend(str(tmp_path))
    helper = tmp_path / "df_helper_mod.py"
    main = tmp_path / "df_main_mod.py"
    helper.write_text("def rate(c):\n    return 1.0\n")
    main.write_text("import json\nimport df_helper_mod\n\n\ndef fn(datum, c):\n"
                    "    return df_helper_mod.rate(c), json.dumps(c)\n")

    def loaded():
        for name in ("df_helper_mod", "df_main_mod"):
            sys.modules.pop(name, None)
        importlib.invalidate_caches()
        return importlib.import_module("df_main_mod").fn

    first = code_hash(loaded())
    assert code_hash(loaded()) == first  # stable
    helper.write_text("def rate(c):\n    return 1.5\n")  # only the helper changed
    assert code_hash(loaded()) != first
    assert arguments_hash({"c": "EUR"}) != arguments_hash({"c": "USD"})
    assert arguments_hash({"a": 1, "b": [2]}) == arguments_hash({"b": [2], "a": 1})
