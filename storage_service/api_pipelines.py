"""Pipelines over HTTP: what an executor outside the service needs (Airflow, pods).

``build_router(pipelines, principal)`` serves, under ``/api/v1``:

- ``PUT /pipelines`` (create or update from a spec), ``GET /pipelines/{name}``,
  ``POST /pipelines/{name}/run``, ``GET /pipelines/{name}/jobs``;
- ``GET /jobs/{job}``, ``POST /jobs/{job}/plan`` (claim, record datums, return
  those to run), ``POST /jobs/{job}/complete``, ``POST /jobs/{job}/fail``;
- ``GET /jobs/{job}/datums[/{datum}]`` and ``POST /jobs/{job}/datums/{datum}/output``
  (a tar of the datum's ``out`` folder: what ``datumflow worker upload`` sends).

Roles: reading needs ``reader`` on the pipeline's output repo, driving a job
``writer`` on it, creating a pipeline is for admins (it creates a repo).
Fetching a datum's inputs needs no route: the worker reads the input files
with the ordinary file API, under its own token's ``reader`` roles.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from .auth import Principal
from .errors import InvalidArgument
from .pipelines import Pipelines

__all__ = ["build_router"]


class SpecIn(BaseModel):
    spec: dict[str, Any]
    update: bool = True
    reprocess: bool = False


class RunIn(BaseModel):
    reprocess: bool = False


class FailIn(BaseModel):
    reason: str


def build_router(pipelines: Pipelines, principal: Callable[..., Principal]) -> APIRouter:
    api = APIRouter(tags=["pipelines"])

    def job_role(role: str) -> Callable[..., Principal]:
        def check(job: str, who: Principal = Depends(principal)) -> Principal:
            who.require(pipelines.inspect_job(job).pipeline, role)
            return who

        return check

    def pipeline_role(role: str) -> Callable[..., Principal]:
        def check(name: str, who: Principal = Depends(principal)) -> Principal:
            who.require(name, role)
            return who

        return check

    job_reader, job_writer = Depends(job_role("reader")), Depends(job_role("writer"))

    @api.put("/pipelines")
    def put_pipeline(body: SpecIn, who: Principal = Depends(principal)) -> dict[str, Any]:
        who.require_admin()
        return pipelines.create_pipeline(body.spec, update=body.update, reprocess=body.reprocess).to_dict()

    @api.get("/pipelines/{name}", dependencies=[Depends(pipeline_role("reader"))])
    def get_pipeline(name: str) -> dict[str, Any]:
        return pipelines.inspect_pipeline(name).to_dict()

    @api.post("/pipelines/{name}/run", dependencies=[Depends(pipeline_role("writer"))])
    def run_pipeline(name: str, body: RunIn) -> dict[str, Any]:
        return {"output_commit": pipelines.run_pipeline(name, reprocess=body.reprocess)}

    @api.get("/pipelines/{name}/jobs", dependencies=[Depends(pipeline_role("reader"))])
    def list_jobs(name: str) -> list[dict[str, Any]]:
        return [j.to_dict() for j in pipelines.list_jobs(name)]

    @api.get("/jobs/{job}", dependencies=[job_reader])
    def get_job(job: str) -> dict[str, Any]:
        return pipelines.inspect_job(job).to_dict()

    @api.post("/jobs/{job}/plan", dependencies=[job_writer])
    def plan_job(job: str) -> list[dict[str, Any]]:
        return [d.to_dict() for d in pipelines.plan_job(job)]

    @api.post("/jobs/{job}/complete", dependencies=[job_writer])
    def complete_job(job: str) -> dict[str, Any]:
        return pipelines.complete_job(job).to_dict()

    @api.post("/jobs/{job}/fail", dependencies=[job_writer])
    def fail_job(job: str, body: FailIn) -> dict[str, Any]:
        return pipelines.fail_job(job, body.reason).to_dict()

    @api.get("/jobs/{job}/datums", dependencies=[job_reader])
    def list_datums(job: str) -> list[dict[str, Any]]:
        return [d.to_dict() for d in pipelines.list_datums(job)]

    @api.get("/jobs/{job}/datums/{datum}", dependencies=[job_reader])
    def get_datum(job: str, datum: str) -> dict[str, Any]:
        return pipelines.inspect_datum(job, datum).to_dict()

    @api.post("/jobs/{job}/datums/{datum}/output", dependencies=[job_writer],
              openapi_extra={"requestBody": {"content": {"application/x-tar": {}}, "required": True}})
    async def put_output(job: str, datum: str, request: Request) -> dict[str, Any]:
        """The datum's ``out`` folder as a tar; stored, and the datum marked succeeded."""
        folder = Path(tempfile.mkdtemp(prefix="datumflow-upload-"))
        try:
            with open(folder / "body.tar", "wb") as body:
                async for piece in request.stream():
                    body.write(piece)
            return await run_in_threadpool(_store_output, pipelines, job, datum, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    return api


def _store_output(pipelines: Pipelines, job: str, datum: str, folder: Path) -> dict[str, Any]:
    pfs = folder / "pfs"
    (pfs / "out").mkdir(parents=True)
    try:
        with tarfile.open(folder / "body.tar") as tar:
            for member in tar.getmembers():
                if not (member.isfile() or member.isdir()) or not (member.name + "/").startswith("out/"):
                    raise InvalidArgument(f"datum output tar: {member.name!r} is not a file or folder under out/")
            tar.extractall(pfs, filter="data")
    except tarfile.TarError as exc:
        raise InvalidArgument(f"datum output is not a readable tar: {exc}") from exc
    return pipelines.upload_datum(job, datum, str(pfs)).to_dict()
