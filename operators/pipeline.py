"""Deploy a pipeline (spec file or dict) and run one of its jobs, waiting for it (deferrable)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from datumflow.plugin._compat import default_deferrable, deprecated_alias
from datumflow.plugin.stamped import StampedStore
from datumflow.plugin.triggers import CommitFinishedTrigger

from .base import DatumflowBaseOperator, with_conn_id

__all__ = [
    "CreatePipelineOperator",
    "DatumflowCreatePipelineOperator",
    "DatumflowRunPipelineOperator",
    "RunPipelineOperator",
    "pipelines_for",
]


def pipelines_for(operator: DatumflowBaseOperator, context: Any) -> Any:
    """The hook's pipelines engine; over an embedded store, one stamping every commit it makes with this task.

    Over HTTP the service makes the commits; the operators pass the task's metadata on the
    commits they open themselves (a job's output commit).
    """
    engine = operator.hook.pipelines()
    if not operator.hook.embedded:
        return engine
    from typing import cast

    from datumflow.storage_service.pipelines.engine import Pipelines
    from datumflow.storage_service.store.store import Store

    # StampedStore forwards every Store call (adding the task's metadata to commits): a Store to the engine.
    return Pipelines(cast(Store, StampedStore(engine.store, operator.metadata(context))))


def load_spec(spec: Any) -> Any:
    """A spec dict, YAML/JSON text, or the path of a file holding exactly one spec."""
    if isinstance(spec, (str, os.PathLike)) and os.path.isfile(spec):
        with open(spec) as fh:
            return fh.read()
    return spec


class DatumflowCreatePipelineOperator(DatumflowBaseOperator):
    """Create a pipeline, or update it if it exists (``update=True``); returns its spec commit."""

    template_fields: Sequence[str] = with_conn_id("spec")
    template_ext: Sequence[str] = ()

    def __init__(self, *, spec: Any, update: bool = True, reprocess: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec, self.update, self.reprocess = spec, update, reprocess

    def execute(self, context: Any) -> dict[str, Any]:
        engine = pipelines_for(self, context)
        info = engine.create_pipeline(load_spec(self.spec), update=self.update, reprocess=self.reprocess)
        commit = engine.store.inspect_commit(info.name, info.spec_commit)
        return {**self.done(context, commit), "pipeline": info.name, "version": info.version}


class DatumflowRunPipelineOperator(DatumflowBaseOperator):
    """Start a job of ``pipeline`` on its current inputs and wait for its output commit.

    ``run_jobs``: over an embedded store, run the pipeline's ready jobs on this
    worker first (it has no background worker); otherwise the task defers
    until whoever runs jobs has finished the output commit.
    """

    template_fields: Sequence[str] = with_conn_id("pipeline")

    def __init__(self, *, pipeline: str, reprocess: bool = False, run_jobs: bool = False, wait: bool = True,
                 deferrable: bool | None = None, poll_interval: float = 2.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline, self.reprocess, self.run_jobs, self.wait = pipeline, reprocess, run_jobs, wait
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.poll_interval = poll_interval

    def execute(self, context: Any) -> dict[str, Any]:
        from datumflow.storage_service.model.core import Origin

        engine = pipelines_for(self, context)
        info = engine.inspect_pipeline(self.pipeline)
        # Pipelines.run_pipeline, plus the task's metadata on the output commit.
        commit = engine.store.start_commit(
            info.name, info.output_branch, origin=Origin.AUTO,
            metadata=self.metadata(context, {"reprocess": self.reprocess}),
            description=f"run of pipeline {info.name} by {self.task_id}",
        )
        if self.run_jobs and self.hook.embedded:  # a service runs its jobs itself
            engine.process(pipeline=info.name)
        commit = engine.store.inspect_commit(info.name, commit.id)
        if commit.is_finished or not self.wait:
            return self._result(context, commit)
        if self.deferrable:
            trigger = CommitFinishedTrigger(repo=info.name, commit=commit.id, poll_interval=self.poll_interval,
                                            datumflow_conn_id=self.datumflow_conn_id)
            self.defer(trigger=trigger, method_name="execute_complete")
        return self._result(context, engine.store.wait_commit(info.name, commit.id))

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        if event.get("status") != "success":
            raise self.fail(f"pipeline {self.pipeline}: {event.get('message')}")
        ref = event["commit"]
        return self._result(context, self.hook.get_conn().inspect_commit(ref["repo"], ref["commit"]))

    def _result(self, context: Any, commit: Any) -> dict[str, Any]:
        if commit.error:
            raise self.fail(f"pipeline {self.pipeline}: output commit {commit} failed: {commit.error}")
        return {**self.done(context, commit), "datums": commit.metadata.get("datums")}


CreatePipelineOperator = deprecated_alias(DatumflowCreatePipelineOperator, "CreatePipelineOperator")
RunPipelineOperator = deprecated_alias(DatumflowRunPipelineOperator, "RunPipelineOperator")
