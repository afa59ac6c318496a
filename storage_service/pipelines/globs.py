"""Glob patterns as Pachyderm reads them (its matcher is ``ohmyglob``), compiled to regexes.

Paths are matched with a leading ``/`` (``/a/b.txt``) against the whole
pattern: ``*`` and ``?`` stay inside one path segment, ``**`` crosses
segments (so ``/**.txt`` matches ``/a.txt`` and ``/d/b.txt``, while
``/**/*.txt`` needs at least one folder), ``[abc]``/``[!a-z]`` are
character classes, ``{a,b}`` alternatives, and the extglob forms
``(a|b)``/``@(a|b)`` (exactly one), ``?(…)`` (zero or one), ``*(…)``
(zero or more), ``+(…)`` (one or more) and ``!(…)`` (anything but) are
capture groups, numbered from the left, that ``join_on``/``group_by``
templates (``$1``, ``${2}``) refer to. ``\\`` escapes the next character.

A pattern that cannot be parsed raises :class:`InvalidArgument`; so does a
template naming a group the pattern does not have (:func:`check_template`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from datumflow.storage_service.core.globs import Matcher, compile_regex
from datumflow.storage_service.errors import InvalidArgument

__all__ = ["Glob", "check_template", "compile_glob", "expand"]

MAX_PATTERN = 1024  # characters: every input is bounded
MAX_NESTING = 8  # capture groups inside capture groups

_NEG_END = "\x00neg\x00"  # where a negation's scope may end (replaced once the whole pattern is known)
_BOUND = "\x00bound\x00"  # a part that bounds a negation's scope
_SEG = "[^/]"
_TEMPLATE_REF = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass(frozen=True)
class Glob:
    """A compiled pattern: ``regex`` matches ``/``-rooted paths; ``depth`` is fixed, or None."""

    pattern: str
    regex: Matcher | re.Pattern[str]
    groups: int
    depth: int | None  # the number of path segments every match has (None: it varies)
    prefix: str  # the leading literal folders ("a/b" for "/a/b/*"), to start the walk at

    def match(self, path: str) -> tuple[str, ...] | None:
        """The capture groups if ``path`` (no leading ``/``; "" is the root) matches, else None."""
        found = self.regex.match("/" + path)
        if found is None:
            return None
        return tuple(g or "" for g in found.groups())


def compile_glob(pattern: str) -> Glob:
    """Compile a Pachyderm glob (leading ``/`` optional, as Pachyderm cleans it)."""
    if len(pattern) > MAX_PATTERN:
        raise InvalidArgument(f"glob pattern is longer than {MAX_PATTERN} characters")
    if "\x00" in pattern:
        raise InvalidArgument("glob pattern contains a NUL character")
    clean = "/" + pattern.strip().strip("/")
    parser = _Parser(clean, pattern)
    body = parser.parse()
    end = body.find(_NEG_END + ")")
    if end >= 0:
        body = body.replace(_NEG_END, "" if _BOUND in body[end:] else r"\Z")
    body = body.replace(_BOUND, "")
    regex = _compiled(body, pattern)
    segments = clean.strip("/").split("/") if clean != "/" else []
    return Glob(pattern, regex, regex.groups, None if parser.deep else len(segments), _prefix(segments))


def _compiled(body: str, pattern: str) -> Matcher | re.Pattern[str]:
    """RE2 (linear time, see core.globs) unless the pattern negates: ``!(…)`` needs a look-ahead."""
    if "(?!" not in body:
        return compile_regex(r"\A" + body.replace(r"\Z", r"\z") + r"\z", pattern=pattern, dotall=True)
    try:
        return re.compile(r"\A" + body + r"\Z", re.DOTALL)
    except re.error as exc:
        raise InvalidArgument(f"invalid glob {pattern!r}: {exc}") from None


def expand(template: str, groups: tuple[str, ...]) -> str:
    """A ``join_on``/``group_by`` template with ``$n``/``${n}`` replaced (as Go's regexp Expand)."""
    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name.isdigit() and 0 < int(name) <= len(groups):
            return groups[int(name) - 1]
        return ""

    return _TEMPLATE_REF.sub(one, template.replace("$$", "\x00")).replace("\x00", "$")


def check_template(template: str, glob: Glob, field: str) -> None:
    """Refuse a template that names a group the glob lacks (it would silently give "" for every file)."""
    for m in _TEMPLATE_REF.finditer(template.replace("$$", "")):
        name = m.group(1) or m.group(2)
        if not name.isdigit():
            raise InvalidArgument(f"{field} {template!r}: ${name} is not a group number (use $1, $2, …)")
        n = int(name)
        if n == 0 or n > glob.groups:
            have = f"{glob.groups} capture group" + ("" if glob.groups == 1 else "s")
            raise InvalidArgument(
                f"{field} {template!r} refers to ${n}, but glob {glob.pattern!r} has {have} "
                "(groups are written (…), @(…), *(…), +(…), ?(…) or !(…))"
            )


def _prefix(segments: list[str]) -> str:
    literal = []
    for seg in segments[:-1]:
        if any(c in seg for c in "*?[]{}()@!+\\^|"):
            break
        literal.append(seg)
    return "/".join(literal)


class _Parser:
    """Recursive descent over ohmyglob's syntax, writing a Python regex as it goes."""

    def __init__(self, text: str, original: str) -> None:
        self.text, self.original, self.i = text, original, 0
        self.deep = False  # can a match have a varying number of segments?
        self.depth = 0

    def fail(self, why: str) -> InvalidArgument:
        return InvalidArgument(f"invalid glob {self.original!r}: {why}")

    def parse(self) -> str:
        out = self.sequence(stop="")
        if self.i < len(self.text):
            raise self.fail(f"unexpected {self.text[self.i]!r} at position {self.i}")
        return out

    def sequence(self, stop: str) -> str:
        parts: list[str] = []
        while self.i < len(self.text) and self.text[self.i] not in stop:
            parts.append(self.item(stop))
        return "".join(parts)

    def item(self, stop: str) -> str:
        t, i = self.text, self.i
        c = t[i]
        nxt = t[i + 1] if i + 1 < len(t) else ""
        if c == "*" and nxt == "*" and t[i + 2:i + 3] != "(":
            self.i += 2
            self.deep = True
            return ".*" + _BOUND
        if c in "@!+?*^" and nxt == "(":
            self.i += 2
            return self.capture("!" if c == "^" else c)
        if c == "(":
            self.i += 1
            return self.capture("@")
        if c == "*":
            self.i += 1
            return _SEG + "*" + _BOUND
        if c == "?":
            self.i += 1
            return _SEG
        if c == "[":
            return self.char_class()
        if c == "{":
            return self.alternatives()
        return self.text_run(stop)

    def text_run(self, stop: str) -> str:
        out: list[str] = []
        while self.i < len(self.text):
            c = self.text[self.i]
            nxt = self.text[self.i + 1:self.i + 2]
            if c == "\\":
                if self.i + 1 >= len(self.text):
                    raise self.fail("a trailing '\\' escapes nothing")
                out.append(self.text[self.i + 1])
                self.i += 2
                continue
            if out and (c in "*?[{(" or c in stop or (c in "@!+^" and nxt == "(")):
                break  # (``)``, ``}`` and ``]`` outside a group are plain text, as in ohmyglob)
            out.append(c)
            self.i += 1
        if "/" in out and (self.depth or stop):
            self.deep = True
        return re.escape("".join(out)) + _BOUND

    def capture(self, quantifier: str) -> str:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.fail(f"more than {MAX_NESTING} nested groups")
        options = [self.sequence(stop="|)")]
        while self.i < len(self.text) and self.text[self.i] == "|":
            self.i += 1
            options.append(self.sequence(stop="|)"))
        if self.i >= len(self.text):
            raise self.fail("a '(' is never closed")
        self.i += 1
        self.depth -= 1
        if quantifier != "@":
            self.deep = True  # repetition (or negation) can cross '/' inside the group
        if quantifier == "!":
            inner = (_NEG_END + "|").join(options)
            return f"((?:(?!(?:{inner}{_NEG_END})){_SEG}*))"
        body = "|".join(options)
        suffix = {"@": "", "?": "?", "*": "*", "+": "+"}[quantifier]
        return f"({body})" if not suffix else f"((?:{body}){suffix})"

    def alternatives(self) -> str:
        self.i += 1
        self.depth += 1
        options = [self.sequence(stop=",}")]
        while self.i < len(self.text) and self.text[self.i] == ",":
            self.i += 1
            options.append(self.sequence(stop=",}"))
        if self.i >= len(self.text):
            raise self.fail("a '{' is never closed")
        self.i += 1
        self.depth -= 1
        if len({o.count("/") for o in options}) > 1:
            self.deep = True
        return "(?:" + "|".join(options) + ")"

    def char_class(self) -> str:
        start = self.i
        self.i += 1
        negate = self.i < len(self.text) and self.text[self.i] in "!^"
        self.i += negate
        chars: list[str] = []
        while True:
            if self.i >= len(self.text):
                raise self.fail(f"the '[' at position {start} is never closed")
            c = self.text[self.i]
            if c == "\\" and self.i + 1 < len(self.text):
                chars.append(re.escape(self.text[self.i + 1]))
                self.i += 2
                continue
            if c == "]" and chars:
                break
            if c == "]":
                raise self.fail(f"the '[' at position {start} is empty")
            chars.append("-" if c == "-" else re.escape(c))
            self.i += 1
        self.i += 1
        if negate:
            self.deep = True  # [!a] matches '/' too, as in ohmyglob
        body = "".join(chars)
        try:
            re.compile(f"[{body}]")
        except re.error as exc:
            raise self.fail(f"bad character class at position {start}: {exc}") from None
        return f"[{'^' if negate else ''}{body}]"
