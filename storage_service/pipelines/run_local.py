"""``pipeline run-local``: a spec's transform on real repo data, writing nothing to the store.

The inputs are the current heads of the spec's input branches; the datums
(all, or the first ``sample``) run one after another, each in a fresh pfs
folder, and each datum's ``out`` folder is copied to ``<out_dir>/<datum id>``.
Nothing is committed and no job is recorded: a fast loop for writing a
transform.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datumflow.storage_service.errors import CommitNotFound, InvalidArgument
from datumflow.storage_service.pipelines.datums import compute_datums, input_branches
from datumflow.storage_service.pipelines.sandbox import Sandbox, SandboxUnavailable, sandbox_from_env
from datumflow.storage_service.pipelines.spec import PipelineSpec, parse_spec
from datumflow.storage_service.pipelines.worker import (
    DatumEnv,
    RunResult,
    _output_files,
    clear,
    datum_env,
    fetch,
    run_transform,
    secret_env,
    snapshot,
    written_outside,
)

if TYPE_CHECKING:
    from datumflow.storage_service.store.store import Store

__all__ = ["LocalDatumRun", "LocalRun", "run_local"]


@dataclass(frozen=True)
class LocalDatumRun:
    datum: str
    inputs: list[str]  # "name:/path"
    ok: bool
    error: str | None
    log: str
    outputs: list[str]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class LocalRun:
    pipeline: str
    total: int  # datums of the inputs
    out_dir: str
    datums: list[LocalDatumRun] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(d.ok for d in self.datums)

    def to_dict(self) -> dict[str, Any]:
        return {"pipeline": self.pipeline, "total": self.total, "out_dir": self.out_dir, "ok": self.ok,
                "datums": [d.to_dict() for d in self.datums]}


def run_local(
    store: Store, spec: PipelineSpec | dict[str, Any] | str, *, sample: int | None = None,
    out_dir: str | None = None, sandbox: Sandbox | None = None,
) -> LocalRun:
    spec = parse_spec(spec)
    if sample is not None and sample < 1:
        raise InvalidArgument("--sample must be at least 1")
    commits = {name: _head(store, repo, branch) for name, (repo, branch) in input_branches(spec).items()}
    datums = compute_datums(store, spec, commits)
    chosen = datums[:sample] if sample else datums
    target = Path(out_dir or tempfile.mkdtemp(prefix=f"datumflow-local-{spec.name}-")).resolve()
    target.mkdir(parents=True, exist_ok=True)
    job_id = "local-" + uuid.uuid4().hex[:12]
    output_commit = "local-" + uuid.uuid4().hex  # no commit is made; the variable is set as in a job
    runs = []
    box = sandbox or sandbox_from_env(hidden=[store.root])
    with tempfile.TemporaryDirectory(prefix="datumflow-pfs-") as work:
        for datum in chosen:
            env = datum_env(spec, job_id, datum, output_commit)
            runs.append(_one(store, spec, env, Path(work) / "pfs", target / datum.id[:12], box))
    return LocalRun(spec.name, len(datums), str(target), runs)


def _one(store: Store, spec: PipelineSpec, env: DatumEnv, pfs: Path, dest: Path, box: Sandbox) -> LocalDatumRun:
    clear(pfs)
    fetch(store, env.datum, pfs, empty=env.empty_inputs)
    before = snapshot(pfs)
    try:
        result = run_transform(spec.transform, env, pfs, timeout=spec.timeout_seconds,
                               secrets=secret_env(spec.transform), sandbox=box)
    except SandboxUnavailable as exc:
        result = RunResult(False, None, "", str(exc))
    error = result.error
    outputs: list[str] = []
    if error is None and (outside := written_outside(before, snapshot(pfs))):
        error = "wrote outside /pfs/out: " + ", ".join(outside[:5])
    if error is None:
        try:
            files = _output_files(pfs.resolve(), pfs.resolve() / "out")
        except InvalidArgument as exc:
            error = str(exc)
        else:
            for rel, local in files:
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(local, dest / rel)
                outputs.append(rel)
    where = [f"{i.name}:/{i.path}" for i in env.datum.inputs]
    return LocalDatumRun(env.datum.id, where, error is None, error, result.log, outputs)


def _head(store: Store, repo: str, branch: str) -> str | None:
    try:
        return store.resolve(repo, branch)
    except CommitNotFound:
        return None
