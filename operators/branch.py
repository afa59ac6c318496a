"""Delete a branch, read a file, inspect a commit (and merge, once the store merges).

The reads return what a downstream task needs through XCom: ``GetFile`` the
file's text (or bytes, or a local copy), ``GetCommit`` the commit's reference
with its metadata and provenance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import DatumflowBaseOperator, commit_id_of, with_conn_id

__all__ = ["DatumflowDeleteBranchOperator", "DatumflowGetCommitOperator", "DatumflowGetFileOperator"]


class DatumflowDeleteBranchOperator(DatumflowBaseOperator):
    """Delete ``repo@branch`` (its commits stay reachable by id); ``missing_ok`` makes a rerun succeed."""

    template_fields: Sequence[str] = with_conn_id("repo", "branch")

    def __init__(self, *, repo: str, branch: str, force: bool = False, missing_ok: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.repo, self.branch, self.force, self.missing_ok = repo, branch, force, missing_ok

    def execute(self, context: Any) -> dict[str, Any]:
        from datumflow.storage_service.errors import BranchNotFound

        try:
            self.hook.get_conn().delete_branch(self.repo, self.branch, force=self.force)
        except BranchNotFound:
            if not self.missing_ok:
                raise
        return {"repo": self.repo, "branch": self.branch, "deleted": True}


class DatumflowGetFileOperator(DatumflowBaseOperator):
    """Read ``repo@ref:path``: its text (``encoding``), its bytes (``encoding=None``), or a copy at ``dest``."""

    template_fields: Sequence[str] = with_conn_id("repo", "ref", "path", "dest")

    def __init__(self, *, repo: str, path: str, ref: Any = "master", encoding: str | None = "utf-8",
                 dest: str | None = None, max_bytes: int = 1 << 20, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.repo, self.ref, self.path, self.encoding, self.dest = repo, ref, path, encoding, dest
        self.max_bytes = max_bytes

    def execute(self, context: Any) -> Any:
        client = self.hook.get_conn()
        commit = client.inspect_commit(self.repo, commit_id_of(self.ref))
        self.lineage_inputs.append({"repo": commit.repo, "branch": commit.branch, "commit": commit.id})
        if self.dest:
            with open(self.dest, "wb") as out:
                for block in client.open_file(self.repo, commit.id, self.path):
                    out.write(block)
            return {"repo": commit.repo, "commit": commit.id, "path": self.path, "dest": self.dest}
        info = client.inspect_file(self.repo, commit.id, self.path)
        if info.size is not None and info.size > self.max_bytes:
            raise self.fail(f"{self.repo}@{commit.id}:{self.path} is {info.size} bytes, more than max_bytes="
                            f"{self.max_bytes} for an XCom value; give dest= to copy it to a file instead")
        data = client.get_file(self.repo, commit.id, self.path)
        return data.decode(self.encoding) if self.encoding else data


class DatumflowGetCommitOperator(DatumflowBaseOperator):
    """Inspect a commit (a ref, a branch or an operator's reference); returns it with metadata and provenance."""

    template_fields: Sequence[str] = with_conn_id("repo", "ref")

    def __init__(self, *, repo: str, ref: Any = "master", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.repo, self.ref = repo, ref

    def execute(self, context: Any) -> dict[str, Any]:
        commit = self.hook.get_conn().inspect_commit(self.repo, commit_id_of(self.ref))
        return {**self.done(context, commit), "metadata": dict(commit.metadata), "error": commit.error,
                "provenance": list(commit.provenance), "description": commit.description}
