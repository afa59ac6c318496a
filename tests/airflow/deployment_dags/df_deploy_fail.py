"""Deployment test DAG: a commit is opened, then a task fails; the listener in the scheduler fails the commit."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, task
from datumflow.operators.commit import DatumflowStartCommitOperator

with DAG("df_deploy_fail", start_date=dt.datetime(2026, 1, 1), schedule=None, catchup=False) as dag:

    @task(retries=0)
    def explode():
        raise RuntimeError("transform broke")

    DatumflowStartCommitOperator(task_id="start", repo="{{ dag_run.conf['repo'] }}") >> explode()
