"""The pipeline registry: specs, their output repos and branches, spec commits, and the pipeline rows.

A pipeline's output branch is provenant on its input branches and on the
``spec`` branch of its output repo, and owned by the pipeline; each spec
version is a commit on that ``spec`` branch (``spec.json``), so the code is
provenance too. A new spec commit (or a ``run``) opens an AUTO commit on the
output branch, which becomes a job (:mod:`.discovery`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from datumflow.storage_service.core.db import insert_ignore
from datumflow.storage_service.core.pipeline_schema import pipeline_repos, spout_runs
from datumflow.storage_service.core.pipeline_schema import pipelines as pipelines_table
from datumflow.storage_service.errors import AlreadyExists, BranchInUse, InvalidArgument, PipelineNotFound, RepoNotFound
from datumflow.storage_service.model.core import BranchRef, Origin
from datumflow.storage_service.model.pipeline import PipelineInfo
from datumflow.storage_service.pipelines import tokens
from datumflow.storage_service.pipelines.cache import DatumCache
from datumflow.storage_service.pipelines.datums import input_branches
from datumflow.storage_service.pipelines.jobs import JobInfo, JobTable
from datumflow.storage_service.pipelines.lineage import forget_lineage
from datumflow.storage_service.pipelines.spec import CronInput, PfsInput, PipelineSpec, parse_spec
from datumflow.storage_service.store.store import Store
from sqlalchemy import delete, insert, select, update

__all__ = ["SPEC_BRANCH", "SPEC_FILE", "PipelineInfo", "PipelineNotFound", "PipelineRegistry"]

SPEC_BRANCH = "spec"
SPEC_FILE = "spec.json"


class PipelineRegistry:
    """Create, update, inspect, list, delete and run pipelines; read a job's spec."""

    def __init__(self, store: Store, jobs: JobTable, cache: DatumCache) -> None:
        self.store = store
        self.jobs = jobs
        self.cache = cache

    def create(
        self, spec: PipelineSpec | dict[str, Any] | str, *, update: bool = False, reprocess: bool = False
    ) -> PipelineInfo:
        spec = parse_spec(spec)
        exists = self.row(spec.name) is not None
        if exists and not update:
            raise AlreadyExists(f"pipeline {spec.name} already exists; use update")
        if exists:
            return self.update(spec, reprocess=reprocess)
        self._check_inputs(spec)
        # Creating the output repo claims the name: of two requests creating the same pipeline at
        # once, the one that loses gets "already exists" here and removes nothing the winner made.
        try:
            self.store.create_repo(spec.name, spec.description or f"output of pipeline {spec.name}")
        except AlreadyExists:
            if self.row(spec.name) is not None:
                raise AlreadyExists(f"pipeline {spec.name} already exists; use update") from None
            raise AlreadyExists(f"repo {spec.name} already exists; a pipeline creates its own output repo") from None
        try:
            self._made(spec.name, spec.name)
            self._wire_branches(spec)
            self._insert_row(spec)
            self._commit_spec(spec, reprocess=reprocess)
        except BaseException:
            self._remove(spec.name, spec, force=True)
            raise
        return self.inspect(spec.name)

    def update(self, spec: PipelineSpec | dict[str, Any] | str, *, reprocess: bool = False) -> PipelineInfo:
        spec = parse_spec(spec)
        old = self.inspect(spec.name)
        if old.output_branch != spec.output_branch:
            raise InvalidArgument(
                f"pipeline {spec.name}: output_branch cannot change ({old.output_branch} -> {spec.output_branch})"
            )
        self._check_inputs(spec)
        self._wire_branches(spec)
        self._commit_spec(spec, reprocess=reprocess)
        return self.inspect(spec.name)

    def inspect(self, name: str) -> PipelineInfo:
        row = self.row(name)
        if row is None:
            raise PipelineNotFound(f"pipeline {name} not found")
        spec = parse_spec(json.loads(row.spec))
        return PipelineInfo(
            name=row.name, description=spec.description, spec=spec.to_dict(), spec_commit=row.spec_commit,
            version=row.version, created=row.created, updated=row.updated, output_branch=spec.output_branch,
            inputs=[f"{r}@{b}" for r, b in input_branches(spec).values()],
            state="stopped" if row.stopped else "running",
            spout=self.spout_status(name) if spec.spout is not None else None,
        )

    def spout_status(self, name: str) -> dict[str, Any]:
        """How a spout pipeline's process goes (:mod:`.spout_runner` records it): state, pid, restarts…"""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(spout_runs).where(spout_runs.c.pipeline == name)).first()
        if row is None:
            return {"state": "starting", "pid": None, "started": None, "restarts": 0, "last_exit": None, "log": ""}
        state = row.state
        if state == "running" and (row.owner is None or (row.lease_until or 0) < time.time()):
            state = "lost"  # its supervisor died; another one takes it over
        return {"state": state, "pid": row.pid, "started": row.started, "restarts": row.restarts,
                "last_exit": row.last_exit, "log": row.log or "", "spec_commit": row.spec_commit}

    def names(self) -> list[str]:
        with self.store.engine.connect() as conn:
            return list(conn.execute(select(pipelines_table.c.name).order_by(pipelines_table.c.name)).scalars())

    def list_all(self) -> list[PipelineInfo]:
        return [self.inspect(n) for n in self.names()]

    def delete(self, name: str, *, force: bool = False) -> None:
        info = self.inspect(name)
        users = [p.name for p in self.list_all() if any(i.split("@")[0] == name for i in p.inputs)]
        if users and not force:
            raise BranchInUse(f"pipeline {name} is an input of {', '.join(users)}; delete those first or force")
        self._remove(name, parse_spec(info.spec), force=force)

    def set_stopped(self, name: str, stopped: bool) -> PipelineInfo:
        """``pipeline stop`` / ``start``: a stopped pipeline gets no jobs, cron ticks or spout process."""
        with self.store.engine.begin() as conn:
            moved = conn.execute(
                update(pipelines_table).where(pipelines_table.c.name == name).values(stopped=int(stopped))
            ).rowcount
        if moved != 1:
            raise PipelineNotFound(f"pipeline {name} not found")
        return self.inspect(name)

    def is_stopped(self, name: str) -> bool:
        row = self.row(name)
        if row is None:
            raise PipelineNotFound(f"pipeline {name} not found")
        return bool(row.stopped)

    def run(self, name: str, *, reprocess: bool = False) -> str:
        info = self.inspect(name)
        commit = self.store.start_commit(
            name, info.output_branch, origin=Origin.AUTO, metadata={"reprocess": reprocess},
            description=f"run of pipeline {name}",
        )
        return commit.id

    # -- what jobs read --------------------------------------------------------------

    def output_branches(
        self, pipeline: str | None = None, *, running: bool = False
    ) -> list[tuple[str, str, bool]]:
        """(pipeline, output branch, is a spout) of one pipeline or of all (``running``: not the stopped ones)."""
        with self.store.engine.connect() as conn:
            query = select(pipelines_table.c.name, pipelines_table.c.spec)
            if pipeline is not None:
                query = query.where(pipelines_table.c.name == pipeline)
            if running:
                query = query.where(pipelines_table.c.stopped == 0)
            rows = conn.execute(query).all()
        specs = [(name, json.loads(spec)) for name, spec in rows]
        return [(name, spec.get("output_branch", "master"), spec.get("spout") is not None) for name, spec in specs]

    def spouts(self) -> list[tuple[str, str, bool]]:
        """(name, spec commit, stopped) of every spout pipeline."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(
                pipelines_table.c.name, pipelines_table.c.spec, pipelines_table.c.spec_commit,
                pipelines_table.c.stopped,
            )).all()
        return [(r.name, r.spec_commit, bool(r.stopped)) for r in rows if json.loads(r.spec).get("spout") is not None]

    def spec_at(self, pipeline: str, spec_commit: str) -> PipelineSpec:
        """The spec a spec commit holds."""
        return parse_spec(json.loads(self.store.get_file(pipeline, spec_commit, SPEC_FILE)))

    def job_spec(self, job: JobInfo) -> PipelineSpec:
        if job.spec_commit is None:
            raise InvalidArgument(f"job {job.id} has no spec commit")
        return self.spec_at(job.pipeline, job.spec_commit)

    def row(self, name: str) -> Any:
        with self.store.engine.connect() as conn:
            return conn.execute(select(pipelines_table).where(pipelines_table.c.name == name)).first()

    def last_ticks(self, name: str) -> dict[str, str]:
        """When each cron input of the pipeline last ticked (ISO times by input name)."""
        row = self.row(name)
        return dict(json.loads(row.last_tick or "{}")) if row is not None else {}

    def claim_ticks(self, name: str, seen: dict[str, str], ticks: dict[str, str]) -> bool:
        """Record new tick times if they are still ``seen`` (compare-and-swap); False if another loop won."""
        with self.store.engine.begin() as conn:
            row = conn.execute(select(pipelines_table.c.last_tick).where(pipelines_table.c.name == name)).first()
            if row is None or dict(json.loads(row.last_tick or "{}")) != seen:
                return False
            same = (pipelines_table.c.last_tick.is_(None) if row.last_tick is None
                    else pipelines_table.c.last_tick == row.last_tick)
            moved = conn.execute(
                update(pipelines_table).where(pipelines_table.c.name == name, same).values(last_tick=json.dumps(ticks))
            ).rowcount
        return bool(moved == 1)

    # -- creating ---------------------------------------------------------------------

    def _insert_row(self, spec: PipelineSpec) -> None:
        now = time.time()
        with self.store.engine.begin() as conn:
            conn.execute(insert(pipelines_table), {
                "name": spec.name, "spec": spec.to_json(), "spec_commit": "", "version": 0,
                "created": now, "updated": now, "last_tick": json.dumps({}), "stopped": 0,
            })

    def _check_inputs(self, spec: PipelineSpec) -> None:
        for leaf in spec.leaves():
            if isinstance(leaf, PfsInput):
                try:
                    self.store.inspect_repo(leaf.repo)
                except RepoNotFound:
                    raise RepoNotFound(f"pipeline {spec.name}: input repo {leaf.repo} does not exist") from None
        cycle = self._cycle(spec)
        if cycle:
            raise InvalidArgument(f"pipeline {spec.name} would make a cycle: {' -> '.join(cycle)}")

    def _cycle(self, spec: PipelineSpec) -> list[str] | None:
        """The path back to ``spec`` through pipeline inputs, if one exists."""
        graph = {p.name: [i.split("@")[0] for i in p.inputs] for p in self.list_all()}
        graph[spec.name] = [r for r, _ in input_branches(spec).values()]

        def walk(node: str, path: list[str]) -> list[str] | None:
            for up in graph.get(node, []):
                if up == spec.name:
                    return [*path, up]
                if up not in path:
                    found = walk(up, [*path, up])
                    if found:
                        return found
            return None

        found = walk(spec.name, [spec.name])
        return list(reversed(found)) if found else None

    def _wire_branches(self, spec: PipelineSpec) -> None:
        for leaf in spec.leaves():
            if isinstance(leaf, CronInput):
                try:
                    self.store.create_repo(spec.cron_repo(leaf), f"cron ticks of {spec.name}")
                    self._made(spec.name, spec.cron_repo(leaf))
                except AlreadyExists:
                    pass  # someone's repo: the service checked that the caller owns it
        ups = []
        for repo, branch in input_branches(spec).values():
            if branch not in {b.name for b in self.store.list_branches(repo)}:
                self.store.create_branch(repo, branch)
            if BranchRef(repo, branch) not in ups:  # one branch read twice (a self-join) is one provenance
                ups.append(BranchRef(repo, branch))
        names = {b.name for b in self.store.list_branches(spec.name)}
        if SPEC_BRANCH not in names:
            self.store.create_branch(spec.name, SPEC_BRANCH)
        ups.append(BranchRef(spec.name, SPEC_BRANCH))
        self.store.create_branch(spec.name, spec.output_branch, provenance=ups, owner=spec.name)

    def _commit_spec(self, spec: PipelineSpec, *, reprocess: bool) -> None:
        version = (self.row(spec.name).version or 0) + 1
        with self.store.writing(
            spec.name, SPEC_BRANCH, origin=Origin.SPEC, metadata={"version": version, "reprocess": reprocess},
            description=f"pipeline {spec.name} spec v{version}", what="spec upload",
        ) as commit:
            self.store.put_file(spec.name, commit.id, SPEC_FILE, spec.to_json().encode())
        with self.store.engine.begin() as conn:
            conn.execute(
                update(pipelines_table).where(pipelines_table.c.name == spec.name)
                .values(spec=spec.to_json(), spec_commit=commit.id, version=version, updated=time.time())
            )

    def _remove(self, name: str, spec: PipelineSpec, *, force: bool) -> None:
        forget_lineage(self.store.engine, name)
        tokens.revoke_pipeline(self.store.engine, name)  # a spout's process can write no more, at once
        with self.store.engine.begin() as conn:
            conn.execute(delete(spout_runs).where(spout_runs.c.pipeline == name))
        with self.store.engine.begin() as conn:
            conn.execute(delete(pipelines_table).where(pipelines_table.c.name == name))
        self.jobs.delete_pipeline(name)
        self.cache.forget(name)
        made = self.repos_made(name)
        with self.store.engine.begin() as conn:
            conn.execute(delete(pipeline_repos).where(pipeline_repos.c.pipeline == name))
        if not made:  # a pipeline from before its repos were recorded: its default-named cron repos
            made = {spec.cron_repo(leaf) for leaf in spec.leaves() if isinstance(leaf, CronInput) and not leaf.repo}
        repos = {r.name for r in self.store.list_repos()}
        if name in repos:
            self.store.delete_repo(name, force=True)
        for repo in sorted(made - {name}):
            if repo in repos:
                self.store.delete_repo(repo, force=force)

    def repos_made(self, name: str) -> set[str]:
        """The repos pipeline ``name`` created (its output repo, its own cron repos): only those die with it."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(pipeline_repos.c.repo).where(pipeline_repos.c.pipeline == name))
            return set(rows.scalars())

    def _made(self, pipeline: str, repo: str) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(insert_ignore(self.store.engine, pipeline_repos), {"pipeline": pipeline, "repo": repo})
