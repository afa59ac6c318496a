"""The service's own ``kubernetes`` executor: ``Pipelines.process()`` runs a job as datum pods.

The pod runner is injected: here it is ``PodSim`` (the pods' containers as local processes), which
talks to the live service; ``KubeApiRunner`` would create the same pods through ``CoreV1Api``.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.pipelines.executors.kubernetes import KubernetesExecutor
from datumflow.storage_service.pipelines.executors.pod import PodSettings
from datumflow.storage_service.store.store import Store

from tests.kubernetes.conftest import Live, make_sim


def _pipeline(admin: Any, image: str = "alpine:3") -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    repo, name = f"ex-in-{tag}", f"ex-{tag}"
    admin.create_repo(repo)
    admin.put_files(repo, "master", [(f"f{i}.txt", f"v{i}".encode()) for i in range(5)])
    admin.pipelines.create_pipeline({
        "pipeline": {"name": name}, "input": {"pfs": {"repo": repo, "glob": "/*", "name": "in"}},
        "transform": {"image": image, "cmd": ["sh", "-c", "cp /pfs/in/* /pfs/out/"]},
        "parallelism_spec": {"constant": 2},
    })
    return repo, name


def test_process_runs_a_job_as_pods(live: Live, admin: Any, tmp_path: Path) -> None:
    repo, name = _pipeline(admin)
    sim = make_sim(live, tmp_path, live.worker_token((repo, "reader"), (name, "writer")))
    with Store(str(live.root)) as store:
        executor = KubernetesExecutor(store, PodSettings(poll_seconds=0.05), sim)
        (job,) = Pipelines(store, executor=executor).process(pipeline=name)  # type: ignore[arg-type]
    assert job.state.value == "success", job.reason
    assert len(sim.pods) == 2  # parallelism 2: five datums in two pods
    assert sorted(len(p["spec"]["containers"][0]["env"][3]["value"].split()) for p in sim.pods) == [2, 3]
    head = admin.inspect_commit(name, "master")
    assert sorted(f.path for f in admin.walk_files(name, head.id)) == [f"f{i}.txt" for i in range(5)]


def test_a_bad_image_fails_the_job_before_any_pod(live: Live, admin: Any, tmp_path: Path) -> None:
    _, name = _pipeline(admin, image=" ")
    sim = make_sim(live, tmp_path, "unused")
    with Store(str(live.root)) as store:
        (job,) = Pipelines(store, executor=KubernetesExecutor(store, PodSettings(), sim)).process(  # type: ignore[arg-type]
            pipeline=name)
    assert job.state.value == "failure" and "transform.image is empty" in (job.reason or "")
    assert sim.pods == []
    assert admin.inspect_commit(name, job.output_commit).state.value == "failed"
