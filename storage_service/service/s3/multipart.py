"""S3 multipart uploads: parts become chunks at once, completion writes one file.

Each part is streamed through the store's chunk writer (deduplicated and
packed like any content) and recorded in ``df_s3_parts`` with its chunk
list; nothing touches a commit until CompleteMultipartUpload, which streams
the parts' chunks through ``put_file`` as one file. Chunk boundaries are a
function of the whole file's bytes (so equal content has an equal hash
however it was uploaded); content-defined cuts resynchronize after a part
edge, so nearly every chunk deduplicates against the parts' and only those
around the edges are stored anew. An upload pins its parts' chunks against
``gc`` (as every write in flight does) until it completes, is aborted, or is
left for ``UPLOAD_TTL``; then they are ordinary garbage.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from datumflow.storage_service.core.db import upsert
from datumflow.storage_service.core.migrations import ensure_tables
from datumflow.storage_service.core.schema import metadata
from datumflow.storage_service.model.core import ChunkRef
from datumflow.storage_service.service.s3.errors import S3Error
from datumflow.storage_service.store.store import Store
from sqlalchemy import Column, Float, Index, Integer, String, Table, Text, delete, insert, select, update

__all__ = ["Completed", "Multipart", "Part", "Upload"]

uploads = Table(
    "df_s3_uploads",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("repo", String(64), nullable=False),
    Column("branch", String(128), nullable=False),
    Column("key", Text, nullable=False),
    Column("created", Float, nullable=False),
    Index("ix_df_s3_uploads_branch", "repo", "branch"),
)

parts = Table(
    "df_s3_parts",
    metadata,
    Column("upload", String(32), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("size", Integer, nullable=False),
    Column("etag", String(64), nullable=False),  # md5 of the part, as S3 clients expect
    Column("chunks", Text, nullable=False),  # [[hash, length], ...]
    Column("created", Float, nullable=False),
)

# What an upload carries besides its parts (Content-Type, x-amz-meta-*…), and, once completed,
# its result, so that a repeated CompleteMultipartUpload answers the same (S3 does).
upload_info = Table(
    "df_s3_upload_info",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("meta", Text, nullable=False),  # JSON {name: value}
    Column("parts", Text, nullable=True),  # completed: JSON [[number, etag], ...] as listed
    Column("etag", String(64), nullable=True),  # completed: the multipart ETag
    Column("commit", String(32), nullable=True),  # completed: the commit it made
    Column("created", Float, nullable=False),
)

MAX_PART_NUMBER = 10000
MIN_PART_SIZE = 5 * 1024 * 1024  # every part but the last, as S3
UPLOAD_TTL = 7 * 24 * 3600.0  # an upload left unfinished this long no longer holds its parts against gc


@dataclass(frozen=True)
class Upload:
    id: str
    repo: str
    branch: str
    key: str
    created: float


@dataclass(frozen=True)
class Completed:
    """A finished upload: what CompleteMultipartUpload answered."""

    etag: str
    commit: str


@dataclass(frozen=True)
class Part:
    number: int
    size: int
    etag: str
    created: float


class _Md5Reader:
    """Reads a stream through, keeping its MD5 (a part's ETag)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.md5 = hashlib.md5(usedforsecurity=False)

    def read(self, n: int = -1) -> bytes:
        data: bytes = self.inner.read(n)
        self.md5.update(data)
        return data

    def readinto(self, buffer: Any) -> int:
        n: int = self.inner.readinto(buffer)
        self.md5.update(memoryview(buffer)[:n])
        return n


class Multipart:
    """Multipart uploads of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        ensure_tables(store.engine, [uploads, parts, upload_info])

    def create(self, repo: str, branch: str, key: str, meta: dict[str, str] | None = None) -> Upload:
        upload = Upload(uuid.uuid4().hex, repo, branch, key, time.time())
        # The parts' chunks are pinned against gc until the upload completes or is aborted.
        self.store.chunks.pins.begin(UPLOAD_TTL, write_id=upload.id, owner=f"s3-upload:{upload.id}")
        with self.store.engine.begin() as conn:
            conn.execute(insert(uploads), upload.__dict__)
            conn.execute(insert(upload_info), {"id": upload.id, "meta": json.dumps(meta or {}),
                                               "created": upload.created})
        return upload

    def completed(self, upload_id: str, wanted: list[tuple[int, str]]) -> Completed | None:
        """The result of an upload already completed with these parts, if it was."""
        with self.store.engine.connect() as conn:
            row = conn.execute(select(upload_info).where(upload_info.c.id == upload_id)).first()
        if row is None or row.etag is None:
            return None
        if [[n, e.strip('"')] for n, e in wanted] != json.loads(row.parts):
            raise S3Error("InvalidPart", f"upload {upload_id} was completed with other parts", 400)
        return Completed(row.etag, row.commit)

    def get(self, upload_id: str, repo: str, branch: str, key: str) -> Upload:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(uploads).where(uploads.c.id == upload_id)).first()
        if row is None or (row.repo, row.branch, row.key) != (repo, branch, key):
            raise S3Error("NoSuchUpload", f"upload {upload_id} does not exist (aborted or completed?)", 404, key)
        return Upload(row.id, row.repo, row.branch, row.key, row.created)

    def list_uploads(self, repo: str, branch: str) -> list[Upload]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(
                select(uploads).where(uploads.c.repo == repo, uploads.c.branch == branch)
                .order_by(uploads.c.key, uploads.c.created)
            ).all()
        return [Upload(r.id, r.repo, r.branch, r.key, r.created) for r in rows]

    def put_part(self, upload: Upload, number: int, body: BinaryIO) -> Part:
        """Store one part's bytes as chunks and record it (replacing an earlier try)."""
        if not 1 <= number <= MAX_PART_NUMBER:
            raise S3Error("InvalidArgument", f"part number must be 1..{MAX_PART_NUMBER}", 400)
        reader = _Md5Reader(body)
        with self.store.chunks.writer(write_id=upload.id) as writer:
            _, refs, size = writer.add_stream(reader)  # type: ignore[arg-type,unused-ignore]
        part = Part(number, size, reader.md5.hexdigest(), time.time())
        self._record_part(upload, part, refs)
        self._check_alive(upload)
        return part

    def _record_part(self, upload: Upload, part: Part, refs: Sequence[Any]) -> None:
        """Record (or replace) a part: the same part number sent twice at once keeps one of them."""
        row = {"upload": upload.id, "number": part.number, "size": part.size, "etag": part.etag,
               "chunks": json.dumps([[r.hash, r.size] for r in refs]), "created": part.created}
        with self.store.engine.begin() as conn:
            conn.execute(upsert(self.store.engine, parts, row))

    def list_parts(self, upload: Upload) -> list[Part]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(parts).where(parts.c.upload == upload.id).order_by(parts.c.number)).all()
        return [Part(r.number, r.size, r.etag, r.created) for r in rows]

    def abort(self, upload: Upload) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(delete(parts).where(parts.c.upload == upload.id))
            conn.execute(delete(uploads).where(uploads.c.id == upload.id))
            conn.execute(delete(upload_info).where(upload_info.c.id == upload.id))
            self.store.chunks.pins.release(upload.id, conn)

    def complete(self, upload: Upload, wanted: list[tuple[int, str]],
                 stamp: Callable[[dict[str, str], str], dict[str, str]]) -> Completed:
        """Write the file from the listed parts, its metadata ``stamp(meta, etag)``; the result."""
        refs, etags = self._chosen_chunks(upload, wanted)
        digest = hashlib.md5(b"".join(bytes.fromhex(e) for e in etags), usedforsecurity=False).hexdigest()
        etag = f"{digest}-{len(etags)}"
        body = io.BufferedReader(_ChunkReader(self.store.chunks.read_all(refs)), buffer_size=1024 * 1024)
        commit, _ = self.store.write_file(upload.repo, upload.branch, upload.key, body,
                                          meta=stamp(self._meta(upload.id), etag))
        with self.store.engine.begin() as conn:  # the parts' rows go; their chunks are the file's now
            conn.execute(delete(parts).where(parts.c.upload == upload.id))
            conn.execute(delete(uploads).where(uploads.c.id == upload.id))
            conn.execute(update(upload_info).where(upload_info.c.id == upload.id).values(
                parts=json.dumps([[n, e.strip('"')] for n, e in wanted]), etag=etag, commit=commit.id))
            self.store.chunks.pins.release(upload.id, conn)
        return Completed(etag, commit.id)

    def _meta(self, upload_id: str) -> dict[str, str]:
        with self.store.engine.connect() as conn:
            text = conn.execute(select(upload_info.c.meta).where(upload_info.c.id == upload_id)).scalar()
        return dict(json.loads(text)) if text else {}

    def _chosen_chunks(self, upload: Upload, wanted: list[tuple[int, str]]) -> tuple[list[ChunkRef], list[str]]:
        if not wanted:
            raise S3Error("MalformedXML", "CompleteMultipartUpload lists no parts", 400)
        numbers = [n for n, _ in wanted]
        if numbers != sorted(set(numbers)):
            raise S3Error("InvalidPartOrder", "parts must be listed in ascending order, once each", 400)
        with self.store.engine.connect() as conn:
            rows = {r.number: r for r in conn.execute(select(parts).where(parts.c.upload == upload.id))}
        refs: list[ChunkRef] = []
        etags: list[str] = []
        for i, (number, etag) in enumerate(wanted):
            row = rows.get(number)
            if row is None or (etag.strip('"') and etag.strip('"') != row.etag):
                raise S3Error("InvalidPart", f"part {number} was not uploaded or its ETag differs", 400)
            if row.size < MIN_PART_SIZE and i < len(wanted) - 1:
                raise S3Error("EntityTooSmall", f"part {number} is {row.size} bytes: every part but the last "
                              f"must be at least {MIN_PART_SIZE} bytes", 400)
            refs.extend(ChunkRef(h, n) for h, n in json.loads(row.chunks))
            etags.append(row.etag)
        missing = {r.hash for r in refs} - set(self.store.chunks.locate(r.hash for r in refs))
        if missing:
            raise S3Error("InvalidPart", f"{len(missing)} chunk(s) of the parts are gone (collected?)", 400)
        return refs, etags

    def _check_alive(self, upload: Upload) -> None:
        """A part that lands after Abort/Complete must not be left recorded."""
        with self.store.engine.begin() as conn:
            if conn.execute(select(uploads.c.id).where(uploads.c.id == upload.id)).first() is None:
                conn.execute(delete(parts).where(parts.c.upload == upload.id))
                raise S3Error("NoSuchUpload", f"upload {upload.id} was aborted or completed", 404, upload.key)


class _ChunkReader(io.RawIOBase):
    """A file over the parts' chunks, read (and hash-checked) one by one."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self.pieces = pieces
        self.buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.buf:
            piece = next(self.pieces, None)
            if piece is None:
                return 0
            self.buf = memoryview(piece)
        n = min(len(buffer), len(self.buf))
        buffer[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        return n
