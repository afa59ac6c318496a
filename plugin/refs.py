"""What Airflow passes around for a commit: a plain dict (XCom-safe), and the metadata of a task.

``commit_ref(commit)`` is what every operator returns::

    {"repo": "raw", "branch": "master", "commit": "<id>", "commit_set": "<id>", "state": "finished"}

``airflow_metadata(context)`` is recorded on every commit made from Airflow,
under the ``airflow`` key, so a commit names the DAG run and task that made it.
"""

from __future__ import annotations

import socket
from typing import Any

__all__ = ["AIRFLOW_KEY", "airflow_metadata", "asset_uri", "commit_ref", "parse_asset_uri", "run_url"]

AIRFLOW_KEY = "airflow"


def commit_ref(commit: Any) -> dict[str, Any]:
    return {
        "repo": commit.repo,
        "branch": commit.branch,
        "commit": commit.id,
        "commit_set": commit.commit_set,
        "state": commit.state.value,
    }


def airflow_metadata(context: Any) -> dict[str, Any]:
    """{"airflow": {dag_id, run_id, task_id, try_number, map_index, hostname, run_url}} of the running task.

    ``run_url`` is the run's page in Airflow's UI (``[api] base_url``): the console links back to it.
    """
    ti = context["ti"]
    return {
        AIRFLOW_KEY: {
            "dag_id": ti.dag_id,
            "run_id": ti.run_id,
            "task_id": ti.task_id,
            "try_number": ti.try_number,
            "map_index": getattr(ti, "map_index", -1),
            "hostname": getattr(ti, "hostname", None) or socket.getfqdn(),
            "run_url": run_url(str(ti.dag_id), str(ti.run_id)),
        }
    }


def run_url(dag_id: str, run_id: str) -> str:
    """The page of a DAG run in Airflow's UI."""
    from urllib.parse import quote

    from airflow.configuration import conf

    base = str(conf.get("api", "base_url", fallback="http://localhost:8080")).rstrip("/")
    return f"{base}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def asset_uri(repo: str, branch: str = "master") -> str:
    return f"datumflow://{repo}@{branch}"


def parse_asset_uri(uri: str) -> tuple[str, str]:
    """``datumflow://repo@branch`` → (repo, branch); the branch defaults to master."""
    from datumflow.storage_service.errors import InvalidArgument
    from datumflow.storage_service.names import check_branch_name, check_repo_name

    scheme, sep, rest = uri.partition("://")
    if scheme != "datumflow" or not sep:
        raise InvalidArgument(f"not a datumflow asset URI: {uri!r} (expected datumflow://repo@branch)")
    rest = rest.strip("/")
    repo, _, branch = rest.partition("@")
    return check_repo_name(repo), check_branch_name(branch or "master")
