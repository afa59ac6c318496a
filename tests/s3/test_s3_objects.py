"""boto3 against the gateway: objects, listings, ranges, copies, deletes, commits."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from botocore.exceptions import ClientError
from datumflow.storage_service.client.http import Client

from tests.service.conftest import Service


def repo_of(bucket: str) -> str:
    return bucket.split(".")[-1]


def commits(gateway: Service, bucket: str) -> list[Any]:
    with Client(gateway.url, token=gateway.token) as client:
        return client.list_commits(repo_of(bucket), "master")


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_each_put_is_a_commit_and_reads_back(s3: Any, bucket: str, gateway: Service) -> None:
    s3.put_object(Bucket=bucket, Key="a/one.txt", Body=b"one")
    s3.put_object(Bucket=bucket, Key="a/two.txt", Body=b"two!")
    assert len(commits(gateway, bucket)) == 2
    got = s3.get_object(Bucket=bucket, Key="a/two.txt")
    assert got["Body"].read() == b"two!"
    head = s3.head_object(Bucket=bucket, Key="a/one.txt")
    assert head["ContentLength"] == 3
    assert head["ETag"] == f'"{hashlib.md5(b"one").hexdigest()}"'  # S3's ETag: the MD5 of the body
    assert head["LastModified"].year >= 2024


def test_list_buckets_has_one_per_branch(s3: Any, bucket: str) -> None:
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert bucket in names


def test_list_v2_prefix_delimiter_and_paging(s3: Any, bucket: str) -> None:
    for key in ["d/x/1", "d/x/2", "d/y", "d/z/3", "e"]:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["d/"]
    assert [c["Key"] for c in top["Contents"]] == ["e"]
    inner = s3.list_objects_v2(Bucket=bucket, Prefix="d/", Delimiter="/")
    assert [p["Prefix"] for p in inner["CommonPrefixes"]] == ["d/x/", "d/z/"]
    assert [c["Key"] for c in inner["Contents"]] == ["d/y"]
    keys, token, pages = [], None, 0
    while True:
        kwargs = {"ContinuationToken": token} if token else {}
        page = s3.list_objects_v2(Bucket=bucket, MaxKeys=2, **kwargs)
        keys += [c["Key"] for c in page.get("Contents", [])]
        pages += 1
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    assert keys == ["d/x/1", "d/x/2", "d/y", "d/z/3", "e"]
    assert pages == 3
    after = s3.list_objects_v2(Bucket=bucket, StartAfter="d/y")
    assert [c["Key"] for c in after["Contents"]] == ["d/z/3", "e"]
    v1 = s3.list_objects(Bucket=bucket, Marker="d/x/2", MaxKeys=1)
    assert [c["Key"] for c in v1["Contents"]] == ["d/y"] and v1["IsTruncated"]


def test_keys_with_spaces_and_unicode(s3: Any, bucket: str) -> None:
    key = "dir with space/naïve + plus.txt"
    s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"x"
    assert [c["Key"] for c in s3.list_objects_v2(Bucket=bucket)["Contents"]] == [key]


def test_range_reads(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="r.bin", Body=bytes(range(100)))
    part = s3.get_object(Bucket=bucket, Key="r.bin", Range="bytes=10-19")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["Body"].read() == bytes(range(10, 20))
    assert part["ContentRange"] == "bytes 10-19/100"
    assert s3.get_object(Bucket=bucket, Key="r.bin", Range="bytes=-5")["Body"].read() == bytes(range(95, 100))
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="r.bin", Range="bytes=100-200")
    assert code(exc) == "InvalidRange"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416


def test_copy_is_zero_copy_and_commit_bucket_is_read_only(s3: Any, bucket: str, gateway: Service) -> None:
    s3.put_object(Bucket=bucket, Key="src.txt", Body=b"payload")
    s3.copy_object(Bucket=bucket, Key="dst.txt", CopySource={"Bucket": bucket, "Key": "src.txt"})
    src, dst = (s3.head_object(Bucket=bucket, Key=k)["ETag"] for k in ("src.txt", "dst.txt"))
    assert src == dst
    first = commits(gateway, bucket)[-1]
    pinned = f"{first.id}.{bucket}"
    assert s3.get_object(Bucket=pinned, Key="src.txt")["Body"].read() == b"payload"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=pinned, Key="dst.txt")  # the copy came later
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=pinned, Key="new.txt", Body=b"no")
    assert code(exc) == "AccessDenied"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_delete_and_batch_delete_in_one_commit(s3: Any, bucket: str, gateway: Service) -> None:
    for key in ["k1", "k2", "k3", "k4"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b".")
    s3.delete_object(Bucket=bucket, Key="k1")
    before = len(commits(gateway, bucket))
    out = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "k2"}, {"Key": "k3"}, {"Key": "nope"}]})
    assert {d["Key"] for d in out["Deleted"]} == {"k2", "k3", "nope"}
    assert len(commits(gateway, bucket)) == before + 1
    assert [c["Key"] for c in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k4"]
    s3.delete_object(Bucket=bucket, Key="never-there")  # idempotent, as in S3


def test_missing_things(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="absent")
    assert code(exc) == "NoSuchKey"
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket="master.no-such-repo-here")
    assert code(exc) == "NoSuchBucket"
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket="not-a-branch-dot-repo")  # no bucket can have that name
    assert code(exc) == "NoSuchBucket"
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket="not-a-branch-dot-repo")
    assert code(exc) == "InvalidBucketName"
