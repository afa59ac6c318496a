"""The spout registry over HTTP: ``build_router(store, principal)``, routes over :mod:`.spout_registry`.

``spout list|stop`` read and flag rows; a ``spout run --name`` process
against a remote service claims its row, beats its heartbeat, asks for the
stop flag and leaves its final status through the same routes. Roles follow
the repo the spout writes into: ``reader`` to see a spout, ``writer`` to
claim, beat, stop or release it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.service.auth import Principal
from datumflow.storage_service.spouts.config import SpoutConfig
from datumflow.storage_service.spouts.registry import (
    SpoutNotFound,
    SpoutStatus,
    claim,
    get_spout,
    heartbeat,
    list_spouts,
    release,
    request_stop,
    stop_requested,
)
from datumflow.storage_service.store.store import Store
from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel

__all__ = ["build_router"]


class ClaimIn(BaseModel):
    config: dict[str, Any]


class HeartbeatIn(BaseModel):
    commit: str | None = None
    messages: int = 0


class ReleaseIn(BaseModel):
    error: str | None = None


def build_router(store: Store, principal: Callable[..., Principal]) -> APIRouter:
    engine = store.engine
    api = APIRouter(tags=["spouts"])

    def spout_role(level: str) -> Any:
        def check(name: str, who: Principal = Depends(principal)) -> SpoutStatus:
            status = get_spout(engine, name)  # SpoutNotFound -> 404 before anything else
            who.require(status.config.repo, level)
            return status

        return Depends(check)

    @api.get("/spouts")
    def list_all(who: Principal = Depends(principal)) -> list[dict[str, Any]]:
        """Named spouts whose repo the caller may read."""
        return [s.to_dict() for s in list_spouts(engine) if who.role_on(s.config.repo)]

    @api.get("/spouts/{name}")
    def inspect(status: SpoutStatus = spout_role("reader")) -> dict[str, Any]:
        return status.to_dict()

    @api.post("/spouts/{name}/stop")
    def stop(status: SpoutStatus = spout_role("writer")) -> dict[str, Any]:
        """Ask a running spout to stop after its current batch."""
        return request_stop(engine, status.name).to_dict()

    @api.put("/spouts/{name}")
    def claim_spout(name: str, body: ClaimIn, who: Principal = Depends(principal)) -> dict[str, Any]:
        """Register the calling process as spout ``name`` (409 while a live process holds it)."""
        config = _config(body.config)
        who.require(config.repo, "writer")
        _require_name(engine, name, config, who)
        return claim(engine, name, config).to_dict()

    @api.post("/spouts/{name}/heartbeat", status_code=204)
    def beat(body: HeartbeatIn, status: SpoutStatus = spout_role("writer")) -> Response:
        heartbeat(engine, status.name, commit=body.commit, messages=body.messages)
        return Response(status_code=204)

    @api.get("/spouts/{name}/stop-requested")
    def asked_to_stop(status: SpoutStatus = spout_role("reader")) -> dict[str, bool]:
        return {"stop_requested": stop_requested(engine, status.name)}

    @api.post("/spouts/{name}/release", status_code=204)
    def release_spout(body: ReleaseIn, status: SpoutStatus = spout_role("writer")) -> Response:
        """The process is done: ``stopped``, or ``failed`` with ``error``."""
        release(engine, status.name, error=body.error)
        return Response(status_code=204)

    return api


def _require_name(engine: Any, name: str, config: SpoutConfig, who: Principal) -> None:
    """A spout name belongs to its repo: reclaiming it needs writer there, moving it elsewhere owner."""
    try:
        old = get_spout(engine, name)
    except SpoutNotFound:
        return
    who.require(old.config.repo, "owner" if old.config.repo != config.repo else "writer")


def _config(data: dict[str, Any]) -> SpoutConfig:
    try:
        return SpoutConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidArgument):
            raise
        raise InvalidArgument(f"invalid spout config: {exc}") from exc
