"""Per-file lineage: which datum wrote an output file, and from which input files.

Every job records, for each file of its output commit, the datum that wrote
it (``df_lineage``: (commit, path) -> job, datum); the datum's row names its
input files with their commits and content hashes. A file several datums
wrote (their parts merged, as Pachyderm merges them) has one row per further
datum under the key ``<path>//<n>`` (``//`` never occurs in a stored path), so
its lineage names every datum. A query walks upstream
one level at a time with batched, indexed lookups, so its cost follows the
size of the answer, not the number of datums in the jobs it crosses.

A job that inherits its base job's datums (:mod:`.inherit`) records rows only
for the paths its changed datums wrote or wrote before; any other file of its
output commit has the row its root job recorded, read as this job's (the datum
is the same, at this job's input commits).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from datumflow.storage_service.core.pipeline_schema import bulk_insert, jobs, lineage
from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.model.lineage import LineageNode
from datumflow.storage_service.pipelines.jobs import inherited_inputs
from sqlalchemy import Engine, delete, select

if TYPE_CHECKING:
    from datumflow.storage_service.store.store import Store

__all__ = ["LineageNode", "file_lineage", "forget_lineage", "lineage_writers", "record_lineage"]

_MAX_HOPS = 1000  # ancestors walked to find the commit that wrote a file's version
_BATCH = 500


def record_lineage(engine: Engine, commit: str, job: str, writers: Mapping[str, str | Sequence[str]]) -> None:
    """Record that datum ``writers[path]`` (or each of several datums) of ``job`` wrote ``path`` of ``commit``."""
    rows = []
    for p, d in writers.items():
        ids = [d] if isinstance(d, str) else list(d)
        rows.append((commit, p, job, ids[0]))
        rows += [(commit, f"{p}//{n}", job, other) for n, other in enumerate(ids[1:], 1)]
    with engine.begin() as conn:
        conn.execute(delete(lineage).where(lineage.c.commit == commit))
        bulk_insert(conn, lineage, ("commit", "path", "job", "datum"), rows)


def lineage_writers(engine: Engine, commit: str, paths: Iterable[str]) -> dict[str, list[str]]:
    """{path: the datums that wrote it, in order} of the ``paths`` of ``commit`` that have lineage."""
    with engine.connect() as conn:
        return {p: ids for p, (_, ids) in _rows_at(conn, commit, list(paths)).items()}


def _rows_at(conn: Any, commit: str, paths: Sequence[str]) -> dict[str, tuple[str, list[str]]]:
    """{path: (job, datum ids)} of the lineage of ``paths`` in ``commit``, through its job's root job."""
    out: dict[str, tuple[str, list[str]]] = {}
    for i in range(0, len(paths), _BATCH):
        rows = conn.execute(
            select(lineage.c.path, lineage.c.job, lineage.c.datum)
            .where(lineage.c.commit == commit, lineage.c.path.in_(list(paths[i:i + _BATCH])))
        ).all()
        for r in rows:
            out[r.path] = (r.job, [r.datum, *_more(conn, commit, r.path)])
    missing = [p for p in paths if p not in out]
    if missing:
        job = conn.execute(select(jobs.c.id, jobs.c.base_job).where(jobs.c.output_commit == commit)).first()
        if job is not None and job.base_job is not None:
            base = conn.execute(select(jobs.c.output_commit).where(jobs.c.id == job.base_job)).scalar()
            if base is not None and base != commit:
                out.update({p: (job.id, ids) for p, (_, ids) in _rows_at(conn, base, missing).items()})
    return out


def _more(conn: Any, commit: str, path: str) -> list[str]:
    """The further datums of a merged file: keys <path>//<n>, exactly the range [p//, p/0)."""
    more = conn.execute(
        select(lineage.c.path, lineage.c.datum).where(
            lineage.c.commit == commit, lineage.c.path >= path + "//", lineage.c.path < path + "/0")
    ).all()
    return [r.datum for r in sorted(more, key=lambda r: int(r.path.rsplit("//", 1)[1]))]


def forget_lineage(engine: Engine, pipeline: str) -> None:
    """Drop the lineage rows every job of ``pipeline`` recorded."""
    with engine.begin() as conn:
        conn.execute(delete(lineage).where(lineage.c.job.in_(select(jobs.c.id).where(jobs.c.pipeline == pipeline))))


def file_lineage(store: Store, repo: str, ref: str, path: str, *, depth: int | None = None) -> LineageNode:
    """The lineage of ``repo@ref:path``, upstream through every pipeline (``depth`` levels at most)."""
    info = store.inspect_file(repo, ref, path)
    if info.is_dir:
        raise InvalidArgument(f"{repo}@{ref}:{info.path} is a folder; lineage is recorded per file")
    commit = store.resolve(repo, ref)
    with store.engine.connect() as conn:
        commit = _written_in(store, conn, repo, commit, info.path, info.hash)
    key = (repo, commit, info.path, info.hash)
    children: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    writer: dict[tuple[Any, ...], tuple[str, str, tuple[str, ...]]] = {}
    level, frontier = 0, [key]
    seen = {key}
    with store.engine.connect() as conn:
        while frontier and (depth is None or level < depth):
            level += 1
            found = _writers(conn, frontier)
            nxt = []
            for node, (pipeline, job, datum_ids, inputs) in found.items():
                writer[node] = (pipeline, job, datum_ids)
                kids = children.setdefault(node, [])
                for inp in inputs:
                    for fpath, fhash, _size in inp["files"]:
                        kid = (inp["repo"], inp["commit"], fpath, fhash)
                        kids.append(kid)
                        if kid not in seen:
                            seen.add(kid)
                            nxt.append(kid)
            frontier = nxt
    return _build(key, children, writer)


def _written_in(store: Store, conn: Any, repo: str, commit: str, path: str, content: str | None) -> str:
    """The commit whose job recorded this version of ``path``: ``commit`` itself, or the nearest
    ancestor holding the same content, through both parents of merge commits (a file a merge
    brought from a pipeline's branch keeps the lineage its job recorded there)."""
    cur = commit
    for _ in range(_MAX_HOPS):
        if _rows_at(conn, cur, [path]):
            return cur
        parents = store.inspect_commit(repo, cur).parents
        same = [p for p in parents if (store.tree.get(store._root_of(p), path) or [None, None])[1] == content]
        if not same:
            return commit
        cur = same[0]
    return commit


def _writers(
    conn: Any, nodes: list[tuple[Any, ...]]
) -> dict[tuple[Any, ...], tuple[str, str, tuple[str, ...], list[Any]]]:
    by_commit: dict[str, dict[str, tuple[Any, ...]]] = defaultdict(dict)
    for node in nodes:
        by_commit[node[1]][node[2]] = node
    hits: dict[tuple[Any, ...], tuple[str, list[str]]] = {}
    for commit, paths in by_commit.items():
        for path, found in _rows_at(conn, commit, list(paths)).items():
            hits[paths[path]] = found
    by_job: dict[str, set[str]] = defaultdict(set)
    for job, ids in hits.values():
        by_job[job].update(ids)
    inputs: dict[tuple[str, str], list[Any]] = {}
    pipelines: dict[str, str] = {}
    for job, datum_ids in by_job.items():
        pipelines[job] = conn.execute(select(jobs.c.pipeline).where(jobs.c.id == job)).scalar() or ""
        for datum_id, listed in inherited_inputs(conn, job, sorted(datum_ids)).items():
            inputs[(job, datum_id)] = listed
    return {
        node: (pipelines[job], job, tuple(ids), [x for d in ids for x in inputs.get((job, d), [])])
        for node, (job, ids) in hits.items()
    }


def _build(
    key: tuple[Any, ...], children: dict[tuple[Any, ...], list[tuple[Any, ...]]],
    writer: dict[tuple[Any, ...], tuple[str, str, tuple[str, ...]]], trail: frozenset[tuple[Any, ...]] = frozenset(),
) -> LineageNode:
    repo, commit, path, hsh = key
    if key not in writer or key in trail:
        return LineageNode(repo, commit, path, hsh)
    pipeline, job, datum_ids = writer[key]
    kids = tuple(_build(k, children, writer, trail | {key}) for k in children.get(key, []))
    return LineageNode(repo, commit, path, hsh, pipeline, job, datum_ids[0], kids, datum_ids)
