"""Tokens and roles: 401 without a good token, 403 without the role, admin-only maintenance."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from datumflow.storage_service import errors
from datumflow.storage_service.client.http import Client

from .conftest import Service, free_port, run_cli


def auth(service: Service, *args: str) -> dict[str, object]:
    done = run_cli("auth", *args, "--root", str(service.root), "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.fixture
def user(service: Service) -> tuple[str, str]:
    name = f"u-{uuid.uuid4().hex[:8]}"
    auth(service, "user", "create", name)
    return name, str(auth(service, "token", "create", name)["token"])


def test_missing_and_wrong_tokens_are_401(service: Service) -> None:
    bare = httpx.get(f"{service.url}/api/v1/repos")
    assert bare.status_code == 401 and bare.json()["error"]["type"] == "Unauthenticated"
    wrong = httpx.get(f"{service.url}/api/v1/repos", headers={"Authorization": "Bearer dft_nope"})
    assert wrong.status_code == 401
    with Client(service.url, token="dft_nope") as c, pytest.raises(errors.Unauthenticated):
        c.list_repos()
    assert httpx.get(f"{service.url}/healthz").status_code == 200


def test_roles(service: Service, client: Client, user: tuple[str, str], repo_name: str) -> None:
    name, token = user
    client.create_repo(repo_name)
    client.put_file(repo_name, "master", "a", b"a")
    with Client(service.url, token=token) as mine:
        assert repo_name not in [r.name for r in mine.list_repos()]
        with pytest.raises(errors.Forbidden) as denied:
            mine.get_file(repo_name, "master", "a")
        assert not isinstance(denied.value, errors.Unauthenticated)
        auth(service, "grant", name, repo_name, "reader")
        assert mine.get_file(repo_name, "master", "a") == b"a"
        assert repo_name in [r.name for r in mine.list_repos()]
        with pytest.raises(errors.Forbidden):
            mine.put_file(repo_name, "master", "b", b"b")
        auth(service, "grant", name, repo_name, "writer")
        mine.put_file(repo_name, "master", "b", b"b")
        with pytest.raises(errors.Forbidden):
            mine.delete_repo(repo_name)
        with pytest.raises(errors.Forbidden):
            mine.gc()
        own = mine.create_repo(f"{repo_name}-own")  # the creator owns what it creates
        assert mine.whoami()["roles"][own.name] == "owner"
        mine.delete_repo(own.name)
        auth(service, "revoke", name, repo_name)
        with pytest.raises(errors.Forbidden):
            mine.inspect_repo(repo_name)


def test_revoked_token_is_401(service: Service, user: tuple[str, str]) -> None:
    _, token = user
    with Client(service.url, token=token) as mine:
        assert mine.whoami()["admin"] is False
        auth(service, "token", "revoke", token)
        with pytest.raises(errors.Unauthenticated):
            mine.whoami()


def test_init_twice_and_unknown_role_fail_with_one_line(service: Service) -> None:
    again = run_cli("auth", "init", "--root", str(service.root))
    assert again.returncode == 1 and "already initialized" in again.stderr
    bad = run_cli("auth", "grant", "admin", "repo", "emperor", "--root", str(service.root))
    assert bad.returncode == 2


def test_service_without_users_refuses_non_loopback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "datumflow.storage_service.service.serve", "serve", "--root", str(tmp_path / "s"),
         "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert "NO USERS ARE CONFIGURED" in done.stderr and "refusing to serve 0.0.0.0" in done.stderr


def test_open_service_serves_loopback_without_tokens(open_service: Service) -> None:
    assert httpx.get(f"{open_service.url}/healthz").json()["auth"] is False
    with Client(open_service.url) as c:
        c.create_repo(f"o-{uuid.uuid4().hex[:8]}")
        assert c.whoami()["admin"] is True
    assert "NO USERS ARE CONFIGURED" in open_service.log.read_text()


def test_auth_through_the_datumflow_cli(tmp_path: Path) -> None:
    root = tmp_path / "store"
    cli = [sys.executable, "-m", "datumflow.storage_service.cli.main", "--address", f"file://{root}", "auth"]
    token = subprocess.run([*cli, "init"], capture_output=True, text=True, timeout=60)
    assert token.returncode == 0 and token.stdout.startswith("dft_")
    subprocess.run([*cli, "user", "create", "ann"], check=True, timeout=60)
    subprocess.run([*cli, "grant", "ann", "sales", "writer"], check=True, timeout=60)
    listed = subprocess.run([*cli, "user", "list", "--json"], capture_output=True, text=True, timeout=60)
    users = {u["name"]: u for u in json.loads(listed.stdout)}
    assert users["ann"]["roles"] == {"sales": "writer"} and users["admin"]["admin"] is True
