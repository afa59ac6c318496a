"""Glob patterns matched in linear time, whatever the pattern.

A glob becomes a regular expression compiled by RE2 (``google-re2``), which
runs in time linear in the path's length — no backtracking, so no pattern
can stall a worker (Python's :mod:`re` took tens of seconds on a 31-character
``*a*a*…b`` and minutes on ``**/**/…`` against a deep path). RE2 is also the
engine of Go's ``regexp``, which Pachyderm's globs (ohmyglob) compile to, so
capture groups (``join_on``/``group_by``) keep their greedy, leftmost meaning.

Every caller that matches a user's pattern goes through :func:`compile_regex`
(a regex it built) or :func:`compile_glob` (the store's glob semantics);
patterns are bounded in length and depth before they are compiled.

Store globs: ``*`` and ``?`` match within one path component, ``[...]`` a
character class (``[!...]`` negated), ``{a,b}`` one of literal alternatives,
and a whole ``**`` component any number of components (zero included).
"""

from __future__ import annotations

from typing import Protocol

import re2
from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.names import MAX_PATH_DEPTH

__all__ = [
    "MAX_PATTERN", "Match", "Matcher", "check_pattern", "compile_glob", "compile_regex", "literal_prefix", "segments",
    "translate",
]

MAX_PATTERN = 1024  # characters of a glob
_MAX_PROGRAM = 8 << 20  # bytes RE2 may use for one compiled pattern
_SPECIAL = set(".^$*+?()[]{}|\\")
_GLOB = set("*?[]{}")


class Match(Protocol):
    def groups(self) -> tuple[str | None, ...]: ...


class Matcher(Protocol):
    """What a compiled glob offers: ``fullmatch(path)``, ``match(path)``, ``groups``."""

    @property
    def groups(self) -> int: ...

    def fullmatch(self, text: str) -> Match | None: ...

    def match(self, text: str) -> Match | None: ...


def check_pattern(pattern: str) -> str:
    """The pattern, if it is short and shallow enough to match; InvalidArgument otherwise."""
    if not isinstance(pattern, str):
        raise InvalidArgument(f"a glob must be a string, not {type(pattern).__name__}")
    if len(pattern) > MAX_PATTERN:
        raise InvalidArgument(f"glob pattern is {len(pattern)} characters long; at most {MAX_PATTERN} are allowed")
    if pattern.count("/") > MAX_PATH_DEPTH:
        raise InvalidArgument(f"glob pattern is deeper than {MAX_PATH_DEPTH} path components")
    if "\x00" in pattern:
        raise InvalidArgument("glob pattern contains a NUL byte")
    return pattern


def compile_regex(body: str, *, pattern: str | None = None, dotall: bool = False) -> Matcher:
    """Compile a regex built from a glob with RE2; an invalid one is InvalidArgument naming the glob.

    RE2 has no look-around and no back-references (those are what make a
    match non-linear); ``\\z`` ends the text (Python's ``\\Z``).
    """
    check_pattern(pattern if pattern is not None else body)
    options = re2.Options()
    options.dot_nl = dotall
    options.max_mem = _MAX_PROGRAM
    options.log_errors = False
    try:
        compiled: Matcher = re2.compile(body, options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise InvalidArgument(f"invalid glob {pattern if pattern is not None else body!r}: {reason}") from exc
    return compiled


def compile_glob(pattern: str) -> Matcher:
    """A store glob (see the module's docstring) as a matcher of whole paths."""
    return compile_regex(translate(pattern), pattern=pattern)


def segments(pattern: str) -> list[str]:
    parts = [s for s in check_pattern(pattern).strip().split("/") if s]
    if ".." in parts:
        raise InvalidArgument(f"invalid glob {pattern!r}: '..' is not allowed")
    return parts


def translate(pattern: str) -> str:
    """The regex of a store glob, for paths without a leading ``/``."""
    body = "/".join(_segment(s) for s in segments(pattern)).replace("/.*/", "(?:/.*/|/)")
    if body.startswith(".*/"):  # a leading "**/" matches zero folders too, as in the middle
        body = "(?:.*/)?" + body[3:]
    return body


def literal_prefix(pattern: str) -> str:
    """The leading components without glob characters (where an index scan may start)."""
    out = []
    for seg in segments(pattern):
        if _GLOB & set(seg):
            break
        out.append(seg)
    return "/".join(out)


def _literal(text: str) -> str:
    return "".join("\\" + c if c in _SPECIAL else c for c in text)


def _segment(seg: str) -> str:
    if seg == "**":
        return ".*"
    out, i = [], 0
    while i < len(seg):
        c = seg[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = seg.find("]", i + 2 if seg.startswith("[!]", i) or seg.startswith("[]", i) else i + 1)
            if j < 0:
                raise InvalidArgument(f"invalid glob segment {seg!r}: unclosed '['")
            body = seg[i + 1:j]
            negated = body.startswith("!")
            body = body[1:] if negated else body
            escaped = body.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
            out.append("[" + ("^/" if negated else "") + escaped + "]")
            i = j
        elif c == "{":
            j = seg.find("}", i + 1)
            if j < 0:
                raise InvalidArgument(f"invalid glob segment {seg!r}: unclosed '{{'")
            out.append("(?:" + "|".join(_literal(a) for a in seg[i + 1:j].split(",")) + ")")
            i = j
        else:
            out.append(_literal(c))
        i += 1
    return "".join(out)
