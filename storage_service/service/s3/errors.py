"""S3 errors: the gateway's one exception and its XML body.

Store errors are translated here, in one place (:func:`s3_error_for`), into
the codes S3 clients understand; :func:`error_response` renders any of them
as the ``<Error>`` document S3 answers with.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from datumflow.storage_service.errors import (
    AlreadyExists,
    BranchNotFound,
    CommitFinished,
    CommitNotFound,
    Conflict,
    DatumflowError,
    Forbidden,
    InvalidArgument,
    NotFound,
    PathNotFound,
    RepoNotFound,
    S3Error,
    Unauthenticated,
)
from fastapi.responses import Response

__all__ = ["S3Error", "error_response", "s3_error_for"]


def s3_error_for(exc: DatumflowError, resource: str = "") -> S3Error:
    """The S3 error a store error means to an S3 client."""
    if isinstance(exc, S3Error):
        return exc
    for kind, code, status in _TRANSLATION:
        if isinstance(exc, kind):
            return S3Error(code, str(exc), status, resource)
    return S3Error("InternalError", str(exc), 500, resource)


_TRANSLATION: list[tuple[type[DatumflowError], str, int]] = [
    (RepoNotFound, "NoSuchBucket", 404),
    (BranchNotFound, "NoSuchBucket", 404),
    (CommitNotFound, "NoSuchBucket", 404),
    (PathNotFound, "NoSuchKey", 404),
    (NotFound, "NoSuchKey", 404),
    (Unauthenticated, "InvalidAccessKeyId", 403),
    (Forbidden, "AccessDenied", 403),
    (CommitFinished, "AccessDenied", 403),
    (AlreadyExists, "BucketAlreadyOwnedByYou", 409),
    (Conflict, "OperationAborted", 409),
    (InvalidArgument, "InvalidArgument", 400),
]


def error_response(err: S3Error, request_id: str = "") -> Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>'
        f"<Code>{escape(err.code)}</Code><Message>{escape(err.message)}</Message>"
        f"<Resource>{escape(err.resource)}</Resource><RequestId>{escape(request_id)}</RequestId></Error>"
    )
    headers = {"x-amz-request-id": request_id} if request_id else {}
    return Response(body, status_code=err.status, media_type="application/xml", headers=headers)
