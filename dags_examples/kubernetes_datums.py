"""Run a datumflow pipeline's new datums on Kubernetes: one pod per batch, cached datums skipped.

Trigger it with ``{"pipeline": "<name>"}`` (or set the default below). Before the first run:
build and push the worker image (docs/kubernetes.md), create the ``datumflow-worker`` Secret
holding DATUMFLOW_ADDRESS and a token scoped to the pipeline's repos, and define the
``datumflow_default`` connection.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.sdk import DAG, Param
from datumflow.operators.kubernetes_datum import datum_kubernetes_pods

with DAG(
    "datumflow_kubernetes_datums",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1),
    catchup=False,
    params={"pipeline": Param("edges", type="string")},
    tags=["datumflow", "kubernetes"],
) as dag:
    datum_kubernetes_pods(
        "datums",
        pipeline="{{ params.pipeline }}",
        worker_image=os.environ.get("DATUMFLOW_WORKER_IMAGE", "datumflow/worker:0.1.0"),
        batch_size=2,
        namespace=os.environ.get("DATUMFLOW_NAMESPACE", "default"),
        retries=2,
    )
