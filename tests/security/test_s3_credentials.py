"""Item 4: S3 access uses its own key pairs, never the bearer token; presigned URLs expire; logs hold no secret."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.service.conftest import Service

from .conftest import User, auth_cli, bearer, run_cli


def s3_client(url: str, key: str, secret: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=url + "/s3", aws_access_key_id=key, aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4", retries={"max_attempts": 1}),
    )


@pytest.fixture
def s3_user(svc: Service, make_user: Callable[[], User]) -> tuple[User, dict[str, Any]]:
    user = make_user()
    made = httpx.post(f"{svc.url}/api/v1/users/{user.name}/s3-keys", headers=bearer(user.token))
    assert made.status_code == 201, made.text
    return user, made.json()


def test_s3_key_pairs_are_created_listed_and_revoked(svc: Service, make_user: Callable[[], User]) -> None:
    user = make_user()
    pair = auth_cli(svc.root, "s3-key", "create", user.name)
    key, secret = str(pair["access_key_id"]), str(pair["secret_access_key"])
    assert key != secret and user.token not in (key, secret)
    listed = run_cli("auth", "s3-key", "list", user.name, "--root", str(svc.root), "--json")
    assert listed.returncode == 0 and key in listed.stdout and secret not in listed.stdout
    bucket = f"master.{user.name}-b"
    s3 = s3_client(svc.url, key, secret)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    auth_cli(svc.root, "s3-key", "revoke", user.name, key)
    with pytest.raises(Exception, match="InvalidAccessKeyId"):
        s3.get_object(Bucket=bucket, Key="k")


def test_s3_keys_over_http_for_self_not_for_others(svc: Service, make_user: Callable[[], User]) -> None:
    me, other = make_user(), make_user()
    mine = httpx.post(f"{svc.url}/api/v1/users/{me.name}/s3-keys", headers=bearer(me.token))
    assert mine.status_code == 201 and mine.json()["secret_access_key"]
    theirs = httpx.post(f"{svc.url}/api/v1/users/{other.name}/s3-keys", headers=bearer(me.token))
    assert theirs.status_code == 403
    listed = httpx.get(f"{svc.url}/api/v1/users/{me.name}/s3-keys", headers=bearer(me.token)).json()
    assert [k["access_key_id"] for k in listed] == [mine.json()["access_key_id"]]
    assert "secret_access_key" not in listed[0]
    gone = httpx.delete(f"{svc.url}/api/v1/users/{me.name}/s3-keys/{listed[0]['access_key_id']}",
                        headers=bearer(me.token))
    assert gone.status_code == 204


def test_a_presigned_url_does_not_carry_the_token_and_expires(
    svc: Service, s3_user: tuple[User, dict[str, Any]]
) -> None:
    user, pair = s3_user
    key, secret = str(pair["access_key_id"]), str(pair["secret_access_key"])
    bucket = f"master.{user.name}-p"
    s3 = s3_client(svc.url, key, secret)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="p.txt", Body=b"presigned")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p.txt"}, ExpiresIn=2)
    assert user.token not in url and secret not in url
    assert httpx.get(url).content == b"presigned"
    time.sleep(3)
    assert httpx.get(url).status_code == 403
    # the token itself no longer works as a presigning key
    with_token = s3_client(svc.url, user.token, user.token)
    old_style = with_token.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p.txt"},
                                                  ExpiresIn=60)
    assert httpx.get(old_style).status_code == 403


def test_presigned_expiry_is_capped_at_seven_days(svc: Service, s3_user: tuple[User, dict[str, Any]]) -> None:
    user, pair = s3_user
    s3 = s3_client(svc.url, str(pair["access_key_id"]), str(pair["secret_access_key"]))
    bucket = f"master.{user.name}-x"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="x", Body=b"x")
    ten_years = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "x"},
                                          ExpiresIn=10 * 365 * 86400)
    refused = httpx.get(ten_years)
    assert refused.status_code in (400, 403) and b"X-Amz-Expires" in refused.content
    week = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "x"}, ExpiresIn=604800)
    assert httpx.get(week).content == b"x"


def test_tokens_and_secrets_never_reach_the_log(svc: Service, s3_user: tuple[User, dict[str, Any]]) -> None:
    user, pair = s3_user
    key, secret = str(pair["access_key_id"]), str(pair["secret_access_key"])
    s3 = s3_client(svc.url, key, secret)
    bucket = f"master.{user.name}-l"
    s3.create_bucket(Bucket=bucket)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "none"}, ExpiresIn=60)
    httpx.get(url)
    httpx.get(f"{svc.url}/api/v1/repos", headers=bearer(user.token))
    httpx.get(f"{svc.url}/api/v1/repos?token={user.token}")  # a token put where it does not belong
    httpx.get(f"{svc.url}/s3/{bucket}?X-Amz-Credential={user.token}/x&X-Amz-Signature=deadbeef")
    time.sleep(0.5)
    log = svc.log.read_text()
    assert f"/s3/{bucket}" in log  # requests are logged...
    assert user.token not in log and secret not in log  # ...but not their secrets
    signature = dict(x.split("=", 1) for x in url.split("?", 1)[1].split("&"))["X-Amz-Signature"]
    assert signature not in log


def test_secrets_are_stored_encrypted(svc: Service, s3_user: tuple[User, dict[str, Any]]) -> None:
    _, pair = s3_user
    raw = (svc.root / "metadata.db").read_bytes()
    assert str(pair["secret_access_key"]).encode() not in raw
    key_file = svc.root / "server.key"
    assert key_file.exists() and key_file.stat().st_mode & 0o077 == 0
