"""The store over HTTP: :class:`Client` has the methods, signatures and return types of :class:`Store`.

``datumflow.connect("http://host:port")`` returns one, so code written against
an embedded store runs unchanged against the service. Errors come back as the
classes the service raised (rebuilt in :func:`_raise_for`, the one place);
connection failures are retried with exponential backoff and end as
:class:`ServiceUnavailable`; 4xx answers are never retried.

:class:`AsyncClient` offers the read and wait calls that sensors and
triggers need, over ``httpx.AsyncClient``.
"""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, TypeVar

import httpx
from datumflow.storage_service.client.bodies import PIECE as _PIECE
from datumflow.storage_service.client.bodies import Source, _body_of, _members, _q, _tar_stream
from datumflow.storage_service.client.history import HistoryCalls
from datumflow.storage_service.errors import (
    DatumflowError,
    InvalidArgument,
    ServiceUnavailable,
    Timeout,
    error_from_name,
)
from datumflow.storage_service.model.core import (
    Branch,
    BranchRef,
    Commit,
    DiffEntry,
    FileInfo,
    Origin,
    ProvenanceEntry,
    Repo,
)
from datumflow.storage_service.model.lifecycle import OpenCommit, writing
from datumflow.storage_service.model.sync import SyncResult

__all__ = ["AsyncClient", "Client"]

API = "/api/v1"
LONG_POLL = 20.0  # the service holds one wait request at most this long
_RETRYABLE = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
T = TypeVar("T")

def _raise_for(response: httpx.Response) -> None:
    """Turn an error answer into the exception the service raised."""
    if response.status_code < 400:
        return
    try:
        body = json.loads(response.read())
        error = body["error"]
        exc: DatumflowError = error_from_name(str(error["type"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        exc = error_from_name("DatumflowError", f"HTTP {response.status_code}: {response.text[:200]}")
    raise exc


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _forced(force: bool) -> dict[str, bool]:
    """``force`` as a query parameter, sent only when set (a service without it refuses nothing new)."""
    return {"force": True} if force else {}


def _origin_value(origin: Origin | str) -> str:
    return Origin(origin).value


def _diff_entry(data: dict[str, Any]) -> DiffEntry:
    old, new = data.get("old"), data.get("new")
    return DiffEntry(
        path=data["path"], change=data["change"],
        old=FileInfo.from_dict(old) if old else None, new=FileInfo.from_dict(new) if new else None,
    )


class _Endpoint:
    """Where a client talks to and how patiently: shared by :class:`Client` and :class:`AsyncClient`."""

    def __init__(self, address: str, timeout: float, retries: int, backoff: float) -> None:
        self.address = address.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff


class Client(_Endpoint, HistoryCalls):
    """A datumflow service at ``address`` (``http://host:port``), used like a :class:`Store`."""

    def __init__(
        self, address: str, token: str | None = None, *, timeout: float = 60.0, retries: int = 5,
        backoff: float = 0.1,
    ) -> None:
        _Endpoint.__init__(self, address, timeout, retries, backoff)
        self._http = httpx.Client(base_url=self.address + API, headers=_headers(token), timeout=timeout,
                                  verify=_tls(self.address))

    def close(self) -> None:
        self._http.close()

    @property
    def pipelines(self) -> Any:
        """Pipelines, jobs, datums and lineage over HTTP (:class:`~.client_pipelines.RemotePipelines`)."""
        from datumflow.storage_service.client.pipelines import RemotePipelines

        return RemotePipelines(self)

    @property
    def spouts(self) -> Any:
        """The spout registry over HTTP (:class:`~.client_pipelines.RemoteSpouts`)."""
        from datumflow.storage_service.client.pipelines import RemoteSpouts

        return RemoteSpouts(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    # -- transport ------------------------------------------------------------------------

    def _send(self, method: str, url: str, *, stream: bool = False, content: Callable[[], Any] | None = None,
              **kwargs: Any) -> httpx.Response:
        """One request, retried on connection failures; raises the service's error for 4xx/5xx."""
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                request = self._http.build_request(
                    method, url, content=content() if content else None, **kwargs
                )
                response = self._http.send(request, stream=stream)
                break
            except _RETRYABLE as exc:
                if attempt == self.retries:
                    raise ServiceUnavailable(f"cannot reach {self.address}: {exc}") from exc
                time.sleep(delay)
                delay *= 2
            except httpx.TransportError as exc:
                raise ServiceUnavailable(f"lost the connection to {self.address}: {exc}") from exc
        if response.status_code >= 400:
            try:
                _raise_for(response)
            finally:
                response.close()
        return response

    def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        response = self._send(method, url, **kwargs)
        return None if response.status_code == 204 else response.json()

    # -- repos ----------------------------------------------------------------------------

    def create_repo(self, name: str, description: str = "", *, exist_ok: bool = False) -> Repo:
        data = self._json("POST", "/repos", json={"name": name, "description": description, "exist_ok": exist_ok})
        return Repo.from_dict(data)

    def inspect_repo(self, name: str) -> Repo:
        return Repo.from_dict(self._json("GET", f"/repos/{_q(name)}"))

    def list_repos(self) -> list[Repo]:
        return [Repo.from_dict(r) for r in self._json("GET", "/repos")]

    def delete_repo(self, name: str, *, force: bool = False) -> None:
        self._json("DELETE", f"/repos/{_q(name)}", params={"force": force})

    # -- branches -------------------------------------------------------------------------

    def create_branch(
        self, repo: str, name: str, *, head: str | None = None, provenance: Sequence[BranchRef | str] = (),
        owner: str | None = None,
    ) -> Branch:
        body = {"head": head, "provenance": [str(p) for p in provenance], "owner": owner}
        return Branch.from_dict(self._json("PUT", f"/repos/{_q(repo)}/branches/{_q(name)}", json=body))

    def inspect_branch(self, repo: str, name: str) -> Branch:
        return Branch.from_dict(self._json("GET", f"/repos/{_q(repo)}/branches/{_q(name)}"))

    def list_branches(self, repo: str) -> list[Branch]:
        return [Branch.from_dict(b) for b in self._json("GET", f"/repos/{_q(repo)}/branches")]

    def delete_branch(self, repo: str, name: str, *, force: bool = False) -> None:
        self._json("DELETE", f"/repos/{_q(repo)}/branches/{_q(name)}", params={"force": force})

    # -- commits --------------------------------------------------------------------------

    def resolve(self, repo: str, ref: str) -> str:
        return str(self._json("GET", f"/repos/{_q(repo)}/resolve/{_q(ref)}")["id"])

    def start_commit(
        self, repo: str, branch: str, *, parent: str | None = None, description: str = "",
        metadata: dict[str, Any] | None = None, origin: Origin | str = Origin.USER, provenance: Iterable[str] = (),
        owner: str | None = None, lease: float | None = None, force: bool = False,
    ) -> Commit:
        body = {
            "branch": branch, "parent": parent, "description": description, "metadata": metadata or {},
            "origin": _origin_value(origin), "provenance": list(provenance), "owner": owner, "lease": lease,
            **({"force": True} if force else {}),
        }
        return Commit.from_dict(self._json("POST", f"/repos/{_q(repo)}/commits", json=body))

    def writing(
        self, repo: str, branch: str, *, description: str = "", metadata: dict[str, Any] | None = None,
        origin: Origin | str = Origin.USER, provenance: Iterable[str] = (), what: str = "write",
    ) -> AbstractContextManager[OpenCommit]:
        """A commit for a ``with`` block: finished at its end, failed if it raises (see :mod:`~.lifecycle`)."""
        return writing(self, repo, branch, description=description, metadata=metadata, origin=origin,
                       provenance=provenance, what=what)

    def finish_commit(
        self, repo: str, ref: str, *, description: str | None = None, metadata: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> Commit:
        body = {"description": description, "metadata": metadata, "error": error}
        return Commit.from_dict(self._json("POST", f"/repos/{_q(repo)}/commits/{_q(ref)}/finish", json=body))

    def inspect_commit(self, repo: str, ref: str) -> Commit:
        return Commit.from_dict(self._json("GET", f"/repos/{_q(repo)}/commits/{_q(ref)}"))

    def list_commits(
        self, repo: str, branch: str | None = None, *, limit: int | None = None, state: str | None = None,
        first_parent: bool = False, until: str | None = None,
    ) -> list[Commit]:
        wanted = {"branch": branch, "limit": limit, "state": state, "until": until,
                  "first_parent": first_parent or None}
        params = {k: v for k, v in wanted.items() if v is not None}
        return [Commit.from_dict(c) for c in self._json("GET", f"/repos/{_q(repo)}/commits", params=params)]

    def wait_commit(self, repo: str, ref: str, *, timeout: float | None = None) -> Commit:
        """Block until the commit is finished, in long polls of at most 20 s each."""
        commit_id = self.resolve(repo, ref)
        url = f"/repos/{_q(repo)}/commits/{commit_id}/wait"
        return Commit.from_dict(self._long_poll(url, timeout))

    def delete_commit(self, repo: str, ref: str) -> None:
        self._json("DELETE", f"/repos/{_q(repo)}/commits/{_q(ref)}")

    def commit_set(self, set_id: str) -> list[Commit]:
        return [Commit.from_dict(c) for c in self._json("GET", f"/commit-sets/{_q(set_id)}")]

    def wait_commit_set(self, set_id: str, *, timeout: float | None = None) -> list[Commit]:
        return [Commit.from_dict(c) for c in self._long_poll(f"/commit-sets/{_q(set_id)}/wait", timeout)]

    def _long_poll(self, url: str, timeout: float | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            budget = LONG_POLL if deadline is None else max(0.0, min(LONG_POLL, deadline - time.monotonic()))
            try:
                return self._json("GET", url, params={"timeout": budget}, timeout=budget + self.timeout)
            except Timeout:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    def provenance(self, repo: str, ref: str, *, depth: int | None = None) -> list[ProvenanceEntry]:
        params = {} if depth is None else {"depth": depth}
        data = self._json("GET", f"/repos/{_q(repo)}/commits/{_q(ref)}/provenance", params=params)
        return [ProvenanceEntry.from_dict(e) for e in data]

    def subvenance(self, repo: str, ref: str, *, depth: int | None = None) -> list[ProvenanceEntry]:
        params = {} if depth is None else {"depth": depth}
        data = self._json("GET", f"/repos/{_q(repo)}/commits/{_q(ref)}/subvenance", params=params)
        return [ProvenanceEntry.from_dict(e) for e in data]

    # -- writing files --------------------------------------------------------------------

    def put_file(
        self, repo: str, target: str, path: str, source: Source, *, append: bool = False, description: str = "",
        force: bool = False,
    ) -> Commit:
        """Write one file into ``target`` (a branch, or an open commit id), streamed from ``source``."""
        if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
            return self.put_files(repo, target, [(path, source)], append=append, description=description,
                                  force=force)
        params = {"path": path, "append": append, "description": description, **_forced(force)}
        data = self._json("PUT", f"/repos/{_q(repo)}/commits/{_q(target)}/content", params=params,
                          content=_body_of(source), headers={"Content-Type": "application/octet-stream"})
        return Commit.from_dict(data)

    def put_files(
        self, repo: str, target: str, items: Iterable[tuple[str, Source]], *, append: bool = False,
        description: str = "", progress: Any = None, force: bool = False,
    ) -> Commit:
        """Write many files (folders recursively) as one change, streamed to the service as a tar."""
        items = list(items)
        members = [m for dest, src in items for m in _members(dest, src)]
        params = {"append": append, "description": description, **_forced(force)}
        data = self._json("POST", f"/repos/{_q(repo)}/commits/{_q(target)}/tar", params=params,
                          content=lambda: _tar_stream(members, progress),
                          headers={"Content-Type": "application/x-tar"})
        return Commit.from_dict(data)

    def delete_file(self, repo: str, target: str, path: str, *, force: bool = False) -> Commit:
        data = self._json("DELETE", f"/repos/{_q(repo)}/commits/{_q(target)}/content",
                          params={"path": path, **_forced(force)})
        return Commit.from_dict(data)

    def copy_file(
        self, src_repo: str, src_ref: str, src_path: str, dst_repo: str, dst_target: str, dst_path: str, *,
        force: bool = False,
    ) -> Commit:
        body = {"src_repo": src_repo, "src_ref": src_ref, "src_path": src_path, "dst_path": dst_path}
        return Commit.from_dict(self._json("POST", f"/repos/{_q(dst_repo)}/commits/{_q(dst_target)}/copy",
                                           json=body, params=_forced(force)))

    # -- reading files --------------------------------------------------------------------

    def inspect_file(self, repo: str, ref: str, path: str) -> FileInfo:
        return FileInfo.from_dict(self._json("GET", f"/repos/{_q(repo)}/commits/{_q(ref)}/info", params={"path": path}))

    def get_file(self, repo: str, ref: str, path: str) -> bytes:
        return b"".join(self.open_file(repo, ref, path))

    def open_file(self, repo: str, ref: str, path: str) -> Iterator[bytes]:
        """The content of a file, streamed; errors (404…) are raised here, before iterating."""
        response = self._send("GET", f"/repos/{_q(repo)}/commits/{_q(ref)}/content", params={"path": path},
                              stream=True)
        return _stream_body(response, self.address)

    def read_range(self, repo: str, ref: str, path: str, start: int, length: int | None = None) -> bytes:
        """Bytes [start, start+length) of a file (one HTTP Range request)."""
        if start < 0:
            raise InvalidArgument(f"range start {start} must be >= 0")
        if length is not None and length <= 0:
            self.inspect_file(repo, ref, path)  # the same errors as the store, then nothing to read
            return b""
        end = "" if length is None else str(start + length - 1)
        url = f"/repos/{_q(repo)}/commits/{_q(ref)}/content"
        try:
            response = self._send("GET", url, params={"path": path}, headers={"Range": f"bytes={start}-{end}"})
        except InvalidArgument:
            info = self.inspect_file(repo, ref, path)
            if start == info.size and not info.is_dir:
                return b""  # the store allows reading at the very end
            raise
        return response.content

    def list_files(
        self, repo: str, ref: str, path: str = "", *, start_after: str | None = None, limit: int | None = None,
    ) -> list[FileInfo]:
        """The files and folders directly inside ``path``, fetched page by page."""
        out: list[FileInfo] = []
        url = f"/repos/{_q(repo)}/commits/{_q(ref)}/files"
        cursor = start_after
        while True:
            page = 1000 if limit is None else min(1000, limit - len(out))
            params: dict[str, Any] = {"path": path, "limit": page}
            if cursor is not None:
                params["start_after"] = cursor
            data = self._json("GET", url, params=params)
            out.extend(FileInfo.from_dict(f) for f in data["files"])
            cursor = data["next_start_after"]
            if cursor is None or (limit is not None and len(out) >= limit):
                return out

    def walk_files(self, repo: str, ref: str, path: str = "") -> Iterator[FileInfo]:
        response = self._send("GET", f"/repos/{_q(repo)}/commits/{_q(ref)}/walk", params={"path": path},
                              stream=True)
        return _ndjson(response, FileInfo.from_dict)

    def glob_files(self, repo: str, ref: str, pattern: str) -> list[FileInfo]:
        data = self._json("GET", f"/repos/{_q(repo)}/commits/{_q(ref)}/glob", params={"pattern": pattern})
        return [FileInfo.from_dict(f) for f in data]

    def diff(self, repo: str, old_ref: str | None, new_ref: str, *, old_repo: str | None = None) -> Iterator[DiffEntry]:
        params = {k: v for k, v in {"old": old_ref, "old_repo": old_repo}.items() if v is not None}
        data = self._json("GET", f"/repos/{_q(repo)}/commits/{_q(new_ref)}/diff", params=params)
        return iter([_diff_entry(d) for d in data])

    # -- sync -----------------------------------------------------------------------------

    def sync_up(
        self, local: str, repo: str, branch: str, path: str = "", *, delete: bool = False, dry_run: bool = False,
        description: str = "", progress: Any = None, cache: bool = True,
    ) -> SyncResult:
        """Make ``repo@branch:path`` hold what the folder ``local`` holds: one upload of the differences."""
        from datumflow.storage_service.sync import engine  # the folder scan and hashing: sync verbs only

        return engine.sync_up(self, local, repo, branch, path, delete=delete, dry_run=dry_run,
                              description=description, progress=progress, cache=cache)

    def sync_down(
        self, repo: str, ref: str, path: str, local: str, *, delete: bool = False, dry_run: bool = False,
        progress: Any = None, cache: bool = True,
    ) -> SyncResult:
        """Make the folder ``local`` hold what ``repo@ref:path`` holds, downloading only the files that differ."""
        from datumflow.storage_service.sync import engine

        commit = self.resolve(repo, ref)

        def read(infos: Sequence[FileInfo]) -> Iterator[Iterable[bytes]]:
            return self._read_contents(repo, commit, infos)

        return engine.sync_down(self, repo, commit, path, local, read, delete=delete, dry_run=dry_run,
                                progress=progress, cache=cache, verify=True)

    def _read_contents(self, repo: str, commit: str, infos: Sequence[FileInfo]) -> Iterator[Iterable[bytes]]:
        """The content of each file, fetched in one request per batch (the restore checks the hashes)."""
        if len(infos) == 1 and infos[0].size > _PIECE * 16:  # a large file alone: streamed, never held whole
            yield self.open_file(repo, commit, infos[0].path)
            return
        body = {"paths": [info.path for info in infos]}
        data = self._send("POST", f"/repos/{_q(repo)}/commits/{_q(commit)}/contents", json=body).content
        offset = 0
        for info in infos:
            yield [data[offset:offset + info.size]]
            offset += info.size
        if offset != len(data):
            raise ServiceUnavailable(f"{self.address} sent {len(data)} bytes for files of {offset} bytes")

    # -- maintenance ----------------------------------------------------------------------

    def fsck(self, *, verify_content: bool = True, progress: Any = None, repair: bool = False) -> dict[str, Any]:
        return dict(self._json("POST", "/fsck", json={"verify_content": verify_content, "repair": repair}))

    def gc(self, *, grace_seconds: float = 3600.0) -> dict[str, int]:
        return dict(self._json("POST", "/gc", json={"grace_seconds": grace_seconds}))

    def whoami(self) -> dict[str, Any]:
        return dict(self._json("GET", "/whoami"))


def _stream_body(response: httpx.Response, address: str) -> Iterator[bytes]:
    try:
        yield from response.iter_bytes(_PIECE)
    except httpx.TransportError as exc:
        raise ServiceUnavailable(f"lost the connection to {address} while downloading: {exc}") from exc
    finally:
        response.close()


def _ndjson(response: httpx.Response, make: Callable[[dict[str, Any]], T]) -> Iterator[T]:
    try:
        for line in response.iter_lines():
            if line:
                yield make(json.loads(line))
    finally:
        response.close()


# -- async ------------------------------------------------------------------------------------


class AsyncClient(_Endpoint):
    """The read and wait calls of :class:`Client`, for triggers and deferrable sensors."""

    def __init__(
        self, address: str, token: str | None = None, *, timeout: float = 60.0, retries: int = 5,
        backoff: float = 0.1,
    ) -> None:
        _Endpoint.__init__(self, address, timeout, retries, backoff)
        self._http = httpx.AsyncClient(base_url=self.address + API, headers=_headers(token), timeout=timeout,
                                       verify=_tls(self.address))

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def pipelines(self) -> Any:
        """``inspect_job``, ``wait_job``… (:class:`~.client_pipelines.AsyncRemotePipelines`)."""
        from datumflow.storage_service.client.pipelines import AsyncRemotePipelines

        return AsyncRemotePipelines(self)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.aclose()

    async def _json(self, method: str, url: str, **kwargs: Any) -> Any:
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                response = await self._http.request(method, url, **kwargs)
                break
            except _RETRYABLE as exc:
                if attempt == self.retries:
                    raise ServiceUnavailable(f"cannot reach {self.address}: {exc}") from exc
                await _sleep(delay)
                delay *= 2
            except httpx.TransportError as exc:
                raise ServiceUnavailable(f"lost the connection to {self.address}: {exc}") from exc
        _raise_for(response)
        return response.json()

    async def inspect_repo(self, name: str) -> Repo:
        return Repo.from_dict(await self._json("GET", f"/repos/{_q(name)}"))

    async def inspect_branch(self, repo: str, name: str) -> Branch:
        return Branch.from_dict(await self._json("GET", f"/repos/{_q(repo)}/branches/{_q(name)}"))

    async def inspect_commit(self, repo: str, ref: str) -> Commit:
        return Commit.from_dict(await self._json("GET", f"/repos/{_q(repo)}/commits/{_q(ref)}"))

    async def list_commits(
        self, repo: str, branch: str | None = None, *, limit: int | None = None, state: str | None = None
    ) -> list[Commit]:
        params = {k: v for k, v in {"branch": branch, "limit": limit, "state": state}.items() if v is not None}
        return [Commit.from_dict(c) for c in await self._json("GET", f"/repos/{_q(repo)}/commits", params=params)]

    async def commit_set(self, set_id: str) -> list[Commit]:
        return [Commit.from_dict(c) for c in await self._json("GET", f"/commit-sets/{_q(set_id)}")]

    async def inspect_file(self, repo: str, ref: str, path: str) -> FileInfo:
        data = await self._json("GET", f"/repos/{_q(repo)}/commits/{_q(ref)}/info", params={"path": path})
        return FileInfo.from_dict(data)

    async def glob_files(self, repo: str, ref: str, pattern: str) -> list[FileInfo]:
        data = await self._json("GET", f"/repos/{_q(repo)}/commits/{_q(ref)}/glob", params={"pattern": pattern})
        return [FileInfo.from_dict(f) for f in data]

    async def wait_commit(self, repo: str, ref: str, *, timeout: float | None = None) -> Commit:
        commit_id = str((await self._json("GET", f"/repos/{_q(repo)}/resolve/{_q(ref)}"))["id"])
        return Commit.from_dict(await self._long_poll(f"/repos/{_q(repo)}/commits/{commit_id}/wait", timeout))

    async def wait_commit_set(self, set_id: str, *, timeout: float | None = None) -> list[Commit]:
        return [Commit.from_dict(c) for c in await self._long_poll(f"/commit-sets/{_q(set_id)}/wait", timeout)]

    async def wait_new_commit(
        self, repo: str, branch: str, *, after: str | None = None, timeout: float | None = None,
        poll_interval: float = 1.0,
    ) -> Commit:
        """The first finished head of ``branch`` other than ``after`` (a sensor's question)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            head = (await self.inspect_branch(repo, branch)).head
            if head and head != after:
                commit = await self.inspect_commit(repo, head)
                if commit.is_finished:
                    return commit
            if deadline is not None and time.monotonic() >= deadline:
                raise Timeout(f"no new finished commit on {repo}@{branch} within {timeout}s")
            await _sleep(poll_interval)

    async def _long_poll(self, url: str, timeout: float | None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            budget = LONG_POLL if deadline is None else max(0.0, min(LONG_POLL, deadline - time.monotonic()))
            try:
                return await self._json("GET", url, params={"timeout": budget}, timeout=budget + self.timeout)
            except Timeout:
                if deadline is not None and time.monotonic() >= deadline:
                    raise



def _tls(address: str) -> ssl.SSLContext | bool:
    """How the client verifies TLS: httpx's default (certifi's CAs) for ``https://``. A plain
    ``http://`` address never opens TLS, yet httpx would build that default anyway, loading the
    whole CA bundle (a sixth of a command-line start against a service); it gets a context that
    trusts nothing instead, which costs nothing to build and would refuse any certificate."""
    if not address.lower().startswith("http://"):
        return True  # https, or anything else httpx makes of the address: its default
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


async def _sleep(seconds: float) -> None:
    # asyncio loads here, in the async client's first wait: the command line (sync, every start)
    # never needs it, and it is a tenth of what importing the HTTP client costs.
    import asyncio

    await asyncio.sleep(seconds)
