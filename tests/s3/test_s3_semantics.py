"""Keys as given, NoSuchBucket, virtual-hosted buckets, listing details, multipart semantics."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.s3.conftest import s3_client
from tests.s3.test_s3_objects import code
from tests.service.conftest import Service, init_auth, launch

MiB = 1024 * 1024


def _keys(s3: Any, bucket: str) -> list[str]:
    return [c["Key"] for c in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


@pytest.mark.parametrize("key", ["a//b", "/x", "./x", "a/./b", "a/../b", "a\\b", "x/."])
def test_keys_that_would_alias_are_refused_and_never_rewritten(s3: Any, bucket: str, key: str) -> None:
    s3.put_object(Bucket=bucket, Key="a/b", Body=b"mine")
    s3.put_object(Bucket=bucket, Key="x", Body=b"mine too")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key=key, Body=b"intruder")
    assert code(exc) == "InvalidArgument"
    assert "cannot be stored as given" in exc.value.response["Error"]["Message"]
    assert s3.get_object(Bucket=bucket, Key="a/b")["Body"].read() == b"mine"
    assert s3.get_object(Bucket=bucket, Key="x")["Body"].read() == b"mine too"
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key)  # never another key's object
    assert code(exc) == "NoSuchKey"
    s3.delete_object(Bucket=bucket, Key=key)  # deletes nothing else
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": key}]})
    assert _keys(s3, bucket) == ["a/b", "x"]


def test_folder_markers_and_keys_ending_in_slash(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="dir/", Body=b"")  # a folder marker: accepted, nothing stored
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="dir/", Body=b"content")
    assert code(exc) == "InvalidArgument"
    assert _keys(s3, bucket) == []


def test_long_keys(s3: Any, bucket: str) -> None:
    long_segment = "k" * 1000
    deep = "/".join(["d" * 100] * 9) + "/" + "e" * 115  # 1,024 bytes
    for key in (long_segment, deep):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode()[:10])
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()[:10]
    assert sorted(_keys(s3, bucket)) == sorted([long_segment, deep])
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="x" * 1025, Body=b"x")
    assert code(exc) == "KeyTooLongError"


def test_delete_object_never_deletes_a_folder(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="d/inner", Body=b"1")
    s3.delete_object(Bucket=bucket, Key="d")
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d"}]})
    assert _keys(s3, bucket) == ["d/inner"]


# -- buckets ---------------------------------------------------------------------------


def _user(gateway: Service, grants: dict[str, str]) -> Any:
    def auth(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "datumflow.storage_service.service.serve", "auth", *args,
                               "--root", str(gateway.root)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    name = f"u{uuid.uuid4().hex[:8]}"
    auth("user", "create", name)
    for repo, role in grants.items():
        auth("grant", name, repo, role)
    token = auth("token", "create", name).split()[-1]
    return s3_client(gateway.url, token, token)


def test_missing_bucket_is_404_for_everyone(gateway: Service, bucket: str) -> None:
    user = _user(gateway, {})
    for name in ("master.no-such-repo-zz", f"nobranch.{bucket.split('.')[1]}"):
        with pytest.raises(ClientError) as exc:
            user.list_objects_v2(Bucket=name)
        assert code(exc) == "NoSuchBucket"
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as exc:
        user.list_objects_v2(Bucket=bucket)  # exists, not theirs
    assert code(exc) == "AccessDenied"


def test_list_buckets_shows_only_what_the_caller_reads(s3: Any, gateway: Service, bucket: str) -> None:
    user = _user(gateway, {bucket.split(".")[1]: "reader"})
    s3.create_bucket(Bucket=f"master.other-{uuid.uuid4().hex[:8]}")
    assert [b["Name"] for b in user.list_buckets()["Buckets"]] == [bucket]


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("hosted") / "store"
    svc = launch(root, token=init_auth(root), args=("--s3-domain", "s3.example.test"))
    yield svc
    svc.stop()


def test_virtual_hosted_buckets_authenticate(hosted: Service) -> None:
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    assert hosted.token
    path = s3_client(hosted.url, hosted.token, hosted.token)
    path.create_bucket(Bucket="master.vhost")
    port = hosted.url.rsplit(":", 1)[1]

    def send(method: str, url: str, body: bytes = b"", secret: str = hosted.token or "") -> httpx.Response:
        request = AWSRequest(method=method, url=url, data=body)
        S3SigV4Auth(Credentials(hosted.token, secret), "s3", "us-east-1").add_auth(request)
        headers = {"Host": f"master.vhost.s3.example.test:{port}", **dict(request.headers.items())}
        return httpx.request(method, hosted.url + url.split(f":{port}", 1)[1], content=body, headers=headers)

    base = f"http://master.vhost.s3.example.test:{port}"
    assert send("PUT", f"{base}/hello.txt", b"hi").status_code == 200
    got = send("GET", f"{base}/hello.txt")
    assert got.status_code == 200 and got.content == b"hi"
    assert "<Key>hello.txt</Key>" in send("GET", f"{base}/?list-type=2").text
    assert send("GET", f"{base}/hello.txt", secret="wrong").status_code == 403


# -- listings ----------------------------------------------------------------------------


def test_list_v1_prefix_is_returned_as_sent(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="a b+c/é.txt", Body=b"x")
    v1 = s3.list_objects(Bucket=bucket, Prefix="a b+c/")
    assert v1["Prefix"] == "a b+c/"
    assert [c["Key"] for c in v1["Contents"]] == ["a b+c/é.txt"]
    v2 = s3.list_objects_v2(Bucket=bucket, Prefix="a b+c/")
    assert v2["Prefix"] == "a b+c/" and v2["KeyCount"] == 1


def test_max_keys_zero_is_not_truncated(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    for page in (s3.list_objects(Bucket=bucket, MaxKeys=0), s3.list_objects_v2(Bucket=bucket, MaxKeys=0)):
        assert page["IsTruncated"] is False and "Contents" not in page


# -- multipart ---------------------------------------------------------------------------


def test_repeated_complete_multipart_upload_is_idempotent(s3: Any, bucket: str) -> None:
    up = s3.create_multipart_upload(Bucket=bucket, Key="twice.bin")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="twice.bin", UploadId=up, PartNumber=1, Body=b"once")["ETag"]
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    first = s3.complete_multipart_upload(Bucket=bucket, Key="twice.bin", UploadId=up, MultipartUpload=parts)
    again = s3.complete_multipart_upload(Bucket=bucket, Key="twice.bin", UploadId=up, MultipartUpload=parts)
    assert again["ETag"] == first["ETag"] and again["VersionId"] == first["VersionId"]
    assert s3.get_object(Bucket=bucket, Key="twice.bin")["Body"].read() == b"once"


def test_parts_under_5_mib_are_too_small_except_the_last(s3: Any, bucket: str) -> None:
    up = s3.create_multipart_upload(Bucket=bucket, Key="small.bin")["UploadId"]
    etags = [s3.upload_part(Bucket=bucket, Key="small.bin", UploadId=up, PartNumber=n, Body=b"x" * 1024)["ETag"]
             for n in (1, 2)]
    parts = {"Parts": [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2), etags, strict=True)]}
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="small.bin", UploadId=up, MultipartUpload=parts)
    assert code(exc) == "EntityTooSmall"
    assert _keys(s3, bucket) == []


def test_local_copy_of_a_long_key_fails_cleanly(tmp_path: Path) -> None:
    """What docs/s3.md says: a 1,000-byte file name is stored, but most local file systems refuse it."""
    from datumflow.storage_service.store.store import Store

    with Store(str(tmp_path / "s")) as store:
        store.create_repo("r")
        store.put_file("r", "master", "k" * 1000, b"x")
        assert store.get_file("r", "master", "k" * 1000) == b"x"
