"""What the components do once they run: thin calls on the datumflow client.

The component functions in :mod:`.components` are shipped to KFP as source
and import this module inside the pod, so everything here may use the whole
``datumflow`` package. Where the service is comes from the environment
(``DATUMFLOW_ADDRESS`` / ``DATUMFLOW_TOKEN``, filled from a Kubernetes
Secret), never from pipeline parameters, which KFP stores in clear.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from datumflow.storage_service.errors import InvalidArgument, MissingSecret, NotFound, Timeout
from datumflow.storage_service.names import parse_ref

import datumflow

__all__ = ["MissingSecret", "connect_from_env", "kfp_metadata", "read", "wait", "write"]

ADDRESS_ENV = "DATUMFLOW_ADDRESS"
TOKEN_ENV = "DATUMFLOW_TOKEN"
_POLL = 0.5


def connect_from_env() -> Any:
    """A client of the service named by ``$DATUMFLOW_ADDRESS`` (token: ``$DATUMFLOW_TOKEN``)."""
    address = os.environ.get(ADDRESS_ENV, "").strip()
    if not address:
        raise MissingSecret(
            f"{ADDRESS_ENV} is not set: mount the 'datumflow' Secret into this task with "
            "kfp.kubernetes.use_secret_as_env(task, secret_name='datumflow', secret_key_to_env="
            "{'address': 'DATUMFLOW_ADDRESS', 'token': 'DATUMFLOW_TOKEN'})"
        )
    return datumflow.connect(address, token=os.environ.get(TOKEN_ENV) or None)


def kfp_metadata(pipeline_name: str, run_id: str, task_name: str) -> dict[str, str]:
    """The KFP run a commit came from; placeholders KFP left unresolved are dropped."""
    values = {"kfp_pipeline": pipeline_name, "kfp_run_id": run_id, "kfp_task": task_name}
    return {k: v for k, v in values.items() if v and not v.startswith("{{")}


def read(ref: str, dest: str) -> tuple[str, dict[str, Any]]:
    """Copy the files of ``repo@ref[:path]`` under ``dest``; returns the commit id and artifact metadata."""
    parsed = parse_ref(ref)
    if parsed.ref is None:
        raise InvalidArgument(f"{ref!r} names no branch or commit: use REPO@REF[:PATH]")
    store = connect_from_env()
    commit = store.inspect_commit(parsed.repo, parsed.ref)
    if not commit.is_finished:
        commit = store.wait_commit(parsed.repo, commit.id)
    if commit.error:
        raise InvalidArgument(f"{parsed.repo}@{commit.id} failed: {commit.error}")
    prefix = (parsed.path or "").strip("/")
    files = [f for f in store.walk_files(parsed.repo, commit.id, prefix) if not f.is_dir]
    if not files and prefix:
        files = [store.inspect_file(parsed.repo, commit.id, prefix)]  # raises if nothing is there
    single_file = len(files) == 1 and files[0].path == prefix
    base = str(Path(prefix).parent) if single_file else prefix  # a single file keeps its name
    if not files:
        raise NotFound(f"{parsed.repo}@{commit.id}:/{prefix} holds no files")
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    for info in files:
        target = root / os.path.relpath(info.path, base or ".")
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as out:
            for block in store.open_file(parsed.repo, commit.id, info.path):
                out.write(block)
    meta = {"repo": parsed.repo, "ref": parsed.ref, "path": prefix, "commit": commit.id,
            "commit_set": commit.commit_set, "files": len(files), "uri": f"datumflow://{parsed.repo}@{commit.id}/{prefix}"}
    return commit.id, meta


def write(
    source: str, repo: str, branch: str, *, dest: str = "", provenance: list[str] | None = None,
    description: str = "", metadata: dict[str, Any] | None = None,
) -> str:
    """Commit the file or folder ``source`` to ``repo@branch`` (under ``dest``); returns the commit id.

    Nothing is committed unless every file uploaded: a failure fails the commit (nothing half-written shows).
    """
    path = Path(source)
    if not source or not path.exists():
        raise InvalidArgument(f"the input artifact has no file at {source!r}: nothing to commit")
    if path.is_dir() and not any(p.is_file() for p in path.rglob("*")):
        raise InvalidArgument(f"the input artifact folder {source!r} is empty: nothing to commit")
    store = connect_from_env()
    store.create_repo(repo, exist_ok=True)
    target = dest.strip("/") or (path.name if path.is_file() else "")
    with store.writing(repo, branch, description=description, metadata=metadata,
                       provenance=provenance or [], what="upload") as commit:
        store.put_files(repo, commit.id, [(target, str(path))])
    return str(commit.id)


def wait(repo: str, branch: str, timeout: float) -> str:
    """Block until ``repo@branch`` has a finished head (polling while it has none); returns its id."""
    store = connect_from_env()
    deadline = time.monotonic() + timeout
    while True:
        try:
            head = store.resolve(repo, branch)
            break
        except NotFound:
            if time.monotonic() > deadline:
                raise Timeout(f"{repo}@{branch} got no commit within {timeout}s") from None
            time.sleep(_POLL)
    commit = store.wait_commit(repo, head, timeout=max(deadline - time.monotonic(), 0.0))
    if commit.error:
        raise InvalidArgument(f"{repo}@{commit.id} finished with an error: {commit.error}")
    return str(commit.id)


def merge(repo: str, source: str, dest: str, strategy: str | None, message: str, metadata: dict[str, Any]) -> str:
    """Merge ``source`` into ``dest`` with a merge commit recording the run; returns the new head's id."""
    result = connect_from_env().merge(repo, source, dest, strategy=strategy, message=message, metadata=metadata,
                                      fast_forward=False)
    return str(result.commit.id)
