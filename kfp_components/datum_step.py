"""The datum step: a user function per datum, through the pipelines engine.

The step declares (or updates) a datumflow pipeline whose transform runs the
user's function (:mod:`.datum_fn`), finds or opens the job of the input
branch's head and drives it — through ``storage_service.pipelines.driver``,
as the Airflow datum task does: ``plan_job`` splits the input commit by the
glob and marks skipped every datum whose hash (input file hashes + transform,
which includes the function's source) the datum cache already knows;
``run_datum`` runs each remaining one here, in the KFP pod; ``complete_job``
finishes the output commit (which carries the KFP run) with provenance on
the input commit and the spec commit. Nothing about datums is decided here.

The spec marks the job as driven from outside, so a service running its own
pipelines loop never runs the user's function itself; if another step
claimed the job first, this one waits and reports the job's counters.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from typing import Any

from datumflow.storage_service.client.pipelines import RemotePipelines
from datumflow.storage_service.errors import DatumflowError, InvalidArgument
from datumflow.storage_service.names import is_commit_id, parse_ref
from datumflow.storage_service.pipelines import worker_steps
from datumflow.storage_service.pipelines.driver import ensure_pipeline, find_or_open_job, run_datums
from datumflow.storage_service.pipelines.engine import EXTERNAL_WORKER, Pipelines
from datumflow.storage_service.pipelines.jobs import DatumInfo, DatumState, JobState
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
            "env": {FUNCTION_ENV: function, EXTERNAL_WORKER: "kfp"},  # the step runs it, not the job loop
        },
    }


def run_datum_step(
    name: str, input_ref: str, function: str, *, glob: str = "/*", image: str = "", input_commit: str = "",
    metadata: dict[str, Any] | None = None,
) -> DatumStepResult:
    """Declare the step's pipeline, find or open the job of the input's head, run its new datums here.

    ``metadata`` (the KFP run: :func:`.runtime.kfp_metadata`) is recorded on the output commit.
    """
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
    engine: Pipelines | RemotePipelines = Pipelines(store) if isinstance(store, Store) else store.pipelines
    info = ensure_pipeline(engine, pipeline_spec(name, parsed.repo, parsed.ref, glob, function, image))
    job = find_or_open_job(engine, info, {INPUT_NAME: head}, metadata=metadata,
                           description="datum step of a Kubeflow pipeline")
    with tempfile.TemporaryDirectory(prefix="datumflow-kfp-") as scratch:

        def run_one(job_id: str, datum: DatumInfo) -> str | None:
            done = worker_steps.run_datum(engine, job_id, datum.id, os.path.join(scratch, datum.id[:16], "pfs"))
            return None if done.state is DatumState.SUCCESS else f"datum {datum.id[:12]}: {done.error}"

        driven = run_datums(engine, job, run_one, metadata=metadata)
    job = driven.job
    if job.state is not JobState.SUCCESS:
        raise DatumflowError(f"job {job.id} of {name} {job.state.value}: {job.reason}")
    counters = driven.counters
    return DatumStepResult(job.output_commit, job.inputs.get(INPUT_NAME) or "", job.id, counters["total"],
                           counters["processed"], counters["skipped"])
