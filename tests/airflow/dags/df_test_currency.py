"""Test DAG: a ``@task.datum`` whose output depends on a templated argument and on a project helper."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG
from datumflow.operators.datum import datum_task

RATES = {"EUR": 1.0, "USD": 1.5}


def rate(currency: str) -> float:
    return RATES[currency]


with DAG("df_test_currency", start_date=dt.datetime(2026, 1, 1), schedule=None) as dag:

    @datum_task(task_id="convert", input_repo="{{ dag_run.conf['repo'] }}",
                output_repo="{{ dag_run.conf['repo'] }}-priced")
    def convert(datum, currency):
        for path in datum.files:
            (datum.out / path.name).write_text(f"{float(path.read_text()) * rate(currency):.2f} {currency}")

    convert(currency="{{ dag_run.conf['currency'] }}")
