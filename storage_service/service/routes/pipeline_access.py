"""Who may create what a pipeline reaches, and what its readers may see of inputs they cannot read.

A pipeline runs code with the service's means, so creating or updating one
needs (checked on create and on update, before anything is written):

- admin, when datums run unsandboxed on the host (``DATUMFLOW_SANDBOX=none``:
  a datum then has the service's own rights), unless the operator also sets
  ``DATUMFLOW_PIPELINE_CREATORS=users``; ``DATUMFLOW_PIPELINE_CREATORS=admins``
  asks for admin whatever the executor;

- ``writer`` on its output repo — the repo carries its name; a pipeline that
  creates it (the normal case) makes its creator the repo's owner;
- ``reader`` on every ``pfs`` input, however deeply it sits in a cross,
  union, join or group;
- for a cron input, a cron repo the pipeline made itself, or ``owner`` on an
  existing one (each tick writes into it and ``overwrite`` empties it);
- admin for an egress to the service's own file system (``file://`` or a
  bare path), which would write where the service runs;
- admin for a ``transform.secrets`` entry, unless its name is one the
  operator lets pipelines use (``DATUMFLOW_PIPELINE_SECRETS``, comma-separated,
  naming both the secret and its ``env_var``): the local executor reads a
  secret's ``env_var`` from the service's own environment.

Deleting a pipeline deletes only the repos it made (:meth:`Pipelines.repos_made`).

Readers of a pipeline's output see its datums and lineage; inputs in repos
they cannot read are shown as ``{"hidden": true}`` entries, without
commit ids, paths or content hashes.
"""

from __future__ import annotations

import os
from typing import Any

from datumflow.storage_service.errors import Forbidden, RepoNotFound
from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.pipelines.spec import CronInput, PfsInput, PipelineSpec
from datumflow.storage_service.service.auth import Auth, Principal

__all__ = ["authorize_spec", "grant_made", "redact_datum", "redact_lineage"]

HIDDEN = "(hidden)"
SECRETS_ENV = "DATUMFLOW_PIPELINE_SECRETS"
CREATORS_ENV = "DATUMFLOW_PIPELINE_CREATORS"
_LOCAL_SCHEMES = ("file:", "local:", "memory:")


def authorize_spec(svc: Pipelines, spec: PipelineSpec, who: Principal, *, exists: bool) -> None:
    """Refuse (Forbidden) a spec the caller may not run; ``exists``: the pipeline is being updated."""
    if who.admin:
        return
    unsandboxed = os.environ.get("DATUMFLOW_SANDBOX", "").strip().lower() == "none"
    if os.environ.get(CREATORS_ENV, "admins" if unsandboxed else "users").strip().lower() != "users":
        raise Forbidden(f"user {who.name} may not create or update pipelines: on this service only admins may, "
                        f"since a datum runs with the service's own rights ({CREATORS_ENV}=users lets users "
                        "with the roles below do it)")
    if exists or _repo_exists(svc, spec.name):
        who.require(spec.name, "writer")
    made = svc.repos_made(spec.name) if exists else set()
    for leaf in spec.leaves():
        if isinstance(leaf, PfsInput):
            who.require(leaf.repo, "reader")
        elif isinstance(leaf, CronInput):
            repo = spec.cron_repo(leaf)
            if repo not in made and _repo_exists(svc, repo):
                who.require(repo, "owner")
    allowed = {n.strip() for n in os.environ.get(SECRETS_ENV, "").split(",") if n.strip()}
    for secret in spec.transform.secrets:
        for wanted in (secret.name, secret.env_var):
            if wanted and wanted not in allowed:
                raise Forbidden(f"user {who.name} may not use secret {wanted!r}: an admin lists the secrets "
                                f"(and variables) pipelines may use in {SECRETS_ENV}")
    egress = spec.egress.URL if spec.egress is not None else ""
    if egress and ("://" not in egress or egress.lower().startswith(_LOCAL_SCHEMES)):
        raise Forbidden(f"user {who.name} may not egress to {egress!r}: local paths need an admin")


def grant_made(svc: Pipelines, spec: PipelineSpec, who: Principal) -> None:
    """Make the creator owner of the repos the pipeline made (its output repo, its own cron repos)."""
    if who.admin:
        return
    auth = Auth(svc.store.engine)
    for repo in sorted(svc.repos_made(spec.name)):
        if who.role_on(repo) < 3:
            auth.grant(who.name, repo, "owner")


def redact_datum(datum: dict[str, Any], who: Principal) -> dict[str, Any]:
    inputs = [
        i if who.role_on(i.get("repo", "")) else
        {"name": i.get("name", ""), "repo": i.get("repo", ""), "commit": "", "path": "", "files": [], "hidden": True}
        for i in datum.get("inputs", [])
    ]
    return {**datum, "inputs": inputs}


def redact_lineage(node: dict[str, Any], who: Principal) -> dict[str, Any]:
    if not who.role_on(node.get("repo", "")):
        return {"repo": node.get("repo", ""), "commit": HIDDEN, "path": HIDDEN, "hash": None, "hidden": True}
    if "inputs" in node:
        return {**node, "inputs": [redact_lineage(i, who) for i in node["inputs"]]}
    return node


def _repo_exists(svc: Pipelines, name: str) -> bool:
    try:
        svc.store.inspect_repo(name)
    except RepoNotFound:
        return False
    return True
