"""Commit-triggered, dedup-aware processing: a new commit on ``raw@master`` runs only its new datums.

``schedule`` is the asset ``datumflow://raw@master`` watched by a
``CommitEventTrigger`` (one event, so one run, per commit; the
connection's token stays in the connection); the run reads the triggering commit from the asset
event (``triggering_commits``) and falls back to the branch head when run by
hand. The ``@task.datum`` task (over the service's HTTP API, connection
``datumflow_default``) runs once per new file; a cleared task (or a
rerun on the same commit) reuses every cached datum and returns the same
output commit.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import DAG, Asset, AssetWatcher, task
from datumflow.operators.datum import datum_task
from datumflow.plugin.assets import triggering_commits
from datumflow.plugin.triggers import CommitEventTrigger

REPO = os.environ.get("DATUMFLOW_EXAMPLE_REPO", "raw")

raw = Asset(f"datumflow://{REPO}@master", watchers=[
    AssetWatcher(name="raw_commits", trigger=CommitEventTrigger(repo=REPO, branch="master",
                                                                datumflow_conn_id="datumflow_default")),
])

with DAG("datumflow_datums", start_date=dt.datetime(2026, 1, 1), schedule=[raw], catchup=False,
         tags=["datumflow"]) as dag:

    @task
    def which_commit(**context):
        found = triggering_commits(context)
        return found[-1]["commit"] if found else None

    @datum_task(task_id="word_count", input_repo=REPO, output_repo=f"{REPO}-counts")
    def word_count(datum):
        for path in datum.files:
            if path.name.startswith("bad"):
                raise ValueError(f"{path.name} is not text we can count")
            (datum.out / (path.name + ".count")).write_text(str(len(path.read_text().split())))

    which_commit() >> word_count.override(input_commit="{{ ti.xcom_pull('which_commit') or '' }}")()
