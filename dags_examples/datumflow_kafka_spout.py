"""Kafka → datumflow → per-batch processing: the spout's commit drives a datum task.

``ingest`` (``DatumflowKafkaSpoutOperator``) consumes the topic into ``repo@master``
until it is idle (one commit per batch, offsets stored in the commit, so a
rerun resumes exactly once). ``count_records`` (``@task.datum``) runs once per
new batch file of the spout's last commit (``/<topic>/<partition>/<offsets>.jsonl``)
and writes a record count per batch into ``<repo>-records``.

Conf: ``{"bootstrap": "kafka:9092", "topic": "orders", "repo": "orders"}``.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG
from datumflow.operators.datum import datum_task
from datumflow.operators.kafka import DatumflowKafkaSpoutOperator
from datumflow.operators.repo import DatumflowCreateRepoOperator

REPO = "{{ dag_run.conf.get('repo', 'orders') }}"

with DAG("datumflow_kafka_spout", start_date=dt.datetime(2026, 1, 1), schedule=None, catchup=False,
         tags=["datumflow"]) as dag:
    repo = DatumflowCreateRepoOperator(task_id="create_repo", repo=REPO)
    ingest = DatumflowKafkaSpoutOperator(
        task_id="ingest", bootstrap="{{ dag_run.conf.get('bootstrap', 'localhost:9092') }}",
        topic="{{ dag_run.conf.get('topic', 'orders') }}", repo=REPO, stop_after_idle=2.0,
        spout_options={"reset_offsets": "earliest", "batch_seconds": 1.0},
    )

    @datum_task(task_id="count_records", input_repo=REPO, output_repo=REPO + "-records", glob="/*/*/*")
    def count_records(datum):
        for path in datum.files:
            lines = [line for line in path.read_text().splitlines() if line.strip()]
            (datum.out / (path.stem + ".count")).write_text(str(len(lines)))

    # The spout's last commit, or the branch head when the topic had nothing new.
    last = "{{ (ti.xcom_pull('ingest') or [{}])[-1].get('commit', '') }}"
    repo >> ingest >> count_records.override(input_commit=last)()
