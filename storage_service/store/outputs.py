"""Output branches: a pipeline's output branch is written by its jobs alone.

As in Pachyderm ("cannot start a commit on an output branch"), a branch a
pipeline owns (``create_branch(owner=PIPELINE)``, which the pipeline
registry does for every output branch) refuses what an ordinary writer
does — a commit started on it, a put, delete or copy aimed at it, a merge
into it, a write into its job's open output commit — with
:class:`~..errors.OutputBranch`.
The refusal lives where every surface's writes meet, so the embedded store,
HTTP, the S3 gateway, fsspec and the CLI refuse alike.

What still lands:

- commits opened by branch provenance or by running the pipeline
  (origin ``auto``): each is a job, and only the job writes its content
  (the ``job output`` verb of the completion step, run by the service's job
  loop or by an adapter's ``complete_job``);
- a spout pipeline's commits (origin ``spout``) on its own output branch;
- an owner's explicit repair: ``force=True`` on the write (the service asks
  for the owner role on the repo), e.g. ``datumflow put --force``; the
  service passes ``force`` for a spout pipeline's process too, which writes
  its output with the pipeline's own token
  (:func:`~..service.routes.access.may_force`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from datumflow.storage_service.core.pipeline_schema import pipelines
from datumflow.storage_service.errors import OutputBranch
from datumflow.storage_service.model.core import Origin
from datumflow.storage_service.store.base import StoreBase
from sqlalchemy import Connection, select

__all__ = ["JOB_OUTPUT", "OutputBranches", "forcing"]

JOB_OUTPUT = "job output"  # the verb of the one writer of a pipeline's open output commit

_FORCED: ContextVar[bool] = ContextVar("datumflow_output_write_forced", default=False)


@contextmanager
def forcing(force: bool) -> Iterator[None]:
    """Within the block, writes to output branches are an owner's repair (``force``) and land."""
    if not force:
        yield
        return
    token = _FORCED.set(True)
    try:
        yield
    finally:
        _FORCED.reset(token)


class OutputBranches(StoreBase):
    """The output-branch refusals of :class:`Store` (a mixin)."""

    def _refuse_output(self, conn: Connection, repo: str, branch: str | None, what: str,
                       origin: Origin = Origin.USER) -> None:
        """Raise OutputBranch if ``branch`` is a pipeline's output and this writer is not the pipeline."""
        if branch is None or origin is Origin.AUTO or _FORCED.get():
            return
        row = self._branch_row(conn, repo, branch)
        owner = row.owner if row is not None else None
        if not owner or (origin is Origin.SPOUT and _is_spout(conn, owner)):
            return
        raise OutputBranch(
            f"cannot {what} on {repo}@{branch}: it is the output branch of pipeline {owner}, written by the "
            f"pipeline's jobs alone; write to its inputs (or another branch), or repair it as the repo's owner "
            f"with force"
        )

    def _refuse_job_output(self, repo: str, commit_id: str, verb: str) -> None:
        """A job's open output commit is written by the job alone: its datums' union replaces anything else."""
        if verb == JOB_OUTPUT or _FORCED.get():
            return
        commit = self.inspect_commit(repo, commit_id)
        if commit.origin is not Origin.AUTO or not commit.branch:
            return
        with self.engine.connect() as conn:
            row = self._branch_row(conn, repo, commit.branch)
        owner = row.owner if row is not None else None
        if owner:
            raise OutputBranch(
                f"commit {repo}@{commit_id} is the open output commit of a job of pipeline {owner}: only the job "
                f"writes it (the union of its datums' /pfs/out replaces anything else written there); write into "
                f"another branch, or produce the file from the pipeline's transform"
            )


def _is_spout(conn: Connection, pipeline: str) -> bool:
    spec = conn.execute(select(pipelines.c.spec).where(pipelines.c.name == pipeline)).scalar()
    return spec is not None and "spout" in json.loads(spec)
