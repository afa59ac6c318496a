"""Calls the gateway does not implement answer 501 and touch nothing; errors are S3 XML everywhere;
an error answered before the body is read never desynchronises a keep-alive connection."""

from __future__ import annotations

import contextlib
import socket
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.s3.test_s3_objects import code
from tests.service.conftest import Service

UNSUPPORTED = [
    ("put_object_tagging", {"Key": "k", "Tagging": {"TagSet": [{"Key": "a", "Value": "b"}]}}),
    ("put_object_acl", {"Key": "k", "ACL": "public-read"}),
    ("delete_object_tagging", {"Key": "k"}),
    ("get_object_acl", {"Key": "k"}),
    ("get_object_tagging", {"Key": "k"}),
    ("get_object_retention", {"Key": "k"}),
    ("get_bucket_policy", {}),
    ("delete_bucket_policy", {}),
    ("delete_bucket_tagging", {}),
    ("delete_bucket_cors", {}),
    ("get_bucket_acl", {}),
    ("put_bucket_versioning", {"VersioningConfiguration": {"Status": "Enabled"}}),
]


@pytest.mark.parametrize(("method", "args"), UNSUPPORTED, ids=[m for m, _ in UNSUPPORTED])
def test_unsupported_calls_are_501_and_touch_nothing(s3: Any, bucket: str, method: str, args: dict[str, Any]) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"precious")
    with pytest.raises(ClientError) as exc:
        getattr(s3, method)(Bucket=bucket, **args)
    assert code(exc) == "NotImplemented"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"precious"
    assert [c["Key"] for c in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]


def _signed(s3: Any, method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None) -> httpx.Response:
    """A raw request signed with the client's credentials (for calls boto3 has no method for)."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest

    request = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    S3SigV4Auth(s3._request_signer._credentials, "s3", "us-east-1").add_auth(request)
    return httpx.request(method, url, content=body, headers=dict(request.headers.items()))


def test_delete_bucket_with_any_sub_resource_is_501(s3: Any, bucket: str, gateway: Service) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="k")  # the branch is empty: a plain DeleteBucket would delete it
    for query in ("anything", "tagging", "policy", "lifecycle", "website", "x=1"):
        answer = _signed(s3, "DELETE", f"{gateway.url}/s3/{bucket}?{query}")
        assert answer.status_code == 501, query
        assert "<Code>NotImplemented</Code>" in answer.text
    assert bucket in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_errors_are_s3_xml_on_options_and_post_service(s3: Any, bucket: str, gateway: Service) -> None:
    for method, path in [("OPTIONS", f"/s3/{bucket}/k"), ("POST", "/s3/"), ("PATCH", f"/s3/{bucket}"),
                         ("OPTIONS", "/s3/")]:
        answer = _signed(s3, method, gateway.url + path)
        assert answer.status_code in (405, 501), (method, path)
        assert answer.headers["content-type"].startswith("application/xml")
        assert "<Error><Code>" in answer.text


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            raise ConnectionError("closed before a response")
        data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    size = int(headers.get("content-length", "0"))
    while len(rest) < size:
        rest += sock.recv(65536)
    return int(lines[0].split()[1]), headers, rest[size:]


def test_refused_put_with_expect_100_continue_never_desynchronises(gateway: Service, bucket: str) -> None:
    """An unsigned PUT is refused before its body is read; the client, told no, never sends it."""
    where = urlsplit(gateway.url)
    smuggled = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        sock.sendall(f"PUT /s3/{bucket}/k HTTP/1.1\r\nHost: {where.netloc}\r\nExpect: 100-continue\r\n"
                     f"Content-Length: {len(smuggled) + 40}\r\n\r\n".encode())
        status, headers, _ = _read_response(sock)
        assert status == 403
        assert headers.get("connection") == "close"
        # What the client sends next must never be taken as the rest of the refused body (nor the
        # refused body's bytes as a request): the server has closed.
        try:
            sock.sendall(b"GET /s3/ HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536) == b""
        except (ConnectionResetError, BrokenPipeError):
            pass


def test_refused_put_whose_body_is_sent_anyway(gateway: Service, bucket: str) -> None:
    """A body that carries bytes shaped like a request is never run as one."""
    where = urlsplit(gateway.url)
    inner = f"DELETE /s3/{bucket} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        sock.sendall(f"PUT /s3/{bucket}/k HTTP/1.1\r\nHost: {where.netloc}\r\n"
                     f"Content-Length: {len(inner)}\r\n\r\n".encode() + inner)
        status, headers, rest = _read_response(sock)
        assert status == 403 and headers.get("connection") == "close"
        assert rest == b""
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(65536) == b""


def test_boto3_keeps_working_after_refused_puts(s3: Any, bucket: str, gateway: Service) -> None:
    """boto3 sends Expect: 100-continue; after refusals the same client's next calls are answered right."""
    from tests.s3.test_s3_objects import commits

    s3.put_object(Bucket=bucket, Key="first", Body=b"1")
    pinned = f"{commits(gateway, bucket)[0].id}.{bucket}"
    body = b"z" * (2 * 1024 * 1024)
    for i in range(3):
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=pinned, Key=f"no{i}", Body=body)  # read-only: refused before the body
        assert code(exc) == "AccessDenied"
        s3.put_object(Bucket=bucket, Key=f"yes{i}", Body=body)
        assert s3.get_object(Bucket=bucket, Key=f"yes{i}")["Body"].read() == body
    assert [c["Key"] for c in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["first", "yes0", "yes1", "yes2"]


def test_list_object_versions_is_the_unversioned_answer(s3: Any, bucket: str) -> None:
    """The bucket has no S3 versioning: each current object once, version null, pages with markers."""
    for key in ("a", "b", "c"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    first = s3.list_object_versions(Bucket=bucket, MaxKeys=2)
    assert [(v["Key"], v["VersionId"], v["IsLatest"]) for v in first["Versions"]] == [
        ("a", "null", True), ("b", "null", True)]
    assert first["IsTruncated"] and first["NextKeyMarker"] == "b"
    rest = s3.list_object_versions(Bucket=bucket, KeyMarker=first["NextKeyMarker"],
                                   VersionIdMarker=first["NextVersionIdMarker"])
    assert [v["Key"] for v in rest["Versions"]] == ["c"] and not rest["IsTruncated"]
    assert s3.get_bucket_versioning(Bucket=bucket).get("Status") is None
