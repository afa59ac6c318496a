"""Replicas that discover the same open output commit at the same moment record one job for it,
and neither request fails: every replica's job loop and every ``list jobs`` request discovers, so
on a shared PostgreSQL database they race (a replica once answered ``GET /jobs`` with a 500
IntegrityError). Different commits discovered at once still get distinct, ordered ``seq`` values."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from datumflow.storage_service.core.db import open_engine
from datumflow.storage_service.core.migrations import ensure_schema
from datumflow.storage_service.core.pipeline_schema import jobs
from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.pipelines.jobs import JobTable
from datumflow.storage_service.store.store import Store
from sqlalchemy import select

from tests.helpers.threads import all_at_once

from .conftest import COPY, pfs, spec

THREADS = 8


def _all_at_once(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """``fn(i)`` for i < n, released together; the first exception any raised is raised here."""
    outcomes = all_at_once([functools.partial(fn, i) for i in range(n)])
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'jobs.db'}"
    return str(request.getfixturevalue("postgres_url"))


def _tables(url: str, n: int) -> list[JobTable]:
    engines = [open_engine(url) for _ in range(n)]  # one engine each, as separate replicas have
    ensure_schema(engines[0])
    return [JobTable(e) for e in engines]


def test_one_job_per_output_commit_however_many_replicas_race(db_url: str) -> None:
    tables = _tables(db_url, THREADS)
    for _ in range(5):
        commit = uuid.uuid4().hex
        made = _all_at_once(THREADS, lambda i, c=commit: tables[i].create("p", c, "set", None, {}, reprocess=False))
        assert sum(j is not None for j in made) == 1, made
        assert tables[0].id_for_output(commit) == next(j.id for j in made if j is not None)
    assert len(tables[0].list_jobs("p")) == 5


def test_jobs_created_at_once_for_different_commits_get_distinct_seq(db_url: str) -> None:
    tables = _tables(db_url, THREADS)
    made = _all_at_once(THREADS, lambda i: tables[i].create("p", uuid.uuid4().hex, "s", None, {}, reprocess=False))
    assert all(j is not None for j in made)
    listed = tables[0].list_jobs("p")
    with tables[0].engine.connect() as conn:
        seqs = [r.seq for r in conn.execute(select(jobs.c.seq))]
    assert len(set(seqs)) == THREADS == len(listed)


@pytest.mark.postgres
def test_replicas_listing_jobs_after_a_pipeline_is_created_all_see_its_one_job(
    tmp_path: Path, postgres_url: str,
) -> None:
    """The whole path: several stores on one database list jobs, each discovering the new pipeline's
    open commit, at once."""
    stores = [Store(str(tmp_path / "root"), db_url=postgres_url, fsync=False) for _ in range(THREADS)]
    try:
        stores[0].create_repo("in")
        stores[0].put_files("in", "master", [("a.txt", b"a\n")])
        services = [Pipelines(s) for s in stores]
        for round_ in range(3):
            services[0].create_pipeline(spec(f"copy{round_}", pfs("in"), COPY))
            seen = _all_at_once(THREADS, lambda i, n=f"copy{round_}": services[i].list_jobs(n))
            assert {tuple(j.id for j in jobs) for jobs in seen} == {(seen[0][0].id,)}
    finally:
        for s in stores:
            s.close()


@pytest.mark.postgres
def test_spout_supervisors_of_several_replicas_claiming_a_new_spout_at_once_give_it_one_owner(
    tmp_path: Path, postgres_url: str,
) -> None:
    from datumflow.storage_service.pipelines.spout_runner import SpoutSupervisor

    stores = [Store(str(tmp_path / "root"), db_url=postgres_url, fsync=False) for _ in range(THREADS)]
    try:
        supervisors = [SpoutSupervisor(s, Pipelines(s).registry, address="http://127.0.0.1:9") for s in stores]
        for name in ("s1", "s2", "s3"):
            won = _all_at_once(THREADS, lambda i, n=name: supervisors[i]._claim(n))
            assert won.count(True) == 1, won
    finally:
        for s in stores:
            s.close()
