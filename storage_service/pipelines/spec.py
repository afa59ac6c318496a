"""Pipeline specs in Pachyderm's pipeline-spec format, validated.

``parse_spec`` takes a mapping (or YAML/JSON text) and returns a frozen
:class:`PipelineSpec`, or raises one :class:`InvalidArgument` that lists
every bad field on its own line (``input.cross[1].pfs.glob: required``).
Fields Pachyderm knows but datumflow does not run are rejected by name, so a
spec never silently loses meaning; a few fields with no effect outside a
cluster (``autoscaling``, ``enable_stats``…) are accepted and ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.names import check_branch_name, check_repo_name
from datumflow.storage_service.pipelines.durations import parse_duration
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "CronInput",
    "Input",
    "PfsInput",
    "PipelineSpec",
    "Transform",
    "load_specs",
    "parse_duration",
    "parse_spec",
]

# Pachyderm fields datumflow does not implement: each gets an error naming it.
_UNSUPPORTED: dict[str, set[str]] = {
    "": {
        "tf_job", "egress", "s3_out", "sidecar_resource_limits", "sidecar_resource_requests", "service",
        "spout", "datum_set_spec", "job_timeout", "scheduling_spec", "pod_spec", "spec_commit",
        "tolerations", "determined", "maximum_expected_uptime", "chunk_spec", "reprocess", "dry_run",
    },
    "transform": {"err_cmd", "err_stdin", "memory_volume", "datum_batching", "dockerfile", "build"},
    "pfs": {"commit", "trigger", "s3"},
    "input": {"spout"},
    "parallelism_spec": {"coefficient"},
}
# Pachyderm fields that only tune a cluster: accepted, without effect here.
_IGNORED: dict[str, set[str]] = {
    "": {"autoscaling", "enable_stats", "cache_size", "max_queue_size", "standby", "update", "metadata"},
    "transform": {"debug", "user", "image_pull_secrets"},
    "pfs": {"lazy", "empty_files", "repo_type"},
}

_MEMORY = re.compile(r"^\d+(\.\d+)?([EPTGMK]i?|[eptgmk])?$")



class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Project(_Model):
    name: str = "default"

    @field_validator("name")
    @classmethod
    def _default_only(cls, v: str) -> str:
        if v != "default":
            raise ValueError("only the 'default' project exists in datumflow")
        return v


class PipelineName(_Model):
    name: str
    project: Project | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _checked(check_repo_name, v)


class PfsInput(_Model):
    repo: str
    glob: str
    branch: str = "master"
    name: str = ""
    join_on: str | None = None
    outer_join: bool = False
    group_by: str | None = None
    project: str | Project | None = None

    @field_validator("repo")
    @classmethod
    def _repo(cls, v: str) -> str:
        return _checked(check_repo_name, v)

    @field_validator("branch")
    @classmethod
    def _branch(cls, v: str) -> str:
        return _checked(check_branch_name, v)

    @field_validator("glob")
    @classmethod
    def _glob(cls, v: str) -> str:
        if not v.strip() or ".." in v.split("/"):
            raise ValueError(f"{v!r} is not a glob pattern such as '/*' or '/'")
        if v.count("(") != v.count(")"):
            raise ValueError(f"{v!r} has unbalanced parentheses")
        return v

    @model_validator(mode="after")
    def _default_name(self) -> PfsInput:
        if not self.name:
            object.__setattr__(self, "name", self.repo)
        return self


class CronInput(_Model):
    name: str
    spec: str
    repo: str = ""
    overwrite: bool = False
    start: str | None = None
    project: str | Project | None = None

    @field_validator("spec")
    @classmethod
    def _spec(cls, v: str) -> str:
        from datumflow.storage_service.pipelines.cron import check_schedule

        check_schedule(v)
        return v


class Input(_Model):
    pfs: PfsInput | None = None
    cross: list[Input] | None = None
    union: list[Input] | None = None
    join: list[Input] | None = None
    group: list[Input] | None = None
    cron: CronInput | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Input:
        kinds = [k for k in ("pfs", "cross", "union", "join", "group", "cron") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                "an input needs exactly one of pfs, cross, union, join, group, cron"
                + (f" (got {', '.join(kinds)})" if kinds else "")
            )
        for kind in ("cross", "union", "join", "group"):
            children = getattr(self, kind)
            if children is not None and not children:
                raise ValueError(f"{kind} needs at least one input")
        for kind, key in (("join", "join_on"), ("group", "group_by")):
            for child in getattr(self, kind) or []:
                if child.pfs is None or getattr(child.pfs, key) is None:
                    raise ValueError(f"every input of a {kind} must be a pfs input with {key}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("pfs", "cross", "union", "join", "group", "cron") if getattr(self, k) is not None)

    def children(self) -> list[Input]:
        return list(getattr(self, self.kind)) if self.kind in ("cross", "union", "join", "group") else []

    def leaves(self) -> Iterator[PfsInput | CronInput]:
        if self.pfs is not None:
            yield self.pfs
        elif self.cron is not None:
            yield self.cron
        for child in self.children():
            yield from child.leaves()


class Secret(_Model):
    name: str
    key: str | None = None
    mount_path: str | None = None
    env_var: str | None = None


class Transform(_Model):
    image: str = ""
    cmd: list[str] = Field(default_factory=list)
    stdin: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    secrets: list[Secret] = Field(default_factory=list)
    working_dir: str | None = None
    accept_return_code: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _runnable(self) -> Transform:
        if not self.cmd:
            raise ValueError("transform.cmd is required (a list such as ['sh'] or ['python3', 'run.py'])")
        return self


class Gpu(_Model):
    type: str = "nvidia.com/gpu"
    number: int = Field(ge=0)


class Resources(_Model):
    cpu: float | None = Field(default=None, ge=0)
    memory: str | None = None
    disk: str | None = None
    gpu: Gpu | None = None

    @field_validator("memory", "disk")
    @classmethod
    def _quantity(cls, v: str | None) -> str | None:
        if v is not None and not _MEMORY.match(v):
            raise ValueError(f"{v!r} is not a quantity such as '64M', '1Gi' or '512Mi'")
        return v


class Parallelism(_Model):
    constant: int = Field(default=1, ge=0)


class PipelineSpec(_Model):
    pipeline: PipelineName
    transform: Transform
    input: Input
    description: str = ""
    parallelism_spec: Parallelism = Field(default_factory=Parallelism)
    resource_requests: Resources | None = None
    resource_limits: Resources | None = None
    datum_tries: int = Field(default=3, ge=1)
    datum_timeout: str | None = None
    reprocess_spec: Literal["until_success", "every_job"] = "until_success"
    pod_patch: str | None = None
    salt: str = ""
    output_branch: str = "master"

    @field_validator("datum_timeout")
    @classmethod
    def _timeout(cls, v: str | None) -> str | None:
        if v is not None and parse_duration(v) <= 0:
            raise ValueError("datum_timeout must be positive")
        return v

    @field_validator("pod_patch")
    @classmethod
    def _patch(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            ops = json.loads(v)
        except ValueError as exc:
            raise ValueError(f"pod_patch is not JSON: {exc}") from None
        if not isinstance(ops, list) or not all(isinstance(o, dict) and "op" in o and "path" in o for o in ops):
            raise ValueError("pod_patch must be a JSON patch: a list of {op, path, ...} operations")
        return v

    @field_validator("output_branch")
    @classmethod
    def _output_branch(cls, v: str) -> str:
        _checked(check_branch_name, v)
        if v == "spec":
            raise ValueError("'spec' is reserved for the pipeline's spec commits")
        return v

    @model_validator(mode="after")
    def _inputs(self) -> PipelineSpec:
        names: list[str] = []
        for leaf in self.input.leaves():
            names.append(leaf.name)
            if isinstance(leaf, PfsInput) and leaf.repo == self.pipeline.name:
                raise ValueError(f"pipeline {self.name} cannot read its own output repo")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"input names must be unique; {', '.join(dupes)} appear more than once (set 'name')")
        if "out" in names:
            raise ValueError("'out' is reserved for the output folder; give that input another name")
        return self

    # -- conveniences ---------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.pipeline.name

    @property
    def parallelism(self) -> int:
        return max(1, self.parallelism_spec.constant)

    @property
    def timeout_seconds(self) -> float | None:
        return parse_duration(self.datum_timeout) if self.datum_timeout else None

    def cron_repo(self, cron: CronInput) -> str:
        return cron.repo or f"{self.name}_{cron.name}"

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2)


def parse_spec(source: dict[str, Any] | str | PipelineSpec) -> PipelineSpec:
    """Validate one spec: a mapping, or YAML/JSON text of exactly one spec."""
    if isinstance(source, PipelineSpec):
        return source
    if isinstance(source, str):
        specs = _parse_documents(source)
        if len(specs) != 1:
            raise InvalidArgument(f"expected one pipeline spec, found {len(specs)}")
        source = specs[0]
    if not isinstance(source, dict):
        raise InvalidArgument("a pipeline spec must be a mapping (YAML or JSON object)")
    problems, cleaned = _screen(source)
    try:
        spec = PipelineSpec.model_validate(cleaned)
    except ValidationError as exc:
        problems += [_describe(e) for e in exc.errors()]
        spec = None
    if problems:
        name = source.get("pipeline", {}).get("name") if isinstance(source.get("pipeline"), dict) else None
        head = f"invalid pipeline spec{f' {name}' if name else ''}:"
        raise InvalidArgument("\n".join([head, *(f"  {p}" for p in dict.fromkeys(problems))]))
    assert spec is not None
    return spec


def load_specs(path: str | Path) -> list[PipelineSpec]:
    """Every spec in a YAML/JSON file (YAML documents or concatenated JSON objects)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InvalidArgument(f"cannot read pipeline spec {path}: {exc.strerror}") from exc
    return [parse_spec(doc) for doc in _parse_documents(text)]


def _parse_documents(text: str) -> list[Any]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError:
        docs = _json_stream(text)
    if not docs:
        raise InvalidArgument("the pipeline spec is empty")
    return docs


def _json_stream(text: str) -> list[Any]:
    decoder, pos, out = json.JSONDecoder(), 0, []
    try:
        while pos < len(text.rstrip()):
            while text[pos].isspace():
                pos += 1
            doc, pos = decoder.raw_decode(text, pos)
            out.append(doc)
    except ValueError as exc:
        raise InvalidArgument(f"the pipeline spec is neither YAML nor JSON: {exc}") from exc
    return out


def _screen(raw: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """(errors for unsupported fields, a copy without ignored/unsupported fields)."""
    problems: list[str] = []

    def clean(obj: Any, section: str, where: str) -> Any:
        if isinstance(obj, list):
            return [clean(v, section, f"{where}[{i}]") for i, v in enumerate(obj)]
        if not isinstance(obj, dict):
            return obj
        out = {}
        for key, value in obj.items():
            here = f"{where}.{key}" if where else str(key)
            if key in _UNSUPPORTED.get(section, ()):
                problems.append(f"{here}: not supported by datumflow (remove it)")
            elif key in _IGNORED.get(section, ()):
                continue
            elif (section in ("", "input") and key in ("input",)) or key in ("cross", "union", "join", "group"):
                out[key] = clean(value, "input", here)
            elif key in ("transform", "pfs", "parallelism_spec") and section in ("", "input"):
                out[key] = clean(value, key, here)
            else:
                out[key] = value
        return out

    return problems, clean(raw, "", "")


def _describe(error: Any) -> str:
    loc = ""
    for part in error["loc"]:
        loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
    kind = error["type"]
    if kind == "extra_forbidden":
        msg = "unknown field (not part of the pipeline spec)"
    elif kind == "missing":
        msg = "required"
    else:
        msg = str(error["msg"]).removeprefix("Value error, ")
    return f"{loc or 'spec'}: {msg}"


def _checked(check: Any, value: str) -> str:
    try:
        check(value)
    except InvalidArgument as exc:
        raise ValueError(str(exc)) from None
    return value


Input.model_rebuild()
