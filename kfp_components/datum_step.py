"""The datum step: a user function per datum, through the pipelines engine.

The step declares (or updates) a datumflow pipeline whose transform runs the
user's function (:mod:`.datum_fn`), opens a job on the input branch's head
and runs it in this process: the engine splits the input commit by the glob,
skips every datum whose hash (input file hashes + transform, which includes
the function's source) its datum cache already knows, runs the rest as
subprocesses, and finishes the output commit with provenance on the input
commit and the spec commit. Nothing about datums is decided here.

The engine works on the store itself, not over HTTP (the service does not
expose pipelines yet), so ``DATUMFLOW_ADDRESS`` must be a ``file://`` address
of the store (a volume shared with the service) for this step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from datumflow.storage_service.errors import DatumflowError, InvalidArgument
from datumflow.storage_service.jobs import JobState
from datumflow.storage_service.names import is_commit_id, parse_ref
from datumflow.storage_service.pipelines import Pipelines
from datumflow.storage_service.spec import parse_spec
from datumflow.storage_service.store import Store

from .runtime import ADDRESS_ENV, connect_from_env

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
    if not isinstance(store, Store):
        raise InvalidArgument(
            f"the datum step needs {ADDRESS_ENV}=file:///path/to/store (the pipelines engine is not served "
            "over HTTP yet); read/write/wait work over http(s)"
        )
    head = store.resolve(parsed.repo, parsed.ref)
    if input_commit and input_commit != head:
        raise InvalidArgument(f"{parsed.repo}@{parsed.ref} moved: its head is {head}, not {input_commit}")
    engine = Pipelines(store)
    output = _open_job(engine, pipeline_spec(name, parsed.repo, parsed.ref, glob, function, image))
    engine.process(pipeline=name)
    job = engine.job_for_commit(output)
    if job.state is not JobState.SUCCESS:
        raise DatumflowError(f"job {job.id} of {name} {job.state.value}: {job.reason}")
    return DatumStepResult(output, job.inputs.get(INPUT_NAME) or "", job.id, job.total, job.processed, job.skipped)


def _open_job(engine: Pipelines, spec: dict[str, Any]) -> str:
    """Declare the pipeline (a new spec opens a job); with an unchanged spec, open a job explicitly."""
    name = spec["pipeline"]["name"]
    try:
        current = engine.inspect_pipeline(name)
    except DatumflowError:
        current = None
    if current is None:
        info = engine.create_pipeline(spec)
    elif current.parsed == parse_spec(spec):
        return engine.run_pipeline(name)
    else:
        info = engine.update_pipeline(spec)
    head = engine.store.inspect_branch(name, info.output_branch).head
    assert head is not None
    return str(head)
