"""The request path's one-query lookups (``store.lookup``, ``core.db.Prepared``) answer what the general path does.

A branch head, a commit id and a chunk's place are read by one prebuilt
statement on the pooled driver connection; anything that statement cannot
answer (a tag, an ancestry form, an empty or missing branch) falls back to the
general path, with its errors. On PostgreSQL the driver connection runs the
statement in autocommit and must be handed back as it was: a transaction on
the same pool afterwards still rolls back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from datumflow.storage_service import Store, errors
from datumflow.storage_service.core.db import Prepared
from datumflow.storage_service.core.schema import repos
from sqlalchemy import bindparam, func, insert, select


@pytest.fixture
def store(tmp_path: Path, backend: dict[str, Any]) -> Any:
    s = Store(tmp_path / "store", **backend)
    yield s
    s.close()


def test_head_commit_is_inspect_commit_of_the_branch(store: Store) -> None:
    store.create_repo("up")
    store.create_repo("r")
    store.create_branch("up", "master")
    store.create_branch("r", "master", provenance=["up@master"])
    store.put_file("up", "master", "u", b"u")  # opens r@master's commit, with provenance to up's
    downstream = store.inspect_commit("r", "master")
    assert downstream.provenance  # the case the joined rows must gather
    assert store.head_commit("r", "master") == downstream
    store.create_repo("m")
    store.put_file("m", "master", "a.txt", b"a")
    store.create_branch("m", "dev", head="master")
    store.put_file("m", "dev", "b.txt", b"b")
    store.put_file("m", "master", "c.txt", b"c")
    store.merge("m", "dev", "master", fast_forward=False)
    merged = store.inspect_commit("m", "master")
    assert merged.merge_parent is not None
    assert store.head_commit("m", "master") == merged
    assert store.head_commit("m", "dev") == store.inspect_commit("m", "dev")
    store.create_branch("m", "empty")
    assert store.head_commit("m", "empty") is None  # no head: the caller asks inspect_branch
    assert store.head_commit("m", "nope") is None
    assert store.head_commit("nope", "master") is None


def test_inspect_file_by_every_kind_of_ref(store: Store) -> None:
    store.create_repo("r")
    first = store.put_file("r", "master", "a.txt", b"one")
    store.put_file("r", "master", "a.txt", b"two!")
    store.create_tag("r", "v1", first.id)
    assert store.inspect_file("r", "master", "a.txt").size == 4
    assert store.inspect_file("r", first.id, "a.txt").size == 3
    assert store.inspect_file("r", "master^", "a.txt").size == 3
    assert store.inspect_file("r", "v1", "a.txt").size == 3  # a tag: the general path
    assert store.get_file("r", "master", "a.txt") == b"two!"
    store.create_branch("r", "empty")
    with pytest.raises(errors.CommitNotFound):
        store.inspect_file("r", "empty", "a.txt")
    with pytest.raises(errors.BranchNotFound):
        store.inspect_file("r", "nope", "a.txt")
    with pytest.raises(errors.RepoNotFound):
        store.inspect_file("nope", "master", "a.txt")
    store.create_repo("other")
    with pytest.raises(errors.CommitNotFound):  # a commit id of another repo is not this repo's
        store.inspect_file("other", first.id, "a.txt")
    with pytest.raises(errors.PathNotFound):
        store.inspect_file("r", "master", "b.txt")


def test_prepared_rows_and_the_pool_afterwards(store: Store) -> None:
    count = Prepared(select(func.count().label("n")).select_from(repos).where(repos.c.name == bindparam("name")))
    assert count.rows(store.engine, name="nope") == [(0,)]
    store.create_repo("r")
    rows = count.rows(store.engine, name="r")
    assert rows[0].n == 1  # named columns
    for _ in range(12):  # more than the pool holds: every connection goes back and is used again
        assert count.rows(store.engine, name="r")[0].n == 1
    with pytest.raises(RuntimeError), store.engine.begin() as conn:  # transactions still roll back
        conn.execute(insert(repos), {"name": "ghost", "description": "", "created": 0.0})
        raise RuntimeError("abort")
    assert count.rows(store.engine, name="ghost")[0].n == 0
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(repos).where(repos.c.name == "ghost")).scalar() == 0
