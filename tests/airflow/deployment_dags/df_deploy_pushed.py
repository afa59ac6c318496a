"""Deployment DAG of the burst benchmark's second peer: scheduled on an asset whose events are posted to Airflow's
REST API (``POST /api/v2/assets/events``), as the service's push does, with no watcher."""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import DAG, Asset, task

REPO = os.environ.get("DF_PUSH_REPO", "pushed")

with DAG("df_deploy_pushed", start_date=dt.datetime(2026, 1, 1), schedule=[Asset(f"datumflow://{REPO}@master")],
         catchup=False, max_active_runs=32) as dag:

    @task
    def which(**context):
        return [e.extra.get("commit") for events in context["triggering_asset_events"].values() for e in events]

    which()
