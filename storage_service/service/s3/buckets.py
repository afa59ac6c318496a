"""Buckets: ``branch.repo`` (writable), ``commit.branch.repo`` and ``tag.repo`` (read-only); operations, listings."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from datumflow.storage_service.core.index import MAX_KEY
from datumflow.storage_service.errors import AlreadyExists, BranchNotFound, InvalidArgument, TagNotFound
from datumflow.storage_service.model.core import Commit, FileInfo
from datumflow.storage_service.names import check_branch_name, check_repo_name, is_commit_id
from datumflow.storage_service.service.auth import Auth, Principal
from datumflow.storage_service.service.s3.errors import S3Error
from datumflow.storage_service.service.s3.headers import etag_of, modified_of
from datumflow.storage_service.service.s3.multipart import Multipart
from datumflow.storage_service.service.s3.xml import element, encode_key, iso_date, leaves, xml_response
from datumflow.storage_service.store.listing import file_info
from datumflow.storage_service.store.store import Store
from fastapi.responses import Response

__all__ = ["Bucket", "open_bucket", "parse_bucket"]

DEFAULT_MAX_KEYS = 1000


@dataclass(frozen=True)
class Bucket:
    repo: str
    branch: str
    commit: str | None = None  # set: a read-only bucket pinned to one commit

    @property
    def ref(self) -> str:
        return self.commit or self.branch

    @property
    def name(self) -> str:
        return ".".join(p for p in (self.commit, self.branch, self.repo) if p)


def parse_bucket(name: str) -> Bucket:
    """``branch.repo`` or ``commit.branch.repo``; anything else is InvalidBucketName."""
    parts = name.split(".")
    try:
        if len(parts) == 2:
            return Bucket(check_repo_name(parts[1]), check_branch_name(parts[0]))
        if len(parts) == 3 and is_commit_id(parts[0]):
            return Bucket(check_repo_name(parts[2]), check_branch_name(parts[1]), parts[0])
    except InvalidArgument:
        pass
    raise S3Error("InvalidBucketName", f"bucket {name!r} is not BRANCH.REPO or COMMIT.BRANCH.REPO", 400, name)


def open_bucket(store: Store, who: Principal, b: Bucket, role: str = "reader") -> Commit | None:
    """The commit a bucket reads (None: an empty branch); NoSuchBucket first, then the caller's role."""
    if role == "reader" and b.commit is None:  # a read of a branch head: one query when it has one
        head = store.head_commit(b.repo, b.branch)
        if head is not None:
            who.require(b.repo, role)
            return head
    try:
        branch = store.inspect_branch(b.repo, b.branch)  # RepoNotFound/BranchNotFound: NoSuchBucket
    except BranchNotFound:
        return _open_tag(store, who, b, role)
    who.require(b.repo, role)
    if role != "reader" and b.commit is not None:
        raise S3Error("AccessDenied", f"bucket {b.name} names a commit and is read-only", 403, b.name)
    if b.commit is None:
        return store.inspect_commit(b.repo, branch.head) if branch.head else None
    commit = store.inspect_commit(b.repo, b.commit)
    if commit.branch != b.branch:
        raise S3Error("NoSuchBucket", f"commit {b.commit} is not on branch {b.branch}", 404, b.name)
    return commit


def _open_tag(store: Store, who: Principal, b: Bucket, role: str) -> Commit:
    """``tag.repo``: the tagged commit, read-only (a branch of that name does not exist)."""
    try:
        tag = store.inspect_tag(b.repo, b.branch)
    except TagNotFound:
        raise BranchNotFound(f"no branch or tag {b.branch} in repo {b.repo}") from None
    who.require(b.repo, role)
    if role != "reader":
        raise S3Error("AccessDenied", f"bucket {b.name} names a tag and is read-only", 403, b.name)
    if b.commit is not None and b.commit != tag.commit:
        raise S3Error("NoSuchBucket", f"commit {b.commit} is not tagged {b.branch}", 404, b.name)
    return store.inspect_commit(b.repo, tag.commit)


# -- service and bucket operations ------------------------------------------------------


def list_buckets(store: Store, who: Principal) -> Response:
    """One bucket per branch the caller can read; one query, whatever else the store holds."""
    visible = None if who.admin else [r for r in who.grants if who.role_on(r)]
    found = [element("Bucket", *leaves(Name=f"{branch}.{repo}", CreationDate=iso_date(created)))
             for repo, branch, created in store.branch_names(visible)]
    owner = element("Owner", *leaves(ID=who.name, DisplayName=who.name))
    return xml_response(element("ListAllMyBucketsResult", owner, element("Buckets", *found)))


def create_bucket(store: Store, auth: Auth | None, who: Principal, b: Bucket) -> Response:
    if b.commit is not None:
        raise S3Error("AccessDenied", "a commit bucket cannot be created", 403, b.name)
    try:
        store.create_repo(b.repo)
    except AlreadyExists:
        pass  # someone's repo: the caller needs writer on it
    else:
        if auth is not None and not who.admin:
            auth.grant(who.name, b.repo, "owner")
            who = Principal(who.name, who.admin, {**who.grants, b.repo: "owner"})
    who.require(b.repo, "writer")
    if b.branch in store.inspect_repo(b.repo).branches:
        raise S3Error("BucketAlreadyOwnedByYou", f"bucket {b.name} exists", 409, b.name)
    store.create_branch(b.repo, b.branch)
    return Response(status_code=200, headers={"Location": f"/{b.name}"})


def delete_bucket(store: Store, uploads: Multipart, who: Principal, b: Bucket) -> Response:
    head = open_bucket(store, who, b, "writer")
    if head is not None and head.file_count:
        raise S3Error("BucketNotEmpty", f"branch {b.branch} of {b.repo} still has files", 409, b.name)
    store.delete_branch(b.repo, b.branch)
    for upload in uploads.list_uploads(b.repo, b.branch):  # as S3: they go with the bucket
        uploads.abort(upload)
    return Response(status_code=204)


def list_uploads(uploads: Multipart, b: Bucket) -> Response:
    rows = [
        element("Upload", *leaves(Key=u.key, UploadId=u.id, Initiated=iso_date(u.created)))
        for u in uploads.list_uploads(b.repo, b.branch)
    ]
    head = leaves(Bucket=b.name, IsTruncated="false")
    return xml_response(element("ListMultipartUploadsResult", *head, *rows))


# -- listing objects ----------------------------------------------------------------------


def list_objects(store: Store, b: Bucket, commit: Commit | None, q: dict[str, str]) -> Response:
    v2 = q.get("list-type") == "2"
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    url = q.get("encoding-type") == "url"
    if q.get("encoding-type") not in (None, "url"):
        raise S3Error("InvalidArgument", "encoding-type must be url", 400)
    try:
        max_keys = min(int(q.get("max-keys", DEFAULT_MAX_KEYS)), DEFAULT_MAX_KEYS)
    except ValueError as exc:
        raise S3Error("InvalidArgument", "max-keys must be an integer", 400) from exc
    if max_keys < 0:
        raise S3Error("InvalidArgument", "max-keys must not be negative", 400)
    if v2 and q.get("continuation-token"):
        start = _untoken(q["continuation-token"])
    else:
        start = _after(q.get("start-after" if v2 else "marker", ""), delimiter)
    page = _list_page(store, commit, prefix, delimiter, max(start, prefix), max_keys)
    contents = [
        element("Contents", *leaves(Key=encode_key(f.path, url), LastModified=iso_date(modified_of(f, c)),
                                    ETag=f'"{etag_of(f)}"', Size=f.size, StorageClass="STANDARD"))
        for f in page.files for c in (commit,) if c is not None
    ]
    prefixes = [element("CommonPrefixes", *leaves(Prefix=encode_key(p, url))) for p in page.prefixes]
    head = leaves(Name=b.name, Prefix=encode_key(prefix, url and v2), Delimiter=encode_key(delimiter, url) or None,
                  MaxKeys=max_keys, EncodingType="url" if url else None, IsTruncated=str(page.truncated).lower())
    if v2:
        head += leaves(KeyCount=len(contents) + len(prefixes), ContinuationToken=q.get("continuation-token"),
                       NextContinuationToken=_token(page.resume) if page.truncated else None,
                       StartAfter=encode_key(q["start-after"], url) if "start-after" in q else None)
        return xml_response(element("ListBucketResult", *head, *contents, *prefixes))
    last = page.last if page.truncated and delimiter else None
    head += leaves(Marker=encode_key(q.get("marker", ""), url), NextMarker=encode_key(last, url) if last else None)
    return xml_response(element("ListBucketResult", *head, *contents, *prefixes))


def list_versions(store: Store, b: Bucket, commit: Commit | None, q: dict[str, str]) -> Response:
    """ListObjectVersions as S3 answers it for a bucket without S3 versioning: the current objects,
    each with version ``null`` (a bucket's history is its branch's commits, read through
    ``COMMIT.BRANCH.REPO`` buckets or ``versionId=COMMIT``)."""
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    url = q.get("encoding-type") == "url"
    try:
        max_keys = min(int(q.get("max-keys", DEFAULT_MAX_KEYS)), DEFAULT_MAX_KEYS)
    except ValueError as exc:
        raise S3Error("InvalidArgument", "max-keys must be an integer", 400) from exc
    if max_keys < 0:
        raise S3Error("InvalidArgument", "max-keys must not be negative", 400)
    start = _after(q.get("key-marker", ""), delimiter)
    page = _list_page(store, commit, prefix, delimiter, max(start, prefix), max_keys)
    versions = [
        element("Version", *leaves(Key=encode_key(f.path, url), VersionId="null", IsLatest="true",
                                   LastModified=iso_date(modified_of(f, c)), ETag=f'"{etag_of(f)}"', Size=f.size,
                                   StorageClass="STANDARD"))
        for f in page.files for c in (commit,) if c is not None
    ]
    prefixes = [element("CommonPrefixes", *leaves(Prefix=encode_key(p, url))) for p in page.prefixes]
    head = leaves(Name=b.name, Prefix=encode_key(prefix, url), KeyMarker=encode_key(q.get("key-marker", ""), url),
                  VersionIdMarker=q.get("version-id-marker", ""), MaxKeys=max_keys,
                  Delimiter=encode_key(delimiter, url) or None, EncodingType="url" if url else None,
                  IsTruncated=str(page.truncated).lower())
    if page.truncated:
        head += leaves(NextKeyMarker=encode_key(page.last, url), NextVersionIdMarker="null")
    return xml_response(element("ListVersionsResult", *head, *versions, *prefixes))


@dataclass
class _Page:
    files: list[FileInfo]
    prefixes: list[str]
    truncated: bool = False
    resume: str = ""  # where the next page starts
    last: str = ""  # the last key or common prefix returned


def _list_page(store: Store, commit: Commit | None, prefix: str, delimiter: str, start: str, max_keys: int) -> _Page:
    """One page of keys >= ``start`` under ``prefix``, rolled up at ``delimiter``; range scans of the index."""
    page = _Page([], [])
    if commit is None or max_keys == 0:
        return page
    stop = prefix + MAX_KEY
    pos = start
    while True:
        jumped = False
        for key, entry in store.tree.items(commit.root, pos, stop):
            if len(page.files) + len(page.prefixes) >= max_keys:
                page.truncated = True
                return page
            rest = key[len(prefix):]
            cut = rest.find(delimiter) if delimiter else -1
            if cut >= 0:
                common = prefix + rest[: cut + len(delimiter)]
                page.prefixes.append(common)
                page.last, page.resume = common, common + MAX_KEY
                pos, jumped = page.resume, True
                break
            page.files.append(file_info(key, entry))
            page.last, page.resume = key, key + "\x00"
        if not jumped:
            return page


def _after(marker: str, delimiter: str) -> str:
    if not marker:
        return ""
    return marker + (MAX_KEY if delimiter and marker.endswith(delimiter) else "\x00")


_TOKEN_MARK = "df1:"  # a token this gateway made; anything else is InvalidArgument, not a silent restart


def _token(resume: str) -> str:
    return base64.urlsafe_b64encode((_TOKEN_MARK + resume).encode()).decode()


def _untoken(token: str) -> str:
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise S3Error("InvalidArgument", "the continuation token is not valid", 400) from exc
    if not text.startswith(_TOKEN_MARK):
        raise S3Error("InvalidArgument", "the continuation token is not valid", 400)
    return text[len(_TOKEN_MARK):]
