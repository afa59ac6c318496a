"""Pipelines, jobs, datums, lineage and the worker steps over HTTP: ``build_router(pipelines, principal)``.

Routes are thin, as in :mod:`.app`: check the caller's role, make one
:class:`~.pipelines.Pipelines` call, serialize the value object. Errors leave
through the app's one handler (``PipelineNotFound``/``JobNotFound`` → 404,
an invalid spec → 400 naming every bad field on its own line).

Roles: a pipeline's output repo carries its name, so a pipeline's checks are
that repo's — creating or updating one is checked by
:mod:`.pipeline_access` (writer on the output repo, reader on every input of
every kind, a cron repo of its own or owned by the caller); running it needs
``writer``; deleting it ``owner``; reading it, its jobs, datums and lineage
``reader`` (inputs the caller cannot read are shown hidden). The worker
steps write a job's outputs: ``writer``.

Worker steps for an executor outside the service (a pod, an Airflow task):
``POST /jobs/{job}/plan``, then per datum read its input files with the
ordinary file routes and either ``POST …/datums/{datum}/output`` a tar of
the datum's ``out`` folder (members ``out/…``; an optional top-level
``log`` member is the datum's log) or ``POST …/datums/{datum}/failure``;
then ``POST /jobs/{job}/complete`` (or ``/fail`` to give up on the job).
"""


from __future__ import annotations

import posixpath
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.pipelines.jobs import DatumInfo, DatumState, JobInfo
from datumflow.storage_service.pipelines.spec import parse_spec
from datumflow.storage_service.service.auth import Principal
from datumflow.storage_service.service.long_poll import LONG_POLL_MAX, long_poll
from datumflow.storage_service.service.routes.pipeline_access import (
    authorize_spec,
    grant_made,
    redact_datum,
    redact_lineage,
)
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

__all__ = ["LOG_MEMBER", "LONG_POLL_MAX", "OUT_PREFIX", "build_router"]

OUT_PREFIX = "out/"
LOG_MEMBER = "log"
_PIECE = 1024 * 1024
T = TypeVar("T")


class PipelineIn(BaseModel):
    spec: dict[str, Any] | str = Field(description="a pipeline spec: a JSON object, or YAML/JSON text")
    update: bool = False
    reprocess: bool = False


class UpsertIn(PipelineIn):
    update: bool = True


class UpdateIn(BaseModel):
    spec: dict[str, Any] | str
    reprocess: bool = False


class RunIn(BaseModel):
    reprocess: bool = False


class CompleteIn(BaseModel):
    metadata: dict[str, Any] = Field(default_factory=dict)


class FailIn(BaseModel):
    reason: str


class DatumFailureIn(BaseModel):
    error: str
    log: str | None = None
    tries: int = Field(default=1, ge=1)


def build_router(pipelines: Pipelines, principal: Callable[..., Principal]) -> APIRouter:
    """The routes over one :class:`Pipelines` engine (the app mounts them under ``/api/v1``)."""
    svc = pipelines
    api = APIRouter()

    def on_pipeline(level: str) -> Any:
        def check(name: str, who: Principal = Depends(principal)) -> Principal:
            who.require(name, level)
            return who

        return Depends(check)

    def job_of(level: str) -> Any:
        def check(job: str, who: Principal = Depends(principal)) -> JobInfo:
            found = svc.inspect_job(job)
            who.require(found.pipeline, level)
            return found

        return Depends(check)

    # -- pipelines ------------------------------------------------------------------

    @api.post("/pipelines", tags=["pipelines"], status_code=201)
    def create_pipeline(body: PipelineIn, who: Principal = Depends(principal)) -> dict[str, Any]:
        """Create a pipeline (409 if it exists, unless ``update``); its output repo carries its name."""
        return _create(svc, body, who)

    @api.put("/pipelines", tags=["pipelines"])
    def put_pipeline(body: UpsertIn, who: Principal = Depends(principal)) -> dict[str, Any]:
        """Create a pipeline, or update it if it exists (``update`` defaults to true here)."""
        return _create(svc, body, who)

    @api.get("/pipelines", tags=["pipelines"])
    def list_pipelines(who: Principal = Depends(principal)) -> list[dict[str, Any]]:
        return [p.to_dict() for p in svc.list_pipelines() if who.role_on(p.name)]

    @api.get("/pipelines/{name}", tags=["pipelines"], dependencies=[on_pipeline("reader")])
    def inspect_pipeline(name: str) -> dict[str, Any]:
        return svc.inspect_pipeline(name).to_dict()

    @api.put("/pipelines/{name}", tags=["pipelines"])
    def update_pipeline(name: str, body: UpdateIn, who: Principal = Depends(principal)) -> dict[str, Any]:
        """A new spec for an existing pipeline (404 if there is none)."""
        spec = parse_spec(body.spec)
        if spec.name != name:
            raise InvalidArgument(f"the spec names pipeline {spec.name}, not {name}")
        who.require_person("update pipelines")
        authorize_spec(svc, spec, who, exists=True)
        info = svc.update_pipeline(spec, reprocess=body.reprocess)
        grant_made(svc, spec, who)
        return info.to_dict()

    @api.delete("/pipelines/{name}", tags=["pipelines"], status_code=204, dependencies=[on_pipeline("owner")])
    def delete_pipeline(name: str, force: bool = False) -> Response:
        svc.delete_pipeline(name, force=force)
        return Response(status_code=204)

    @api.post("/pipelines/{name}/run", tags=["pipelines"], dependencies=[on_pipeline("writer")])
    def run_pipeline(name: str, body: RunIn | None = None) -> dict[str, str]:
        """Open a job on the current inputs; answers its output commit (the service runs the job)."""
        return {"output_commit": svc.run_pipeline(name, reprocess=(body or RunIn()).reprocess)}

    @api.post("/pipelines/{name}/run-cron", tags=["pipelines"], dependencies=[on_pipeline("writer")])
    def run_cron(name: str) -> dict[str, str]:
        """Tick the pipeline's cron inputs now (``pachctl run cron``); answers the output commit of its job."""
        return {"output_commit": svc.run_cron(name)}

    @api.post("/pipelines/{name}/stop", tags=["pipelines"], dependencies=[on_pipeline("writer")])
    def stop_pipeline(name: str) -> dict[str, Any]:
        """No jobs for new commits, no cron ticks, the spout's process ends, until ``start``."""
        return svc.stop_pipeline(name).to_dict()

    @api.post("/pipelines/{name}/start", tags=["pipelines"], dependencies=[on_pipeline("writer")])
    def start_pipeline(name: str) -> dict[str, Any]:
        """Resume a stopped pipeline: commits that arrived meanwhile become jobs."""
        return svc.start_pipeline(name).to_dict()

    @api.get("/pipelines/{name}/jobs", tags=["jobs"], dependencies=[on_pipeline("reader")])
    def pipeline_jobs(name: str) -> list[dict[str, Any]]:
        return [j.to_dict() for j in svc.list_jobs(name)]

    # -- jobs -----------------------------------------------------------------------

    @api.get("/jobs", tags=["jobs"])
    def list_jobs(pipeline: str | None = None, who: Principal = Depends(principal)) -> list[dict[str, Any]]:
        """Jobs the caller may read, newest first (of one pipeline with ``pipeline``)."""
        if pipeline is not None:
            who.require(pipeline, "reader")
        return [j.to_dict() for j in svc.list_jobs(pipeline) if who.role_on(j.pipeline)]

    @api.get("/jobs/by-commit/{commit_id}", tags=["jobs"])
    def job_for_commit(commit_id: str, who: Principal = Depends(principal)) -> dict[str, Any]:
        """The job that writes an output commit."""
        found = svc.job_for_commit(commit_id)
        who.require(found.pipeline, "reader")
        return found.to_dict()

    @api.get("/jobs/{job}", tags=["jobs"])
    def inspect_job(found: JobInfo = job_of("reader")) -> dict[str, Any]:
        return found.to_dict()

    @api.get("/jobs/{job}/wait", tags=["jobs"])
    async def wait_job(
        job: str, timeout: float | None = Query(None, ge=0), who: Principal = Depends(principal)
    ) -> dict[str, Any]:
        """Long poll: answers when the job has ended, or 504 after ``timeout`` (at most 20 s)."""
        found = await run_in_threadpool(svc.inspect_job, job)
        who.require(found.pipeline, "reader")

        def ended() -> JobInfo | None:
            now = svc.inspect_job(found.id)
            return now if now.state.done else None

        return (await long_poll(ended, timeout, f"job {found.id}")).to_dict()

    @api.post("/jobs/{job}/plan", tags=["worker"])
    def plan_job(found: JobInfo = job_of("writer")) -> list[dict[str, Any]]:
        """Claim a created job and record its datums; answers the datums left to run."""
        return [d.to_dict() for d in svc.plan_job(found.id)]

    @api.post("/jobs/{job}/complete", tags=["worker"])
    def complete_job(body: CompleteIn | None = None, found: JobInfo = job_of("writer")) -> dict[str, Any]:
        """Finish (or fail) a planned job's output commit from its datums' outputs; ``metadata`` joins it."""
        return svc.complete_job(found.id, metadata=(body.metadata if body else None) or None).to_dict()

    @api.post("/jobs/{job}/fail", tags=["worker"])
    def fail_job(body: FailIn, found: JobInfo = job_of("writer")) -> dict[str, Any]:
        """Give up on a job that has not ended; its output commit fails too."""
        return svc.fail_job(found.id, body.reason).to_dict()

    # -- datums ---------------------------------------------------------------------

    @api.get("/jobs/{job}/datums", tags=["datums"])
    def list_datums(found: JobInfo = job_of("reader"), who: Principal = Depends(principal)) -> list[dict[str, Any]]:
        return [redact_datum(d.to_dict(), who) for d in svc.list_datums(found.id)]

    @api.get("/jobs/{job}/datums/{datum}", tags=["datums"])
    def inspect_datum(
        datum: str, found: JobInfo = job_of("reader"), who: Principal = Depends(principal)
    ) -> dict[str, Any]:
        return redact_datum(svc.inspect_datum(found.id, datum).to_dict(), who)

    @api.post("/jobs/{job}/datums/{datum}/output", tags=["worker"], openapi_extra=_TAR_BODY)
    async def upload_datum(
        datum: str, request: Request, tries: int | None = Query(None, ge=1), found: JobInfo = job_of("writer")
    ) -> dict[str, Any]:
        """Store a datum's ``out`` folder (a tar of ``out/…`` and an optional ``log``); the datum succeeded."""
        with tempfile.TemporaryDirectory(prefix="datumflow-upload-") as tmp:
            body = Path(tmp) / "body.tar"
            async with await anyio.open_file(body, "wb") as sink:
                async for piece in request.stream():
                    await sink.write(piece)
            info = await run_in_threadpool(_store_output, svc, found, datum, body, Path(tmp) / "pfs", tries)
        return info.to_dict()

    @api.post("/jobs/{job}/datums/{datum}/failure", tags=["worker"])
    def fail_datum(datum: str, body: DatumFailureIn, found: JobInfo = job_of("writer")) -> dict[str, Any]:
        """Record that a datum failed after ``tries`` tries (``complete`` then fails the job)."""
        info = svc.inspect_datum(found.id, datum)
        svc.jobs.record_datum(
            found.id, info.id, state=DatumState.FAILED, outputs=None, error=body.error,
            log=body.log if body.log is not None else info.log, tries=body.tries, finished=time.time(),
        )
        return svc.inspect_datum(found.id, info.id).to_dict()

    # -- lineage ----------------------------------------------------------------------

    @api.get("/repos/{repo}/commits/{ref}/lineage", tags=["lineage"])
    def lineage(
        repo: str, ref: str, path: str, depth: int | None = Query(None, ge=0), who: Principal = Depends(principal)
    ) -> dict[str, Any]:
        """Which datum, and which input files, wrote ``repo@ref:path`` — upstream through every pipeline."""
        who.require(repo, "reader")
        return redact_lineage(svc.lineage(repo, ref, path, depth=depth).to_dict(), who)

    return api


# -- helpers ---------------------------------------------------------------------------


def _create(svc: Pipelines, body: PipelineIn, who: Principal) -> dict[str, Any]:
    """Create (or, with ``update``, update) once the caller may run what the spec reaches."""
    who.require_person("create pipelines")
    spec = parse_spec(body.spec)
    authorize_spec(svc, spec, who, exists=svc.exists(spec.name))
    info = svc.create_pipeline(spec, update=body.update, reprocess=body.reprocess)
    grant_made(svc, spec, who)
    return info.to_dict()


def _store_output(
    svc: Pipelines, job: JobInfo, datum_id: str, body: Path, pfs: Path, tries: int | None
) -> DatumInfo:
    log = _unpack_output(body, pfs)
    info = svc.upload_datum(job.id, datum_id, str(pfs), log=log)
    if tries is not None and tries != info.tries:
        svc.jobs.record_datum(job.id, info.id, tries=tries)
        info = svc.inspect_datum(job.id, info.id)
    return info


def _unpack_output(body: Path, pfs: Path) -> str | None:
    """Extract the ``out/…`` members of a tar under ``pfs``; returns the ``log`` member's text, if any."""
    (pfs / "out").mkdir(parents=True)
    log: str | None = None
    try:
        with tarfile.open(body, mode="r:*") as tar:
            keep = []
            for member in tar:
                name = posixpath.normpath(member.name).lstrip("/")
                if name == LOG_MEMBER and member.isfile():
                    handle = tar.extractfile(member)
                    log = handle.read().decode("utf-8", "replace") if handle else None
                elif name == "out" and member.isdir():
                    continue
                elif not name.startswith(OUT_PREFIX) or ".." in name.split("/"):
                    raise InvalidArgument(f"tar member {member.name!r} is outside out/ (only out/… and log)")
                elif not (member.isfile() or member.isdir()):
                    raise InvalidArgument(f"tar member {member.name!r} is not a regular file or folder")
                else:
                    keep.append(member)
            tar.extractall(pfs, members=keep, filter="data")
    except tarfile.TarError as exc:
        raise InvalidArgument(f"the body is not a valid tar stream: {exc}") from exc
    return log




_TAR_BODY: dict[str, Any] = {
    "requestBody": {"content": {"application/x-tar": {"schema": {"type": "string", "format": "binary"}}}}
}
