"""What a service without users refuses, since anyone who reaches it acts as its admin.

Open mode binds to loopback only (:mod:`.serve`), but a browser on the same
machine is still a way in: a page on any site can make it send requests.

- **DNS rebinding**: ``evil.example`` resolving to 127.0.0.1 reaches the
  service with ``Host: evil.example``. Only loopback names and addresses
  (``localhost``, ``*.localhost``, ``127.0.0.0/8``, ``[::1]``) and the hosts
  of ``DATUMFLOW_ALLOWED_HOSTS`` (comma-separated) are answered; others get
  421 Misdirected Request.
- **Cross-site requests**: a write (any method but GET, HEAD, OPTIONS) that a
  browser marks as coming from another site (``Sec-Fetch-Site: cross-site`` or
  ``same-site``, or an ``Origin`` that is not this service) is 403; and a
  POST whose body is one a plain HTML form can send without a CORS check
  (``text/plain``, ``application/x-www-form-urlencoded``,
  ``multipart/form-data``) is 415 unless its ``Origin`` is this service (a form
  of the console's own pages) — no datumflow client sends those (S3's
  CreateMultipartUpload, which carries the object's type, excepted; PUT and
  DELETE cannot come from a form or a CORS-free fetch at all).

With users, tokens (never sent by a browser on its own) and the console's
SameSite=Strict cookie do that job, so the checks stand aside; they follow
:meth:`Auth.open_mode` live, so ``datumflow auth init`` ends them with open
mode, without a restart.
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["ALLOWED_HOSTS_ENV", "OpenModeGuard", "is_loopback_host"]

ALLOWED_HOSTS_ENV = "DATUMFLOW_ALLOWED_HOSTS"
_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
_FORM_TYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")


def is_loopback_host(host: str) -> bool:
    """Whether a Host header's name (no port) is a loopback name or address."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _multipart_step(scope: Scope) -> bool:
    """S3 CreateMultipartUpload carries the object's own Content-Type; completing needs an unguessable id."""
    query = scope.get("query_string", b"").split(b"&")
    return str(scope.get("path", "")).startswith("/s3/") and any(
        q == b"uploads" or q.startswith((b"uploads=", b"uploadId=")) for q in query
    )


class OpenModeGuard:
    """ASGI middleware applying the checks above while ``is_open()`` is true."""

    def __init__(self, app: ASGIApp, is_open: Callable[[], bool], allowed: frozenset[str] | None = None) -> None:
        self.app = app
        self.is_open = is_open
        env = os.environ.get(ALLOWED_HOSTS_ENV, "")
        self.allowed = allowed if allowed is not None else frozenset(
            h.strip().lower() for h in env.split(",") if h.strip()
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.is_open():
            refusal = self._refusal(scope)
            if refusal is not None:
                status, kind, message = refusal
                body = json.dumps({"error": {"type": kind, "message": message}}).encode()
                await send({"type": "http.response.start", "status": status,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> tuple[int, str, str] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        host = headers.get("host", "")
        name = _host_name(host).lower()
        if not (is_loopback_host(name) or name.strip("[]") in self.allowed or name in self.allowed):
            return 421, "Forbidden", (f"host {name!r} is not served by a service without users "
                                      f"(loopback names only; others go in {ALLOWED_HOSTS_ENV})")
        if scope.get("method", "GET") in _SAFE_METHODS:
            return None
        if headers.get("sec-fetch-site", "") in ("cross-site", "same-site"):
            return 403, "Forbidden", "cross-site requests are refused by a service without users"
        origin = headers.get("origin")
        if origin is not None and origin != "null":
            origin_host = (urlsplit(origin).netloc or "").lower()
            if origin_host != host.lower():
                return 403, "Forbidden", f"requests from origin {origin!r} are refused by a service without users"
        elif origin == "null":
            return 403, "Forbidden", "requests from an opaque origin are refused by a service without users"
        kind = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        same_origin = origin is not None and origin != "null"  # checked above: this service's own page
        if kind in _FORM_TYPES and scope.get("method") == "POST" and not same_origin and not _multipart_step(scope):
            return 415, "InvalidArgument", (f"a {kind} body is refused by a service without users "
                                            "(a web page could send it): send the right Content-Type")
        return None
