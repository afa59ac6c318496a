"""Tokens a pipeline's own process holds: a spout writes its output repo with one, and nothing else.

A token is minted when the process starts and revoked when it ends (and with
the pipeline); only its SHA-256 is stored. The service reads a token with
:data:`PREFIX` as the pipeline's principal — writer on its output repo alone —
whether or not the service has users (:mod:`..service.app`).
"""

from __future__ import annotations

import hashlib
import secrets
import time

from datumflow.storage_service.core.pipeline_schema import pipeline_tokens
from sqlalchemy import Engine, delete, insert, select

__all__ = ["PREFIX", "mint", "pipeline_of", "revoke", "revoke_pipeline"]

PREFIX = "dfp_"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def mint(engine: Engine, pipeline: str) -> str:
    """A new token for pipeline ``pipeline``'s process."""
    token = PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(insert(pipeline_tokens), {"hash": _hash(token), "pipeline": pipeline, "created": time.time()})
    return token


def pipeline_of(engine: Engine, token: str) -> str | None:
    """The pipeline a token belongs to; None if it is unknown or revoked."""
    with engine.connect() as conn:
        found = conn.execute(select(pipeline_tokens.c.pipeline).where(pipeline_tokens.c.hash == _hash(token)))
        return found.scalar()


def revoke(engine: Engine, token: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(pipeline_tokens).where(pipeline_tokens.c.hash == _hash(token)))


def revoke_pipeline(engine: Engine, pipeline: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(pipeline_tokens).where(pipeline_tokens.c.pipeline == pipeline))
