"""Put files, then run a pipeline in the service and wait (deferred) for its output commit.

The pipeline is an ordinary one the service runs in the background (its job
loop); the DAG only deploys it, writes the input and defers until the output
commit of the job has finished (``DatumflowRunPipelineOperator``), failing with the
job's reason if it failed.

Conf: ``{"repo": "lines"}`` (the input repo; the pipeline is ``<repo>-upper``).
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG
from datumflow.operators.files import DatumflowPutFilesOperator
from datumflow.operators.pipeline import DatumflowCreatePipelineOperator, DatumflowRunPipelineOperator
from datumflow.operators.repo import DatumflowCreateRepoOperator

REPO = "{{ dag_run.conf.get('repo', 'lines') }}"
SPEC = {
    "pipeline": {"name": REPO + "-upper"},
    "input": {"pfs": {"repo": REPO, "glob": "/*", "name": "in"}},
    "transform": {"image": "alpine:3",
                  "cmd": ["sh", "-c", "for f in /pfs/in/*; do tr a-z A-Z < $f > /pfs/out/$(basename $f); done"]},
}

with DAG("datumflow_pipeline_wait", start_date=dt.datetime(2026, 1, 1), schedule=None, catchup=False,
         render_template_as_native_obj=True, tags=["datumflow"]) as dag:
    repo = DatumflowCreateRepoOperator(task_id="create_repo", repo=REPO)
    put = DatumflowPutFilesOperator(task_id="put_files", repo=REPO,
                           data={"{{ ds }}.txt": "{{ dag_run.conf.get('text', 'hello datumflow') }}"})
    deploy = DatumflowCreatePipelineOperator(task_id="create_pipeline", spec=SPEC)
    run = DatumflowRunPipelineOperator(task_id="run_pipeline", pipeline=REPO + "-upper", poll_interval=0.5)
    repo >> put >> deploy >> run
