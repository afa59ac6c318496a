"""Ending a job: its output commit finished with the union of the datum outputs, or failed.

Either the commit gets every datum's output (several datums writing one path
are merged in datum id order, as Pachyderm merges them), per-file lineage
and the datum counters, and the datums that ran enter the datum cache; or
the commit fails, naming the first failed datum and the end of its log, and
nothing of the job is visible.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.model.core import CommitState
from datumflow.storage_service.pipelines.cache import CachedOutput, DatumCache
from datumflow.storage_service.pipelines.jobs import REMOVED, DatumState, JobInfo, JobState, JobTable
from datumflow.storage_service.pipelines.lineage import lineage_writers, record_lineage
from datumflow.storage_service.pipelines.outputs import merge_parts
from datumflow.storage_service.store import queries
from datumflow.storage_service.store.store import Store

__all__ = ["JobCompletion"]


class JobCompletion:
    def __init__(self, store: Store, jobs: JobTable, cache: DatumCache) -> None:
        self.store = store
        self.jobs = jobs
        self.cache = cache

    def complete(self, job: JobInfo, *, metadata: Mapping[str, Any] | None = None) -> JobInfo:
        """Finish the output commit from the recorded datum outputs (or fail the job if a datum failed)."""
        results = self.jobs.datum_outputs(job.id)
        failed = [d for d, state, _ in results if state in (DatumState.FAILED.value, DatumState.PENDING.value)]
        if failed:
            return self.fail(job, JobState.FAILURE, self._failure_reason(job, failed))
        write = self._write_union if job.base_job is None else self._write_delta
        writers = write(job, results)
        record_lineage(self.store.engine, job.output_commit, job.id, writers)
        counters = self.jobs.counters(job.id)
        self.store.finish_commit(
            job.pipeline, job.output_commit,
            metadata={**(metadata or {}), "job": job.id, "pipeline": job.pipeline, "datums": counters},
        )
        ran = [(d, o) for d, state, o in results if state == DatumState.SUCCESS.value]
        hashes = self.jobs.datum_hashes(job.id) if ran else {}
        self.cache.store(job.pipeline, [CachedOutput(hashes[d], o, job.id, d) for d, o in ran])
        return self.jobs.finish(job.id, JobState.SUCCESS, counters=counters)  # no datum changed since

    def fail(self, job: JobInfo, state: JobState, reason: str) -> JobInfo:
        """End the job in ``state``; its output commit, if still open, fails with the reason's first line."""
        commit = self.store.inspect_commit(job.pipeline, job.output_commit)
        if commit.state is CommitState.OPEN:
            first_line = reason.splitlines()[0] if reason else "job failed"
            self.store.finish_commit(
                job.pipeline, job.output_commit, error=f"job {job.id} {state.value}: {first_line}",
                metadata={"job": job.id, "pipeline": job.pipeline},
            )
        return self.jobs.finish(job.id, state, reason=reason)

    def _write_union(self, job: JobInfo, results: list[tuple[str, str, dict[str, Any]]]) -> dict[str, list[str]]:
        """The output commit made the union of every datum's output; returns {path: writers}."""
        union: dict[str, Any] = {}
        writers: dict[str, list[str]] = {}
        parts: dict[str, list[Any]] = {}
        for datum_id, _, outputs in results:  # in datum id order
            for path, entry in outputs.items():
                if path in writers:  # several datums wrote one path: Pachyderm merges the parts
                    parts.setdefault(path, [union[path]]).append(entry)
                    writers[path].append(datum_id)
                else:
                    union[path], writers[path] = entry, [datum_id]
        for path, pieces in parts.items():
            union[path] = merge_parts(self.store, pieces)
        self._write_output(job, union)
        return writers

    def _write_delta(self, job: JobInfo, results: list[tuple[str, str, dict[str, Any]]]) -> dict[str, list[str]]:
        """The output commit made the base job's (its root's) output with only the paths the datums
        that differ wrote, or wrote there before, recomputed; returns {path: writers} of those paths."""
        assert job.base_job is not None
        root = self.jobs.get(job.base_job)
        own = {d: out for d, state, out in results if state != REMOVED}
        changed = {d for d, _, _ in results}
        mine: dict[str, list[str]] = defaultdict(list)
        for d, out in own.items():  # in datum id order
            for path in out:
                mine[path].append(d)
        touched = set(mine)
        for out in self.jobs.outputs_of(root.id, changed).values():  # what the root's versions wrote
            touched.update(out)
        before = lineage_writers(self.store.engine, root.output_commit, touched)
        kept = {p: [d for d in ids if d not in changed] for p, ids in before.items()}
        entries = self.jobs.outputs_of(root.id, {d for ids in kept.values() for d in ids})
        edits: dict[str, Any] = {}
        writers: dict[str, list[str]] = {}
        for path in sorted(touched):
            ids = sorted(kept.get(path, []) + mine.get(path, []))
            if not ids:
                edits[path] = None
                continue
            pieces = [own[d][path] if d in own else entries[d][path] for d in ids]
            edits[path] = pieces[0] if len(pieces) == 1 else merge_parts(self.store, pieces)
            writers[path] = ids
        if self.store.inspect_commit(root.pipeline, root.output_commit).state is not CommitState.FINISHED:
            raise InvalidArgument(f"the output commit of base job {root.id} is gone; run the pipeline again")
        root_tree = queries.commit_root(self.store, root.output_commit)

        def edits_for(current: str | None) -> dict[str, Any]:
            out = {path: entry for path, _, entry in self.store.tree.diff(current, root_tree)}
            out.update(edits)
            return out

        if edits_for(queries.commit_root(self.store, job.output_commit)):
            self.store.write_entries(job.pipeline, job.output_commit, edits_for, verb="job output")
        return writers

    def _write_output(self, job: JobInfo, union: dict[str, Any]) -> None:
        root = queries.commit_root(self.store, job.output_commit)
        current = dict(queries.entries_under(self.store, root))
        edits: dict[str, Any] = {p: e for p, e in union.items() if current.get(p) != e}
        edits.update({p: None for p in current if p not in union})
        if edits:
            self.store.write_entries(job.pipeline, job.output_commit, lambda _: edits, verb="job output")

    def _failure_reason(self, job: JobInfo, failed: list[str]) -> str:
        first = self.jobs.datum(job.id, failed[0])
        log = (first.log or "").strip()[-2000:]
        more = f" (and {len(failed) - 1} more datum(s))" if len(failed) > 1 else ""
        return f"datum {self._describe(job, failed[0])} failed: {first.error}{more}\n--- datum log ---\n{log}"

    def _describe(self, job: JobInfo, datum_id: str) -> str:
        info = self.jobs.datum(job.id, datum_id)
        where = ", ".join(f"{i['name']}:/{i['path']}" for i in info.inputs)
        return f"{datum_id[:12]} ({where})"
