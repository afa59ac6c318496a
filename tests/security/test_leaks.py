"""Item 5: provenance, lineage and datums only across readable repos; spout names; the console cookie."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from datumflow.storage_service import errors
from datumflow.storage_service.client.http import Client

from tests.helpers.waiting import until
from tests.service.conftest import Service

from .conftest import User, auth_of, bearer


def test_provenance_to_an_unreadable_commit_or_branch_is_refused(
    svc: Service, make_user: Callable[[], User], name: str
) -> None:
    victim, spy = make_user(), make_user()
    secret = f"{name}-secret"
    victim.client.create_repo(secret)
    victim_commit = victim.client.put_file(secret, "master", "s.txt", b"s")
    mine = f"{name}-spy"
    spy.client.create_repo(mine)
    with pytest.raises(errors.Forbidden):  # a commit of an unreadable repo named as provenance
        spy.client.start_commit(mine, "master", provenance=[victim_commit.id])
    with pytest.raises(errors.Forbidden):  # a branch provenant on an unreadable branch
        spy.client.create_branch(mine, "spy", provenance=[f"{secret}@master"])
    victim.client.delete_repo(secret)  # nothing was linked: the owner is not blocked


def test_provenance_listings_hide_unreadable_entries(
    svc: Service, admin: Client, make_user: Callable[[], User], name: str
) -> None:
    reader = make_user()
    hidden, shown = f"{name}-hidden", f"{name}-shown"
    admin.create_repo(hidden)
    up = admin.put_file(hidden, "master", "h.txt", b"h")
    admin.create_repo(shown)
    c = admin.start_commit(shown, "master", provenance=[up.id])
    admin.put_file(shown, c.id, "x", b"x")
    admin.finish_commit(shown, c.id)
    auth_of(svc.root).grant(reader.name, shown, "reader")
    body = httpx.get(f"{svc.url}/api/v1/repos/{shown}/commits/{c.id}/provenance", headers=bearer(reader.token))
    assert body.status_code == 200
    text = body.text
    assert up.id not in text and hidden not in text
    assert any(e.get("hidden") for e in body.json())
    down = httpx.get(f"{svc.url}/api/v1/repos/{shown}/commits/{c.id}/subvenance", headers=bearer(reader.token))
    assert down.status_code == 200


def test_lineage_and_datums_redact_unreadable_inputs(
    svc: Service, admin: Client, make_user: Callable[[], User], name: str
) -> None:
    reader = make_user()
    src, pipe = f"{name}-src", f"{name}-p"
    admin.create_repo(src)
    admin.put_file(src, "master", "private/input.csv", b"secret content")
    admin.pipelines.create_pipeline({
        "pipeline": {"name": pipe}, "input": {"pfs": {"repo": src, "glob": "/*"}},
        "transform": {"cmd": ["sh", "-c", "echo done > /pfs/out/result"]},
    })
    until(lambda: admin.get_file(pipe, "master", "result"), 60, interval=0.3, ignoring=(errors.DatumflowError,))
    auth_of(svc.root).grant(reader.name, pipe, "reader")
    head = reader.client.inspect_branch(pipe, "master").head
    lineage = httpx.get(f"{svc.url}/api/v1/repos/{pipe}/commits/{head}/lineage", params={"path": "result"},
                        headers=bearer(reader.token))
    assert lineage.status_code == 200, lineage.text
    assert "private" not in lineage.text and "input.csv" not in lineage.text
    jobs = reader.client.pipelines.list_jobs(pipe)
    datums = httpx.get(f"{svc.url}/api/v1/jobs/{jobs[0].id}/datums", headers=bearer(reader.token))
    assert datums.status_code == 200 and "input.csv" not in datums.text and "private" not in datums.text
    src_hashes = [f.hash for f in admin.walk_files(src, "master")]
    assert not any(h in datums.text or h in lineage.text for h in src_hashes)


def test_a_spout_name_cannot_be_taken_over(svc: Service, make_user: Callable[[], User], name: str) -> None:
    victim, attacker = make_user(), make_user()
    vrepo, arepo = f"{name}-v", f"{name}-a"
    victim.client.create_repo(vrepo)
    attacker.client.create_repo(arepo)
    spout = f"{name}-spout"
    cfg = {"bootstrap": "127.0.0.1:1", "topic": "t", "repo": vrepo}
    assert httpx.put(f"{svc.url}/api/v1/spouts/{spout}", json={"config": cfg},
                     headers=bearer(victim.token)).status_code == 200
    httpx.post(f"{svc.url}/api/v1/spouts/{spout}/release", json={}, headers=bearer(victim.token))
    taken = httpx.put(f"{svc.url}/api/v1/spouts/{spout}", json={"config": {**cfg, "repo": arepo}},
                      headers=bearer(attacker.token))
    assert taken.status_code == 403
    still = httpx.get(f"{svc.url}/api/v1/spouts/{spout}", headers=bearer(victim.token)).json()
    assert still["config"]["repo"] == vrepo


def test_the_console_cookie_is_not_the_token_and_pages_cannot_be_framed(
    svc: Service, make_user: Callable[[], User]
) -> None:
    user = make_user()
    login = httpx.post(f"{svc.url}/console/login", data={"token": user.token})
    assert login.status_code == 303
    cookie = login.headers["set-cookie"]
    assert user.token not in cookie
    assert "httponly" in cookie.lower() and re.search(r"samesite=strict", cookie, re.I)
    page = httpx.get(f"{svc.url}/console/", cookies=login.cookies)
    assert page.status_code == 200 and user.name in page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    behind_tls = httpx.post(f"{svc.url}/console/login", data={"token": user.token},
                            headers={"X-Forwarded-Proto": "https"})
    assert "secure" in behind_tls.headers["set-cookie"].lower()
    # the session dies with the token
    auth_of(svc.root).revoke_token(user.token)
    assert httpx.get(f"{svc.url}/console/", cookies=login.cookies).status_code == 303


def test_only_the_sites_an_operator_lists_may_frame_console_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow's lineage view frames the console's picture: DATUMFLOW_FRAME_ANCESTORS names the sites
    that may; a value that would end or widen the policy is dropped."""
    from datumflow.storage_service.service.console.pages import _secured
    from starlette.responses import Response

    assert _secured(Response()).headers["x-frame-options"] == "DENY"
    monkeypatch.setenv("DATUMFLOW_FRAME_ANCESTORS", "https://airflow.example.com *; script-src * 'unsafe-inline'")
    framed = _secured(Response())
    policy = framed.headers["content-security-policy"]
    assert "frame-ancestors 'self' https://airflow.example.com;" in policy or policy.endswith(
        "frame-ancestors 'self' https://airflow.example.com")
    assert "unsafe-inline'" not in policy.split("style-src", 1)[0] and "script-src" not in policy
    assert "x-frame-options" not in framed.headers
