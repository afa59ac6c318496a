"""Signatures (header and presigned) and multipart uploads, complete, aborted and interrupted."""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from botocore.exceptions import ClientError
from datumflow.storage_service.client.http import Client

from tests.s3.conftest import s3_client
from tests.s3.test_s3_objects import code, commits, repo_of
from tests.service.conftest import Service

MiB = 1024 * 1024


def test_wrong_secret_and_unknown_key(gateway: Service, bucket: str) -> None:
    assert gateway.token
    with pytest.raises(ClientError) as exc:
        s3_client(gateway.url, gateway.token, "not-the-token").list_objects_v2(Bucket=bucket)
    assert code(exc) == "SignatureDoesNotMatch"
    with pytest.raises(ClientError) as exc:
        s3_client(gateway.url, "dft_unknown", "dft_unknown").list_objects_v2(Bucket=bucket)
    assert code(exc) == "InvalidAccessKeyId"


def test_unsigned_request_is_refused(gateway: Service, bucket: str) -> None:
    answer = httpx.get(f"{gateway.url}/s3/{bucket}")
    assert answer.status_code == 403
    assert "<Code>AccessDenied</Code>" in answer.text


def test_presigned_url(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="p.txt", Body=b"presigned")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p.txt"}, ExpiresIn=60)
    assert httpx.get(url).content == b"presigned"
    tampered = url.replace("p.txt", "q.txt")
    answer = httpx.get(tampered)
    assert answer.status_code == 403 and "SignatureDoesNotMatch" in answer.text


def test_multipart_complete_writes_one_file_in_one_commit(s3: Any, bucket: str, gateway: Service) -> None:
    data = os.urandom(5 * MiB) + os.urandom(3 * MiB)
    up = s3.create_multipart_upload(Bucket=bucket, Key="big/blob.bin")["UploadId"]
    etags = []
    for n, piece in enumerate([data[: 5 * MiB], data[5 * MiB:]], start=1):
        etags.append(s3.upload_part(Bucket=bucket, Key="big/blob.bin", UploadId=up, PartNumber=n, Body=piece)["ETag"])
    listed = s3.list_parts(Bucket=bucket, Key="big/blob.bin", UploadId=up)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in listed] == [(1, 5 * MiB), (2, 3 * MiB)]
    assert commits(gateway, bucket) == []  # nothing is visible before completion
    s3.complete_multipart_upload(
        Bucket=bucket, Key="big/blob.bin", UploadId=up,
        MultipartUpload={"Parts": [{"PartNumber": i + 1, "ETag": t} for i, t in enumerate(etags)]},
    )
    assert s3.get_object(Bucket=bucket, Key="big/blob.bin")["Body"].read() == data
    assert len(commits(gateway, bucket)) == 1
    s3.put_object(Bucket=bucket, Key="same.bin", Body=data)  # same bytes by PutObject: same content hash
    with Client(gateway.url, token=gateway.token) as client:
        one, two = (client.inspect_file(repo_of(bucket), "master", k) for k in ("same.bin", "big/blob.bin"))
    assert one.hash == two.hash
    # and S3's ETags: the MD5 of a single-part body, the MD5 of the parts' MD5s with the count
    parts = b"".join(hashlib.md5(p).digest() for p in (data[: 5 * MiB], data[5 * MiB:]))
    assert s3.head_object(Bucket=bucket, Key="same.bin")["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert s3.head_object(Bucket=bucket, Key="big/blob.bin")["ETag"] == f'"{hashlib.md5(parts).hexdigest()}-2"'


def test_boto3_upload_fileobj_uses_multipart(s3: Any, bucket: str, tmp_path: Any) -> None:
    from boto3.s3.transfer import TransferConfig

    src = tmp_path / "up.bin"
    src.write_bytes(os.urandom(11 * MiB))
    s3.upload_file(str(src), bucket, "t/up.bin",
                   Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB))
    dst = tmp_path / "down.bin"
    s3.download_file(bucket, "t/up.bin", str(dst))
    assert dst.read_bytes() == src.read_bytes()


def test_aborted_upload_leaves_nothing(s3: Any, bucket: str, gateway: Service) -> None:
    up = s3.create_multipart_upload(Bucket=bucket, Key="gone.bin")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="gone.bin", UploadId=up, PartNumber=1, Body=b"x" * 1024)
    assert [u["UploadId"] for u in s3.list_multipart_uploads(Bucket=bucket)["Uploads"]] == [up]
    s3.abort_multipart_upload(Bucket=bucket, Key="gone.bin", UploadId=up)
    assert commits(gateway, bucket) == []
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="gone.bin", UploadId=up,
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"x"'}]})
    assert code(exc) == "NoSuchUpload"


def test_wrong_part_etag_is_refused(s3: Any, bucket: str) -> None:
    up = s3.create_multipart_upload(Bucket=bucket, Key="e.bin")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="e.bin", UploadId=up, PartNumber=1, Body=b"abc")
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="e.bin", UploadId=up,
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0000"'}]})
    assert code(exc) == "InvalidPart"


def test_interrupted_part_upload_leaves_nothing_and_gc_spares_parts(
    s3: Any, bucket: str, gateway: Service
) -> None:
    up = s3.create_multipart_upload(Bucket=bucket, Key="cut.bin")["UploadId"]
    good = os.urandom(2 * MiB)
    etag = s3.upload_part(Bucket=bucket, Key="cut.bin", UploadId=up, PartNumber=1, Body=good)["ETag"]
    # Part 2: a raw request that promises 4 MiB, sends 1 MiB and hangs up.
    url = s3.generate_presigned_url("upload_part", Params={"Bucket": bucket, "Key": "cut.bin", "UploadId": up,
                                                           "PartNumber": 2}, ExpiresIn=60)
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                     f"Content-Length: {4 * MiB}\r\n\r\n".encode() + os.urandom(MiB))
    time.sleep(0.5)
    listed = s3.list_parts(Bucket=bucket, Key="cut.bin", UploadId=up).get("Parts", [])
    assert [p["PartNumber"] for p in listed] == [1]
    assert commits(gateway, bucket) == []
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {gateway.token}"}) as http:
        assert http.post("/api/v1/gc", json={"grace_seconds": 600}).status_code == 200
    s3.complete_multipart_upload(Bucket=bucket, Key="cut.bin", UploadId=up,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert s3.get_object(Bucket=bucket, Key="cut.bin")["Body"].read() == good


def test_reader_cannot_write(gateway: Service) -> None:
    import subprocess
    import sys

    admin = s3_client(gateway.url, gateway.token or "", gateway.token or "")
    bucket = f"master.ro-{uuid.uuid4().hex[:8]}"
    admin.create_bucket(Bucket=bucket)
    user = f"u{uuid.uuid4().hex[:8]}"

    def auth(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "datumflow.storage_service.service.serve", "auth", *args,
                               "--root", str(gateway.root)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    auth("user", "create", user)
    auth("grant", user, bucket.split(".")[1], "reader")
    token = auth("token", "create", user).split()[-1]
    reader = s3_client(gateway.url, token, token)
    assert reader.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    with pytest.raises(ClientError) as exc:
        reader.put_object(Bucket=bucket, Key="x", Body=b"x")
    assert code(exc) == "AccessDenied"
