"""Items 1 and 2 (stale grants): no token holder gains a role on a repo that is not theirs."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from datumflow.storage_service import errors
from datumflow.storage_service.client.http import Client

from tests.service.conftest import Service

from .conftest import User, auth_of, bearer


def test_create_repo_exist_ok_grants_nothing_on_an_existing_repo(
    svc: Service, make_user: Callable[[], User], name: str
) -> None:
    victim, attacker = make_user(), make_user()
    victim.client.create_repo(name)
    victim.client.put_file(name, "master", "secret.txt", b"victim's data")
    answer = httpx.post(f"{svc.url}/api/v1/repos", json={"name": name, "exist_ok": True},
                        headers=bearer(attacker.token))
    assert answer.status_code in (200, 201, 403)
    assert name not in attacker.client.whoami()["roles"]
    with pytest.raises(errors.Forbidden):
        attacker.client.get_file(name, "master", "secret.txt")


def test_grants_die_with_their_repo(svc: Service, make_user: Callable[[], User], name: str) -> None:
    attacker, victim = make_user(), make_user()
    attacker.client.create_repo(name)
    attacker.client.delete_repo(name)
    assert name not in attacker.client.whoami()["roles"]
    victim.client.create_repo(name)  # the name is free again: someone else takes it
    victim.client.put_file(name, "master", "secret.txt", b"victim's data")
    with pytest.raises(errors.Forbidden):
        attacker.client.get_file(name, "master", "secret.txt")


def test_a_recreated_repo_has_only_its_creators_grant(
    svc: Service, admin: Client, make_user: Callable[[], User], name: str
) -> None:
    old, new = make_user(), make_user()
    admin.create_repo(name)
    auth_of(svc.root).grant(old.name, name, "owner")
    admin.delete_repo(name)
    new.client.create_repo(name)
    assert new.client.whoami()["roles"][name] == "owner"
    assert name not in old.client.whoami()["roles"]
