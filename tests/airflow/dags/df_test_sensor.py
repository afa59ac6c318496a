"""Test DAG: a deferrable DatumflowCommitSensor waiting for a commit after a given one."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG
from datumflow.sensors.commit import DatumflowCommitSensor

with DAG("df_test_sensor", start_date=dt.datetime(2026, 1, 1), schedule=None) as dag:
    DatumflowCommitSensor(task_id="wait", repo="{{ dag_run.conf['repo'] }}", after="{{ dag_run.conf['after'] }}",
                          path_glob="/*.csv", poll_interval=0.2, deferrable=True)
