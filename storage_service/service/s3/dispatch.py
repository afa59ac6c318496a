"""Which S3 operation a request is: method, level (service, bucket, object) and sub-resource.

S3 names many operations by a query sub-resource on the same path
(``PUT /b/k?tagging`` is PutObjectTagging, not PutObject). Every request is
matched here against an explicit table; a sub-resource the gateway does not
implement is ``501 NotImplemented`` before anything is read or written, so an
unsupported call can never fall through to an object or bucket operation.
"""

from __future__ import annotations

from collections.abc import Mapping

from datumflow.storage_service.service.s3.errors import S3Error

__all__ = ["SUBRESOURCES", "operation"]

# Query parameters that select an operation (S3's sub-resources and the like); any other
# parameter (prefix, max-keys, response-content-type, x-id, …) is an argument.
SUBRESOURCES = frozenset({
    "accelerate", "acl", "analytics", "attributes", "cors", "delete", "encryption", "intelligent-tiering",
    "inventory", "legal-hold", "lifecycle", "location", "logging", "metadataConfiguration",
    "metadataTable", "metrics", "notification", "object-lock", "ownershipControls", "partNumber",
    "policy", "policyStatus", "publicAccessBlock", "renameObject", "replication", "requestPayment",
    "restore", "retention", "select", "session", "tagging", "torrent", "uploadId", "uploads",
    "versionId", "versioning", "versions", "website",
})

# (level, method, sub-resources present) -> operation. GET and HEAD share entries.
_TABLE: dict[tuple[str, str, frozenset[str]], str] = {
    ("service", "GET", frozenset()): "ListBuckets",
    ("bucket", "GET", frozenset()): "ListObjects",
    ("bucket", "HEAD", frozenset()): "HeadBucket",
    ("bucket", "PUT", frozenset()): "CreateBucket",
    ("bucket", "DELETE", frozenset()): "DeleteBucket",
    ("bucket", "POST", frozenset({"delete"})): "DeleteObjects",
    ("bucket", "GET", frozenset({"location"})): "GetBucketLocation",
    ("bucket", "GET", frozenset({"versioning"})): "GetBucketVersioning",
    ("bucket", "GET", frozenset({"uploads"})): "ListMultipartUploads",
    ("bucket", "GET", frozenset({"versions"})): "ListObjectVersions",
    ("object", "GET", frozenset()): "GetObject",
    ("object", "HEAD", frozenset()): "HeadObject",
    ("object", "GET", frozenset({"versionId"})): "GetObject",
    ("object", "HEAD", frozenset({"versionId"})): "HeadObject",
    ("object", "PUT", frozenset()): "PutObject",  # CopyObject when x-amz-copy-source is sent
    ("object", "DELETE", frozenset()): "DeleteObject",
    ("object", "POST", frozenset({"uploads"})): "CreateMultipartUpload",
    ("object", "PUT", frozenset({"partNumber", "uploadId"})): "UploadPart",
    ("object", "POST", frozenset({"uploadId"})): "CompleteMultipartUpload",
    ("object", "DELETE", frozenset({"uploadId"})): "AbortMultipartUpload",
    ("object", "GET", frozenset({"uploadId"})): "ListParts",
}

_HTTP_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE"})
# A write names its whole operation: an argument it does not know (``DELETE /b?anything``) is
# refused rather than ignored, so a call meant for something else never runs as this one.
_WRITE_ARGUMENTS = frozenset({"x-id", "partNumber", "uploadId", "uploads", "delete"})


def operation(level: str, method: str, query: Mapping[str, str], headers: Mapping[str, str]) -> str:
    """The S3 operation of a request, or S3Error NotImplemented / MethodNotAllowed."""
    if method not in _HTTP_METHODS:
        raise S3Error("MethodNotAllowed", f"{method} is not an S3 method", 405)
    subs = frozenset(k for k in query if k in SUBRESOURCES)
    if level == "object" and "versionId" in subs and query["versionId"] in ("", "null"):
        subs -= {"versionId"}  # the "null" version is the current one
    op = _TABLE.get((level, method, subs))
    unknown = sorted(k for k in query if k not in SUBRESOURCES and k not in _WRITE_ARGUMENTS
                     and not k.startswith("X-Amz-"))
    if op is not None and method not in ("GET", "HEAD") and unknown:
        raise S3Error("NotImplemented", f"{method} with ?{'&'.join(unknown)} is not implemented by this gateway", 501)
    if op is None:
        what = "?" + "&".join(sorted(subs)) if subs else "this request"
        raise S3Error("NotImplemented", f"{method} {what} on the {level} is not implemented by this gateway", 501)
    if op == "PutObject" and "x-amz-copy-source" in headers:
        return "CopyObject"
    if op == "UploadPart" and "x-amz-copy-source" in headers:
        raise S3Error("NotImplemented", "UploadPartCopy is not implemented; use CopyObject", 501)
    return op
