"""Request bodies are bounded per route, before any route runs.

Uploads are streamed to the store piece by piece and have no size limit
(a file, a tar, an S3 object or part, a datum's output). Every other body is
small by nature — JSON requests, S3 DeleteObjects/CompleteMultipartUpload
XML, the console's login form — and is read here, at most its limit, before
the app sees it: a longer one is 413 at once, whether or not the caller is
authenticated, so an anonymous 512 MiB body costs the service nothing but
the bytes it drops. (A bounded body is then replayed to the app whole.)

=============================================  ===========
route                                          limit
=============================================  ===========
``PUT …/commits/{ref}/content``                streamed
``POST …/commits/{ref}/tar``                   streamed
``POST /api/v1/jobs/{job}/datums/{d}/output``  streamed
``PUT /s3/…`` (PutObject, UploadPart)          streamed
``POST /api/v1/pipelines``, ``PUT …``          4 MiB (a spec)
other ``/s3/…`` bodies                         8 MiB (XML)
``/console/…``                                 64 KiB
everything else                                1 MiB (JSON)
=============================================  ===========
"""

from __future__ import annotations

import json
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimits", "limit_for"]

KIB, MIB = 1 << 10, 1 << 20
JSON_LIMIT = 1 * MIB
SPEC_LIMIT = 4 * MIB
S3_LIMIT = 8 * MIB
CONSOLE_LIMIT = 64 * KIB
DRAIN_MAX = 1 << 30  # bytes of a refused body read and dropped before the connection closes

_STREAMED = [
    ("PUT", re.compile(r"^/api/v1/repos/[^/]+/commits/[^/]+/content$")),
    ("POST", re.compile(r"^/api/v1/repos/[^/]+/commits/[^/]+/tar$")),
    ("POST", re.compile(r"^/api/v1/jobs/[^/]+/datums/[^/]+/output$")),
    ("PUT", re.compile(r"^/s3/[^/]+/.+")),
]
_SPEC = re.compile(r"^/api/v1/pipelines(/[^/]+)?$")


def limit_for(method: str, path: str) -> int | None:
    """The byte limit of a request's body; None for a streamed upload."""
    if any(method == m and p.match(path) for m, p in _STREAMED):
        return None
    if path.startswith("/s3/") or path == "/s3":
        return S3_LIMIT
    if path.startswith("/console"):
        return CONSOLE_LIMIT
    if _SPEC.match(path):
        return SPEC_LIMIT
    return JSON_LIMIT


class BodyLimits:
    """ASGI middleware: read a bounded body up front (413 past its limit), pass streamed ones through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope.get("method", "GET"), str(scope.get("path", "")))
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            if not _expects_continue(scope):
                await _drain(receive)
            await _too_large(scope, send, limit)
            return
        pieces: list[bytes] = []
        size = 0
        more = True
        disconnected: Message | None = None
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                disconnected = message
                break
            piece = message.get("body", b"")
            size += len(piece)
            if size > limit:
                if more and message.get("more_body", False):
                    await _drain(receive)
                await _too_large(scope, send, limit)
                return
            pieces.append(piece)
            more = message.get("more_body", False)
        body = b"".join(pieces)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                if disconnected is not None:
                    return disconnected
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _drain(receive: Receive) -> None:
    """Read and drop the rest of a refused body (up to DRAIN_MAX), so that the client reads the 413
    instead of a broken pipe; memory stays flat, the connection closes after the answer."""
    dropped = 0
    while dropped < DRAIN_MAX:
        message = await receive()
        if message["type"] != "http.request":
            return
        dropped += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _expects_continue(scope: Scope) -> bool:
    return any(n == b"expect" and v.lower() == b"100-continue" for n, v in scope.get("headers", ()))


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    message = f"the request body is larger than this route's limit of {limit} bytes"
    if str(scope.get("path", "")).startswith("/s3"):
        body = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>EntityTooLarge</Code>"
                f"<Message>{message}</Message><MaxSizeAllowed>{limit}</MaxSizeAllowed></Error>").encode()
        kind = b"application/xml"
    else:
        body = json.dumps({"error": {"type": "InvalidArgument", "message": message}}).encode()
        kind = b"application/json"
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
