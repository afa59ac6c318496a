"""Users, bearer tokens and per-repo roles, kept in the store's SQL database.

A token is shown once, when it is created; only its SHA-256 is stored. Roles
are ordered — ``reader`` < ``writer`` < ``owner`` — and granted per repo; an
admin may do anything. Grants die with their repo (the store deletes them with
it), so a later repo of the same name starts with its creator's grant alone.

A service whose database has no users runs open (and :mod:`.serve` refuses to
expose such a service beyond loopback); :meth:`Auth.open_mode` turns false as
soon as a user exists — the running service then asks for tokens at once,
without a restart — and stays false.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from datumflow.storage_service.core.db import Prepared, retry_on_conflict
from datumflow.storage_service.core.migrations import ensure_tables
from datumflow.storage_service.core.schema import metadata, roles
from datumflow.storage_service.errors import AlreadyExists, Forbidden, InvalidArgument, NotFound, Unauthenticated
from datumflow.storage_service.names import check_repo_name
from datumflow.storage_service.service.s3.keys import s3_keys
from sqlalchemy import (
    Boolean,
    Column,
    Engine,
    Float,
    Index,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

__all__ = ["ROLES", "Auth", "Principal", "pipeline_principal", "roles", "tokens", "users"]

ROLES: dict[str, int] = {"reader": 1, "writer": 2, "owner": 3}
TOKEN_PREFIX = "dft_"

users = Table(
    "df_users",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("admin", Boolean, nullable=False, default=False),
    Column("created", Float, nullable=False),
)

tokens = Table(
    "df_tokens",
    metadata,
    Column("hash", String(64), primary_key=True),  # sha256 of the token
    Column("user", String(64), nullable=False),
    Column("created", Float, nullable=False),
    Index("ix_df_tokens_user", "user"),
)


# What a request's credentials name, each in one prebuilt query: the user and every grant.
_BY_TOKEN = Prepared(
    select(users.c.name, users.c.admin, roles.c.repo, roles.c.role)
    .select_from(tokens.join(users, users.c.name == tokens.c.user).outerjoin(roles, roles.c.user == users.c.name))
    .where(tokens.c.hash == bindparam("hash"))
)
_BY_S3_KEY = Prepared(
    select(users.c.name, users.c.admin, roles.c.repo, roles.c.role, s3_keys.c.secret)
    .select_from(s3_keys.join(users, users.c.name == s3_keys.c.user).outerjoin(roles, roles.c.user == users.c.name))
    .where(s3_keys.c.access_key_id == bindparam("key"))
)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user name, whether admin, and the roles held per repo."""

    name: str
    admin: bool
    grants: dict[str, str]
    pipeline: str | None = None  # a pipeline's own process (a spout): its grants, and creates nothing

    def require_person(self, what: str) -> None:
        """Refuse a pipeline's token for what only a user may do (create repos or pipelines)."""
        if self.pipeline is not None:
            raise Forbidden(f"the token of pipeline {self.pipeline} writes its output repo only; it may not {what}")

    def role_on(self, repo: str) -> int:
        return max(ROLES.values()) if self.admin else ROLES.get(self.grants.get(repo, ""), 0)

    def require(self, repo: str, role: str) -> None:
        if self.role_on(repo) < ROLES[role]:
            raise Forbidden(f"user {self.name} needs role {role} on repo {repo}")

    def require_admin(self) -> None:
        if not self.admin:
            raise Forbidden(f"user {self.name} is not an admin")


def pipeline_principal(engine: Engine, token: str | None) -> Principal:
    """The principal of a pipeline's own token: writer on the pipeline's output repo, nothing else."""
    from datumflow.storage_service.pipelines.tokens import PREFIX, pipeline_of

    name = pipeline_of(engine, token) if token and token.startswith(PREFIX) else None
    if name is None:
        raise Unauthenticated("a pipeline token is required here, and this one is unknown or revoked")
    return Principal(f"pipeline:{name}", False, {name: "writer"}, pipeline=name)


# The principal of a service that runs without users: may do everything.
ANONYMOUS_ADMIN = Principal("anonymous", True, {})


def _principal(rows: list[Any]) -> Principal:
    """The principal of one user's rows (its name and admin flag, one grant per row, or none)."""
    return Principal(rows[0].name, bool(rows[0].admin), {r.repo: r.role for r in rows if r.repo is not None})


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Auth:
    """User, token and role administration on one metadata database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._closed = False  # latched once users exist: open mode never comes back
        ensure_tables(engine, [users, tokens, roles])

    def open_mode(self) -> bool:
        """Whether the database has no users (so requests run as the anonymous admin)."""
        if not self._closed and self.has_users():
            self._closed = True
        return not self._closed

    # -- administration ---------------------------------------------------------

    def has_users(self) -> bool:
        with self.engine.connect() as conn:
            return bool(conn.execute(select(func.count()).select_from(users)).scalar())

    def init(self, name: str = "admin") -> str:
        """Create the first admin and return its token; refused once users exist."""
        if self.has_users():
            raise AlreadyExists("auth is already initialized; create tokens with `auth token create`")
        self.create_user(name, admin=True)
        return self.create_token(name)

    @retry_on_conflict
    def create_user(self, name: str, *, admin: bool = False) -> None:
        check_repo_name(name)  # same alphabet as repo names
        with self.engine.begin() as conn:
            if conn.execute(select(users.c.name).where(users.c.name == name)).first():
                raise AlreadyExists(f"user {name} already exists")
            conn.execute(insert(users), {"name": name, "admin": admin, "created": time.time()})

    def list_users(self) -> list[dict[str, object]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(users).order_by(users.c.name)).all()
            grants = conn.execute(select(roles)).all()
        return [
            {"name": r.name, "admin": bool(r.admin),
             "roles": {g.repo: g.role for g in grants if g.user == r.name}}
            for r in rows
        ]

    def delete_user(self, name: str) -> None:
        self._require_user(name)
        with self.engine.begin() as conn:
            conn.execute(delete(tokens).where(tokens.c.user == name))
            conn.execute(delete(roles).where(roles.c.user == name))
            conn.execute(delete(s3_keys).where(s3_keys.c.user == name))
            conn.execute(delete(users).where(users.c.name == name))

    def create_token(self, name: str) -> str:
        self._require_user(name)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.engine.begin() as conn:
            conn.execute(insert(tokens), {"hash": hash_token(token), "user": name, "created": time.time()})
        return token

    def revoke_token(self, token: str) -> None:
        with self.engine.begin() as conn:
            if not conn.execute(delete(tokens).where(tokens.c.hash == hash_token(token))).rowcount:
                raise NotFound("no such token")

    @retry_on_conflict
    def grant(self, name: str, repo: str, role: str) -> None:
        if role not in ROLES:
            raise InvalidArgument(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
        check_repo_name(repo)
        self._require_user(name)
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(roles).where(roles.c.user == name, roles.c.repo == repo).values(role=role)
            ).rowcount
            if not changed:
                conn.execute(insert(roles), {"user": name, "repo": repo, "role": role})

    def revoke(self, name: str, repo: str) -> None:
        self._require_user(name)
        with self.engine.begin() as conn:
            if not conn.execute(delete(roles).where(roles.c.user == name, roles.c.repo == repo)).rowcount:
                raise NotFound(f"user {name} has no role on repo {repo}")

    def require_user(self, name: str) -> None:
        """NotFound unless user ``name`` exists."""
        self._require_user(name)

    def _require_user(self, name: str) -> None:
        with self.engine.connect() as conn:
            if conn.execute(select(users.c.name).where(users.c.name == name)).first() is None:
                raise NotFound(f"user {name} not found")

    # -- authentication -----------------------------------------------------------

    def authenticate(self, token: str | None) -> Principal:
        """The principal of a bearer token; :class:`Unauthenticated` if unknown."""
        if not token:
            raise Unauthenticated("a bearer token is required (Authorization: Bearer <token>)")
        return self.authenticate_hash(hash_token(token))

    def authenticate_hash(self, token_hash: str) -> Principal:
        """The principal of the token whose SHA-256 is ``token_hash`` (a console session holds only that).

        One prebuilt query per request (token, user and grants joined), nothing
        cached: a revoked token, a deleted user or a changed grant counts at once,
        in every process that shares the database.
        """
        rows = _BY_TOKEN.rows(self.engine, hash=token_hash)
        if not rows:
            raise Unauthenticated("unknown or revoked token")
        return _principal(rows)

    def key_holder(self, access_key_id: str) -> tuple[Principal, bytes] | None:
        """(principal, sealed secret) of an S3 key pair's user, in one query; None if there is no such pair."""
        rows = _BY_S3_KEY.rows(self.engine, key=access_key_id)
        return (_principal(rows), bytes(rows[0].secret)) if rows else None

    def principal_of(self, name: str) -> Principal:
        """The principal of user ``name`` (an S3 key pair's owner); :class:`Unauthenticated` if gone."""
        with self.engine.connect() as conn:
            row = conn.execute(select(users.c.name, users.c.admin).where(users.c.name == name)).first()
            if row is None:
                raise Unauthenticated(f"user {name} no longer exists")
            grants = conn.execute(select(roles.c.repo, roles.c.role).where(roles.c.user == row.name)).all()
        return Principal(row.name, bool(row.admin), {g.repo: g.role for g in grants})
