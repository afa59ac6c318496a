from __future__ import annotations

import pytest
from datumflow.plugin.hooks import DatumflowHook


def test_http_connection_reaches_the_live_service(connections, client, repo_name):
    client.create_repo(repo_name)
    hook = DatumflowHook()
    assert hook.address == connections[0]
    assert repo_name in {r.name for r in hook.get_conn().list_repos()}
    assert hook.get_conn() is hook.get_conn()
    ok, message = hook.test_connection()
    assert ok and connections[0] in message
    assert hook.console_url == connections[0] + "/console"


def test_file_connection_opens_the_same_store(connections, client, repo_name):
    client.create_repo(repo_name)
    hook = DatumflowHook(datumflow_conn_id="datumflow_local")
    assert hook.embedded and hook.address == "file://" + connections[1]
    assert repo_name in {r.name for r in hook.get_conn().list_repos()}
    assert hook.pipelines() is not None


def test_missing_connection_names_the_conn_id(connections):
    from airflow.exceptions import AirflowException

    with pytest.raises(AirflowException, match="'no_such_conn' is not defined"):
        DatumflowHook(datumflow_conn_id="no_such_conn").get_conn()


def test_http_connection_gives_the_services_pipelines(connections, client, repo_name):
    from datumflow.storage_service.client.pipelines import RemotePipelines

    client.create_repo(repo_name)
    engine = DatumflowHook().pipelines()
    assert isinstance(engine, RemotePipelines)
    assert repo_name in {r.name for r in engine.store.list_repos()}  # the same service, over HTTP
    assert engine.list_pipelines() is not None


def test_unreachable_service_fails_test_connection(connections, monkeypatch):
    import json

    from tests.conftest import free_port

    monkeypatch.setenv("AIRFLOW_CONN_DF_DOWN", json.dumps(
        {"conn_type": "datumflow", "host": "127.0.0.1", "port": free_port(), "schema": "http"}))
    hook = DatumflowHook(datumflow_conn_id="df_down")
    hook.get_conn().retries = 0
    ok, message = hook.test_connection()
    assert not ok and "cannot reach" in message
