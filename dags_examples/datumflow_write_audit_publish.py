"""Write-audit-publish: isolate a load on its own branch, validate it, publish it atomically.

``master`` is protected (merges only), so no task can write to it by
mistake; each run loads into ``etl-<run>``, a branch made from master, and
master moves only when the audit passed, in one merge that records the run.
A failed audit leaves master exactly as it was (and the branch for a look).

Conf: ``{"repo": "sales", "rows": [{"id": 1, "amount": 10}, ...]}``.
"""

from __future__ import annotations

import datetime as dt
import json

from airflow.sdk import DAG, task
from datumflow.operators.commit import FinishCommitOperator, StartCommitOperator
from datumflow.operators.files import PutFilesOperator
from datumflow.operators.merge import DatumflowCreateTagOperator, DatumflowMergeOperator
from datumflow.operators.repo import CreateBranchOperator, CreateRepoOperator
from datumflow.plugin.hooks import DatumflowHook

REPO = "{{ dag_run.conf.get('repo', 'sales') }}"
BRANCH = "etl-{{ ts_nodash | lower }}"

with DAG("datumflow_write_audit_publish", start_date=dt.datetime(2026, 1, 1), schedule=None, catchup=False,
         render_template_as_native_obj=True, tags=["datumflow"]) as dag:

    @task
    def protect_master(repo: str) -> None:
        """Idempotent: master takes merges only from now on (it must exist, with a first commit)."""
        DatumflowHook().get_conn().protect_branch(repo, "master")

    repo = CreateRepoOperator(task_id="create_repo", repo=REPO)
    branch = CreateBranchOperator(task_id="create_branch", repo=REPO, branch=BRANCH, head="master")
    start = StartCommitOperator(task_id="start_commit", repo=REPO, branch=BRANCH, description="nightly load")
    write = PutFilesOperator(task_id="write", repo=REPO, commit=start.output,
                             data={"orders/{{ ds }}.json": "{{ dag_run.conf.get('rows', []) }}"})
    commit = FinishCommitOperator(task_id="commit", repo=REPO, commit=start.output)

    @task
    def validate(repo: str, branch: str, ds: str | None = None) -> int:
        """The audit: every row has an id and a non-negative amount."""
        rows = json.loads(DatumflowHook().get_conn().get_file(repo, branch, f"orders/{ds}.json"))
        bad = [r for r in rows if "id" not in r or r.get("amount", 0) < 0]
        if bad:
            raise ValueError(f"{len(bad)} bad row(s), e.g. {bad[0]}: not publishing")
        return len(rows)

    audit = validate(REPO, BRANCH)
    publish = DatumflowMergeOperator(task_id="publish", repo=REPO, source=BRANCH, dest="master",
                                     message="publish {{ ds }} ({{ run_id }})")
    release = DatumflowCreateTagOperator(task_id="tag", repo=REPO, tag="release-{{ ts_nodash | lower }}",
                                ref=publish.output)
    repo >> protect_master(REPO) >> branch >> start >> write >> commit >> audit >> publish >> release
