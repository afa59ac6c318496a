"""Pipeline specs in Pachyderm's pipeline-spec format, validated.

``parse_spec`` takes a mapping (or YAML/JSON text) and returns a frozen
:class:`PipelineSpec`, or raises one :class:`InvalidArgument` that lists
every bad field on its own line (``input.cross[1].pfs.glob: required``).
Keys are read in both of Pachyderm's spellings, as its protojson reader does:
``parallelism_spec`` and ``parallelismSpec`` are the same field (giving both
is an error). Fields Pachyderm knows but datumflow does not run are rejected
by name with the reason, so a spec never silently loses meaning; a few fields
with no effect outside a cluster (``autoscaling``, ``enable_stats``…) are
accepted and ignored. Globs are compiled and every ``join_on``/``group_by``
reference checked here, so a bad one is refused before anything is created.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import yaml
from datumflow.storage_service.core import safe_yaml
from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.names import check_branch_name, check_repo_name
from datumflow.storage_service.pipelines.durations import parse_duration
from datumflow.storage_service.pipelines.globs import check_template, compile_glob
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

__all__ = [
    "CronInput",
    "Egress",
    "Input",
    "PfsInput",
    "PipelineSpec",
    "Secret",
    "Spout",
    "Transform",
    "load_specs",
    "parse_duration",
    "parse_spec",
]

# Pachyderm fields datumflow does not implement: each gets an error naming it, with the reason.
_UNSUPPORTED: dict[str, dict[str, str]] = {
    "": {
        "tf_job": "TFJob needs a Kubeflow training operator",
        "s3_out": "the per-job S3 sidecar is not provided (write to /pfs/out)",
        "sidecar_resource_limits": "there is no sidecar", "sidecar_resource_requests": "there is no sidecar",
        "service": "service pipelines (a long-running server with a port) are not provided",
        "datum_set_spec": "datums are not batched into sets", "job_timeout": "use datum_timeout",
        "scheduling_spec": "node selection is done with pod_patch", "pod_spec": "use pod_patch",
        "spec_commit": "set by the system", "tolerations": "use pod_patch", "determined": "no Determined cluster",
        "maximum_expected_uptime": "not provided", "chunk_spec": "datums are not batched into chunks",
        "reprocess": "use reprocess_spec", "dry_run": "use pipeline validate",
    },
    "transform": {
        "err_cmd": "error handlers are not run", "err_stdin": "error handlers are not run",
        "memory_volume": "use the datum's private /tmp", "datum_batching": "datums run one per process",
        "dockerfile": "build images outside datumflow", "build": "build images outside datumflow",
    },
    "pfs": {"commit": "pin inputs with a branch", "trigger": "branch triggers are not provided",
            "s3": "the S3 sidecar is not provided (the input is mounted at /pfs/<name>)"},
    "input": {},
    "parallelism_spec": {"coefficient": "there is no cluster size to scale by; use constant"},
    "egress": {"sql_database": "SQL egress is not provided; egress to a URL (any fsspec protocol)",
               "object_storage": "use URL (any fsspec protocol)"},
}
# Pachyderm fields that only tune a cluster (or are performance hints): accepted, without effect here.
_IGNORED: dict[str, set[str]] = {
    "": {"autoscaling", "enable_stats", "cache_size", "max_queue_size", "standby", "update", "metadata"},
    "transform": {"debug", "user", "image_pull_secrets"},
    "pfs": {"lazy", "repo_type"},  # lazy: a hint to stream inputs; the datum sees the same files
}
# Maps whose keys are the user's own (env names, labels): never respelled.
_VERBATIM = {"env", "metadata", "annotations", "labels", "pod_patch", "pod_spec"}
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")

_MEMORY = re.compile(r"^\d+(\.\d+)?([EPTGMK]i?|[eptgmk])?$")



class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Project(_Model):
    name: str = "default"

    @field_validator("name")
    @classmethod
    def _default_only(cls, v: str) -> str:
        _default_project(v)
        return v


def _default_project(v: str | Project | None) -> Any:
    name = v.name if isinstance(v, Project) else v
    if name not in (None, "", "default"):
        raise ValueError(f"project {name!r}: datumflow has one project, 'default' (remove project or use it)")
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
    empty_files: bool = False  # the datum's input files are present but empty (names only)
    project: str | Project | None = None

    @field_validator("project")
    @classmethod
    def _project(cls, v: str | Project | None) -> Any:
        return _default_project(v)

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
        try:
            compile_glob(v)
        except InvalidArgument as exc:
            raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _default_name(self) -> PfsInput:
        if not self.name:
            object.__setattr__(self, "name", self.repo)
        glob = compile_glob(self.glob)
        for field, template in (("join_on", self.join_on), ("group_by", self.group_by)):
            if template is not None:
                try:
                    check_template(template, glob, field)
                except InvalidArgument as exc:
                    raise ValueError(str(exc)) from None
        return self


class CronInput(_Model):
    name: str
    spec: str
    repo: str = ""
    overwrite: bool = False
    start: str | None = None
    project: str | Project | None = None

    @field_validator("project")
    @classmethod
    def _project(cls, v: str | Project | None) -> Any:
        return _default_project(v)

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
    mount_path: str | None = None  # a folder in the datum's view holding the secret's keys as files
    env_var: str | None = None

    @model_validator(mode="after")
    def _target(self) -> Secret:
        if self.env_var and not self.key:
            raise ValueError(f"secret {self.name}: env_var needs the key it takes")
        if self.mount_path is not None and not self.mount_path.startswith("/"):
            raise ValueError(f"secret {self.name}: mount_path must be absolute, such as /secrets")
        return self


class Spout(_Model):
    """A long-running transform that writes commits into its output repo itself (see pipelines/spout_runner.py)."""

    overwrite: bool = False  # Pachyderm 1.x's: accepted; the spout's own commits say what they replace


class Egress(_Model):
    """Where a job's finished output is copied: any fsspec URL (``s3://b/p``, ``file:///x``)."""

    URL: str

    @field_validator("URL")
    @classmethod
    def _url(cls, v: str) -> str:
        if "://" not in v:
            raise ValueError(f"egress URL {v!r} needs a protocol, such as s3://bucket/prefix or file:///dir")
        return v


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
    input: Input | None = None
    spout: Spout | None = None
    egress: Egress | None = None
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
        if self.spout is not None:
            if self.input is not None:
                raise ValueError("a spout pipeline has no input (remove input or spout)")
            return self
        if self.input is None:
            raise ValueError("input: required (or spout, for a pipeline that produces data by itself)")
        for leaf in self.input.leaves():
            if isinstance(leaf, PfsInput) and leaf.repo == self.pipeline.name:
                raise ValueError(f"pipeline {self.name} cannot read its own output repo")
        names = _datum_names(self.input)
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

    def leaves(self) -> list[PfsInput | CronInput]:
        return list(self.input.leaves()) if self.input is not None else []

    def input_key(self, leaf: PfsInput | CronInput) -> str:
        """The key of a leaf in a job's inputs: its name, unless a union repeats the name."""
        names = [x.name for x in self.leaves()]
        if names.count(leaf.name) == 1:
            return leaf.name
        repo, branch = (leaf.repo, leaf.branch) if isinstance(leaf, PfsInput) else (self.cron_repo(leaf), "master")
        return f"{leaf.name}:{repo}@{branch}"

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
    problems, snake = _snake_case(source)
    more, cleaned = _screen(snake)
    problems += more
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
    """Every spec in a YAML/JSON file, or on stdin for ``-``.

    A file may hold several specs: YAML documents separated by ``---`` (JSON
    objects between ``---`` lines too, as Pachyderm's examples write them) or
    JSON objects one after another.
    """
    try:
        text = sys.stdin.read() if str(path) == "-" else Path(path).read_text()
    except OSError as exc:
        raise InvalidArgument(f"cannot read pipeline spec {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"pipeline spec {path} is not UTF-8 text: {exc}") from exc
    return [parse_spec(doc) for doc in _parse_documents(text)]


def _parse_documents(text: str) -> list[Any]:
    try:
        docs = [d for d in safe_yaml.load_all(text) if d is not None]
    except yaml.YAMLError:
        docs = [d for part in re.split(r"(?m)^---[ \t]*$", text) if part.strip() for d in _json_stream(part)]
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


def _snake_case(raw: Any, where: str = "") -> tuple[list[str], Any]:
    """Pachyderm's camelCase keys (``parallelismSpec``) spelled as snake_case (``parallelism_spec``)."""
    problems: list[str] = []
    if isinstance(raw, list):
        out_list = []
        for i, v in enumerate(raw):
            more, value = _snake_case(v, f"{where}[{i}]")
            problems += more
            out_list.append(value)
        return problems, out_list
    if not isinstance(raw, dict):
        return problems, raw
    out: dict[str, Any] = {}
    for key, value in raw.items():
        snake = _CAMEL.sub(r"_\1", key).lower() if isinstance(key, str) and key != "URL" else key
        here = f"{where}.{snake}" if where else str(snake)
        if snake in out:
            problems.append(f"{here}: given twice (as {snake} and in camelCase); keep one")
            continue
        if snake in _VERBATIM:
            out[snake] = value
        else:
            more, out[snake] = _snake_case(value, here)
            problems += more
    return problems, out


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
            reason = _UNSUPPORTED.get(section, {}).get(key)
            if reason is not None:
                problems.append(f"{here}: not supported by datumflow: {reason} (remove it)")
            elif key in _IGNORED.get(section, ()):
                continue
            elif (section in ("", "input") and key in ("input",)) or key in ("cross", "union", "join", "group"):
                out[key] = clean(value, "input", here)
            elif key in ("transform", "pfs", "parallelism_spec", "egress") and section in ("", "input"):
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


def _datum_names(node: Input) -> set[str]:
    """The input names a datum of ``node`` can hold; one datum never holds one name twice.

    As in Pachyderm, the inputs of a union may share a name (each datum comes from one
    of them: ``/pfs/images`` whichever repo it is), while the inputs of a cross, join
    or group are side by side in one datum and need distinct names.
    """
    if node.pfs is not None or node.cron is not None:
        leaf = node.pfs if node.pfs is not None else node.cron
        assert leaf is not None
        return {leaf.name}
    parts = [_datum_names(child) for child in node.children()]
    if node.kind == "union":
        return set().union(*parts)
    seen: set[str] = set()
    for part in parts:
        clash = seen & part
        if clash:
            raise ValueError(
                f"input names must be unique within a {node.kind}; {', '.join(sorted(clash))} "
                "appears more than once (set 'name')"
            )
        seen |= part
    return seen


Input.model_rebuild()
