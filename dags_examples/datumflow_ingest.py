"""Ingest files into a repo in one commit opened and finished by separate tasks, then wait downstream.

Repo and branch come from the run's conf (``{"repo": "raw"}``); nothing here
touches the service at parse time.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG
from datumflow.operators.commit import DatumflowFinishCommitOperator, DatumflowStartCommitOperator
from datumflow.operators.files import DatumflowPutFilesOperator
from datumflow.operators.repo import DatumflowCreateRepoOperator
from datumflow.sensors.commit import DatumflowCommitSetSensor, DatumflowFileSensor

REPO = "{{ dag_run.conf.get('repo', 'raw') }}"

with DAG("datumflow_ingest", start_date=dt.datetime(2026, 1, 1), schedule=None, catchup=False,
         render_template_as_native_obj=True, tags=["datumflow"]) as dag:
    repo = DatumflowCreateRepoOperator(task_id="create_repo", repo=REPO)
    start = DatumflowStartCommitOperator(task_id="start_commit", repo=REPO, description="daily ingest")
    put = DatumflowPutFilesOperator(
        task_id="put_files", repo=REPO, commit=start.output,
        data={"orders/{{ ds }}.json": "{{ dag_run.conf.get('orders', []) }}"},
    )
    finish = DatumflowFinishCommitOperator(task_id="finish_commit", repo=REPO, commit=start.output)
    landed = DatumflowFileSensor(task_id="wait_for_file", repo=REPO, pattern="/orders/*.json", poll_interval=0.5)
    downstream = DatumflowCommitSetSensor(task_id="wait_downstream", commit=finish.output, poll_interval=0.5)
    repo >> start >> put >> finish >> [landed, downstream]
