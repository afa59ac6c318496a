"""Run a Python callable once per datum of an input commit, on the Airflow worker.

The datum logic is the pipelines engine's: the task is a pipeline (named
``output_repo``) whose transform names the callable and hashes its source,
so the engine splits the input commit into datums by the glob, skips every
datum its cache has seen succeed, records lineage and writes one output
commit whose provenance is the input commit and the spec commit (the code).
The worker only runs the pending datums: ``plan_job`` → for each datum
``fetch_datum``, the callable, ``upload_datum`` → ``complete_job``.

Re-running the task on the same input commit with the same code returns the
output commit of the earlier successful run (nothing runs); ``reprocess=True``
runs every datum again into a new output commit.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datumflow.plugin._compat import deprecated_alias

from .base import DatumflowBaseOperator, with_conn_id
from .pipeline import pipelines_for

__all__ = [
    "Datum",
    "DatumDecoratedOperator",
    "DatumPythonOperator",
    "DatumflowDatumPythonOperator",
    "datum_task",
]


@dataclass(frozen=True)
class Datum:
    """What the callable gets: the datum's id, its input files (local paths) and the output folder."""

    id: str
    input_dir: Path  # <pfs>/<input name>: the input commit's files of this datum, at their paths
    files: tuple[Path, ...]
    out: Path  # write the datum's output files here


class DatumflowDatumPythonOperator(DatumflowBaseOperator):
    """``python_callable(datum, **op_kwargs)`` for each new datum of ``input_repo@input_commit``.

    Returns the output commit's reference with the datum counters
    (``total``, ``processed``, ``skipped``).
    """

    template_fields: Sequence[str] = with_conn_id("input_repo", "input_branch", "input_commit", "glob",
                                                  "output_repo", "op_kwargs")

    def __init__(self, *, python_callable: Callable[..., Any], input_repo: str, output_repo: str,
                 input_branch: str = "master", input_commit: Any = None, glob: str = "/*",
                 reprocess: bool = False, op_kwargs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not callable(python_callable):
            raise TypeError("python_callable must be callable")
        self.python_callable, self.input_repo, self.output_repo = python_callable, input_repo, output_repo
        self.input_branch, self.input_commit, self.glob = input_branch, input_commit, glob
        self.reprocess, self.op_kwargs = reprocess, op_kwargs or {}

    def spec(self) -> dict[str, Any]:
        # Imported here, not at the top: a DAG file using @task.datum parses without the engine.
        from datumflow.storage_service.pipelines.code import arguments_hash, code_hash
        from datumflow.storage_service.pipelines.engine import EXTERNAL_WORKER

        fn = self.python_callable
        return {
            "pipeline": {"name": self.output_repo},
            "description": f"Airflow task {self.dag_id}.{self.task_id}",
            "input": {"pfs": {"repo": self.input_repo, "branch": self.input_branch, "glob": self.glob}},
            "transform": {"image": "airflow", "cmd": ["airflow-datum", f"{fn.__module__}:{fn.__qualname__}"],
                          "env": {"DATUMFLOW_CODE_HASH": code_hash(fn), "DATUMFLOW_ARGS_HASH": arguments_hash(
                              self._call_kwargs()), EXTERNAL_WORKER: "airflow"}},
        }

    def execute(self, context: Any) -> dict[str, Any]:
        from datumflow.storage_service.errors import DatumflowError
        from datumflow.storage_service.pipelines.driver import ensure_pipeline, find_or_open_job, run_datums

        engine = pipelines_for(self, context)
        try:
            info = ensure_pipeline(engine, self.spec())
            input_id = self._input_commit(engine)
            self.lineage_inputs.append({"repo": self.input_repo, "branch": self.input_branch, "commit": input_id})
            job = find_or_open_job(engine, info, {self.input_repo: input_id}, reprocess=self.reprocess,
                                   metadata=self.metadata(context), description=f"run by {self.task_id}")
            driven = run_datums(engine, job, lambda job_id, d: self._run(engine, job_id, d),
                                metadata=self.metadata(context))
        except DatumflowError as exc:
            raise self.fail(f"{type(exc).__name__}: {exc}") from exc
        job = driven.job
        if driven.failures or job.state.value != "success":  # the job and its output commit were failed
            named = "; ".join(driven.failures) or str(job.reason)
            raise self.fail(f"{len(driven.failures)} of {job.total} datum(s) failed: {named} — output commit "
                            f"{self.output_repo}@{job.output_commit} was failed, nothing partial is visible")
        commit = engine.store.inspect_commit(job.pipeline, job.output_commit)
        self.log.info("datums of %s: %s%s", commit, driven.counters,
                      " (reused the earlier run)" if driven.reused else "")
        return {**self.done(context, commit), "datums": driven.counters, "reused": driven.reused}

    def _call_kwargs(self) -> dict[str, Any]:
        """The callable's keyword arguments, as rendered for this run (the datum is passed on its own)."""
        return {k: v for k, v in self.op_kwargs.items() if k != "datum"}

    def _input_commit(self, engine: Any) -> str:
        from .base import commit_id_of

        ref = commit_id_of(self.input_commit) if self.input_commit else self.input_branch
        return str(engine.store.resolve(self.input_repo, ref))

    def _run(self, engine: Any, job_id: str, info: Any) -> str | None:
        """Run the callable on one datum and upload its output; on an error record it, return what failed."""
        from datumflow.storage_service.pipelines import worker_steps

        with tempfile.TemporaryDirectory(prefix="datumflow-datum-") as tmp:
            pfs = Path(tmp)
            worker_steps.fetch_datum(engine, job_id, info.id, str(pfs))
            input_dir = pfs / self.input_repo
            files = tuple(sorted(p for p in input_dir.rglob("*") if p.is_file()))
            try:
                self.python_callable(Datum(info.id, input_dir, files, pfs / "out"), **self._call_kwargs())
            except Exception as exc:
                cause = f"{type(exc).__name__}: {exc}"
                names = ", ".join(str(f.relative_to(input_dir)) for f in files) or "no files"
                engine.fail_datum(job_id, info.id, cause, log=f"Airflow task {self.task_id}: {cause}",
                                  tries=info.tries + 1)
                self.log.error("datum %s (%s) failed: %s", info.id[:12], names, cause)
                return f"datum {info.id[:12]} ({names}): {cause}"
            worker_steps.upload_datum(engine, job_id, info.id, str(pfs), log=f"ran in Airflow task {self.task_id}")
        return None


from airflow.sdk.bases.decorator import DecoratedOperator, task_decorator_factory  # noqa: E402 - after the operator


class DatumDecoratedOperator(DecoratedOperator, DatumflowDatumPythonOperator):  # type: ignore[misc]
    """The operator behind ``@task.datum``."""

    custom_operator_name = "@task.datum"
    template_fields: Sequence[str] = DatumflowDatumPythonOperator.template_fields

    def __init__(self, *, python_callable: Callable[..., Any], op_args: Any = None, op_kwargs: Any = None,
                 **kwargs: Any) -> None:
        if op_args:
            raise TypeError("@task.datum callables take the datum, then keyword arguments only")
        # DecoratedOperator checks the call against the signature: the datum comes at run time.
        op_kwargs = {**(op_kwargs or {}), "datum": None}
        upstream = {"python_callable": python_callable, "op_kwargs": op_kwargs}
        super().__init__(python_callable=python_callable, op_args=op_args, op_kwargs=op_kwargs,
                         kwargs_to_upstream=upstream, **kwargs)


def datum_task(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
    """``@task.datum(input_repo=..., output_repo=...)``: the TaskFlow form of :class:`DatumPythonOperator`."""
    return task_decorator_factory(python_callable=python_callable, decorated_operator_class=DatumDecoratedOperator,
                                  **kwargs)


DatumPythonOperator = deprecated_alias(DatumflowDatumPythonOperator, "DatumPythonOperator")
