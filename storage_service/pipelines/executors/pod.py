"""The pod that runs one batch of a job's datums, as a plain Kubernetes JSON dict.

Both ways of running datums on Kubernetes build their pods here: the
Airflow operator (``datumflow.operators.kubernetes_datum``) and the
service's own ``kubernetes`` executor. Nothing here talks to a cluster.

One ``emptyDir`` volume is mounted at ``/pfs`` in every container::

    init  "fetch"     (worker image)  datumflow worker fetch … --pfs /pfs/.datums/<datum>   for each datum
    main  "user"      (spec image)    for each datum: move /pfs/.datums/<datum>/* to /pfs,
                                      run the transform (cmd + stdin), move them back,
                                      write /pfs/.datums/<datum>/.exit (and .ok if accepted);
                                      at the end write /pfs/.exit with the batch status
    main  "uploader"  (worker image)  wait for /pfs/.exit, upload every accepted datum's out/,
                                      exit with the batch status

The uploader is the container a watcher follows (KubernetesPodOperator's
``base_container_name``): its exit status is the batch's. Only the init and
uploader containers see the service address and token, through ``envFrom``
a Kubernetes Secret (keys ``DATUMFLOW_ADDRESS``, ``DATUMFLOW_TOKEN``); the
user's code never does. ``pod_patch`` (RFC 6902) is applied last.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.model.core import _Value
from datumflow.storage_service.pipelines.spec import PipelineSpec, Resources

__all__ = [
    "PFS",
    "Batch",
    "PodSettings",
    "apply_pod_patch",
    "build_pod",
    "make_batches",
    "to_v1pod",
    "validate",
]

PFS = "/pfs"
STAGE = ".datums"
USER, UPLOADER, FETCH = "user", "uploader", "fetch"
_QUANTITY = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|m|[EPTGMK]i|[EPTGMKk])?$")

_FETCH = """set -e
for d in $DATUMFLOW_DATUMS; do
  datumflow worker fetch --job "$DATUMFLOW_JOB_ID" --datum "$d" --pfs "$DATUMFLOW_PFS/.datums/$d"
done
# The user's image may run as another user: it must be able to move inputs and write out/.
chmod -R a+rwX "$DATUMFLOW_PFS"
"""

# The user's image needs only a POSIX sh (and env); "$@" is the transform's cmd. Variables whose
# names a shell cannot export (hyphenated input names) come as NAME=value lines in <datum>.envargs
# (marked "p" for a path under the volume, "v" for a value as it is): prepended to "$@" for env(1)
# to set, and shifted off again after the datum.
_WRAP = """status=0
run() { if [ "$extra" -gt 0 ]; then env "$@"; else "$@"; fi; }
for d in $DATUMFLOW_DATUMS; do
  dir="$DATUMFLOW_PFS/.datums/$d"
  names=$(ls -A "$dir")
  for n in $names; do mv "$dir/$n" "$DATUMFLOW_PFS/$n"; done
  export PACH_DATUM_ID="$d" DATUMFLOW_DATUM_ID="$d"
  if [ -f "$dir.env" ]; then . "$dir.env"; fi
  extra=0
  if [ -f "$dir.envargs" ]; then
    while IFS= read -r line; do
      pair=${line#?}
      case "$line" in p*) pair="${pair%%=*}=$DATUMFLOW_PFS${pair#*=}";; esac
      set -- "$pair" "$@"; extra=$((extra + 1))
    done < "$dir.envargs"
  fi
  if [ -n "${DATUMFLOW_STDIN:-}" ]; then printf '%s\\n' "$DATUMFLOW_STDIN" | run "$@"; else run "$@" </dev/null; fi
  code=$?
  shift "$extra"
  for n in $names; do mv "$DATUMFLOW_PFS/$n" "$dir/$n"; done
  echo "$code" > "$dir/.exit"
  ok=0
  for c in 0 ${DATUMFLOW_ACCEPT:-}; do [ "$code" -eq "$c" ] && ok=1; done
  if [ "$ok" -eq 1 ]; then : > "$dir/.ok"; else status=$code; break; fi
done
echo "$status" > "$DATUMFLOW_PFS/.exit.tmp" && mv "$DATUMFLOW_PFS/.exit.tmp" "$DATUMFLOW_PFS/.exit"
exit "$status"
"""

_UPLOAD = """while [ ! -f "$DATUMFLOW_PFS/.exit" ]; do sleep "${DATUMFLOW_POLL:-1}"; done
status=$(cat "$DATUMFLOW_PFS/.exit")
for d in $DATUMFLOW_DATUMS; do
  dir="$DATUMFLOW_PFS/.datums/$d"
  if [ -f "$dir/.ok" ]; then
    datumflow worker upload --job "$DATUMFLOW_JOB_ID" --datum "$d" --pfs "$dir" || exit 1
  fi
done
if [ "$status" -ne 0 ]; then echo "datumflow: the transform exited with status $status" >&2; fi
exit "$status"
"""


@dataclass(frozen=True)
class Batch(_Value):
    """Some datums of one job, run by one pod (an XCom-safe dict through ``to_dict``)."""

    job: str
    pipeline: str
    index: int
    datums: list[str]
    spec: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PodSettings:
    """What the cluster decides, not the pipeline spec."""

    worker_image: str = "datumflow/worker:latest"
    worker_secret: str = "datumflow-worker"
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, Any]] = ()
    image_pull_policy: str | None = None
    poll_seconds: float = 1.0
    service_account: str | None = None  # the pods' serviceAccountName (default: the namespace's default)


def make_batches(
    job: str, pipeline: str, datums: Sequence[str], *, size: int | None = None, count: int | None = None,
    spec: Mapping[str, Any] | None = None,
) -> list[Batch]:
    """Split datums into batches of ``size`` (or into ``count`` batches); order is kept."""
    if not datums:
        return []
    if size is None:
        size = -(-len(datums) // max(1, count or 1))
    if size < 1:
        raise InvalidArgument(f"batch size must be at least 1, not {size}")
    return [
        Batch(job, pipeline, i, list(datums[start:start + size]), dict(spec or {}))
        for i, start in enumerate(range(0, len(datums), size))
    ]


def validate(spec: PipelineSpec, settings: PodSettings, resources: Mapping[str, Any] | None = None) -> None:
    """Everything that would make the pod invalid, raised before any pod exists."""
    build_pod(spec, Batch("0" * 32, spec.name, 0, ["0" * 64]), settings, resources=resources)


def build_pod(
    spec: PipelineSpec, batch: Batch, settings: PodSettings, *, base: Mapping[str, Any] | None = None,
    resources: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The pod of ``batch``; ``base`` (a pod dict, e.g. from KubernetesPodOperator) gives metadata and extras."""
    if not spec.transform.image.strip():
        raise InvalidArgument(f"pipeline {spec.name}: transform.image is empty; a pod needs the transform's image")
    if not settings.worker_image.strip():
        raise InvalidArgument("the worker image is empty; build docker/worker.Dockerfile and name its image")
    if not batch.datums:
        raise InvalidArgument(f"batch {batch.index} of job {batch.job} has no datums")
    pod: dict[str, Any] = json.loads(json.dumps(dict(base or {})))
    meta = pod.setdefault("metadata", {})
    meta.setdefault("labels", {}).update(
        {"datumflow/pipeline": spec.name, "datumflow/job": batch.job, "datumflow/batch": str(batch.index)}
    )
    pod.setdefault("apiVersion", "v1")
    pod.setdefault("kind", "Pod")
    body = pod.setdefault("spec", {})
    common = _common_env(spec, batch, settings)
    body["initContainers"] = [_fetch(settings, common)]
    body["containers"] = [_user(spec, common, resources), _uploader(settings, common)]
    body["volumes"] = [{"name": "pfs", "emptyDir": {}}, *_secret_volumes(spec)]
    body["restartPolicy"] = "Never"
    if settings.service_account:
        body["serviceAccountName"] = settings.service_account
    if settings.node_selector:
        body["nodeSelector"] = {**body.get("nodeSelector", {}), **settings.node_selector}
    if settings.tolerations:
        body["tolerations"] = [*body.get("tolerations", []), *map(dict, settings.tolerations)]
    return apply_pod_patch(pod, spec.pod_patch) if spec.pod_patch else pod


def apply_pod_patch(pod: dict[str, Any], patch: str | list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 on the pod's JSON; any bad operation is an ``InvalidArgument``."""
    import jsonpatch
    import jsonpointer

    try:
        ops = jsonpatch.JsonPatch(json.loads(patch) if isinstance(patch, str) else patch)
        patched = ops.apply(pod)
    except (ValueError, TypeError, jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
        raise InvalidArgument(f"pod_patch cannot be applied to the datum pod: {exc}") from None
    if not isinstance(patched, dict):
        raise InvalidArgument("pod_patch replaced the whole pod with something that is not an object")
    return patched


def to_v1pod(pod: Mapping[str, Any]) -> Any:
    """The pod as a ``kubernetes.client.V1Pod`` (through the client's own deserializer)."""
    from kubernetes.client import ApiClient

    class _Response:
        data = json.dumps(pod)

    return ApiClient().deserialize(_Response(), "V1Pod")


# -- the three containers ------------------------------------------------------------------


def _common_env(spec: PipelineSpec, batch: Batch, settings: PodSettings) -> list[dict[str, Any]]:
    return [
        {"name": "DATUMFLOW_PFS", "value": PFS},
        {"name": "DATUMFLOW_JOB_ID", "value": batch.job},
        {"name": "PACH_JOB_ID", "value": batch.job},
        {"name": "DATUMFLOW_DATUMS", "value": " ".join(batch.datums)},
        {"name": "DATUMFLOW_POLL", "value": f"{settings.poll_seconds:g}"},
    ]


def _pfs_mount() -> dict[str, Any]:
    return {"name": "pfs", "mountPath": PFS}


def _worker_env_from(settings: PodSettings) -> list[dict[str, Any]]:
    return [{"secretRef": {"name": settings.worker_secret}}]


def _fetch(settings: PodSettings, common: list[dict[str, Any]]) -> dict[str, Any]:
    return _with_policy({
        "name": FETCH, "image": settings.worker_image, "command": ["sh", "-c", _FETCH, FETCH],
        "env": common, "envFrom": _worker_env_from(settings), "volumeMounts": [_pfs_mount()],
    }, settings)


def _uploader(settings: PodSettings, common: list[dict[str, Any]]) -> dict[str, Any]:
    return _with_policy({
        "name": UPLOADER, "image": settings.worker_image, "command": ["sh", "-c", _UPLOAD, UPLOADER],
        "env": common, "envFrom": _worker_env_from(settings), "volumeMounts": [_pfs_mount()],
    }, settings)


def _user(spec: PipelineSpec, common: list[dict[str, Any]], resources: Mapping[str, Any] | None) -> dict[str, Any]:
    t = spec.transform
    env = [*common, *({"name": k, "value": v} for k, v in t.env.items())]
    env.append({"name": "DATUMFLOW_ACCEPT", "value": " ".join(str(c) for c in t.accept_return_code)})
    if t.stdin:
        env.append({"name": "DATUMFLOW_STDIN", "value": "\n".join(t.stdin)})
    env += [
        {"name": s.env_var, "valueFrom": {"secretKeyRef": {"name": s.name, "key": s.key or s.env_var}}}
        for s in t.secrets if s.env_var
    ]
    container: dict[str, Any] = {
        "name": USER, "image": t.image, "command": ["sh", "-c", _WRAP, "datumflow-transform", *t.cmd],
        "env": env, "volumeMounts": [_pfs_mount(), *_secret_mounts(spec)],
        "resources": _resources(spec, resources),
    }
    if t.working_dir:
        container["workingDir"] = t.working_dir
    return container


def _with_policy(container: dict[str, Any], settings: PodSettings) -> dict[str, Any]:
    if settings.image_pull_policy:
        container["imagePullPolicy"] = settings.image_pull_policy
    return container


def _secret_volumes(spec: PipelineSpec) -> list[dict[str, Any]]:
    names = dict.fromkeys(s.name for s in spec.transform.secrets if s.mount_path)
    return [{"name": f"secret-{n}", "secret": {"secretName": n}} for n in names]


def _secret_mounts(spec: PipelineSpec) -> list[dict[str, Any]]:
    return [
        {"name": f"secret-{s.name}", "mountPath": s.mount_path, "readOnly": True}
        for s in spec.transform.secrets if s.mount_path
    ]


# -- resources ---------------------------------------------------------------------------------


def _resources(spec: PipelineSpec, override: Mapping[str, Any] | None) -> dict[str, Any]:
    out: dict[str, dict[str, str]] = {}
    for kind, res in (("requests", spec.resource_requests), ("limits", spec.resource_limits)):
        if res is not None and _quantities(res):
            out[kind] = _quantities(res)
    gpu = next((r.gpu for r in (spec.resource_limits, spec.resource_requests) if r is not None and r.gpu), None)
    if gpu is not None and gpu.number:
        # Kubernetes takes extended resources in limits (requests, if given, must be equal).
        out.setdefault("limits", {})[gpu.type] = str(gpu.number)
        if "requests" in out:
            out["requests"][gpu.type] = str(gpu.number)
    for kind, values in (override or {}).items():
        if kind not in ("requests", "limits"):
            raise InvalidArgument(f"resources: {kind!r} is not 'requests' or 'limits'")
        out.setdefault(kind, {}).update({str(k): str(v) for k, v in dict(values).items()})
    for kind, values in out.items():
        for name, value in values.items():
            if not _QUANTITY.match(value):
                raise InvalidArgument(f"resources.{kind}.{name}: {value!r} is not a Kubernetes quantity")
    return out


def _quantities(res: Resources) -> dict[str, str]:
    found = {"cpu": None if res.cpu is None else f"{res.cpu:g}", "memory": res.memory, "ephemeral-storage": res.disk}
    return {k: v for k, v in found.items() if v is not None}
