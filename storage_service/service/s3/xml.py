"""The XML documents of the S3 gateway: rendered with escaping, parsed defensively."""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Iterable
from urllib.parse import quote
from xml.etree import ElementTree

from datumflow.storage_service.service.s3.errors import S3Error
from fastapi.responses import Response

__all__ = ["http_date", "iso_date", "parse_complete", "parse_delete", "xml_response"]

_NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def iso_date(ts: float) -> str:
    """An XML timestamp to the millisecond, as S3 writes them. Seconds alone would put an object's
    LastModified before the file it was uploaded from when both fall in one second, and `aws s3 sync`
    (newer source wins) would send that file again on every run."""
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def element(tag: str, *children: ElementTree.Element | None, text: object = None) -> ElementTree.Element:
    el = ElementTree.Element(tag)
    if text is not None:
        el.text = str(text)
    el.extend(c for c in children if c is not None)
    return el


def leaves(**values: object) -> list[ElementTree.Element]:
    """<Name>value</Name> for each keyword whose value is not None."""
    return [element(k, text=v) for k, v in values.items() if v is not None]


def xml_response(root: ElementTree.Element, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    root.set("xmlns", _NS)
    body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root)
    return Response(body, status_code=status, media_type="application/xml", headers=headers)


def encode_key(key: str, url: bool) -> str:
    return quote(key, safe="/") if url else key


def _children(body: bytes, root_tag: str) -> Iterable[ElementTree.Element]:
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise S3Error("MalformedXML", f"the XML body is not well-formed: {exc}", 400) from exc
    if _local(root.tag) != root_tag:
        raise S3Error("MalformedXML", f"expected a <{root_tag}> document", 400)
    return list(root)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _text(el: ElementTree.Element, tag: str) -> str | None:
    for child in el:
        if _local(child.tag) == tag:
            return child.text or ""
    return None


def parse_complete(body: bytes) -> list[tuple[int, str]]:
    """[(part number, etag)] of a CompleteMultipartUpload body."""
    out = []
    for part in _children(body, "CompleteMultipartUpload"):
        number, etag = _text(part, "PartNumber"), _text(part, "ETag")
        if _local(part.tag) != "Part" or number is None or not number.strip().isdigit():
            raise S3Error("MalformedXML", "each <Part> needs a numeric <PartNumber>", 400)
        out.append((int(number), etag or ""))
    return out


def parse_delete(body: bytes) -> tuple[list[str], bool]:
    """(keys, quiet) of a DeleteObjects body."""
    keys: list[str] = []
    quiet = False
    for child in _children(body, "Delete"):
        if _local(child.tag) == "Object":
            key = _text(child, "Key")
            if not key:
                raise S3Error("MalformedXML", "each <Object> needs a <Key>", 400)
            keys.append(key)
        elif _local(child.tag) == "Quiet":
            quiet = (child.text or "").strip().lower() == "true"
    if len(keys) > 1000:
        raise S3Error("MalformedXML", "at most 1000 keys per DeleteObjects", 400)
    return keys, quiet
