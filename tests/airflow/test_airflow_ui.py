"""What a user sees of the provider in Airflow's UI: the connection form, the commit link, the alias warnings."""

from __future__ import annotations

import warnings

import httpx
import pytest


def test_the_commit_link_opens_the_commits_console_page(client, repo_name):
    from datumflow.plugin.hooks import DatumflowHook
    from datumflow.plugin.links import commit_url

    client.create_repo(repo_name)
    made = client.put_file(repo_name, "master", "a.txt", b"x")
    console = DatumflowHook().console_url  # from the datumflow_default connection, as the operators build it
    answer = httpx.get(commit_url(console, repo_name, made.id), timeout=10)
    assert answer.status_code == 200
    assert made.id in answer.text


def test_airflow_3_shows_datumflows_own_connection_fields(connections):
    """Airflow 3's connection form is built from the provider info (no FAB widgets, no get_ui_field_behaviour)."""
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    manager.initialize_providers_hooks()
    behaviour = manager.field_behaviours["datumflow"]
    assert behaviour["relabeling"] == {"schema": "Scheme (http, https or file)", "password": "Token"}
    assert "login" in behaviour["hidden_fields"]
    widgets = {name: w for name, w in manager.connection_form_widgets.items() if name.startswith("extra__datumflow__")}
    assert widgets["extra__datumflow__console_url"].field["schema"]["title"] == "Console URL"
    assert "extra__datumflow__root" in widgets


def test_extra_fields_saved_by_the_form_are_read_by_the_hook(monkeypatch):
    import json

    from datumflow.plugin.hooks import DatumflowHook

    monkeypatch.setenv("AIRFLOW_CONN_DF_FORM", json.dumps({
        "conn_type": "datumflow", "host": "df.example", "port": 80, "schema": "https",
        "extra": {"extra__datumflow__console_url": "https://console.example/ui"}}))
    hook = DatumflowHook(datumflow_conn_id="df_form")
    assert hook.address == "https://df.example:80"
    assert hook.console_url == "https://console.example/ui"


@pytest.mark.parametrize(("module", "old", "new"), [
    ("datumflow.sensors.commit", "FileSensor", "DatumflowFileSensor"),
    ("datumflow.sensors.commit", "CommitSensor", "DatumflowCommitSensor"),
    ("datumflow.operators.commit", "StartCommitOperator", "DatumflowStartCommitOperator"),
    ("datumflow.operators.files", "PutFilesOperator", "DatumflowPutFilesOperator"),
    ("datumflow.operators.repo", "CreateRepoOperator", "DatumflowCreateRepoOperator"),
])
def test_old_names_still_work_and_warn(module, old, new):
    import importlib

    from airflow.sdk import DAG

    mod = importlib.import_module(module)
    kwargs = {"repo": "r", "pattern": "/x"} if old == "FileSensor" else {"repo": "r"}
    with DAG(f"alias_{old}", schedule=None), pytest.warns(DeprecationWarning, match=f"{old} is deprecated: use {new}"):
        task = getattr(mod, old)(task_id="t", **kwargs)
    assert isinstance(task, getattr(mod, new))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with DAG(f"new_{new}", schedule=None):
            getattr(mod, new)(task_id="t", **kwargs)  # the new name does not warn
