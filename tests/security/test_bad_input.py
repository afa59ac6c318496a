"""Item 8: hostile names and bodies get a clear 4xx and change nothing."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable

import httpx
import pytest
from datumflow.storage_service import errors

from tests.service.conftest import Service

from .conftest import User, bearer


def tar_of(*members: tuple[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def writer(make_user: Callable[[], User], name: str) -> tuple[User, str]:
    user = make_user()
    user.client.create_repo(name)
    user.client.put_file(name, "master", "keep.txt", b"keep")
    return user, name


def put_tar(svc: Service, user: User, repo: str, body: bytes, path: str = "") -> httpx.Response:
    return httpx.post(f"{svc.url}/api/v1/repos/{repo}/commits/master/tar", params={"path": path},
                      content=body, headers={**bearer(user.token), "Content-Type": "application/x-tar"})


def files_of(user: User, repo: str) -> list[str]:
    return [f.path for f in user.client.walk_files(repo, "master")]


def test_a_file_and_a_folder_of_the_same_name_are_refused(writer: tuple[User, str]) -> None:
    user, repo = writer
    user.client.put_file(repo, "master", "a/b.txt", b"b")
    with pytest.raises(errors.InvalidArgument):
        user.client.put_file(repo, "master", "a", b"a file where a folder is")
    user.client.put_file(repo, "master", "f", b"f")
    with pytest.raises(errors.InvalidArgument):
        user.client.put_file(repo, "master", "f/under.txt", b"a folder where a file is")
    assert sorted(files_of(user, repo)) == ["a/b.txt", "f", "keep.txt"]


def test_an_absolute_tar_member_does_not_escape_the_path(svc: Service, writer: tuple[User, str]) -> None:
    user, repo = writer
    answer = put_tar(svc, user, repo, tar_of(("/keep.txt", b"overwritten")), path="uploads")
    assert answer.status_code == 400
    assert user.client.get_file(repo, "master", "keep.txt") == b"keep"


def test_a_nul_in_a_tar_member_name_is_refused(svc: Service, writer: tuple[User, str]) -> None:
    user, repo = writer
    answer = put_tar(svc, user, repo, tar_of(("evil\x00.txt", b"x")))
    assert answer.status_code == 400
    assert files_of(user, repo) == ["keep.txt"]


def test_a_truncated_tar_is_a_400(svc: Service, writer: tuple[User, str]) -> None:
    user, repo = writer
    body = tar_of(("big.bin", b"z" * 100_000))
    answer = put_tar(svc, user, repo, body[:20_000])
    assert answer.status_code == 400, answer.text
    assert files_of(user, repo) == ["keep.txt"]


def test_an_inverted_glob_range_is_a_400(svc: Service, writer: tuple[User, str]) -> None:
    user, repo = writer
    answer = httpx.get(f"{svc.url}/api/v1/repos/{repo}/commits/master/glob", params={"pattern": "[z-a]"},
                       headers=bearer(user.token))
    assert answer.status_code == 400


def test_paths_have_a_depth_limit(svc: Service, writer: tuple[User, str]) -> None:
    user, repo = writer
    with pytest.raises(errors.InvalidArgument, match="deep"):
        user.client.put_file(repo, "master", "/".join(["d"] * 2000), b"x")
    answer = put_tar(svc, user, repo, tar_of(("/".join(["d"] * 2000), b"x")))
    assert answer.status_code == 400
    assert files_of(user, repo) == ["keep.txt"]


def test_a_garbage_continuation_token_is_invalid_argument(svc: Service, writer: tuple[User, str]) -> None:
    import boto3
    from botocore.config import Config

    user, repo = writer
    pair = httpx.post(f"{svc.url}/api/v1/users/{user.name}/s3-keys", headers=bearer(user.token)).json()
    s3 = boto3.client("s3", endpoint_url=svc.url + "/s3", aws_access_key_id=pair["access_key_id"],
                      aws_secret_access_key=pair["secret_access_key"], region_name="us-east-1",
                      config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))
    with pytest.raises(Exception, match="InvalidArgument"):
        s3.list_objects_v2(Bucket=f"master.{repo}", ContinuationToken="Z2FyYmFnZS10b2tlbg==")  # base64 of garbage
