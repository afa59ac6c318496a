"""``DatumflowPlugin``: commit links on tasks, the lineage view of a DAG run, and the failed-run listener.

Airflow 3.2 serves plugin web UIs as FastAPI apps (``fastapi_apps``) shown
through ``external_views``; Flask views are Airflow 2 only and not used.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from . import listener
from .links import DatumflowCommitLink

__all__ = ["DatumflowPlugin"]


def _fastapi_apps() -> list[dict[str, Any]]:
    from .views import create_app

    return [{"app": create_app(), "url_prefix": "/datumflow", "name": "datumflow lineage"}]


class DatumflowPlugin(AirflowPlugin):
    name = "datumflow"
    operator_extra_links = [DatumflowCommitLink()]
    listeners = [listener]
    fastapi_apps = _fastapi_apps()
    external_views = [
        {
            "name": "datumflow lineage",
            "href": "/datumflow/lineage/{DAG_ID}/{RUN_ID}",
            "destination": "dag_run",
            "url_route": "datumflow-lineage",
        }
    ]
