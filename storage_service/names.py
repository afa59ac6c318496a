"""Names, paths and references: validated once, at the edge of the store.

A reference is ``REPO@REF[:PATH]`` where REF is a branch, a commit id, or an
ancestry form (``master^``, ``master~3``, ``<id>^^``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from datumflow.storage_service.errors import InvalidArgument

__all__ = [
    "MAX_PATH_BYTES",
    "MAX_PATH_DEPTH",
    "TAR_DELETE_RECORD",
    "Ref",
    "check_branch_name",
    "check_repo_name",
    "is_commit_id",
    "normalize_path",
    "parse_ancestry",
    "parse_ref",
]

# Paths stay well inside what every client and file system handles (PATH_MAX is 4096).
MAX_PATH_DEPTH = 256
MAX_PATH_BYTES = 4096

# The PAX record of a member of a tar upload that removes its path (an empty
# file flagged so), letting one upload carry the additions and removals of a sync.
TAR_DELETE_RECORD = "DATUMFLOW.delete"

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,62}$")
_BRANCH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]{0,126}$")
_COMMIT_ID = re.compile(r"^[0-9a-f]{32}$")
_ANCESTRY = re.compile(r"(\^+|~\d+)")
# S3 allows 1,024-byte keys, so a path component may be that long too (a local checkout of such a
# file fails on file systems that stop at 255 bytes, with the operating system's error).
MAX_COMPONENT = 1024


def check_repo_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidArgument(
            f"invalid repo name {name!r}: use 1-63 letters, digits, '_' or '-', "
            "not starting with '-'"
        )
    return name


def check_branch_name(name: str) -> str:
    # No '.' or '/': S3 buckets are ``branch.repo`` and refs use '^' and '~'.
    if not isinstance(name, str) or not _BRANCH.match(name) or is_commit_id(name):
        raise InvalidArgument(
            f"invalid branch name {name!r}: use 1-127 letters, digits, '_' or '-' "
            "(not a 32-hex commit id)"
        )
    return name


def is_commit_id(text: str) -> bool:
    return bool(_COMMIT_ID.match(text))


def normalize_path(path: str, *, allow_root: bool = False) -> str:
    """Return the canonical form of a file path: no leading '/', no '.', no '..'.

    Paths are stored without a leading slash (``a/b.csv``); the root folder is
    the empty string.
    """
    if not isinstance(path, str):
        raise InvalidArgument(f"path must be a string, not {type(path).__name__}")
    if "\x00" in path:
        raise InvalidArgument(f"invalid path {path!r}: contains a NUL byte")
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"invalid path {path!r}: '..' may not escape or walk up")
    if any(len(p.encode()) > MAX_COMPONENT for p in parts):
        raise InvalidArgument(f"invalid path {path!r}: a component is longer than {MAX_COMPONENT} bytes")
    if len(parts) > MAX_PATH_DEPTH:
        raise InvalidArgument(f"invalid path: {len(parts)} levels deep; at most {MAX_PATH_DEPTH} are allowed")
    out = "/".join(parts)
    if len(out.encode()) > MAX_PATH_BYTES:
        raise InvalidArgument(f"invalid path: longer than {MAX_PATH_BYTES} bytes (too deep or too long)")
    if not out and not allow_root:
        raise InvalidArgument("a file path is required, got the root folder")
    return out


def parse_ancestry(ref: str) -> tuple[str, int]:
    """Split ``master~3^`` into (``master``, 4)."""
    match = _ANCESTRY.search(ref)
    if not match:
        return ref, 0
    base, rest = ref[: match.start()], ref[match.start():]
    steps = 0
    pos = 0
    for m in _ANCESTRY.finditer(rest):
        if m.start() != pos:
            break
        token = m.group(0)
        steps += len(token) if token[0] == "^" else int(token[1:])
        pos = m.end()
    if pos != len(rest) or not base:
        raise InvalidArgument(f"invalid reference {ref!r}: use BRANCH, COMMIT, BRANCH^ or BRANCH~N")
    return base, steps


@dataclass(frozen=True)
class Ref:
    """A parsed ``REPO@REF[:PATH]``."""

    repo: str
    ref: str | None
    path: str | None

    def __str__(self) -> str:
        out = self.repo
        if self.ref is not None:
            out += f"@{self.ref}"
        if self.path is not None:
            out += f":{self.path}"
        return out


def parse_ref(text: str, *, default_ref: str | None = None) -> Ref:
    """Parse ``REPO[@REF][:PATH]``; the path keeps what the user typed."""
    if not isinstance(text, str) or not text:
        raise InvalidArgument("a reference REPO@REF[:PATH] is required")
    head, sep, path = text.partition(":")
    repo, at, ref = head.partition("@")
    check_repo_name(repo)
    if at and not ref:
        raise InvalidArgument(f"invalid reference {text!r}: nothing after '@'")
    if ref:
        base, _ = parse_ancestry(ref)
        if not is_commit_id(base):
            check_branch_name(base)
    return Ref(repo=repo, ref=ref or default_ref, path=path if sep else None)
