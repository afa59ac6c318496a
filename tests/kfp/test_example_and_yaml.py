"""The example pipeline under kfp.local against the live service, and the shipped YAML."""

import json
import sys
from pathlib import Path

import pytest
import yaml
from datumflow.kfp_components.compile import compile_all

from datumflow import kfp_components

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "kfp_examples"))

import line_fit  # noqa: E402


def _points(slope: float, intercept: float, xs: range) -> bytes:
    return ("x,y\n" + "".join(f"{x},{slope * x + intercept}\n" for x in xs)).encode()


def test_the_example_fits_a_line_and_commits_the_model_with_provenance(secret_env, client, repo_name):  # type: ignore[no-untyped-def]
    data, models = f"{repo_name}-points", f"{repo_name}-models"
    client.create_repo(data)
    data_commit = client.put_files(data, "master", [("a.csv", _points(2.0, 1.0, range(0, 5))),
                                                    ("more/b.csv", _points(2.0, 1.0, range(5, 10)))]).id
    run = line_fit.line_fit(data_ref=f"{data}@master", model_repo=models)
    commit = client.inspect_commit(models, run.output)
    model = json.loads(client.get_file(models, commit.id, "model.json"))
    assert model["slope"] == pytest.approx(2.0) and model["intercept"] == pytest.approx(1.0)
    assert model["points"] == 10
    assert commit.provenance == (data_commit,)
    assert commit.metadata["kfp_pipeline"].startswith("datumflow-line-fit")
    assert commit.metadata["kfp_task"] == "write-commit"
    assert commit.metadata["kfp_run_id"]
    # provenance as the service reports it: the model comes from exactly that data commit
    assert [(p.repo, p.commit) for p in client.provenance(models, commit.id)] == [(data, data_commit)]


def test_a_second_run_on_the_same_commit_is_not_cached_by_kfp_local(secret_env, client, repo_name):  # type: ignore[no-untyped-def]
    """kfp.local implements no cache: the pipeline runs again and writes a second model commit."""
    data, models = f"{repo_name}-points", f"{repo_name}-models"
    client.create_repo(data)
    data_commit = client.put_files(data, "master", [("a.csv", _points(-1.0, 3.0, range(4)))]).id
    first = line_fit.line_fit(data_ref=f"{data}@master", model_repo=models).output
    second = line_fit.line_fit(data_ref=f"{data}@master", model_repo=models).output
    assert first != second
    assert [c.id for c in client.list_commits(models, "master")][:2] == [second, first]
    assert client.inspect_commit(models, second).provenance == (data_commit,)
    # Same bytes, same chunks: the second model is identical content, stored once.
    hashes = {client.inspect_file(models, ref, "model.json").hash for ref in (first, second)}
    assert len(hashes) == 1


def test_the_example_without_the_secret_fails_before_writing(no_secret, client, repo_name, capfd):  # type: ignore[no-untyped-def]
    models = f"{repo_name}-models"
    with pytest.raises(RuntimeError):
        line_fit.line_fit(data_ref=f"{repo_name}@master", model_repo=models)
    captured = capfd.readouterr()
    assert "DATUMFLOW_ADDRESS is not set" in captured.out + captured.err
    assert models not in [r.name for r in client.list_repos()]


def test_the_compiled_example_mounts_the_secret_on_every_datumflow_task(tmp_path):  # type: ignore[no-untyped-def]
    from kfp import compiler

    target = tmp_path / "line_fit.yaml"
    compiler.Compiler().compile(line_fit.line_fit, str(target))
    docs = list(yaml.safe_load_all(target.read_text()))
    executors = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == {"exec-read-commit", "exec-write-commit"}
    for spec in executors.values():
        (secret,) = spec["secretAsEnv"]
        assert secret["secretName"] == "datumflow"
        assert {m["secretKey"]: m["envVar"] for m in secret["keyToEnv"]} == {
            "address": "DATUMFLOW_ADDRESS", "token": "DATUMFLOW_TOKEN"}
    assert "DATUMFLOW_ADDRESS" not in json.dumps(docs[0]["root"])  # never a pipeline parameter


def test_the_shipped_yaml_is_up_to_date(tmp_path):  # type: ignore[no-untyped-def]
    fresh = compile_all(tmp_path)
    for path in fresh:
        shipped = Path(kfp_components.__file__).with_name(path.name)
        assert shipped.exists(), f"{shipped.name} is missing: run make kfp-components"
        assert shipped.read_text() == path.read_text(), f"{shipped.name} is stale: run make kfp-components"


@pytest.mark.parametrize("name", kfp_components.NAMES)
def test_the_shipped_yaml_runs_on_the_datumflow_image_without_pip(name):  # type: ignore[no-untyped-def]
    component = kfp_components.load_yaml(name)
    assert component.name == name.replace("_", "-")
    container = component.component_spec.implementation.container
    assert container.image == kfp_components.DEFAULT_BASE_IMAGE
    command = " ".join(container.command)
    assert "pip install" not in command and "kfp==" not in command  # nothing installed, no kfp pinned at run time


def test_wait_for_commit_takes_the_timeout_users_write(tmp_path):  # type: ignore[no-untyped-def]
    from kfp import compiler, dsl

    @dsl.pipeline(name="wait-int-timeout")
    def waits() -> None:
        kfp_components.wait_for_commit(repo="raw", timeout=30)

    compiler.Compiler().compile(waits, str(tmp_path / "w.yaml"))  # an int: KFP compiles it
    assert "timeout" in (tmp_path / "w.yaml").read_text()


def test_the_package_spec_and_image_are_configurable(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DATUMFLOW_KFP_PACKAGE", "datumflow==0.1.0")
    monkeypatch.setenv("DATUMFLOW_KFP_BASE_IMAGE", "registry.local/py:3.11")
    built = kfp_components.make_components()
    container = built.read_commit.component_spec.implementation.container
    assert container.image == "registry.local/py:3.11"
    assert "'datumflow==0.1.0'" in " ".join(container.command)
    bare = kfp_components.make_components(package="").write_commit.component_spec.implementation.container
    assert "pip install" not in " ".join(bare.command)
    assert bare.image == "registry.local/py:3.11"
