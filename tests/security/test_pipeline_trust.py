"""Items 2 and 3: a pipeline is a trust boundary, not a way in.

Creating or updating a pipeline needs writer on its output repo and reader
on every input of every kind; a cron repo is used only if the pipeline
made it or its creator owns it; deleting a pipeline deletes only repos it
made; a datum runs sandboxed, without the service's privileges.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from datumflow.storage_service import errors
from datumflow.storage_service.client.http import Client

from tests.service.conftest import Service, init_auth

from .conftest import User, auth_of, launch


def test_without_the_sandbox_only_admins_create_pipelines(tmp_path: Path) -> None:
    """Datums outside the sandbox run with the service's rights: a user's pipeline would be the service's code."""
    root = tmp_path / "store"
    token = init_auth(root)
    service = launch(root, token=token, env={"DATUMFLOW_SANDBOX": "none"})
    try:
        auth_of(root).create_user("mallory")
        theirs = auth_of(root).create_token("mallory")
        with Client(service.url, token=theirs) as mallory:
            mallory.create_repo("m-in")
            with pytest.raises(errors.Forbidden, match="only admins"):
                mallory.pipelines.create_pipeline(spec("m-p", pfs("m-in")))
        with Client(service.url, token=token) as admin:
            admin.pipelines.create_pipeline(spec("a-p", pfs("m-in")))
    finally:
        service.stop()


def spec(name: str, node: dict[str, Any], cmd: list[str] | None = None) -> dict[str, Any]:
    return {"pipeline": {"name": name}, "input": node,
            "transform": {"cmd": cmd or ["sh", "-c", "cp -r /pfs/*/* /pfs/out/ 2>/dev/null || true"]}}


def pfs(repo: str, glob: str = "/*", **extra: Any) -> dict[str, Any]:
    return {"pfs": {"repo": repo, "glob": glob, **extra}}


@pytest.fixture
def victim_repo(make_user: Callable[[], User], name: str) -> str:
    victim = make_user()
    repo = f"{name}-v"
    victim.client.create_repo(repo)
    victim.client.put_file(repo, "master", "a-1.txt", b"victim's data")
    return repo


@pytest.mark.parametrize("kind", ["pfs", "cross", "union", "join", "group"])
def test_every_input_kind_needs_reader(
    make_user: Callable[[], User], name: str, victim_repo: str, kind: str
) -> None:
    attacker = make_user()
    mine = f"{name}-mine"
    attacker.client.create_repo(mine)
    attacker.client.put_file(mine, "master", "a-1.txt", b"mine")
    if kind == "pfs":
        node = pfs(victim_repo)
    elif kind in ("join", "group"):
        key = "join_on" if kind == "join" else "group_by"
        node = {kind: [pfs(mine, "/(*)-*.txt", **{key: "$1"}), pfs(victim_repo, "/(*)-*.txt", **{key: "$1"})]}
    else:
        node = {kind: [pfs(mine), {"cross": [pfs(victim_repo)]}]}
    with pytest.raises(errors.Forbidden):
        attacker.client.pipelines.create_pipeline(spec(f"{name}-p", node))
    assert f"{name}-p" not in [p.name for p in attacker.client.pipelines.list_pipelines()]


def test_update_needs_reader_on_the_new_inputs(make_user: Callable[[], User], name: str, victim_repo: str) -> None:
    attacker = make_user()
    mine = f"{name}-mine"
    attacker.client.create_repo(mine)
    attacker.client.pipelines.create_pipeline(spec(f"{name}-p", pfs(mine)))
    with pytest.raises(errors.Forbidden):
        attacker.client.pipelines.update_pipeline(spec(f"{name}-p", {"cross": [pfs(mine), pfs(victim_repo)]}))
    with pytest.raises(errors.Forbidden):
        attacker.client.pipelines.create_pipeline(spec(f"{name}-p", pfs(victim_repo)), update=True)


def cron(name: str, repo: str, overwrite: bool = False) -> dict[str, Any]:
    return {"cron": {"name": "tick", "spec": "@every 1s", "repo": repo, "overwrite": overwrite}}


def test_a_cron_repo_must_be_the_pipelines_own_or_its_creators(
    svc: Service, make_user: Callable[[], User], name: str, victim_repo: str
) -> None:
    attacker = make_user()
    for overwrite in (False, True):
        with pytest.raises(errors.Forbidden):
            attacker.client.pipelines.create_pipeline(spec(f"{name}-c{int(overwrite)}", cron("t", victim_repo,
                                                                                                overwrite)))
    # a reader of the victim's repo may still not wipe it through a cron
    auth_of(svc.root).grant(attacker.name, victim_repo, "writer")
    with pytest.raises(errors.Forbidden):
        attacker.client.pipelines.create_pipeline(spec(f"{name}-c2", cron("t", victim_repo, True)))


def test_deleting_a_pipeline_deletes_only_repos_it_made(
    svc: Service, admin: Client, make_user: Callable[[], User], name: str
) -> None:
    owner = make_user()
    shared = f"{name}-ticks"
    owner.client.create_repo(shared)
    owner.client.put_file(shared, "master", "keep.txt", b"keep")
    made = owner.client.pipelines.create_pipeline(spec(f"{name}-own", cron("t", "")))
    assert made.name == f"{name}-own"
    own_ticks = f"{name}-own_tick"
    assert own_ticks in [r.name for r in owner.client.list_repos()]
    owner.client.pipelines.create_pipeline(spec(f"{name}-shr", cron("t", shared)))  # the owner owns it: allowed
    owner.client.pipelines.delete_pipeline(f"{name}-shr")
    assert owner.client.get_file(shared, "master", "keep.txt") == b"keep"
    owner.client.pipelines.delete_pipeline(f"{name}-own")
    assert own_ticks not in [r.name for r in admin.list_repos()]


@pytest.mark.parametrize("field", [
    {"transform": {"cmd": ["sh"], "secrets": [{"name": "db", "key": "k", "env_var": "DATUMFLOW_SECRET_KEY"}]}},
    {"egress": {"URL": "file:///tmp/written-by-a-pipeline"}},
])
def test_a_pipeline_cannot_read_service_secrets_or_write_its_disk(
    make_user: Callable[[], User], name: str, field: dict[str, Any]
) -> None:
    attacker = make_user()
    mine = f"{name}-mine"
    attacker.client.create_repo(mine)
    with pytest.raises(errors.Forbidden):
        attacker.client.pipelines.create_pipeline({**spec(f"{name}-p", pfs(mine)), **field})


def test_a_datum_cannot_reach_the_store_the_service_env_or_become_admin(tmp_path: Path, name: str) -> None:
    """The attack of item 2: a datum rewrites metadata.db and reads the service's environment.

    On a service of its own: if the attack works, every user of that store is an admin.
    """
    root = tmp_path / "store"
    svc = launch(root, token=init_auth(root))  # users may create pipelines: datums run sandboxed
    auth_of(root).create_user("mallory")
    attacker = User("mallory", "", Client(svc.url, token=auth_of(root).create_token("mallory")))
    try:
        _attack(svc, attacker, name)
    finally:
        attacker.client.close()
        svc.stop()


def _attack(svc: Service, attacker: User, name: str) -> None:
    data = f"{name}-in"
    attacker.client.create_repo(data)
    attacker.client.put_file(data, "master", "x", b"x")
    db = svc.root / "metadata.db"
    script = (
        "import os, sqlite3, sys\n"
        f"db = {str(db)!r}\n"
        "out = open(os.path.join(os.environ.get('DATUMFLOW_PFS', '/pfs'), 'out', 'report'), 'w')\n"
        "out.write('db:%s\\n' % os.path.exists(db))\n"
        "out.write('env:%s\\n' % ('DATUMFLOW_FSYNC' in os.environ))\n"
        "try:\n"
        "    c = sqlite3.connect(db); c.execute('update df_users set admin=1'); c.commit()\n"
        "    out.write('wrote\\n')\n"
        "except Exception as exc:\n"
        "    out.write('refused:%s\\n' % type(exc).__name__)\n"
    )
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable  # the sandbox shows /usr
    attacker.client.pipelines.create_pipeline(spec(f"{name}-evil", pfs(data, "/"), [python, "-c", script]))
    deadline = time.monotonic() + 60
    report = None
    while time.monotonic() < deadline and report is None:
        try:
            report = attacker.client.get_file(f"{name}-evil", "master", "report").decode()
        except errors.DatumflowError:
            time.sleep(0.5)
    assert report is not None, "the pipeline did not run"
    assert attacker.client.whoami()["admin"] is False
    assert "db:False" in report and "env:False" in report and "wrote" not in report
