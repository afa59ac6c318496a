"""``Client(...).pipelines`` and ``.spouts``: :class:`~.pipelines.Pipelines` and the spout registry over HTTP.

:class:`RemotePipelines` has the methods, signatures and return types of
:class:`~.pipelines.Pipelines` (value objects, not dicts), so the CLI,
operators and components run unchanged against a service. Jobs run inside
the service (``serve`` runs the pipelines loop): ``wait_job`` long-polls and
its ``drive`` argument is accepted for compatibility but does nothing.

The client imports no server module: the worker steps of a datum (fetch its
inputs, run the transform, send ``pfs/out``) live in the pipelines layer,
:mod:`datumflow.storage_service.pipelines.worker_steps`, and work over this
API: :meth:`RemotePipelines.upload_output` sends the tar they build, and
``fail_datum`` records a datum whose every try failed.

:class:`AsyncRemotePipelines` offers what deferrable sensors need
(``inspect_job``, ``wait_job``, ``job_for_commit``, ``list_jobs``);
:class:`RemoteSpouts` the functions of :mod:`datumflow.storage_service.spouts.registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from datumflow.storage_service.client.bodies import _q, _tar_stream
from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.model.datum import DatumInfo
from datumflow.storage_service.model.job import JobInfo
from datumflow.storage_service.model.lineage import LineageNode
from datumflow.storage_service.model.pipeline import PipelineInfo
from datumflow.storage_service.model.spout import SpoutConfig, SpoutStatus

if TYPE_CHECKING:
    from datumflow.storage_service.client.http import AsyncClient, Client
    from datumflow.storage_service.pipelines.run_local import LocalRun
    from datumflow.storage_service.pipelines.spec import PipelineSpec

__all__ = ["AsyncRemotePipelines", "RemotePipelines", "RemoteSpouts"]

Member = tuple[str, int, Callable[[], Iterator[bytes]]]


def job_from_dict(data: dict[str, Any]) -> JobInfo:
    return JobInfo.from_dict(data)


def datum_from_dict(data: dict[str, Any]) -> DatumInfo:
    return DatumInfo.from_dict(data)


def lineage_from_dict(data: dict[str, Any]) -> LineageNode:
    return LineageNode.from_dict(data)


def spout_from_dict(data: dict[str, Any]) -> SpoutStatus:
    return SpoutStatus(**{**data, "config": SpoutConfig.from_dict(data["config"])})


def _spec_body(spec: PipelineSpec | dict[str, Any] | str) -> dict[str, Any] | str:
    if isinstance(spec, (dict, str)):
        return spec
    body: dict[str, Any] = spec.to_dict()
    return body


def _spec_name(spec: PipelineSpec | dict[str, Any] | str) -> str:
    """The name of a spec, to address it; the service validates the whole spec."""
    if not isinstance(spec, (dict, str)):
        return str(spec.name)
    data = _one_document(spec) if isinstance(spec, str) else spec
    inner = data.get("pipeline")
    name = inner.get("name") if isinstance(inner, dict) else data.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidArgument("the pipeline spec has no name (pipeline.name)")
    return name


def _one_document(text: str) -> dict[str, Any]:
    import yaml  # here: only a spec sent as text needs it, not every verb's start

    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"the pipeline spec is not valid YAML or JSON: {exc}") from exc
    if len(docs) != 1 or not isinstance(docs[0], dict):
        raise InvalidArgument(f"expected one pipeline spec (a mapping), found {len(docs)} documents")
    found: dict[str, Any] = docs[0]
    return found


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
        name = _spec_name(spec)
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

    def run_cron(self, name: str) -> str:
        """Tick the pipeline's cron inputs now; the output commit of the job the ticks opened."""
        return str(self._call("POST", f"/pipelines/{_q(name)}/run-cron")["output_commit"])

    def stop_pipeline(self, name: str) -> PipelineInfo:
        return PipelineInfo.from_dict(self._call("POST", f"/pipelines/{_q(name)}/stop"))

    def start_pipeline(self, name: str) -> PipelineInfo:
        return PipelineInfo.from_dict(self._call("POST", f"/pipelines/{_q(name)}/start"))

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

    def complete_job(self, job_id: str, *, metadata: dict[str, Any] | None = None) -> JobInfo:
        body = {"metadata": metadata} if metadata else None
        return job_from_dict(self._call("POST", f"/jobs/{_q(job_id)}/complete", json=body))

    def fail_job(self, job_id: str, reason: str) -> JobInfo:
        return job_from_dict(self._call("POST", f"/jobs/{_q(job_id)}/fail", json={"reason": reason}))

    def fail_datum(
        self, job_id: str, datum_id: str, error: str, *, log: str | None = None, tries: int = 1
    ) -> DatumInfo:
        """Record that a datum failed (``complete_job`` then fails the job)."""
        url = f"/jobs/{_q(job_id)}/datums/{_q(datum_id)}/failure"
        return datum_from_dict(self._call("POST", url, json={"error": error, "log": log, "tries": tries}))

    def upload_output(
        self, job_id: str, datum_id: str, members: list[Member], *, tries: int | None = None
    ) -> DatumInfo:
        """Send a datum's output as one tar (members ``out/…`` and an optional ``log``); the service
        stores it and marks the datum succeeded. ``pipelines.worker_steps`` builds the members."""
        url = f"/jobs/{_q(job_id)}/datums/{_q(datum_id)}/output"
        params = {} if tries is None else {"tries": tries}
        sent: list[tuple[str, int, Callable[[], Iterator[bytes]] | None]] = list(members)
        data = self._call("POST", url, params=params, content=lambda: _tar_stream(sent, None),
                          headers={"Content-Type": "application/x-tar"})
        return datum_from_dict(data)


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
