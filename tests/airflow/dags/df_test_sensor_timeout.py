"""Test DAG: a deferrable sensor for a commit that never comes, with a 10 s timeout."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG
from datumflow.sensors.commit import DatumflowCommitSensor

with DAG("df_test_sensor_timeout", start_date=dt.datetime(2026, 1, 1), schedule=None) as dag:
    DatumflowCommitSensor(task_id="wait", repo="{{ dag_run.conf['repo'] }}", deferrable=True, timeout=10,
                          poll_interval=1)
