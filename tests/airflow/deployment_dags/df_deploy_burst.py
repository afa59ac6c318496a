"""Deployment test DAG: one run per commit on ``$DF_BURST_REPO@master``, through the AssetWatcher."""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import DAG, Asset, AssetWatcher, task
from datumflow.plugin.assets import triggering_commits
from datumflow.plugin.triggers import CommitEventTrigger

REPO = os.environ.get("DF_BURST_REPO", "burst")

commits = Asset(f"datumflow://{REPO}@master", watchers=[
    AssetWatcher(name=f"{REPO}_commits", trigger=CommitEventTrigger(repo=REPO, poll_interval=0.5)),
])

with DAG("df_deploy_burst", start_date=dt.datetime(2026, 1, 1), schedule=[commits], catchup=False,
         max_active_runs=32) as dag:

    @task
    def which(**context):
        return [c["commit"] for c in triggering_commits(context)]

    which()
