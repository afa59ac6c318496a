"""``Client(...).pipelines`` and ``.spouts``: :class:`~.pipelines.Pipelines` and the spout registry over HTTP.

:class:`RemotePipelines` has the methods, signatures and return types of
:class:`~.pipelines.Pipelines` (value objects, not dicts), so the CLI,
operators and components run unchanged against a service. Jobs run inside
the service (``serve`` runs the pipelines loop): ``wait_job`` long-polls and
its ``drive`` argument is accepted for compatibility but does nothing.

The worker steps run here, on the caller's host: ``fetch_datum`` reads the
datum's input files with the ordinary file API into ``pfs``; ``upload_datum``
sends ``pfs/out`` (and the log) as one tar, which the service stores as the
datum's output; ``run_datum`` does both around the transform, with the
spec's tries and timeout, and records a failure if every try failed.

:class:`AsyncRemotePipelines` offers what deferrable sensors need
(``inspect_job``, ``wait_job``, ``job_for_commit``, ``list_jobs``);
:class:`RemoteSpouts` the functions of :mod:`.spout_registry`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datumflow.storage_service.client.bodies import _body_of, _q, _tar_stream
from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.pipelines import worker
from datumflow.storage_service.pipelines.engine import SPEC_FILE, PipelineInfo
from datumflow.storage_service.pipelines.jobs import DatumInfo, DatumState, JobInfo, JobState
from datumflow.storage_service.pipelines.lineage import LineageNode
from datumflow.storage_service.pipelines.spec import PipelineSpec, parse_spec
from datumflow.storage_service.spouts.config import SpoutConfig
from datumflow.storage_service.spouts.registry import SpoutStatus

if TYPE_CHECKING:
    from datumflow.storage_service.client.http import AsyncClient, Client
    from datumflow.storage_service.pipelines.run_local import LocalRun

__all__ = ["AsyncRemotePipelines", "RemotePipelines", "RemoteSpouts"]

Member = tuple[str, int, Callable[[], Any]]


def job_from_dict(data: dict[str, Any]) -> JobInfo:
    return JobInfo.from_dict({**data, "state": JobState(data["state"])})


def datum_from_dict(data: dict[str, Any]) -> DatumInfo:
    return DatumInfo.from_dict({**data, "state": DatumState(data["state"])})


def lineage_from_dict(data: dict[str, Any]) -> LineageNode:
    return LineageNode(
        repo=data["repo"], commit=data["commit"], path=data["path"], hash=data.get("hash"),
        pipeline=data.get("pipeline"), job=data.get("job"), datum=data.get("datum"),
        inputs=tuple(lineage_from_dict(i) for i in data.get("inputs", ())),
    )


def spout_from_dict(data: dict[str, Any]) -> SpoutStatus:
    return SpoutStatus(**{**data, "config": SpoutConfig.from_dict(data["config"])})


def _spec_body(spec: PipelineSpec | dict[str, Any] | str) -> dict[str, Any] | str:
    return spec.to_dict() if isinstance(spec, PipelineSpec) else spec


class RemotePipelines:
    """The pipeline service at a :class:`Client`'s address."""

    def __init__(self, client: Client) -> None:
        self.client = client

    @property
    def store(self) -> Client:
        """The store the pipelines live in (as ``Pipelines.store``): the client itself."""
        return self.client

    def _call(self, method: str, url: str, **kwargs: Any) -> Any:
        return self.client._json(method, url, **kwargs)

    # -- pipelines ------------------------------------------------------------------

    def create_pipeline(
        self, spec: PipelineSpec | dict[str, Any] | str, *, update: bool = False, reprocess: bool = False
    ) -> PipelineInfo:
        body = {"spec": _spec_body(spec), "update": update, "reprocess": reprocess}
        return PipelineInfo.from_dict(self._call("POST", "/pipelines", json=body))

    def update_pipeline(self, spec: PipelineSpec | dict[str, Any] | str, *, reprocess: bool = False) -> PipelineInfo:
        name = parse_spec(spec).name
        body = {"spec": _spec_body(spec), "reprocess": reprocess}
        return PipelineInfo.from_dict(self._call("PUT", f"/pipelines/{_q(name)}", json=body))

    def inspect_pipeline(self, name: str) -> PipelineInfo:
        return PipelineInfo.from_dict(self._call("GET", f"/pipelines/{_q(name)}"))

    def list_pipelines(self) -> list[PipelineInfo]:
        return [PipelineInfo.from_dict(p) for p in self._call("GET", "/pipelines")]

    def delete_pipeline(self, name: str, *, force: bool = False) -> None:
        self._call("DELETE", f"/pipelines/{_q(name)}", params={"force": force})

    def run_pipeline(self, name: str, *, reprocess: bool = False) -> str:
        data = self._call("POST", f"/pipelines/{_q(name)}/run", json={"reprocess": reprocess})
        return str(data["output_commit"])

    def run_local(self, spec: Any, *, sample: int | None = None, out_dir: str | None = None) -> LocalRun:
        raise InvalidArgument("pipeline run-local runs on the embedded store: use a file:// address")

    # -- jobs -----------------------------------------------------------------------

    def list_jobs(self, pipeline: str | None = None) -> list[JobInfo]:
        params = {} if pipeline is None else {"pipeline": pipeline}
        return [job_from_dict(j) for j in self._call("GET", "/jobs", params=params)]

    def inspect_job(self, job_id: str) -> JobInfo:
        return job_from_dict(self._call("GET", f"/jobs/{_q(job_id)}"))

    def job_for_commit(self, output_commit: str) -> JobInfo:
        return job_from_dict(self._call("GET", f"/jobs/by-commit/{_q(output_commit)}"))

    def wait_job(self, job_id: str, *, timeout: float | None = None, drive: bool = True) -> JobInfo:
        """Block until the job ends (the service runs it), in long polls of at most 20 s."""
        return job_from_dict(self.client._long_poll(f"/jobs/{_q(job_id)}/wait", timeout))

    def list_datums(self, job_id: str) -> list[DatumInfo]:
        return [datum_from_dict(d) for d in self._call("GET", f"/jobs/{_q(job_id)}/datums")]

    def inspect_datum(self, job_id: str, datum_id: str) -> DatumInfo:
        return datum_from_dict(self._call("GET", f"/jobs/{_q(job_id)}/datums/{_q(datum_id)}"))

    def lineage(self, repo: str, ref: str, path: str, *, depth: int | None = None) -> LineageNode:
        params: dict[str, Any] = {"path": path}
        if depth is not None:
            params["depth"] = depth
        return lineage_from_dict(self._call("GET", f"/repos/{_q(repo)}/commits/{_q(ref)}/lineage", params=params))

    # -- driving a job from outside the service ----------------------------------------

    def plan_job(self, job_id: str) -> list[DatumInfo]:
        return [datum_from_dict(d) for d in self._call("POST", f"/jobs/{_q(job_id)}/plan")]

    def complete_job(self, job_id: str) -> JobInfo:
        return job_from_dict(self._call("POST", f"/jobs/{_q(job_id)}/complete"))

    def fail_job(self, job_id: str, reason: str) -> JobInfo:
        return job_from_dict(self._call("POST", f"/jobs/{_q(job_id)}/fail", json={"reason": reason}))

    def fail_datum(
        self, job_id: str, datum_id: str, error: str, *, log: str | None = None, tries: int = 1
    ) -> DatumInfo:
        """Record that a datum failed (``complete_job`` then fails the job)."""
        url = f"/jobs/{_q(job_id)}/datums/{_q(datum_id)}/failure"
        return datum_from_dict(self._call("POST", url, json={"error": error, "log": log, "tries": tries}))

    # -- worker steps, on this host ----------------------------------------------------------

    def fetch_datum(self, job_id: str, datum_id: str, pfs: str) -> DatumInfo:
        """Write a datum's inputs under ``pfs`` (and an empty ``pfs/out``)."""
        info = self.inspect_datum(job_id, datum_id)
        worker.fetch(self.client, info.datum, Path(pfs))  # type: ignore[arg-type]  # Client has open_file
        return info

    def upload_datum(
        self, job_id: str, datum_id: str, pfs: str, *, log: str | None = None, tries: int | None = None
    ) -> DatumInfo:
        """Send ``pfs/out`` as the datum's output; the service stores it and marks the datum succeeded."""
        members = _out_members(Path(pfs), log)
        url = f"/jobs/{_q(job_id)}/datums/{_q(datum_id)}/output"
        params = {} if tries is None else {"tries": tries}
        data = self._call("POST", url, params=params, content=lambda: _tar_stream(members, None),
                          headers={"Content-Type": "application/x-tar"})
        return datum_from_dict(data)

    def run_datum(self, job_id: str, datum_id: str, pfs: str) -> DatumInfo:
        """Fetch, run and upload one datum here, with the spec's tries and timeout; record a failure."""
        info = self.inspect_datum(job_id, datum_id)
        job = self.inspect_job(info.job)
        if job.spec_commit is None:
            raise InvalidArgument(f"job {job.id} has no spec commit")
        spec = parse_spec(json.loads(self.client.get_file(job.pipeline, job.spec_commit, SPEC_FILE)))
        env, folder, tries = worker.DatumEnv(job.id, info.datum, job.output_commit), Path(pfs), spec.datum_tries
        logs: list[str] = []
        error = "not run"
        for attempt in range(1, tries + 1):
            worker.clear(folder)
            worker.fetch(self.client, info.datum, folder)  # type: ignore[arg-type]
            before = worker.snapshot(folder)
            result = worker.run_transform(spec.transform, env, folder, timeout=spec.timeout_seconds,
                                          secrets=worker.secret_env(spec.transform))
            logs.append(result.log if tries == 1 else f"--- try {attempt}/{tries} ---\n{result.log}")
            outside = worker.written_outside(before, worker.snapshot(folder))
            found = result.error or ("wrote outside /pfs/out: " + ", ".join(outside[:5]) if outside else None)
            if found is None:
                try:
                    return self.upload_datum(job.id, info.id, pfs, log=_tail(logs), tries=attempt)
                except InvalidArgument as exc:  # a link out of /pfs, a special file…
                    found = str(exc)
            error = found
            logs.append(f"[datumflow] {error}\n")
        return self.fail_datum(job.id, info.id, error, log=_tail(logs), tries=tries)


class AsyncRemotePipelines:
    """The job calls a deferrable sensor or trigger needs, over an :class:`AsyncClient`."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def inspect_job(self, job_id: str) -> JobInfo:
        return job_from_dict(await self.client._json("GET", f"/jobs/{_q(job_id)}"))

    async def job_for_commit(self, output_commit: str) -> JobInfo:
        return job_from_dict(await self.client._json("GET", f"/jobs/by-commit/{_q(output_commit)}"))

    async def list_jobs(self, pipeline: str | None = None) -> list[JobInfo]:
        params = {} if pipeline is None else {"pipeline": pipeline}
        return [job_from_dict(j) for j in await self.client._json("GET", "/jobs", params=params)]

    async def wait_job(self, job_id: str, *, timeout: float | None = None) -> JobInfo:
        """The job once it has ended; :class:`~.errors.Timeout` after ``timeout`` seconds."""
        return job_from_dict(await self.client._long_poll(f"/jobs/{_q(job_id)}/wait", timeout))


class RemoteSpouts:
    """The functions of :mod:`.spout_registry` (without their engine argument) over HTTP."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def list_spouts(self) -> list[SpoutStatus]:
        return [spout_from_dict(s) for s in self.client._json("GET", "/spouts")]

    def get_spout(self, name: str) -> SpoutStatus:
        return spout_from_dict(self.client._json("GET", f"/spouts/{_q(name)}"))

    def request_stop(self, name: str) -> SpoutStatus:
        return spout_from_dict(self.client._json("POST", f"/spouts/{_q(name)}/stop"))

    def claim(self, name: str, config: SpoutConfig) -> SpoutStatus:
        return spout_from_dict(self.client._json("PUT", f"/spouts/{_q(name)}", json={"config": config.to_dict()}))

    def heartbeat(self, name: str, *, commit: str | None = None, messages: int = 0) -> None:
        self.client._json("POST", f"/spouts/{_q(name)}/heartbeat", json={"commit": commit, "messages": messages})

    def stop_requested(self, name: str) -> bool:
        return bool(self.client._json("GET", f"/spouts/{_q(name)}/stop-requested")["stop_requested"])

    def release(self, name: str, *, error: str | None = None) -> None:
        self.client._json("POST", f"/spouts/{_q(name)}/release", json={"error": error})


# -- helpers ---------------------------------------------------------------------------


def _out_members(pfs: Path, log: str | None) -> list[Member]:
    """The tar members of ``pfs/out`` (links checked as the local worker does) and the log."""
    pfs = pfs.resolve()
    out = pfs / "out"
    if out.is_symlink() or not out.is_dir():
        raise InvalidArgument(f"{out} must be a folder the transform writes into")
    members: list[Member] = [
        (f"out/{rel}", local.stat().st_size, _body_of(str(local))) for rel, local in worker._output_files(pfs, out)
    ]
    if log is not None:
        data = log.encode()
        members.append(("log", len(data), _body_of(data)))
    return members


def _tail(logs: list[str]) -> str:
    return worker._tail("".join(logs).encode())

