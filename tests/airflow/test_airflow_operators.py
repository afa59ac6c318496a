"""Operators with only the hook mocked; lineage facets, the commit link, the plugin and provider metadata."""

from __future__ import annotations

import importlib
import json
from types import SimpleNamespace
from unittest import mock

import pytest
from datumflow.storage_service.model.core import CommitState


def commit(repo="raw", id="c1", branch="master", state=CommitState.FINISHED):
    return SimpleNamespace(repo=repo, branch=branch, id=id, commit_set="s1", state=state, error=None, metadata={},
                           is_finished=state is CommitState.FINISHED)


def ti():
    return mock.Mock(dag_id="d", run_id="r", task_id="t", try_number=2, map_index=-1, hostname="worker-1")


@pytest.fixture
def hook():
    from functools import partial

    from datumflow.storage_service.model.lifecycle import writing

    fake = mock.Mock(console_url="http://df:8765/console", address="http://df:8765", embedded=False)
    conn = fake.get_conn.return_value
    conn.writing = partial(writing, conn)  # the client's commit lifecycle, over the mocked calls
    with mock.patch("datumflow.operators.base.DatumflowBaseOperator.hook", new_callable=mock.PropertyMock,
                    return_value=fake):
        yield fake


STAMP = {"dag_id": "d", "run_id": "r", "task_id": "t", "try_number": 2, "map_index": -1, "hostname": "worker-1",
         "run_url": "http://af.example:8080/dags/d/runs/r"}


def test_create_repo(hook):
    from datumflow.operators.repo import DatumflowCreateRepoOperator

    hook.get_conn().create_repo.return_value = SimpleNamespace(name="raw")
    out = DatumflowCreateRepoOperator(task_id="t", repo="raw", description="d").execute({"ti": ti()})
    hook.get_conn().create_repo.assert_called_once_with("raw", "d", exist_ok=True)
    assert out == {"repo": "raw", "branch": None, "commit": None}


def test_create_branch(hook):
    from datumflow.operators.repo import DatumflowCreateBranchOperator

    hook.get_conn().create_branch.return_value = SimpleNamespace(repo="raw", name="dev", head="h")
    op = DatumflowCreateBranchOperator(task_id="t", repo="raw", branch="dev", provenance=["a@master"])
    out = op.execute({"ti": ti()})
    hook.get_conn().create_branch.assert_called_once_with("raw", "dev", head=None, provenance=["a@master"])
    assert out == {"repo": "raw", "branch": "dev", "commit": "h"}


def test_start_commit_stamps_the_task(hook):
    from datumflow.operators.commit import DatumflowStartCommitOperator

    hook.get_conn().start_commit.return_value = commit(state=CommitState.OPEN)
    context = {"ti": ti()}
    hook.get_conn().resolve.return_value = "d" * 32
    op = DatumflowStartCommitOperator(task_id="t", repo="raw", metadata={"k": 1},
                                      provenance=["src@master", {"commit": "e" * 32}, "f" * 32])
    out = op.execute(context)
    hook.get_conn().start_commit.assert_called_once_with("raw", "master", description="",
                                                         metadata={"k": 1, "airflow": STAMP},
                                                         provenance=["d" * 32, "e" * 32, "f" * 32])
    hook.get_conn().resolve.assert_called_once_with("src", "master")
    assert out["commit"] == "c1" and out["state"] == "open"
    context["ti"].xcom_push.assert_called_once_with(key="datumflow_commit_link",
                                                    value="http://df:8765/console/repos/raw/commits/c1")


def test_finish_commit(hook):
    from datumflow.operators.commit import DatumflowFinishCommitOperator

    hook.get_conn().finish_commit.return_value = commit()
    op = DatumflowFinishCommitOperator(task_id="t", repo="raw", commit={"commit": "c1"}, error="boom")
    out = op.execute({"ti": ti()})
    hook.get_conn().finish_commit.assert_called_once_with("raw", "c1", description=None,
                                                          metadata={"airflow_finish": STAMP}, error="boom")
    assert out["commit"] == "c1"


def test_put_files_writes_one_commit(hook):
    from datumflow.operators.files import DatumflowPutFilesOperator

    conn = hook.get_conn()
    conn.start_commit.return_value = commit(state=CommitState.OPEN)
    conn.finish_commit.return_value = commit()
    out = DatumflowPutFilesOperator(task_id="t", repo="raw", data={"a.json": [1, 2]}).execute({"ti": ti()})
    conn.put_files.assert_called_once_with("raw", "c1", [("a.json", b"[1, 2]")])
    conn.finish_commit.assert_called_once_with("raw", "c1", description=None, metadata=None)
    assert out["commit"] == "c1"


def test_put_files_sync_uploads_only_the_differences_of_each_folder(hook):
    from datumflow.operators.files import PutFilesOperator

    conn = hook.get_conn()
    conn.start_commit.return_value = commit(state=CommitState.OPEN)
    conn.finish_commit.return_value = commit()
    op = PutFilesOperator(task_id="t", repo="raw", files={"models": "/tmp/out", "logs": "file:///tmp/logs"},
                          sync=True, delete=True)
    assert op.execute({"ti": ti()})["commit"] == "c1"
    assert conn.sync_up.call_args_list == [
        (("/tmp/out", "raw", "c1", "models"), {"delete": True}), (("/tmp/logs", "raw", "c1", "logs"), {"delete": True}),
    ]
    conn.put_files.assert_not_called()


def test_put_files_failure_fails_the_commit(hook):
    from datumflow.operators.files import DatumflowPutFilesOperator

    conn = hook.get_conn()
    conn.start_commit.return_value = commit(state=CommitState.OPEN)
    conn.put_files.side_effect = OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        DatumflowPutFilesOperator(task_id="t", repo="raw", data={"a": "x"}).execute({"ti": ti()})
    assert "OSError: disk full" in conn.finish_commit.call_args.kwargs["error"]


def test_put_files_without_input_names_the_cause(hook):
    from airflow.exceptions import AirflowException
    from datumflow.operators.files import DatumflowPutFilesOperator

    with pytest.raises(AirflowException, match="nothing to put"):
        DatumflowPutFilesOperator(task_id="t", repo="raw").execute({"ti": ti()})


def test_copy_file(hook):
    from datumflow.operators.files import DatumflowCopyFileOperator

    conn = hook.get_conn()
    conn.inspect_commit.return_value = commit(repo="src", id="s9")
    conn.start_commit.return_value = commit(state=CommitState.OPEN)
    conn.finish_commit.return_value = commit()
    op = DatumflowCopyFileOperator(task_id="t", src_repo="src", src_ref="master", src_path="/x", dst_repo="raw",
                                   dst_path="/y")
    out = op.execute({"ti": ti()})
    conn.copy_file.assert_called_once_with("src", "s9", "/x", "raw", "c1", "/y")
    assert conn.start_commit.call_args.kwargs["provenance"] == ["s9"]
    assert out["commit"] == "c1" and op.lineage_inputs[0]["commit"] == "s9"


def test_create_pipeline(hook):
    from datumflow.operators.pipeline import DatumflowCreatePipelineOperator

    engine = hook.pipelines()
    engine.create_pipeline.return_value = SimpleNamespace(name="p", spec_commit="sc", version=2)
    engine.store.inspect_commit.return_value = commit(repo="p", id="sc")
    out = DatumflowCreatePipelineOperator(task_id="t", spec={"pipeline": {"name": "p"}}).execute({"ti": ti()})
    engine.create_pipeline.assert_called_once_with({"pipeline": {"name": "p"}}, update=True, reprocess=False)
    assert (out["pipeline"], out["version"], out["commit"]) == ("p", 2, "sc")


def test_run_pipeline_returns_the_finished_output(hook):
    from datumflow.operators.pipeline import DatumflowRunPipelineOperator

    engine = hook.pipelines()
    engine.inspect_pipeline.return_value = SimpleNamespace(name="p", output_branch="master")
    done = commit(repo="p", id="o1")
    done.metadata = {"datums": {"processed": 2}}
    engine.store.inspect_commit.return_value = done
    out = DatumflowRunPipelineOperator(task_id="t", pipeline="p").execute({"ti": ti()})
    assert engine.store.start_commit.call_args.kwargs["metadata"]["airflow"] == STAMP
    assert out["commit"] == "o1" and out["datums"] == {"processed": 2}


def test_run_pipeline_defers_until_the_output_commit_finishes(hook):
    from airflow.sdk.exceptions import TaskDeferred
    from datumflow.operators.pipeline import DatumflowRunPipelineOperator
    from datumflow.plugin.triggers import CommitFinishedTrigger

    engine = hook.pipelines()
    engine.inspect_pipeline.return_value = SimpleNamespace(name="p", output_branch="master")
    engine.store.inspect_commit.return_value = commit(repo="p", id="o1", state=CommitState.OPEN)
    with pytest.raises(TaskDeferred) as deferred:
        DatumflowRunPipelineOperator(task_id="t", pipeline="p", deferrable=True).execute({"ti": ti()})
    trigger = deferred.value.trigger
    assert isinstance(trigger, CommitFinishedTrigger) and (trigger.repo, trigger.commit) == ("p", "o1")
    assert deferred.value.method_name == "execute_complete"


def test_kafka_spout_operator_returns_the_commits(hook):
    from datumflow.operators.kafka import DatumflowKafkaSpoutOperator

    with mock.patch("datumflow.storage_service.spouts.kafka.KafkaSpout") as spout:
        spout.return_value.run.return_value = [commit(id="k1"), commit(id="k2")]
        op = DatumflowKafkaSpoutOperator(task_id="t", bootstrap="b:9092", topic="orders", repo="raw", max_messages=5)
        out = op.execute({"ti": ti()})
    store, config = spout.call_args.args
    assert store.start_commit.__self__ is store  # the stamping wrapper around the hook's client
    assert (config.topic, config.repo, config.bootstrap) == ("orders", "raw", "b:9092")
    spout.return_value.run.assert_called_once_with(stop_after_idle=5.0, max_messages=5)
    assert [r["commit"] for r in out] == ["k1", "k2"]


@pytest.mark.parametrize(("module", "name", "fields"), [
    ("repo", "DatumflowCreateRepoOperator", {"repo"}),
    ("repo", "DatumflowCreateBranchOperator", {"repo", "branch", "head", "provenance"}),
    ("commit", "DatumflowStartCommitOperator", {"repo", "branch", "commit_metadata"}),
    ("commit", "DatumflowFinishCommitOperator", {"repo", "commit", "error"}),
    ("files", "DatumflowPutFilesOperator", {"repo", "branch", "files", "data", "commit"}),
    ("files", "DatumflowCopyFileOperator", {"src_repo", "src_ref", "dst_repo"}),
    ("pipeline", "DatumflowCreatePipelineOperator", {"spec"}),
    ("pipeline", "DatumflowRunPipelineOperator", {"pipeline"}),
    ("datum", "DatumflowDatumPythonOperator", {"input_repo", "input_commit", "output_repo", "op_kwargs"}),
    ("kafka", "DatumflowKafkaSpoutOperator", {"topic", "repo", "bootstrap"}),
])
def test_template_fields(module, name, fields):

    cls = getattr(importlib.import_module(f"datumflow.operators.{module}"), name)
    assert "datumflow_conn_id" in cls.template_fields and fields <= set(cls.template_fields)
    assert len(set(cls.template_fields)) == len(cls.template_fields)


def test_sensor_template_fields():
    from datumflow.sensors.commit import DatumflowCommitSensor, DatumflowCommitSetSensor, DatumflowFileSensor

    assert {"datumflow_conn_id", "repo", "branch", "after"} <= set(DatumflowCommitSensor.template_fields)
    assert {"repo", "pattern"} <= set(DatumflowFileSensor.template_fields)
    assert {"commit", "commit_set"} <= set(DatumflowCommitSetSensor.template_fields)


def test_openlineage_datasets_are_commits_in_the_datumflow_namespace():
    from datumflow.plugin.openlineage import dataset_names, operator_lineage

    refs = [{"repo": "raw", "branch": "master", "commit": "c1"}]
    assert dataset_names("http://df:8765", refs) == [("datumflow://df:8765", "raw@master", "c1")]
    lineage = operator_lineage("http://df:8765", refs, [{"repo": "out", "branch": "dev", "commit": "c2"}])
    try:
        import airflow.providers.openlineage  # noqa: F401
    except ImportError:
        assert lineage is None  # the provider is optional
        return
    [inp], [outp] = lineage.inputs, lineage.outputs
    assert (inp.namespace, inp.name) == ("datumflow://df:8765", "raw@master")
    assert inp.facets["version"].datasetVersion == "c1"
    assert (outp.name, outp.facets["version"].datasetVersion) == ("out@dev", "c2")


def test_operator_facets_on_complete_name_its_commits(hook):
    from datumflow.operators.files import DatumflowCopyFileOperator
    from datumflow.plugin.openlineage import dataset_names

    conn = hook.get_conn()
    conn.inspect_commit.return_value = commit(repo="src", id="s9")
    conn.start_commit.return_value = commit(state=CommitState.OPEN)
    conn.finish_commit.return_value = commit(id="c7")
    op = DatumflowCopyFileOperator(task_id="t", src_repo="src", src_ref="master", src_path="/x", dst_repo="raw",
                                   dst_path="/y")
    op.execute({"ti": ti()})
    assert dataset_names(hook.address, op.lineage_inputs) == [("datumflow://df:8765", "src@master", "s9")]
    assert dataset_names(hook.address, op.lineage_outputs) == [("datumflow://df:8765", "raw@master", "c7")]
    facets = op.get_openlineage_facets_on_complete(None)
    if facets is not None:
        assert [d.name for d in facets.outputs] == ["raw@master"]


def test_commit_link_url():
    from datumflow.plugin.links import DatumflowCommitLink, commit_url

    assert commit_url("http://df:8765/console/", "raw", "c1") == "http://df:8765/console/repos/raw/commits/c1"
    with mock.patch("airflow.sdk.execution_time.xcom.XCom.get_value", return_value="http://x/commit/raw/c1") as get:
        assert DatumflowCommitLink().get_link(None, ti_key="key") == "http://x/commit/raw/c1"
    get.assert_called_once_with(ti_key="key", key="datumflow_commit_link")
    assert DatumflowCommitLink.name == "datumflow commit"


def test_plugin_registers_links_listener_and_views():
    from datumflow.plugin import listener
    from datumflow.plugin.airflow_plugin import DatumflowPlugin
    from datumflow.plugin.links import DatumflowCommitLink

    assert DatumflowPlugin.name == "datumflow"
    assert any(isinstance(link, DatumflowCommitLink) for link in DatumflowPlugin.operator_extra_links)
    assert listener in DatumflowPlugin.listeners and callable(listener.on_dag_run_failed)
    [app] = DatumflowPlugin.fastapi_apps
    assert app["url_prefix"] == "/datumflow"
    assert {r.path for r in app["app"].routes} >= {"/lineage/{dag_id}/{run_id}"}
    assert DatumflowPlugin.external_views[0]["href"].startswith("/datumflow/lineage/")


def test_provider_info_validates_against_airflows_schema():
    import importlib.resources

    import jsonschema
    from datumflow.plugin.provider_info import get_provider_info

    schema = json.loads(importlib.resources.files("airflow").joinpath("provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    for dotted in [info["connection-types"][0]["hook-class-name"], info["plugins"][0]["plugin-class"],
                   info["asset-uris"][0]["handler"], info["task-decorators"][0]["class-name"]]:
        module, _, attr = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), attr), dotted


def test_asset_uri_handler_canonicalizes_and_rejects():
    from urllib.parse import urlsplit

    from datumflow.plugin.assets import sanitize_uri
    from datumflow.storage_service.errors import InvalidArgument

    assert sanitize_uri(urlsplit("datumflow://raw")).geturl() == "datumflow://raw@master"
    with pytest.raises(InvalidArgument):
        sanitize_uri(urlsplit("datumflow://Bad Repo@x"))
