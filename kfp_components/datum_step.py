"""The datum step: a user function per datum, through the pipelines engine.

The step declares (or updates) a datumflow pipeline whose transform runs the
user's function (:mod:`.datum_fn`), opens a job on the input branch's head
and drives it with the engine's worker steps: ``plan_job`` splits the input
commit by the glob and marks skipped every datum whose hash (input file
hashes + transform, which includes the function's source) the datum cache
already knows; ``run_datum`` runs each remaining one here, in the KFP pod;
``complete_job`` finishes the output commit with provenance on the input
commit and the spec commit. Nothing about datums is decided here.

Over HTTP the engine is ``Client.pipelines``; with a ``file://`` address it
is :class:`Pipelines` on the store itself. A service that runs its own
pipelines loop may claim the job first: the step then waits for it.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any

from datumflow.storage_service.errors import DatumflowError, InvalidArgument
from datumflow.storage_service.names import is_commit_id, parse_ref
from datumflow.storage_service.pipelines import worker_steps
from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.pipelines.jobs import JobState
from datumflow.storage_service.pipelines.spec import parse_spec
from datumflow.storage_service.store.store import Store

from .runtime import connect_from_env

__all__ = ["INPUT_NAME", "DatumStepResult", "pipeline_spec", "run_datum_step"]

INPUT_NAME = "input"
FUNCTION_ENV = "DATUMFLOW_KFP_FUNCTION"


@dataclass(frozen=True)
class DatumStepResult:
    commit: str  # the output commit
    input_commit: str
    job: str
    total: int
    processed: int  # ran in this job
    skipped: int  # reused from the datum cache


def pipeline_spec(name: str, repo: str, branch: str, glob: str, function: str, image: str) -> dict[str, Any]:
    """The datumflow pipeline spec (Pachyderm format) the step runs under."""
    return {
        "pipeline": {"name": name},
        "description": "datum step of a Kubeflow pipeline",
        "input": {"pfs": {"name": INPUT_NAME, "repo": repo, "branch": branch, "glob": glob}},
        "transform": {
            "image": image,
            "cmd": ["python3", "-m", "datumflow.kfp_components.datum_fn"],
            "env": {FUNCTION_ENV: function},
        },
    }


def run_datum_step(
    name: str, input_ref: str, function: str, *, glob: str = "/*", image: str = "", input_commit: str = ""
) -> DatumStepResult:
    if not function.strip():
        raise InvalidArgument("function is empty: pass Python source defining process(input_path, output_dir) "
                              "or a 'module:function' path")
    parsed = parse_ref(input_ref)
    if parsed.ref is None or is_commit_id(parsed.ref) or parsed.path:
        raise InvalidArgument(f"input {input_ref!r}: the datum step follows a branch, use REPO@BRANCH")
    store = connect_from_env()
    head = store.resolve(parsed.repo, parsed.ref)
    if input_commit and input_commit != head:
        raise InvalidArgument(f"{parsed.repo}@{parsed.ref} moved: its head is {head}, not {input_commit}")
    engine: Any = Pipelines(store) if isinstance(store, Store) else store.pipelines
    output = _open_job(engine, pipeline_spec(name, parsed.repo, parsed.ref, glob, function, image))
    job = _drive(engine, engine.job_for_commit(output).id)
    if job.state is not JobState.SUCCESS:
        raise DatumflowError(f"job {job.id} of {name} {job.state.value}: {job.reason}")
    return DatumStepResult(output, job.inputs.get(INPUT_NAME) or "", job.id, job.total, job.processed, job.skipped)


def _drive(engine: Any, job_id: str) -> Any:
    """Run the job's uncached datums in this process; if another worker claimed the job, wait for it."""
    try:
        pending = engine.plan_job(job_id)
    except InvalidArgument:  # no longer "created": the service's own loop took it
        return engine.wait_job(job_id, drive=False)
    with tempfile.TemporaryDirectory(prefix="datumflow-kfp-") as scratch:
        for datum in pending:
            worker_steps.run_datum(engine, job_id, datum.id, os.path.join(scratch, datum.id[:16], "pfs"))
    return engine.complete_job(job_id)


def _open_job(engine: Any, spec: dict[str, Any]) -> str:
    """Declare the pipeline (a new spec opens a job); with an unchanged spec, open a job explicitly."""
    name = spec["pipeline"]["name"]
    try:
        current = engine.inspect_pipeline(name)
    except DatumflowError:
        current = None
    if current is None:
        info = engine.create_pipeline(spec)
    elif parse_spec(current.spec) == parse_spec(spec):
        return engine.run_pipeline(name)
    else:
        info = engine.update_pipeline(spec)
    head: str | None = engine.store.inspect_branch(name, info.output_branch).head
    assert head is not None
    return head
