"""Object metadata kept and returned; uploads verified; ETags clients can check; conditional requests."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.s3.test_s3_objects import code, commits
from tests.service.conftest import Service

MiB = 1024 * 1024
SYSTEM = {"ContentType": "text/csv; charset=utf-8", "ContentEncoding": "gzip", "CacheControl": "max-age=60",
          "ContentDisposition": 'attachment; filename="x.csv"', "ContentLanguage": "en"}
EXPIRES = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)


def _check_meta(got: dict[str, Any], user: dict[str, str]) -> None:
    for name, value in SYSTEM.items():
        assert got[name] == value, name
    assert got["Metadata"] == user
    assert got["ResponseMetadata"]["HTTPHeaders"]["expires"] == "Wed, 02 Jan 2030 03:04:05 GMT"


def test_put_keeps_metadata_on_get_head_and_copy(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="m.csv", Body=b"a,b\n", Expires=EXPIRES, Metadata={"owner": "ana"}, **SYSTEM)
    _check_meta(s3.head_object(Bucket=bucket, Key="m.csv"), {"owner": "ana"})
    _check_meta(s3.get_object(Bucket=bucket, Key="m.csv"), {"owner": "ana"})
    s3.copy_object(Bucket=bucket, Key="copied.csv", CopySource={"Bucket": bucket, "Key": "m.csv"})
    _check_meta(s3.head_object(Bucket=bucket, Key="copied.csv"), {"owner": "ana"})
    s3.copy_object(Bucket=bucket, Key="replaced.csv", CopySource={"Bucket": bucket, "Key": "m.csv"},
                   MetadataDirective="REPLACE", ContentType="text/plain", Metadata={"owner": "bo"})
    replaced = s3.head_object(Bucket=bucket, Key="replaced.csv")
    assert replaced["ContentType"] == "text/plain" and replaced["Metadata"] == {"owner": "bo"}
    assert "ContentEncoding" not in replaced
    overridden = s3.get_object(Bucket=bucket, Key="m.csv", ResponseContentType="application/json")
    assert overridden["ContentType"] == "application/json"


def test_copy_onto_itself_needs_replace(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="self", Body=b"x", ContentType="text/plain")
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="self", CopySource={"Bucket": bucket, "Key": "self"})
    assert code(exc) == "InvalidRequest"
    s3.copy_object(Bucket=bucket, Key="self", CopySource={"Bucket": bucket, "Key": "self"},
                   MetadataDirective="REPLACE", ContentType="text/csv")
    assert s3.head_object(Bucket=bucket, Key="self")["ContentType"] == "text/csv"


def test_multipart_keeps_metadata(s3: Any, bucket: str) -> None:
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp.bin", Expires=EXPIRES, Metadata={"k": "v"}, **SYSTEM)
    etag = s3.upload_part(Bucket=bucket, Key="mp.bin", UploadId=up["UploadId"], PartNumber=1, Body=b"abc")["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp.bin", UploadId=up["UploadId"],
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    _check_meta(s3.head_object(Bucket=bucket, Key="mp.bin"), {"k": "v"})


def test_etag_is_the_md5_everywhere(s3: Any, bucket: str) -> None:
    body = os.urandom(10_000)
    put = s3.put_object(Bucket=bucket, Key="e", Body=body)
    want = f'"{hashlib.md5(body).hexdigest()}"'
    assert put["ETag"] == want
    assert s3.head_object(Bucket=bucket, Key="e")["ETag"] == want
    assert s3.list_objects_v2(Bucket=bucket)["Contents"][0]["ETag"] == want
    assert s3.list_objects(Bucket=bucket)["Contents"][0]["ETag"] == want


def test_wrong_content_md5_is_refused_and_stores_nothing(s3: Any, bucket: str, gateway: Service) -> None:
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="bad", Body=b"payload", ContentMD5=wrong)
    assert code(exc) == "BadDigest"
    right = base64.b64encode(hashlib.md5(b"payload").digest()).decode()
    s3.put_object(Bucket=bucket, Key="good", Body=b"payload", ContentMD5=right)
    assert [c["Key"] for c in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["good"]
    assert len(commits(gateway, bucket)) == 1


@pytest.mark.parametrize("algorithm", ["CRC32", "SHA1", "SHA256"])
def test_wrong_checksum_is_refused(s3: Any, bucket: str, algorithm: str) -> None:
    digest = {"CRC32": b"\0\0\0\0", "SHA1": b"\0" * 20, "SHA256": b"\0" * 32}[algorithm]
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="c", Body=b"payload", ChecksumAlgorithm=algorithm,
                      **{f"Checksum{algorithm}": base64.b64encode(digest).decode()})
    assert code(exc) == "BadDigest"
    s3.put_object(Bucket=bucket, Key="c", Body=b"payload", ChecksumAlgorithm=algorithm)  # boto3 computes it
    assert s3.get_object(Bucket=bucket, Key="c")["Body"].read() == b"payload"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="never")


def test_wrong_content_sha256_is_refused(open_service: Service) -> None:
    """Over an open service nothing checks a signature, so a lying x-amz-content-sha256 reaches the body check."""
    with httpx.Client(base_url=open_service.url + "/s3") as http:
        assert http.put("/master.sha-check").status_code == 200
        lie = hashlib.sha256(b"something else").hexdigest()
        answer = http.put("/master.sha-check/k", content=b"payload", headers={"x-amz-content-sha256": lie})
        assert answer.status_code == 400 and "XAmzContentSHA256Mismatch" in answer.text
        assert http.get("/master.sha-check/k").status_code == 404
        truth = hashlib.sha256(b"payload").hexdigest()
        assert http.put("/master.sha-check/k", content=b"payload",
                        headers={"x-amz-content-sha256": truth}).status_code == 200


# -- conditional requests -------------------------------------------------------------------


def test_conditional_reads(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"v1")["ETag"]
    modified = s3.head_object(Bucket=bucket, Key="c")["LastModified"]
    later, earlier = modified + dt.timedelta(hours=1), modified - dt.timedelta(hours=1)
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"v1"
    for args, status in [({"IfMatch": '"0000"'}, 412), ({"IfUnmodifiedSince": earlier}, 412),
                         ({"IfNoneMatch": etag}, 304), ({"IfModifiedSince": later}, 304)]:
        for call in (s3.get_object, s3.head_object):
            with pytest.raises(ClientError) as exc:
                call(Bucket=bucket, Key="c", **args)
            assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == status, (call, args)
    assert s3.get_object(Bucket=bucket, Key="c", IfNoneMatch='"0000"', IfModifiedSince=later)["Body"].read() == b"v1"


def test_conditional_writes(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="once", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="once", Body=b"second", IfNoneMatch="*")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"first"
    etag = s3.head_object(Bucket=bucket, Key="once")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="once", Body=b"third", IfMatch='"0000"')
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    s3.put_object(Bucket=bucket, Key="once", Body=b"fourth", IfMatch=etag)
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"fourth"


def test_conditional_copies(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="src", Body=b"s")["ETag"]
    modified = s3.head_object(Bucket=bucket, Key="src")["LastModified"]
    source = {"Bucket": bucket, "Key": "src"}
    for args in [{"CopySourceIfMatch": '"0000"'}, {"CopySourceIfNoneMatch": etag},
                 {"CopySourceIfModifiedSince": modified + dt.timedelta(hours=1)},
                 {"CopySourceIfUnmodifiedSince": modified - dt.timedelta(hours=1)}]:
        with pytest.raises(ClientError) as exc:
            s3.copy_object(Bucket=bucket, Key="dst", CopySource=source, **args)
        assert code(exc) == "PreconditionFailed", args
    s3.copy_object(Bucket=bucket, Key="dst", CopySource=source, CopySourceIfMatch=etag)
    assert [c["Key"] for c in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["dst", "src"]
