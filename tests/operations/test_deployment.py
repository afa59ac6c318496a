"""The deployment files: every Kubernetes object validates against the Kubernetes schemas, the
kustomize overlays render (with kubectl's built-in kustomize, where installed), and every command
the image, the manifests and the compose file run is one the CLI accepts. No cluster and no Docker
engine here: nothing is deployed, which is why these are checks of the files and of the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from datumflow.storage_service.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "kubernetes" / "base"
PRODUCTION = ROOT / "deploy" / "kubernetes" / "overlays" / "production"
COMPOSE = ROOT / "deploy" / "compose" / "docker-compose.yml"
SERVICE_IMAGE = ROOT / "docker" / "service.Dockerfile"
K8S_VERSION = "1.30.0"


def _objects(paths: list[Path]) -> list[dict[str, Any]]:
    return [doc for p in paths for doc in yaml.safe_load_all(p.read_text()) if doc]


def _base_objects() -> list[dict[str, Any]]:
    listed = yaml.safe_load((BASE / "kustomization.yaml").read_text())["resources"]
    return _objects([BASE / name for name in listed])


def _validate(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.mark.parametrize("obj", _base_objects(), ids=lambda o: f"{o['kind']}-{o['metadata']['name']}")
def test_every_base_object_is_valid_kubernetes(obj: dict[str, Any]) -> None:
    _validate(obj)


def test_the_validation_sees_a_bad_object() -> None:
    deployment = next(o for o in _base_objects() if o["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "eighty"
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(broken)


def _containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    spec = deployment["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def test_the_service_runs_unprivileged_with_probes_the_service_answers() -> None:
    deployment = next(o for o in _base_objects() if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    for container in _containers(deployment):
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    main = pod["containers"][0]
    probes = {main[k]["httpGet"]["path"] for k in ("readinessProbe", "livenessProbe", "startupProbe")}
    assert probes == {"/readyz", "/livez"}
    from datumflow.storage_service.service.app import create_app
    from datumflow.storage_service.store.store import Store

    with tempfile.TemporaryDirectory() as tmp, Store(tmp, fsync=False) as store:
        paths = {getattr(r, "path", None) for r in create_app(store).routes}
    assert probes | {"/metrics"} <= paths


def _accepted(args: list[str]) -> None:
    """The CLI parses ``args`` as a user typed them (argparse exits on anything it refuses)."""
    parsed = build_parser().parse_args(args)
    assert callable(getattr(parsed, "run", None)), args


def test_every_container_command_is_one_the_cli_accepts() -> None:
    deployment = next(o for o in _base_objects() if o["kind"] == "Deployment")
    commands = [c["args"] for c in _containers(deployment)]
    assert ["db", "upgrade"] in commands and commands[-1][0] == "serve"
    for args in commands:
        _accepted(args)


def _dockerfile(path: Path) -> dict[str, Any]:
    found: dict[str, Any] = {"COPY": []}
    for line in path.read_text().replace("\\\n", " ").splitlines():
        word, _, rest = line.partition(" ")
        if word in ("ENTRYPOINT", "CMD", "USER", "EXPOSE"):
            found[word] = json.loads(rest) if rest.startswith("[") else rest.strip()
        elif word == "COPY":
            found["COPY"].append(rest.split()[:-1])
        elif word == "HEALTHCHECK":
            found["HEALTHCHECK"] = rest
    return found


def test_the_service_image_runs_the_cli_as_a_non_root_user() -> None:
    image = _dockerfile(SERVICE_IMAGE)
    assert image["ENTRYPOINT"] == ["datumflow"]
    _accepted(image["CMD"])
    assert image["USER"].isdigit() and int(image["USER"]) != 0
    assert "/livez" in image["HEALTHCHECK"] and image["EXPOSE"] == "8765"
    for sources in image["COPY"]:
        for source in sources:
            assert (ROOT / source).exists(), f"the image copies {source}, which the repository lacks"


def test_the_compose_file_runs_the_image_against_postgresql_and_s3() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    service = compose["services"]["datumflow"]
    assert (ROOT / service["build"]["dockerfile"]).exists()
    _accepted(service["command"])
    env = service["environment"]
    assert env["DATUMFLOW_DB"].startswith("postgresql://") and env["DATUMFLOW_OBJECTS"].startswith("s3://")
    assert set(service["depends_on"]) == {"postgres", "buckets"}
    assert all(port.startswith("127.0.0.1:") for port in service["ports"])  # a laptop, not a network


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (with its built-in kustomize) is not installed")
@pytest.mark.parametrize("folder", [BASE, PRODUCTION], ids=["base", "production"])
def test_the_kustomizations_render_to_valid_objects(folder: Path) -> None:
    rendered = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True,
                              timeout=120, check=True).stdout
    objects = [o for o in yaml.safe_load_all(rendered) if o]
    for obj in objects:
        _validate(obj)
    kinds = sorted(o["kind"] for o in objects)
    assert {"Deployment", "Service", "ServiceAccount", "Role", "RoleBinding", "PodDisruptionBudget"} <= set(kinds)
    if folder == PRODUCTION:
        deployment = next(o for o in objects if o["kind"] == "Deployment")
        assert deployment["spec"]["replicas"] == 3
        assert deployment["metadata"]["namespace"] == "datumflow"
        secret = next(o for o in objects if o["kind"] == "Secret")
        refs = [e["secretRef"]["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
                if "secretRef" in e]
        assert refs == [secret["metadata"]["name"]]  # the generated name (with its hash) is wired in
