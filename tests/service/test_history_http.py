"""Merge, tags, revert, reset, protection and bisect: embedded and over HTTP, and every write surface.

The protected-branch test tries a direct write through each way in — the HTTP
client, a raw HTTP request, fsspec, boto3 against the S3 gateway, and the
``datumflow`` command — and checks each is refused while a merge publishes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import httpx
import pytest
from datumflow.storage_service import errors
from datumflow.storage_service.client.fs import DatumflowFileSystem
from datumflow.storage_service.model.history import MergeResult, Tag

import datumflow

from .conftest import Service


@pytest.fixture(params=["embedded", "http"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "embedded":
        s = datumflow.connect(f"file://{tmp_path / 'store'}")
    else:
        svc: Service = request.getfixturevalue("service")
        s = datumflow.connect(svc.url, token=svc.token)
    yield s
    s.close()


@pytest.fixture
def repo(store: Any) -> str:
    name = f"h-{uuid.uuid4().hex[:10]}"
    store.create_repo(name)
    store.put_files(name, "master", [("a", b"1"), ("b", b"2")])
    store.create_branch(name, "dev", head="master")
    return name


def test_merge_and_conflicts(store: Any, repo: str) -> None:
    store.put_file(repo, "dev", "a", b"dev")
    store.put_file(repo, "master", "b", b"master")
    result = store.merge(repo, "dev", "master", message="publish", author="someone")
    assert isinstance(result, MergeResult) and result.status == "merged"
    assert len(result.commit.parents) == 2 and result.commit.description == "publish"
    assert store.get_file(repo, "master", "a") == b"dev"
    assert store.inspect_commit(repo, "master").merge_parent == store.resolve(repo, "dev")
    assert store.merge_base(repo, "dev", "master") == store.resolve(repo, "dev")
    assert len(store.list_commits(repo, "master")) > len(store.list_commits(repo, "master", first_parent=True))
    store.put_file(repo, "dev", "a", b"dev2")
    store.put_file(repo, "master", "a", b"master2")
    with pytest.raises(errors.MergeConflict):
        store.merge(repo, "dev", "master")
    preview = store.merge(repo, "dev", "master", dry_run=True)
    assert [c.path for c in preview.conflicts] == ["a"] and preview.conflicts[0].theirs.size == 4
    assert store.merge(repo, "dev", "master", strategy="theirs").status == "merged"


def test_tags_revert_reset(store: Any, repo: str) -> None:
    tag = store.create_tag(repo, "v1", "master", message="first")
    assert isinstance(tag, Tag) and store.resolve(repo, "v1") == tag.commit
    assert [t.name for t in store.list_tags(repo)] == ["v1"]
    with pytest.raises(errors.ProtectedBranch):
        store.put_file(repo, "v1", "x", b"x")
    bad = store.put_file(repo, "master", "a", b"oops")
    undone = store.revert(repo, bad.id)
    assert store.get_file(repo, "master", "a") == b"1" and undone.metadata["reverts"] == bad.id
    with pytest.raises(errors.InvalidArgument):
        store.reset_branch(repo, "master", "v1")
    assert store.reset_branch(repo, "master", "v1", force=True).head == tag.commit
    store.delete_tag(repo, "v1")
    with pytest.raises(errors.TagNotFound):
        store.inspect_tag(repo, "v1")


def test_bisect_through_the_client(store: Any, repo: str) -> None:
    ids = [store.put_file(repo, "master", "n", str(i).encode()).id for i in range(9)]
    cmd = ["sh", "-c", 'test "$(cat n)" -lt 6']
    result = store.bisect(repo, ids[0], ids[-1], cmd)
    assert result.first_bad == ids[6] and result.runs <= 4
    assert [c["path"] for c in result.changes] == ["n"]


def test_a_protected_branch_refuses_direct_writes_on_every_surface(service: Service, tmp_path: Path) -> None:
    from tests.s3.conftest import s3_client

    assert service.token
    client = datumflow.connect(service.url, token=service.token)
    repo = f"p-{uuid.uuid4().hex[:10]}"
    client.create_repo(repo)
    client.put_file(repo, "master", "a", b"1")
    client.create_branch(repo, "dev", head="master")
    client.protect_branch(repo, "master")
    head = client.resolve(repo, "master")

    with pytest.raises(errors.ProtectedBranch):
        client.put_file(repo, "master", "x", b"x")
    raw = httpx.put(f"{service.url}/api/v1/repos/{repo}/commits/master/content", params={"path": "x"},
                    content=b"x", headers={"Authorization": f"Bearer {service.token}"})
    assert raw.status_code == 403 and raw.json()["error"]["type"] == "ProtectedBranch"
    fs = fsspec.filesystem("datumflow", address=service.url, token=service.token, skip_instance_cache=True)
    with pytest.raises(PermissionError):
        fs.pipe(f"{repo}@master/x", b"x")
    DatumflowFileSystem.clear_instance_cache()
    s3 = s3_client(service.url, service.token, service.token)
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=f"master.{repo}", Key="x", Body=b"x")
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    env = {**os.environ, "DATUMFLOW_ADDRESS": service.url, "DATUMFLOW_TOKEN": service.token}
    local = tmp_path / "x.txt"
    local.write_bytes(b"x")
    cli = subprocess.run([sys.executable, "-m", "datumflow.storage_service.cli.main", "put", f"{repo}@master:x",
                          str(local)], capture_output=True, text=True, env=env, timeout=60)
    assert cli.returncode != 0 and "protected" in cli.stderr
    assert client.resolve(repo, "master") == head  # nothing landed

    client.put_file(repo, "dev", "x", b"published")
    client.put_file(repo, "dev", "y", b"y")
    assert client.merge(repo, "dev", "master").status == "fast-forward"
    got = s3.get_object(Bucket=f"master.{repo}", Key="x")["Body"].read()
    assert got == b"published"  # the gateway sees the merged branch at once

    client.create_tag(repo, "release-1", "master")
    assert s3.get_object(Bucket=f"release-1.{repo}", Key="y")["Body"].read() == b"y"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=f"release-1.{repo}")["Contents"]]
    assert keys == ["a", "x", "y"]
    with pytest.raises(ClientError) as tag_write:
        s3.put_object(Bucket=f"release-1.{repo}", Key="z", Body=b"z")
    assert tag_write.value.response["Error"]["Code"] == "AccessDenied"
    client.close()


def test_checks_over_http_need_an_admin(service: Service) -> None:
    assert service.token
    client = datumflow.connect(service.url, token=service.token)
    repo = f"k-{uuid.uuid4().hex[:10]}"
    client.create_repo(repo)
    client.put_file(repo, "master", "a", b"1")
    client.create_branch(repo, "dev", head="master")
    client.put_file(repo, "dev", "a", b"2")
    client.put_file(repo, "master", "b", b"2")
    client.protect_branch(repo, "master", checks=["sh -c 'test $(cat a) = 3'"])
    with pytest.raises(errors.CheckFailed):
        client.merge(repo, "dev", "master")
    client.put_file(repo, "dev", "a", b"3")
    merged = client.merge(repo, "dev", "master").commit
    assert merged.metadata["merge"]["merged_by"] == client.whoami()["name"]  # the caller, not a claim
    assert [p.checks for p in client.list_protections(repo)] == [("sh -c 'test $(cat a) = 3'",)]
    client.close()
