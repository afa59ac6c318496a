"""Test DAG: a commit is opened, then a task fails; the listener must fail the open commit."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, task
from datumflow.operators.commit import DatumflowStartCommitOperator

with DAG("df_test_abort", start_date=dt.datetime(2026, 1, 1), schedule=None) as dag:

    @task
    def explode():
        raise RuntimeError("transform broke")

    DatumflowStartCommitOperator(task_id="start", repo="{{ dag_run.conf['repo'] }}") >> explode()
