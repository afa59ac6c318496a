"""``datumflow serve --executor kubernetes``: the options and the config file reach the executor that
runs the service's jobs, and the pods it renders carry them.

The pod runner is the one boundary replaced (there is no cluster here): ``PodSim`` runs each rendered
pod's containers as local processes against the live service. Each pod is also read back through the
kubernetes client's own ``V1Pod`` model.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.pipelines.executors.kubernetes import KubernetesExecutor
from datumflow.storage_service.pipelines.executors.local import LocalExecutor
from datumflow.storage_service.pipelines.executors.pod import to_v1pod
from datumflow.storage_service.service import serve
from datumflow.storage_service.store.store import Store

from tests.kubernetes.conftest import Live, make_sim

CONFIG = """
executor: kubernetes
kubernetes:
  namespace: batch-jobs
  service_account: datumflow-runner
  node_selector: {pool: batch}
  tolerations:
    - {key: dedicated, operator: Equal, value: batch, effect: NoSchedule}
  batch_size: 2
  poll_seconds: 0.05
"""


def serve_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="datumflow")
    serve.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["serve", *argv])


def test_the_default_executor_is_local(tmp_path: Path) -> None:
    with Store(str(tmp_path / "s")) as store:
        engine = serve.pipelines_for(store, serve_args("--root", str(tmp_path / "s")))
        assert isinstance(engine.executor, LocalExecutor)


def test_serve_runs_jobs_as_the_configured_pods(live: Live, admin: Any, tmp_path: Path) -> None:
    config = tmp_path / "executor.yaml"
    config.write_text(CONFIG)
    args = serve_args("--root", str(live.root), "--executor-config", str(config), "--k8s-concurrency", "3",
                      "--k8s-image", "registry.example/datumflow/worker:test")
    tag = uuid.uuid4().hex[:8]
    repo, name = f"sx-in-{tag}", f"sx-{tag}"
    admin.create_repo(repo)
    admin.put_files(repo, "master", [(f"f{i}.txt", f"v{i}".encode()) for i in range(5)])
    admin.pipelines.create_pipeline({
        "pipeline": {"name": name}, "input": {"pfs": {"repo": repo, "glob": "/*", "name": "in"}},
        "transform": {"image": "alpine:3", "cmd": ["sh", "-c", "cp /pfs/in/* /pfs/out/"]},
    })
    sim = make_sim(live, tmp_path, live.worker_token((repo, "reader"), (name, "writer")))
    with Store(str(live.root)) as store:
        engine = serve.pipelines_for(store, args, runner=sim)
        assert isinstance(engine.executor, KubernetesExecutor) and engine.executor.concurrency == 3
        (job,) = engine.process(pipeline=name)
    assert job.state.value == "success", job.reason
    assert len(sim.pods) == 3  # batch_size 2: five datums in three pods
    for pod in sim.pods:
        v1 = to_v1pod(pod)
        assert v1.metadata.namespace == "batch-jobs"
        assert v1.spec.service_account_name == "datumflow-runner"
        assert v1.spec.node_selector == {"pool": "batch"}
        assert [(t.key, t.value, t.effect) for t in v1.spec.tolerations] == [("dedicated", "batch", "NoSchedule")]
        assert {c.image for c in v1.spec.init_containers} == {"registry.example/datumflow/worker:test"}
    head = admin.inspect_commit(name, "master")
    assert sorted(f.path for f in admin.walk_files(name, head.id)) == [f"f{i}.txt" for i in range(5)]


def test_options_override_the_file_and_build_tolerations_and_selectors(tmp_path: Path) -> None:
    config = tmp_path / "executor.yaml"
    config.write_text(CONFIG)
    args = serve_args("--executor-config", str(config), "--k8s-namespace", "other", "--k8s-batch-size", "7",
                      "--k8s-node-selector", "zone=a", "--k8s-toleration", "gpu:NoExecute",
                      "--k8s-toleration", "team=data:NoSchedule")
    got = serve.executor_config(args).kubernetes
    assert (got.namespace, got.batch_size, got.service_account) == ("other", 7, "datumflow-runner")
    assert got.node_selector == {"zone": "a"}
    assert list(got.tolerations) == [
        {"key": "gpu", "operator": "Exists", "effect": "NoExecute"},
        {"key": "team", "operator": "Equal", "value": "data", "effect": "NoSchedule"},
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("executor: kubernetes\nkubernetes: {namepsace: x}\n", "unknown kubernetes executor setting(s): namepsace"),
        ("executor: nomad\n", "unknown executor 'nomad'"),
        ("executor: kubernetes\nkubernetes: {batch_size: 0}\n", "kubernetes.batch_size must be"),
        ("- just a list\n", "must be a YAML mapping"),
        ("executor: [unclosed\n", "is not valid YAML"),
    ],
)
def test_a_bad_config_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "executor.yaml"
    config.write_text(text)
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")):
        serve.executor_config(serve_args("--executor-config", str(config)))


def test_serve_refuses_a_bad_config_before_serving(tmp_path: Path) -> None:
    config = tmp_path / "executor.yaml"
    config.write_text("executor: kubernetes\nkubernetes: {tolerations: nope}\n")
    done = subprocess.run(
        [sys.executable, "-m", "datumflow.storage_service.service.serve", "serve", "--root", str(tmp_path / "s"),
         "--executor-config", str(config), "--port", "1"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("datumflow: kubernetes.tolerations must be a list")
    assert not (tmp_path / "s").exists()  # refused before the store was opened
