"""Deployment DAG of the burst benchmark's peer: the same task, triggered through Airflow's REST API per commit."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, task

with DAG("df_deploy_rest", start_date=dt.datetime(2026, 1, 1), schedule=None, catchup=False,
         max_active_runs=32) as dag:

    @task
    def which(**context):
        return [context["dag_run"].conf["commit"]]

    which()
