"""AWS Signature Version 4 for the S3 gateway, signed with S3 key pairs.

Requests are signed with an S3 key pair of their user (:mod:`.keys`:
``datumflow auth s3-key create USER``), never with the bearer token: the
access key id names the pair, its secret is kept encrypted with the server
key so that a signature can be checked. Both forms are checked: the
``Authorization`` header and a presigned URL's query, whose ``X-Amz-Expires``
is at most 7 days (604800 s), as S3 caps it.

Deprecated, for clients configured before key pairs existed: a header-signed
request whose access key id *and* secret are a datumflow token is still
accepted (the token travels in the ``Authorization`` header, as a bearer token
would, and is never logged). A presigned URL can never use a token: the URL
would carry it, into logs and browser histories, for as long as it lives.

The payload hash is taken as the client declared it (``x-amz-content-sha256``);
bodies are streamed to the store, never buffered to re-hash them.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from datumflow.storage_service.errors import Unauthenticated
from datumflow.storage_service.service.auth import ANONYMOUS_ADMIN, TOKEN_PREFIX, Auth, Principal
from datumflow.storage_service.service.s3.errors import S3Error
from datumflow.storage_service.service.s3.keys import KEY_PREFIX, keys_of

if TYPE_CHECKING:
    from datumflow.storage_service.store.store import Store

__all__ = ["MAX_EXPIRES", "S3Authenticator", "SignedRequest", "parse_signature", "signature_matches"]

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_EXPIRES = 604800  # seconds: S3's limit for a presigned URL (7 days)
MAX_SKEW = dt.timedelta(minutes=15)
_AUTH_FIELD = re.compile(r"(\w+)=([^,\s]+)")
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class SignedRequest:
    """What a request says about its signature."""

    access_key: str
    scope: str  # date/region/service/aws4_request
    amz_date: str
    signed_headers: tuple[str, ...]
    signature: str
    presigned: bool
    expires: int | None = None


def parse_signature(headers: Mapping[str, str], query: list[tuple[str, str]]) -> SignedRequest | None:
    """The signature of a request, from its header or presigned query; None if unsigned."""
    params = dict(query)
    if params.get("X-Amz-Algorithm"):
        if params["X-Amz-Algorithm"] != ALGORITHM:
            raise S3Error("AuthorizationQueryParametersError", "only AWS4-HMAC-SHA256 is supported", 400)
        try:
            key, scope = params["X-Amz-Credential"].split("/", 1)
            signed = SignedRequest(
                key, scope, params["X-Amz-Date"], tuple(params["X-Amz-SignedHeaders"].split(";")),
                params["X-Amz-Signature"], True, int(params.get("X-Amz-Expires", str(MAX_EXPIRES))),
            )
        except (KeyError, ValueError) as exc:
            raise S3Error("AuthorizationQueryParametersError", f"malformed presigned query: {exc}", 400) from exc
        if not 1 <= (signed.expires or 0) <= MAX_EXPIRES:
            raise S3Error("AuthorizationQueryParametersError",
                          f"X-Amz-Expires must be between 1 and {MAX_EXPIRES} seconds (7 days)", 400)
        return signed
    header = headers.get("authorization")
    if not header:
        return None
    if not header.startswith(ALGORITHM + " "):
        raise S3Error("InvalidRequest", "only AWS Signature Version 4 (AWS4-HMAC-SHA256) is supported", 400)
    fields = dict(_AUTH_FIELD.findall(header[len(ALGORITHM):]))
    try:
        key, scope = fields["Credential"].split("/", 1)
        return SignedRequest(
            key, scope, headers.get("x-amz-date", ""), tuple(fields["SignedHeaders"].split(";")),
            fields["Signature"], False,
        )
    except (KeyError, ValueError) as exc:
        raise S3Error("AuthorizationHeaderMalformed", f"malformed Authorization header: {exc}", 400) from exc


def signature_matches(
    signed: SignedRequest, secret: str, *, method: str, path: str,
    query: list[tuple[str, str]], headers: Mapping[str, str], now: dt.datetime | None = None,
) -> bool:
    """Whether ``signed`` is the signature ``secret`` makes for this request (and is still valid)."""
    _check_time(signed, now or dt.datetime.now(dt.timezone.utc))
    payload = "UNSIGNED-PAYLOAD" if signed.presigned else headers.get("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
    canonical = "\n".join([
        method,
        path,
        _canonical_query(query, signed.presigned),
        "".join(f"{h}:{_SPACES.sub(' ', headers.get(h, '').strip())}\n" for h in signed.signed_headers),
        ";".join(signed.signed_headers),
        payload,
    ])
    to_sign = "\n".join([ALGORITHM, signed.amz_date, signed.scope, hashlib.sha256(canonical.encode()).hexdigest()])
    expected = hmac.new(_signing_key(secret, signed.scope), to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signed.signature)


@functools.lru_cache(maxsize=256)
def _signing_key(secret: str, scope: str) -> bytes:
    """SigV4's key for one secret and one scope (date/region/service): four HMACs, the same all day."""
    key = ("AWS4" + secret).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _canonical_query(query: list[tuple[str, str]], presigned: bool) -> str:
    pairs = [(_enc(k), _enc(v)) for k, v in query if not (presigned and k == "X-Amz-Signature")]
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _enc(text: str) -> str:
    return quote(text, safe="-_.~")


def raw_query_pairs(raw: bytes) -> list[tuple[str, str]]:
    """``a=1&b`` -> [("a", "1"), ("b", "")], decoded, keeping empty values (``?uploads``)."""
    out = []
    for item in raw.decode("latin-1").split("&"):
        if item:
            k, _, v = item.partition("=")
            out.append((unquote(k.replace("+", "%20")), unquote(v.replace("+", "%20"))))
    return out


def _check_time(signed: SignedRequest, now: dt.datetime) -> None:
    try:
        when = dt.datetime.strptime(signed.amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
    except ValueError as exc:
        raise S3Error("AccessDenied", "missing or malformed X-Amz-Date", 403) from exc
    if signed.presigned:
        if now > when + dt.timedelta(seconds=signed.expires or 0):
            raise S3Error("AccessDenied", "the presigned URL has expired", 403)
    elif abs(now - when) > MAX_SKEW:
        raise S3Error("RequestTimeTooSkewed", "the request time is too far from the server's", 403)


class S3Authenticator:
    """Who signed a request: the user of the S3 key pair (or, deprecated, of a header-signed token)."""

    def __init__(self, get_store: Callable[[], Store], auth: Auth | None) -> None:
        self.get_store = get_store
        self.auth = auth

    def principal(self, method: str, path: str, query: list[tuple[str, str]], headers: Mapping[str, str]) -> Principal:
        signed = parse_signature(headers, query)
        if self.auth is None or self.auth.open_mode():
            return ANONYMOUS_ADMIN
        if signed is None:
            raise S3Error("AccessDenied", "sign requests with an S3 key pair (datumflow auth s3-key create USER)", 403)
        who, secret = self._signer(signed)
        if not signature_matches(signed, secret, method=method, path=path, query=query, headers=headers):
            raise S3Error("SignatureDoesNotMatch", "the signature does not match the access key's secret", 403)
        return who

    def _signer(self, signed: SignedRequest) -> tuple[Principal, str]:
        assert self.auth is not None
        key_pair = signed.access_key.startswith(KEY_PREFIX)
        found = self.auth.key_holder(signed.access_key) if key_pair else None  # pair, user, grants: one query
        if found is not None:
            who, sealed = found
            return who, keys_of(self.get_store()).unseal(signed.access_key, sealed)
        if signed.presigned or not signed.access_key.startswith(TOKEN_PREFIX):
            raise S3Error("InvalidAccessKeyId", "the access key id is not an S3 key pair of this service", 403)
        try:  # deprecated: a token as access key id and secret, in a header only
            return self.auth.authenticate(signed.access_key), signed.access_key
        except Unauthenticated as exc:
            raise S3Error("InvalidAccessKeyId", "the access key id is not an S3 key pair of this service", 403) from exc
