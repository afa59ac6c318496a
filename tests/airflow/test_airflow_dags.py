"""Example and purpose-built DAGs run for real with ``dag.test()`` against the live service."""

from __future__ import annotations

import importlib.util
import json
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


def xcom(run, task_id: str, key: str = "return_value"):
    """The XCom a task of ``run`` pushed, read from Airflow's metadata database."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = XComModel.get_many(run_id=run.run_id, dag_ids=run.dag_id, task_ids=task_id, key=key)
        row = session.scalars(query).first()
        assert row is not None, f"{task_id} pushed no {key!r}"
        return XComModel.deserialize_value(row)


def task_states(run) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_examples_parse_fast_with_the_service_down(path, monkeypatch):
    # A DAG processor has the libraries loaded after its first file; what is timed here is the
    # example's own parse-time work. (Importing the cncf.kubernetes provider and the kubernetes
    # client the first time takes 1-3 s on its own, for any KubernetesPodOperator DAG.)
    import airflow.sdk  # noqa: F401
    import datumflow.operators.kubernetes_datum  # noqa: F401

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
    assert found.path.strip("/") == f"orders/{run.logical_date:%Y-%m-%d}.json"  # the destination was rendered
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


def test_commit_sensor_defers_and_its_trigger_fires(connections, dag_test_works, client, repo_name, monkeypatch):
    import asyncio

    from datumflow.plugin.triggers import CommitTrigger
    from datumflow.sensors.commit import DatumflowCommitSensor

    # dag.test() runs the task and then its trigger in this process. The awaited commit is made
    # only once the trigger runs, so the task must have deferred, and only the trigger can see it.
    made: list[str] = []
    events, resumed = [], []
    run_trigger, complete = CommitTrigger.run, DatumflowCommitSensor.execute_complete

    async def run_and_commit(self):
        started = asyncio.get_running_loop().time()
        await asyncio.to_thread(lambda: made.append(client.put_file(repo_name, "master", "b.csv", b"2").id))
        async for event in run_trigger(self):
            events.append((event.payload, asyncio.get_running_loop().time() - started))
            yield event

    def recording_complete(self, context, event):
        resumed.append(event)
        return complete(self, context, event)

    monkeypatch.setattr(CommitTrigger, "run", run_and_commit)
    monkeypatch.setattr(DatumflowCommitSensor, "execute_complete", recording_complete)
    client.create_repo(repo_name)
    before = client.put_file(repo_name, "master", "a.csv", b"1")
    client.put_file(repo_name, "master", "a.txt", b"not matched by the sensor's glob")
    dag = load_dag("df_test_sensor")
    run = dag.test(run_conf={"repo": repo_name, "after": before.id})
    assert str(run.state) == "success", task_states(run)
    # Airflow clears next_method once the resumed task succeeds; the trigger's event is the proof.
    [(payload, _)] = events
    assert payload["status"] == "success"
    assert payload["commit"]["commit"] == made[0]  # not the a.txt commit: the glob filtered it out
    assert len(resumed) == 1 and resumed[0]["commit"]["commit"] == made[0]
    assert xcom(run, "wait")["commit"]["commit"] == made[0]


def test_commit_sensor_pokes_when_not_deferrable(connections, client, repo_name):
    """The same sensor in poke mode finds a commit that is already there (no Airflow run needed)."""
    from datumflow.sensors.commit import DatumflowCommitSensor

    client.create_repo(repo_name)
    before = client.put_file(repo_name, "master", "a.csv", b"1")
    after = client.put_file(repo_name, "master", "b.csv", b"2")
    sensor = DatumflowCommitSensor(task_id="poke", repo=repo_name, after=before.id, path_glob="/*.csv",
                                   deferrable=False)
    assert sensor.poke({}) is True
    assert sensor._event["commit"]["commit"] == after.id


def test_pipeline_wait_example_defers_until_the_service_ran_the_job(connections, dag_test_works, client, repo_name):
    run = load_dag("datumflow_pipeline_wait").test(run_conf={"repo": repo_name, "text": "make me loud"})
    assert str(run.state) == "success", task_states(run)
    done = xcom(run, "run_pipeline")
    out = f"{repo_name}-upper"
    assert done["repo"] == out and done["state"] == "finished"
    [found] = client.glob_files(out, done["commit"], "/*.txt")
    assert "{{" not in found.path
    assert client.get_file(out, done["commit"], found.path) == b"MAKE ME LOUD"
    job = client.pipelines.job_for_commit(done["commit"])
    # The service's job loop ran it; deploying the pipeline already ran a job on the same input, so
    # the datum may come from the cache: either way exactly one datum, and no failure.
    assert job.state.value == "success" and job.total == 1 and job.processed + job.skipped == 1
    assert client.inspect_commit(out, done["commit"]).metadata["airflow"]["task_id"] == "run_pipeline"


@pytest.mark.kafka
@pytest.mark.slow
def test_kafka_spout_example_commits_the_topic_and_counts_each_batch(connections, dag_test_works, client, repo_name,
                                                                     kafka_broker, kafka_topic):
    from kafka import KafkaProducer

    topic = kafka_topic()
    producer = KafkaProducer(bootstrap_servers=kafka_broker)
    for i in range(5):
        producer.send(topic, json.dumps({"order": i}).encode())
    producer.flush()
    producer.close()
    run = load_dag("datumflow_kafka_spout").test(
        run_conf={"bootstrap": kafka_broker, "topic": topic, "repo": repo_name})
    assert str(run.state) == "success", task_states(run)
    commits = xcom(run, "ingest")
    assert commits and all(c["repo"] == repo_name for c in commits)
    stamp = client.inspect_commit(repo_name, commits[-1]["commit"]).metadata["airflow"]
    assert stamp["task_id"] == "ingest" and stamp["run_id"] == run.run_id
    done = xcom(run, "count_records")
    total = sum(int(client.get_file(f"{repo_name}-records", done["commit"], f.path))
                for f in client.glob_files(f"{repo_name}-records", done["commit"], "/*.count"))
    assert total == 5 and done["datums"]["processed"] == done["datums"]["total"] >= 1


def test_a_sensor_for_a_commit_that_never_comes_times_out_under_dags_test(connections, dag_test_works, client,
                                                                           repo_name):
    """``dags test`` runs the trigger in line, without a deferral timeout: the sensor's own timeout still holds."""
    import time

    client.create_repo(repo_name)
    started = time.monotonic()
    run = load_dag("df_test_sensor_timeout").test(run_conf={"repo": repo_name})
    took = time.monotonic() - started
    assert task_states(run) == {"wait": "failed"}
    assert took < 90, f"the sensor ran {took:.0f}s past its 10 s timeout"


def test_sensors_follow_airflows_default_deferrable(monkeypatch):
    from datumflow.sensors.commit import DatumflowCommitSensor

    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    assert DatumflowCommitSensor(task_id="a", repo="r").deferrable is True
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "False")
    assert DatumflowCommitSensor(task_id="b", repo="r").deferrable is False
    assert DatumflowCommitSensor(task_id="c", repo="r", deferrable=True).deferrable is True
