"""AWS Signature Version 4 for the S3 gateway.

The access key id is a datumflow token and the secret is the same token (as
Pachyderm's S3 gateway does): the service stores only token hashes, so the
key id is what lets it find the secret a request was signed with. Both forms
are checked: the ``Authorization`` header and a presigned URL's query.
The payload hash is taken as the client declared it (``x-amz-content-sha256``);
bodies are streamed to the store, never buffered to re-hash them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

from datumflow.storage_service.service.s3.errors import S3Error

__all__ = ["SignedRequest", "parse_signature", "signature_matches"]

ALGORITHM = "AWS4-HMAC-SHA256"
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
            return SignedRequest(
                key, scope, params["X-Amz-Date"], tuple(params["X-Amz-SignedHeaders"].split(";")),
                params["X-Amz-Signature"], True, int(params.get("X-Amz-Expires", "604800")),
            )
        except (KeyError, ValueError) as exc:
            raise S3Error("AuthorizationQueryParametersError", f"malformed presigned query: {exc}", 400) from exc
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
    key = ("AWS4" + secret).encode()
    for part in signed.scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signed.signature)


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
