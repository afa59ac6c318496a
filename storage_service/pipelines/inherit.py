"""Jobs that carry their base job's datums over by reference, and touch only what changed.

A job's **base** is the newest successful job of its pipeline whose datums are
made and hashed the same way (the same input spec, transform and salt); a job
forced to reprocess (``reprocess``, ``reprocess_spec: every_job``) has none.
The datums that can differ from the base's are found from the index diff of
the base's input commits against the job's, which costs O(changes):

- a ``pfs`` or ``cron`` input: the glob matches that hold a changed path (a
  file added, changed or deleted), computed again in the new commit;
- unchanged input commits (a re-run): nothing, whatever the input;
- ``cross``, ``union``, ``join``, ``group``: every datum is computed and its
  hash compared with the base's (a delta of a product or of a key grouping
  is not derived; the comparison is exact, and only the datums that differ
  are written).

The job then records only those datums (planned against the datum cache as
any other: skipped on a hit, else run) and a ``removed`` row for each datum
of the base it no longer has; every other datum is the base's, read through
its rows (:class:`~.jobs.JobTable`). Every job inherits from a *root* job that
holds all its rows, so a read follows one reference: a job whose base has a
base of its own takes the base's root and copies the base's rows (its
difference from the root, itself O(changes since the root)). When those rows
would be more than half of the job's datums the job records all of them
instead and becomes a root.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from datumflow.storage_service.errors import DatumflowError, NotFound
from datumflow.storage_service.model.core import CommitState
from datumflow.storage_service.pipelines.cache import DatumCache
from datumflow.storage_service.pipelines.datums import (
    Datum,
    DatumInput,
    compute_datums,
    datum_hasher,
    files_under,
)
from datumflow.storage_service.pipelines.globs import Glob, compile_glob
from datumflow.storage_service.pipelines.jobs import REMOVED, DatumState, JobInfo, JobState, JobTable, commit_map
from datumflow.storage_service.pipelines.planning import plan_datums
from datumflow.storage_service.pipelines.spec import Input, PfsInput, PipelineSpec
from datumflow.storage_service.store import queries
from datumflow.storage_service.store.store import Store

__all__ = ["plan_job"]

_CANDIDATES = 8  # successful jobs looked at, newest first, for one made the same way
Row = tuple[str, str, str, str, "str | None", "str | None"]  # as JobTable.add_datums takes them


@dataclass(frozen=True)
class _Delta:
    root: str  # the job whose rows hold the inherited datums
    rows: list[Row]
    pending: list[Datum]
    total: int


def plan_job(
    store: Store, jobs: JobTable, cache: DatumCache, job: JobInfo, spec: PipelineSpec,
    spec_of: Callable[[JobInfo], PipelineSpec], *, pool_from: str | None = None,
) -> list[Datum]:
    """Record the job's datums, by reference to its base job's when it has one; returns those to run."""
    forced = job.reprocess or spec.reprocess_spec == "every_job"
    delta = None if forced or spec.input is None else _delta(store, jobs, cache, job, spec, spec_of)
    if delta is None:
        return plan_datums(jobs, cache, job, spec, compute_datums(store, spec, job.inputs), pool_from=pool_from)
    jobs.add_datums(job.id, delta.rows, pool_from=pool_from, base_job=delta.root, total=delta.total)
    return delta.pending


def _made_alike(a: PipelineSpec, b: PipelineSpec) -> bool:
    """Whether two specs split inputs into the same datums and hash them the same way."""
    da, db = a.to_dict(), b.to_dict()
    return (da.get("input"), da.get("transform"), a.salt) == (db.get("input"), db.get("transform"), b.salt)


def _base(
    store: Store, jobs: JobTable, job: JobInfo, spec: PipelineSpec, spec_of: Callable[[JobInfo], PipelineSpec]
) -> JobInfo | None:
    for other in jobs.list_jobs(job.pipeline, states=[JobState.SUCCESS], limit=_CANDIDATES):
        if other.id == job.id or other.spec_commit is None:
            continue
        if not _output_kept(store, other) or (other.base_job and not _output_kept(store, jobs.get(other.base_job))):
            continue  # an output commit deleted since: its tree cannot be built on
        try:
            if other.spec_commit == job.spec_commit or _made_alike(spec_of(other), spec):
                return other
        except DatumflowError:  # its spec commit is gone: not a base
            continue
    return None


def _delta(
    store: Store, jobs: JobTable, cache: DatumCache, job: JobInfo, spec: PipelineSpec,
    spec_of: Callable[[JobInfo], PipelineSpec],
) -> _Delta | None:
    base = _base(store, jobs, job, spec, spec_of)
    if base is None:
        return None
    root = jobs.get(base.base_job) if base.base_job else base
    to_job = commit_map(base.inputs, job.inputs)
    if to_job is None or commit_map(root.inputs, job.inputs) is None:
        return None  # two inputs at one commit that part ways: an inherited datum's commit is ambiguous
    upserts, gone = _changes(store, jobs, spec, base, job)
    hasher = datum_hasher(spec.transform, spec.salt)
    before = jobs.effective_hashes(base.id, [*upserts, *gone])
    hashes = {i: hasher(d) for i, d in upserts.items()}
    upserts = {i: d for i, d in upserts.items() if before.get(i) != hashes[i]}
    gone = {i for i in gone if i in before}
    total = base.total + sum(1 for i in upserts if i not in before) - len(gone)

    rows: dict[str, Row] = {}
    if base.base_job is not None:  # the base's own difference from the root, now this job's
        for i, h, state, inputs, outputs, reused in jobs.own_rows(base.id):
            if state == REMOVED:
                rows[i] = (i, "", REMOVED, "[]", None, None)
            else:
                reused = base.id if state == DatumState.SUCCESS.value else reused
                rows[i] = (i, h, DatumState.SKIPPED.value, _at(inputs, to_job), outputs, reused)
    in_root = set(jobs.outputs_of(root.id, gone))
    for i in gone:
        if i in in_root:
            rows[i] = (i, "", REMOVED, "[]", None, None)
        else:
            rows.pop(i, None)
    cached = cache.lookup_stored(job.pipeline, [hashes[i] for i in upserts])
    pending = []
    for i, d in upserts.items():
        hit = cached.get(hashes[i])
        if hit is not None:
            rows[i] = (i, hashes[i], DatumState.SKIPPED.value, d.inputs_json(), hit[0], hit[1])
        else:
            rows[i] = (i, hashes[i], DatumState.PENDING.value, d.inputs_json(), None, None)
            pending.append(d)
    if len(rows) * 2 > total:
        return None  # more than half differs: record every datum (the job becomes a root)
    return _Delta(root.id, list(rows.values()), pending, total)


def _output_kept(store: Store, job: JobInfo) -> bool:
    try:
        return store.inspect_commit(job.pipeline, job.output_commit).state is CommitState.FINISHED
    except NotFound:
        return False


def _changes(
    store: Store, jobs: JobTable, spec: PipelineSpec, base: JobInfo, job: JobInfo
) -> tuple[dict[str, Datum], set[str]]:
    """The datums that may differ from the base's (by id, as computed now) and the ids that may be gone."""
    node = spec.input
    assert node is not None
    if base.inputs == job.inputs:
        return {}, set()
    if node.kind in ("pfs", "cron"):
        return _leaf_changes(store, spec, node, base.inputs, job.inputs)
    now = compute_datums(store, spec, job.inputs)  # cross/union/join/group: compared datum by datum
    hasher = datum_hasher(spec.transform, spec.salt)
    before = jobs.effective_hashes(base.id)
    upserts = {d.id: d for d in now if before.get(d.id) != hasher(d)}
    return upserts, set(before) - {d.id for d in now}


def _leaf_changes(
    store: Store, spec: PipelineSpec, node: Input, old: Mapping[str, str | None], new: Mapping[str, str | None]
) -> tuple[dict[str, Datum], set[str]]:
    leaf = node.pfs if node.pfs is not None else node.cron
    assert leaf is not None
    repo, pattern = (leaf.repo, leaf.glob) if isinstance(leaf, PfsInput) else (spec.cron_repo(leaf), "/*")
    key = spec.input_key(leaf)
    before, after = old.get(key), new.get(key)
    if before == after:
        return {}, set()
    old_root = queries.commit_root(store, before) if before else None
    new_root = queries.commit_root(store, after) if after else None
    glob = compile_glob(pattern)
    affected: set[str] = set()
    for path, _, _ in store.tree.diff(old_root, new_root):
        affected.update(_matches_holding(glob, path))
    upserts: dict[str, Datum] = {}
    gone: set[str] = set()
    for match in sorted(affected):
        entry = store.tree.get(new_root, match) if match and after else None
        files = files_under(store, new_root, match, entry) if after else ()
        datum = Datum.of((DatumInput(leaf.name, repo, after or "", match, files),))
        if files:
            upserts[datum.id] = datum
        else:
            gone.add(datum.id)
    return upserts, gone


def _matches_holding(glob: Glob, path: str) -> list[str]:
    """The glob matches (files or folders) a file at ``path`` is, or is under."""
    if glob.depth == 0:
        return [""]
    comps = path.split("/")
    if glob.depth is not None:
        if len(comps) < glob.depth:
            return []
        candidate = "/".join(comps[:glob.depth])
        return [candidate] if glob.match(candidate) is not None else []
    prefixes = ["/".join(comps[:i]) for i in range(1, len(comps) + 1)]
    return [p for p in prefixes if glob.match(p) is not None]


def _at(inputs: str, commits: Mapping[str, str]) -> str:
    """A datum's stored inputs with their commits moved to this job's."""
    decoded = json.loads(inputs)
    for one in decoded:
        one["commit"] = commits.get(one["commit"], one["commit"])
    return json.dumps(decoded)
