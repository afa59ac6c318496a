"""A datum's worker steps run on this host, over either transport: ``fetch_datum``, ``upload_datum``,
``run_datum``.

``engine`` is the embedded :class:`~.engine.Pipelines` (the steps run in
process and record directly) or a client's ``pipelines`` (the service's
pipeline API over HTTP): then the inputs are read with the client's file
API, ``pfs/out`` is sent as one tar (links checked here as the local worker
checks them), and the transform runs here with the spec's tries and timeout;
a datum whose every try failed is recorded as failed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.model.datum import DatumInfo
from datumflow.storage_service.model.job import JobInfo
from datumflow.storage_service.pipelines import worker
from datumflow.storage_service.pipelines.jobs import datum_of
from datumflow.storage_service.pipelines.registry import SPEC_FILE
from datumflow.storage_service.pipelines.spec import parse_spec

__all__ = ["RemoteEngine", "fetch_datum", "run_datum", "upload_datum"]

Member = tuple[str, int, Callable[[], Iterator[bytes]]]
_PIECE = 1024 * 1024


class RemoteEngine(Protocol):
    """What the steps need of a client's pipeline API."""

    @property
    def store(self) -> Any: ...  # the client: get_file, open_file

    def inspect_datum(self, job_id: str, datum_id: str) -> DatumInfo: ...

    def inspect_job(self, job_id: str) -> JobInfo: ...

    def upload_output(
        self, job_id: str, datum_id: str, members: list[Member], *, tries: int | None = None
    ) -> DatumInfo: ...

    def fail_datum(
        self, job_id: str, datum_id: str, error: str, *, log: str | None = None, tries: int = 1
    ) -> DatumInfo: ...


def _embedded(engine: Any) -> bool:
    return not hasattr(engine, "upload_output")


def fetch_datum(engine: Any, job_id: str, datum_id: str, pfs: str) -> DatumInfo:
    """Write a datum's inputs under ``pfs`` (and an empty ``pfs/out``)."""
    if _embedded(engine):
        info: DatumInfo = engine.fetch_datum(job_id, datum_id, pfs)
        return info
    info = engine.inspect_datum(job_id, datum_id)
    job = engine.inspect_job(info.job)
    if job.spec_commit is None:
        raise InvalidArgument(f"job {job.id} has no spec commit")
    spec = parse_spec(json.loads(engine.store.get_file(job.pipeline, job.spec_commit, SPEC_FILE)))
    env = worker.datum_env(spec, job.id, datum_of(info), job.output_commit)
    worker.fetch(engine.store, datum_of(info), Path(pfs), empty=env.empty_inputs)
    worker.write_env_file(env, Path(pfs))  # the pod's wrapper exports these for the user's container
    return info


def upload_datum(
    engine: Any, job_id: str, datum_id: str, pfs: str, *, log: str | None = None, tries: int | None = None
) -> DatumInfo:
    """Store ``pfs/out`` as the datum's output and mark it succeeded."""
    if _embedded(engine):
        done: DatumInfo = engine.upload_datum(job_id, datum_id, pfs, log=log)
        return done
    remote: RemoteEngine = engine
    return remote.upload_output(job_id, datum_id, _out_members(Path(pfs), log), tries=tries)


def run_datum(engine: Any, job_id: str, datum_id: str, pfs: str) -> DatumInfo:
    """Fetch, run and upload one datum here, with the spec's tries and timeout; record a failure."""
    if _embedded(engine):
        done: DatumInfo = engine.run_datum(job_id, datum_id, pfs)
        return done
    remote: RemoteEngine = engine
    info = remote.inspect_datum(job_id, datum_id)
    job = remote.inspect_job(info.job)
    if job.spec_commit is None:
        raise InvalidArgument(f"job {job.id} has no spec commit")
    spec = parse_spec(json.loads(remote.store.get_file(job.pipeline, job.spec_commit, SPEC_FILE)))
    datum = datum_of(info)
    env, folder, tries = worker.datum_env(spec, job.id, datum, job.output_commit), Path(pfs), spec.datum_tries
    logs: list[str] = []
    error = "not run"
    for attempt in range(1, tries + 1):
        worker.clear(folder)
        worker.fetch(remote.store, datum, folder, empty=env.empty_inputs)
        before = worker.snapshot(folder)
        result = worker.run_transform(spec.transform, env, folder, timeout=spec.timeout_seconds,
                                      secrets=worker.secret_env(spec.transform))
        logs.append(result.log if tries == 1 else f"--- try {attempt}/{tries} ---\n{result.log}")
        outside = worker.written_outside(before, worker.snapshot(folder))
        found = result.error or ("wrote outside /pfs/out: " + ", ".join(outside[:5]) if outside else None)
        if found is None:
            try:
                return upload_datum(remote, job.id, info.id, pfs, log=_tail(logs), tries=attempt)
            except InvalidArgument as exc:  # a link out of /pfs, a special file…
                found = str(exc)
        error = found
        logs.append(f"[datumflow] {error}\n")
    return remote.fail_datum(job.id, info.id, error, log=_tail(logs), tries=tries)


def _out_members(pfs: Path, log: str | None) -> list[Member]:
    """The tar members of ``pfs/out`` (links checked as the local worker does) and the log."""
    pfs = pfs.resolve()
    out = pfs / "out"
    if out.is_symlink() or not out.is_dir():
        raise InvalidArgument(f"{out} must be a folder the transform writes into")
    members: list[Member] = [
        (f"out/{rel}", local.stat().st_size, _file_pieces(local)) for rel, local in worker._output_files(pfs, out)
    ]
    if log is not None:
        data = log.encode()
        members.append(("log", len(data), lambda: iter((data,))))
    return members


def _file_pieces(path: Path) -> Callable[[], Iterator[bytes]]:
    def pieces() -> Iterator[bytes]:
        with open(path, "rb") as f:
            while piece := f.read(_PIECE):
                yield piece

    return pieces


def _tail(logs: list[str]) -> str:
    return worker._tail("".join(logs).encode())
