"""Merge, revert, reset, tags and protection on the embedded store (every backend).

The model tests compare a merge with what a plain dict three-way merge gives;
the concurrency test lands a commit on the destination while a merge is
between staging and publishing, and checks neither is lost.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from datumflow.storage_service import Store, errors
from hypothesis import given, settings
from hypothesis import strategies as st

REPO = "data"


def files(store: Any, ref: str, repo: str = REPO) -> dict[str, bytes]:
    return {f.path: store.get_file(repo, ref, f.path) for f in store.walk_files(repo, ref)}


def forked(store: Any) -> None:
    store.create_repo(REPO)
    store.put_files(REPO, "master", [("a", b"1"), ("b", b"2"), ("dir/c", b"3")])
    store.create_branch(REPO, "dev", head="master")


# -- the dict model ---------------------------------------------------------------------------

PATHS = st.sampled_from(["a", "b", "c", "d/x", "d/y", "e/f/g"])
EDIT = st.tuples(PATHS, st.one_of(st.none(), st.sampled_from([b"", b"1", b"2", b"three"])))
SIDE = st.lists(st.lists(EDIT, min_size=1, max_size=4), max_size=4)  # commits of edits (None deletes)


def model_merge(base: dict[str, bytes], ours: dict[str, bytes], theirs: dict[str, bytes],
                strategy: str | None) -> tuple[dict[str, bytes], set[str]]:
    out, conflicts = {}, set()
    for path in base.keys() | ours.keys() | theirs.keys():
        b, o, t = base.get(path), ours.get(path), theirs.get(path)
        if o == t or t == b:
            pick = o
        elif o == b:
            pick = t
        else:
            conflicts.add(path)
            pick = t if strategy == "theirs" else o
        if pick is not None:
            out[path] = pick
    return out, conflicts


def apply_side(store: Store, branch: str, commits: list[list[tuple[str, bytes | None]]],
               state: dict[str, bytes]) -> dict[str, bytes]:
    state = dict(state)
    for edits in commits:
        commit = store.start_commit(REPO, branch).id
        for path, data in edits:
            if data is None:
                if path in state:
                    store.delete_file(REPO, commit, path)
                    del state[path]
            elif not any(p.startswith(path + "/") or path.startswith(p + "/") for p in state if p != path):
                store.put_file(REPO, commit, path, data)
                state[path] = data
        store.finish_commit(REPO, commit)
    return state


@settings(max_examples=40, deadline=None)
@given(base=st.lists(EDIT, max_size=5), ours=SIDE, theirs=SIDE,
       strategy=st.sampled_from([None, "ours", "theirs"]))
def test_merge_agrees_with_a_dict_model(base: Any, ours: Any, theirs: Any, strategy: str | None) -> None:
    with tempfile.TemporaryDirectory() as root, Store(root, fsync=False) as store:
        store.create_repo(REPO)
        start = apply_side(store, "master", [base] if base else [[("seed", b"s")]], {})
        store.create_branch(REPO, "dev", head="master")
        mine = apply_side(store, "master", ours, start)
        yours = apply_side(store, "dev", theirs, start)
        want, conflicts = model_merge(start, mine, yours, strategy)
        before = store.inspect_branch(REPO, "master").head
        preview = store.merge(REPO, "dev", "master", dry_run=True)
        assert {c.path for c in preview.conflicts} == conflicts
        if conflicts and strategy is None:
            with pytest.raises(errors.MergeConflict):
                store.merge(REPO, "dev", "master")
            assert store.inspect_branch(REPO, "master").head == before  # nothing moved
            return
        result = store.merge(REPO, "dev", "master", strategy=strategy)
        assert files(store, "master") == want
        head = store.inspect_commit(REPO, "master")
        assert (head.file_count, head.size_bytes) == (len(want), sum(map(len, want.values())))
        if result.status == "merged":
            assert head.parents == (before, store.inspect_branch(REPO, "dev").head)


# -- merge semantics -------------------------------------------------------------------------


def test_merge_kinds_and_the_merge_commit(store: Any) -> None:
    forked(store)
    assert store.merge(REPO, "master", "dev").status == "up-to-date"
    store.put_file(REPO, "dev", "new", b"n")
    ff = store.merge(REPO, "dev", "master")
    assert ff.status == "fast-forward" and ff.commit.id == store.inspect_branch(REPO, "dev").head
    store.put_file(REPO, "dev", "a", b"dev")
    master_only = store.put_file(REPO, "master", "b", b"master")
    result = store.merge(REPO, "dev", "master", message="publish the nightly load", author="etl-bot",
                         metadata={"dag_id": "wap"})
    merged = result.commit
    assert result.status == "merged" and result.changed == 1
    assert merged.parents == (master_only.id, store.inspect_branch(REPO, "dev").head)
    assert merged.description == "publish the nightly load"
    assert merged.metadata["merge"]["merged_by"] == "etl-bot" and merged.metadata["dag_id"] == "wap"
    assert files(store, "master") == {"a": b"dev", "b": b"master", "dir/c": b"3", "new": b"n"}
    # log walks both parents; first_parent only the destination's own line
    everything = [c.id for c in store.list_commits(REPO, "master")]
    assert store.inspect_branch(REPO, "dev").head in everything
    assert store.inspect_branch(REPO, "dev").head not in [
        c.id for c in store.list_commits(REPO, "master", first_parent=True)]
    diff = {d.path: d.change for d in store.diff(REPO, None, "master")}  # against the first parent
    assert diff == {"a": "modified"}


def test_merge_provenance_is_the_union_of_both_sides(store: Any) -> None:
    forked(store)
    store.create_repo("up")
    left = store.put_file("up", "master", "x", b"1")
    right = store.put_file("up", "master", "x", b"2")
    c1 = store.start_commit(REPO, "master", provenance=[left.id])
    store.put_file(REPO, c1.id, "m", b"m")
    store.finish_commit(REPO, c1.id)
    c2 = store.start_commit(REPO, "dev", provenance=[right.id])
    store.put_file(REPO, c2.id, "d", b"d")
    store.finish_commit(REPO, c2.id)
    merged = store.merge(REPO, "dev", "master").commit
    assert set(merged.provenance) == {left.id, right.id}
    assert {e.commit for e in store.provenance(REPO, merged.id, depth=1)} == {left.id, right.id}


def test_conflicts_are_reported_path_by_path_and_nothing_moves(store: Any) -> None:
    forked(store)
    store.put_files(REPO, "dev", [("a", b"dev"), ("b", b"same")])
    store.delete_file(REPO, "dev", "dir/c")
    store.put_files(REPO, "master", [("a", b"master"), ("b", b"same"), ("dir/c", b"changed")])
    head = store.inspect_branch(REPO, "master").head
    with pytest.raises(errors.MergeConflict) as raised:
        store.merge(REPO, "dev", "master")
    assert "a" in str(raised.value) and "dir/c" in str(raised.value)
    assert store.inspect_branch(REPO, "master").head == head
    preview = store.merge(REPO, "dev", "master", dry_run=True)
    assert preview.status == "conflict" and preview.commit is None
    by_path = {c.path: c for c in preview.conflicts}
    assert set(by_path) == {"a", "dir/c"}  # b changed the same way on both sides: no conflict
    assert by_path["dir/c"].theirs is None and by_path["dir/c"].ours.size == 7
    assert files(store, store.merge(REPO, "dev", "master", strategy="ours").commit.id)["a"] == b"master"
    store.put_file(REPO, "dev", "a", b"dev2")
    theirs = store.merge(REPO, "dev", "master", strategy="theirs").commit
    assert files(store, theirs.id)["a"] == b"dev2"


def test_merge_refuses_bad_input_and_open_commits(store: Any) -> None:
    forked(store)
    with pytest.raises(errors.InvalidArgument):
        store.merge(REPO, "dev", "master", strategy="mine")
    with pytest.raises(errors.BranchNotFound):
        store.merge(REPO, "dev", "nope")
    with pytest.raises(errors.NotFound):
        store.merge(REPO, "nope", "master")
    open_one = store.start_commit(REPO, "dev")
    with pytest.raises(errors.CommitOpen):
        store.merge(REPO, "dev", "master")
    store.finish_commit(REPO, open_one.id)


def test_merge_checks_gate_the_destination(store: Any, tmp_path: Path) -> None:
    forked(store)
    store.put_file(REPO, "dev", "a", b"bad")
    store.put_file(REPO, "master", "b", b"m")
    store.protect_branch(REPO, "master", checks=["sh -c 'test \"$(cat a)\" != bad'"])
    head = store.inspect_branch(REPO, "master").head
    with pytest.raises(errors.CheckFailed):
        store.merge(REPO, "dev", "master")
    assert store.inspect_branch(REPO, "master").head == head
    assert all(c.state.value != "open" for c in store.list_commits(REPO))  # the staged commit is gone
    store.put_file(REPO, "dev", "a", b"good")
    seen = tmp_path / "seen"
    merged = store.merge(REPO, "dev", "master", checks=[f"sh -c 'echo $DATUMFLOW_COMMIT > {seen}'"]).commit
    assert seen.read_text().strip() == merged.id


def test_a_commit_landing_during_a_merge_is_not_lost(store: Any, tmp_path: Path) -> None:
    forked(store)
    store.put_file(REPO, "dev", "from-dev", b"d")
    store.put_file(REPO, "master", "from-master", b"m")
    gate = tmp_path / "gate"
    check = f"sh -c 'if [ ! -e {gate} ]; then touch {gate}; sleep 2; fi'"
    landed: list[Any] = []

    def commit_meanwhile() -> None:
        deadline = time.monotonic() + 30
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        landed.append(store.put_file(REPO, "master", "concurrent", b"c"))

    writer = threading.Thread(target=commit_meanwhile)
    writer.start()
    result = store.merge(REPO, "dev", "master", checks=[check])
    writer.join()
    assert result.commit.parent == landed[0].id  # retried on the new head
    assert files(store, "master") == {"a": b"1", "b": b"2", "dir/c": b"3", "from-dev": b"d",
                                      "from-master": b"m", "concurrent": b"c"}
    assert [c for c in store.list_commits(REPO) if c.state.value == "open"] == []


def test_concurrent_merges_and_commits_lose_nothing(make_store: Any) -> None:
    store = make_store()
    forked(store)
    for i in range(6):
        store.create_branch(REPO, f"w{i}", head="master")
        store.put_file(REPO, f"w{i}", f"w{i}", str(i).encode())
    errors_seen: list[BaseException] = []

    def merger(i: int) -> None:
        try:
            make_store().merge(REPO, f"w{i}", "master")
        except BaseException as exc:
            errors_seen.append(exc)

    def committer() -> None:
        other = make_store()
        for j in range(6):
            other.put_file(REPO, "master", f"m{j}", b"m")

    threads = [threading.Thread(target=merger, args=(i,)) for i in range(6)] + [threading.Thread(target=committer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors_seen == []
    got = files(store, "master")
    assert {f"w{i}" for i in range(6)} | {f"m{j}" for j in range(6)} <= set(got)


# -- revert, reset, branch moves -----------------------------------------------------------


def test_revert_undoes_one_commit(store: Any) -> None:
    forked(store)
    bad = store.put_files(REPO, "master", [("a", b"oops"), ("added", b"x")])
    store.put_file(REPO, "master", "later", b"l")
    undone = store.revert(REPO, bad.id)
    assert undone.metadata["reverts"] == bad.id and undone.parent != bad.id
    assert files(store, "master") == {"a": b"1", "b": b"2", "dir/c": b"3", "later": b"l"}
    store.put_file(REPO, "master", "later", b"l2")
    changed = store.put_file(REPO, "master", "later", b"l3")
    store.put_file(REPO, "master", "later", b"l4")
    head = store.inspect_branch(REPO, "master").head
    with pytest.raises(errors.MergeConflict):
        store.revert(REPO, changed.id)
    assert store.inspect_branch(REPO, "master").head == head


def test_reset_needs_force_and_an_ancestor(store: Any) -> None:
    forked(store)
    first = store.inspect_branch(REPO, "master").head
    store.put_file(REPO, "master", "x", b"x")
    store.put_file(REPO, "dev", "y", b"y")
    with pytest.raises(errors.InvalidArgument):
        store.reset_branch(REPO, "master", first)
    with pytest.raises(errors.InvalidArgument):
        store.reset_branch(REPO, "master", "dev", force=True)  # not an ancestor
    assert store.reset_branch(REPO, "master", first, force=True).head == first


def test_moving_a_branch_may_not_drop_commits(store: Any) -> None:
    forked(store)
    only_on_master = store.put_file(REPO, "master", "x", b"x")
    with pytest.raises(errors.Conflict):
        store.create_branch(REPO, "master", head="dev")  # the lakeFS-example bug: this dropped x
    assert store.inspect_branch(REPO, "master").head == only_on_master.id
    store.put_file(REPO, "dev", "y", b"y")
    assert store.create_branch(REPO, "dev", head="dev").name == "dev"


# -- tags and protection ---------------------------------------------------------------------


def test_tags_are_immutable_refs(store: Any) -> None:
    forked(store)
    first = store.inspect_branch(REPO, "master").head
    tag = store.create_tag(REPO, "v1", "master", message="first release")
    assert tag.commit == first and store.resolve(REPO, "v1") == first
    assert files(store, "v1") == files(store, first)
    second = store.put_file(REPO, "master", "a", b"new")
    assert store.resolve(REPO, "v1") == first  # never moves
    assert store.resolve(REPO, "master~1") == first
    with pytest.raises(errors.AlreadyExists):
        store.create_tag(REPO, "v1", second.id)
    with pytest.raises(errors.AlreadyExists):
        store.create_tag(REPO, "dev", "master")
    with pytest.raises(errors.AlreadyExists):
        store.create_branch(REPO, "v1")
    with pytest.raises(errors.ProtectedBranch):
        store.put_file(REPO, "v1", "z", b"z")
    store.create_tag(REPO, "v2", second.id)
    with pytest.raises(errors.ProtectedBranch):
        store.delete_commit(REPO, second.id)  # a tagged commit stays
    assert [t.name for t in store.list_tags(REPO)] == ["v1", "v2"]
    store.delete_tag(REPO, "v1")
    with pytest.raises(errors.TagNotFound):
        store.inspect_tag(REPO, "v1")


def test_a_protected_branch_takes_merges_only(store: Any) -> None:
    forked(store)
    store.protect_branch(REPO, "master")
    head = store.inspect_branch(REPO, "master").head
    opened = [
        lambda: store.put_file(REPO, "master", "x", b"x"),
        lambda: store.delete_file(REPO, "master", "a"),
        lambda: store.start_commit(REPO, "master"),
        lambda: store.copy_file(REPO, "master", "a", REPO, "master", "a2"),
        lambda: store.delete_branch(REPO, "master"),
        lambda: store.delete_commit(REPO, head),
        lambda: store.reset_branch(REPO, "master", head, force=True),
        lambda: store.revert(REPO, head),
    ]
    for attempt in opened:
        with pytest.raises(errors.ProtectedBranch):
            attempt()
    assert store.inspect_branch(REPO, "master").head == head
    store.put_file(REPO, "dev", "x", b"x")
    assert store.merge(REPO, "dev", "master").status == "fast-forward"
    assert [p.branch for p in store.list_protections(REPO)] == ["master"]
    store.unprotect_branch(REPO, "master")
    store.put_file(REPO, "master", "y", b"y")


def test_gc_keeps_what_only_a_second_parent_reaches(store: Any) -> None:
    forked(store)
    store.put_file(REPO, "dev", "big", b"only on dev " * 1000)
    store.put_file(REPO, "master", "m", b"m")
    merged = store.merge(REPO, "dev", "master").commit
    store.delete_branch(REPO, "dev")
    store.gc(grace_seconds=0)
    assert store.fsck()["ok"]
    assert store.get_file(REPO, merged.merge_parent, "big") == b"only on dev " * 1000
    assert merged.merge_parent in [c.id for c in store.list_commits(REPO, "master")]


# -- bisect ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_bisect_finds_a_planted_bad_commit_in_1000_commits(local_store: Store) -> None:
    planted_bisect(local_store, 1000, 637, max_runs=11)


def test_bisect_finds_a_planted_bad_commit_in_100_commits(local_store: Store) -> None:
    planted_bisect(local_store, 100, 41, max_runs=7)


def planted_bisect(store: Store, count: int, planted: int, max_runs: int) -> None:
    store.create_repo(REPO)
    good_entry = store.tree.get(store.put_file(REPO, "scratch", "value", b"ok").root, "value")
    bad_entry = store.tree.get(store.put_file(REPO, "scratch", "value", b"bad").root, "value")
    ids = []  # 1,000 one-file commits; entries reused so that no bytes are stored again
    for i in range(count):
        entry = bad_entry if i >= planted else good_entry
        ids.append(store.write_entries(REPO, "master", lambda _, e=entry: {"value": e}).id)
    runs: list[str] = []

    def test(commit: str) -> int:
        runs.append(commit)
        return 1 if store.get_file(REPO, commit, "value") == b"bad" else 0

    result = store.bisect(REPO, ids[0], ids[-1], test)
    assert result.first_bad == ids[planted]
    assert result.runs == len(runs) <= max_runs
    assert [c["path"] for c in result.changes] == ["value"]


def test_bisect_runs_a_command_on_the_commits_files(store: Any) -> None:
    store.create_repo(REPO)
    ids = [store.put_files(REPO, "master", [("data/n", str(i).encode()), ("other", b"x")]).id for i in range(12)]
    cmd = ["sh", "-c", 'test -z "$(ls other 2>/dev/null)" && test "$DATUMFLOW_COMMIT" != "" '
           '&& test "$(cat n)" -lt 7 || { test "$(cat n)" = 5 && exit 125; exit 1; }']
    result = store.bisect(REPO, ids[0], ids[-1], cmd, path="data")
    assert result.first_bad == ids[7]
    assert any(s.verdict == "good" for s in result.steps)
    with pytest.raises(errors.InvalidArgument):
        store.bisect(REPO, ids[5], ids[2], cmd)


@pytest.mark.slow
def test_merge_at_a_million_files_with_ten_changes_each_side(local_store: Store) -> None:
    store = local_store
    store.create_repo(REPO)
    entry = store.tree.get(store.put_file(REPO, "scratch", "seed", b"seed").root, "seed")
    store.write_entries(REPO, "master", lambda _: {f"d{i // 1000:04d}/f{i:07d}": entry for i in range(1_000_000)})
    store.create_branch(REPO, "dev", head="master")
    ours = {f"d{i * 97 // 1000:04d}/f{i * 97:07d}": None for i in range(10)}  # 10 deletions on master
    theirs = {f"new/{i}": entry for i in range(10)}  # 10 additions on dev
    store.write_entries(REPO, "master", lambda _: ours)
    store.write_entries(REPO, "dev", lambda _: theirs)
    result = store.merge(REPO, "dev", "master")
    assert result.status == "merged" and result.changed == 10
    assert result.commit.file_count == 1_000_000
    assert {d.path for d in store.diff(REPO, None, "master")} == set(theirs)


def _walk_one_at_a_time(store: Any, start: str, *, limit: int | None, state: str | None, first_parent: bool,
                        until: str | None) -> list[str]:
    """The history walk as it was before it read ahead: each commit and its parents' seqs read alone."""
    import heapq

    out: list[str] = []
    with store.engine.connect() as conn:
        heap = [(-s, c) for s, c in store._seqs(conn, [start])]
        seen = {start}
        while heap and (limit is None or len(out) < limit):
            _, cur = heapq.heappop(heap)
            if cur == until:
                continue
            commit = store._commit(conn, cur)
            if state is None or commit.state.value == state:
                out.append(commit.id)
            parents = commit.parents[:1] if first_parent else commit.parents
            for seq, parent in store._seqs(conn, [p for p in parents if p not in seen]):
                seen.add(parent)
                heapq.heappush(heap, (-seq, parent))
    return out


def test_the_read_ahead_history_walk_is_the_walk_of_one_commit_at_a_time(
    store: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datumflow.storage_service.store import merge

    monkeypatch.setattr(merge, "_READ_AHEAD", 2)  # many read-ahead rounds on a short history
    forked(store)
    store.create_branch(REPO, "feature", head="master")
    for i in range(3):
        store.put_file(REPO, "dev", f"dev{i}", b"d")
        store.put_file(REPO, "master", f"master{i}", b"m")
        store.put_file(REPO, "feature", f"feature{i}", b"f")
        store.merge(REPO, "dev", "master")
        if i % 2:
            store.merge(REPO, "feature", "dev")
    failed = store.start_commit(REPO, "master")
    store.finish_commit(REPO, failed.id, error="a failed write stays in the history")
    store.put_file(REPO, "master", "last", b"l")
    everything = [c.id for c in store.list_commits(REPO, "master")]
    assert len(everything) >= 12 and len(set(everything)) == len(everything)
    head = store.inspect_branch(REPO, "master").head
    for limit in (None, 1, 3, 7):
        for first_parent in (False, True):
            for until in (None, everything[len(everything) // 2]):
                for state in (None, "finished"):
                    got = [c.id for c in store.list_commits(REPO, "master", limit=limit, state=state,
                                                            first_parent=first_parent, until=until)]
                    assert got == _walk_one_at_a_time(store, head, limit=limit, state=state,
                                                      first_parent=first_parent, until=until), (
                        limit, first_parent, until, state)
