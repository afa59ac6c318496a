"""``Client(...).pipelines``: the job and datum calls of :class:`~.pipelines.Pipelines` over HTTP.

The worker steps keep their in-process signatures: ``fetch_datum`` reads the
datum's input files with the ordinary file API and writes them under
``pfs``; ``upload_datum`` sends ``pfs/out`` as one tar, which the service
stores and records as the datum's output.
"""

from __future__ import annotations

import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote

from . import worker
from .jobs import DatumInfo, DatumState, JobInfo, JobState

if TYPE_CHECKING:
    from .client import Client

__all__ = ["RemotePipelines"]


def _job(data: dict[str, Any]) -> JobInfo:
    return JobInfo.from_dict({**data, "state": JobState(data["state"])})


def _datum(data: dict[str, Any]) -> DatumInfo:
    return DatumInfo.from_dict({**data, "state": DatumState(data["state"])})


class RemotePipelines:
    def __init__(self, client: Client) -> None:
        self.client = client

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        return self.client._json(method, url, **kwargs)

    def create_pipeline(self, spec: dict[str, Any], *, update: bool = True, reprocess: bool = False) -> Any:
        return self._call("PUT", "/pipelines", json={"spec": spec, "update": update, "reprocess": reprocess})

    def inspect_pipeline(self, name: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/pipelines/{quote(name)}"))

    def run_pipeline(self, name: str, *, reprocess: bool = False) -> str:
        return str(self._call("POST", f"/pipelines/{quote(name)}/run", json={"reprocess": reprocess})["output_commit"])

    def list_jobs(self, pipeline: str) -> list[JobInfo]:
        return [_job(j) for j in self._call("GET", f"/pipelines/{quote(pipeline)}/jobs")]

    def inspect_job(self, job_id: str) -> JobInfo:
        return _job(self._call("GET", f"/jobs/{quote(job_id)}"))

    def plan_job(self, job_id: str) -> list[DatumInfo]:
        return [_datum(d) for d in self._call("POST", f"/jobs/{quote(job_id)}/plan")]

    def complete_job(self, job_id: str) -> JobInfo:
        return _job(self._call("POST", f"/jobs/{quote(job_id)}/complete"))

    def fail_job(self, job_id: str, reason: str) -> JobInfo:
        return _job(self._call("POST", f"/jobs/{quote(job_id)}/fail", json={"reason": reason}))

    def list_datums(self, job_id: str) -> list[DatumInfo]:
        return [_datum(d) for d in self._call("GET", f"/jobs/{quote(job_id)}/datums")]

    def inspect_datum(self, job_id: str, datum_id: str) -> DatumInfo:
        return _datum(self._call("GET", f"/jobs/{quote(job_id)}/datums/{quote(datum_id)}"))

    def fetch_datum(self, job_id: str, datum_id: str, pfs: str) -> DatumInfo:
        info = self.inspect_datum(job_id, datum_id)
        worker.fetch(self.client, info.datum, Path(pfs))  # type: ignore[arg-type]
        return info

    def upload_datum(self, job_id: str, datum_id: str, pfs: str) -> DatumInfo:
        out = Path(pfs) / "out"
        with tempfile.TemporaryFile() as body:
            with tarfile.open(fileobj=body, mode="w") as tar:
                tar.add(out, arcname="out", recursive=True, filter=_regular)
            url = f"/jobs/{quote(job_id)}/datums/{quote(datum_id)}/output"
            return _datum(self._call(
                "POST", url, content=lambda: _pieces(body), headers={"content-type": "application/x-tar"}
            ))


def _regular(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
    """Folders and regular files only; the service refuses anything else."""
    return member if member.isfile() or member.isdir() else None


def _pieces(body: IO[bytes]) -> Iterator[bytes]:
    """The whole body from its start: each retry of the request sends it again."""
    body.seek(0)
    while piece := body.read(1024 * 1024):
        yield piece
