"""Datums: how a pipeline's input commits split into units of work.

A ``pfs`` input's glob picks files and folders of its commit (Pachyderm
semantics: ``/*`` is each top-level entry, ``/`` the whole commit); each
match is one datum. ``cross`` takes the product of its inputs' datums,
``union`` their concatenation, ``join`` pairs matches whose ``join_on``
capture groups agree (``outer_join`` keeps the unmatched), ``group`` puts
every match with the same ``group_by`` key into one datum.

A datum's **id** hashes its input files (input name, path, content hash); its
**hash** adds the transform and the salt: the key of the datum cache.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import blake3
from datumflow.storage_service.core.index import MAX_KEY
from datumflow.storage_service.pipelines.globs import Glob, compile_glob, expand
from datumflow.storage_service.pipelines.spec import Input, PfsInput, PipelineSpec, Transform
from datumflow.storage_service.store import queries

if TYPE_CHECKING:
    from datumflow.storage_service.store.store import Store

__all__ = [
    "Datum", "DatumInput", "FileRef", "compute_datums", "datum_hash", "datum_hasher", "files_under", "glob_entries",
    "input_branches",
]


@dataclass(frozen=True)
class FileRef:
    """One input file of a datum: its path in the input commit and content hash."""

    path: str
    hash: str
    size: int


@dataclass(frozen=True)
class DatumInput:
    """One glob match: where it comes from and every file under it."""

    name: str
    repo: str
    commit: str
    path: str  # the matched file or folder ("" = the whole commit)
    files: tuple[FileRef, ...]
    join_on: str = ""  # the join key this match had (PACH_DATUM_<name>_JOIN_ON)
    group_by: str = ""  # the group key (PACH_DATUM_<name>_GROUP_BY)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "repo": self.repo, "commit": self.commit, "path": self.path,
            "files": [[f.path, f.hash, f.size] for f in self.files],
        }
        out.update(self._keys())
        return out

    def _keys(self) -> dict[str, str]:
        return {k: v for k, v in (("join_on", self.join_on), ("group_by", self.group_by)) if v}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DatumInput:
        files = tuple(FileRef(p, h, s) for p, h, s in data["files"])
        return cls(
            data["name"], data["repo"], data["commit"], data["path"], files,
            data.get("join_on", ""), data.get("group_by", ""),
        )


@dataclass(frozen=True)
class Datum:
    id: str
    inputs: tuple[DatumInput, ...]

    @classmethod
    def of(cls, inputs: Iterable[DatumInput]) -> Datum:
        """A datum of these inputs; its id names the inputs and paths only (as Pachyderm's DatumID).

        Content enters the datum *hash* (:func:`datum_hasher`), so an output named by
        ``PACH_DATUM_ID`` keeps its name when the file's content changes.
        """
        items = tuple(inputs)
        key = ",".join([f"[{_str(i.name)},{_str(i.repo)},{_str(i.path)}]" for i in items])
        return cls(blake3.blake3(f"[{key}]".encode()).hexdigest(), items)

    def content_key(self) -> str:
        """The compact JSON of [[file path, content hash], ...] over every input file."""
        return "[" + ",".join([f"[{_str(f.path)},{_str(f.hash)}]" for i in self.inputs for f in i.files]) + "]"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "inputs": [i.to_dict() for i in self.inputs]}

    def inputs_json(self) -> str:
        """``json.dumps([i.to_dict() for i in self.inputs])``, the same text, written piece by piece."""
        parts = []
        for i in self.inputs:
            files = []
            for f in i.files:
                if type(f.size) is not int:  # bool, float…: leave it to json
                    return json.dumps([x.to_dict() for x in self.inputs])
                files.append(f"[{_str(f.path)}, {_str(f.hash)}, {f.size!r}]")
            keys = "".join(f", {_str(k)}: {_str(v)}" for k, v in i._keys().items())
            parts.append(
                f'{{"name": {_str(i.name)}, "repo": {_str(i.repo)}, "commit": {_str(i.commit)}, '
                f'"path": {_str(i.path)}, "files": [{", ".join(files)}]{keys}}}'
            )
        return f"[{', '.join(parts)}]"


def datum_hash(datum: Datum, transform: Transform, salt: str) -> str:
    """The datum cache key: the datum's id and content plus everything that decides its output."""
    return datum_hasher(transform, salt)(datum)


def datum_hasher(transform: Transform, salt: str) -> Callable[[Datum], str]:
    """``datum_hash(·, transform, salt)`` for many datums: the JSON of the fixed part is encoded once."""
    head = _compact([transform.image, transform.cmd, transform.stdin, sorted(transform.env.items()), salt])
    head = head[:-1] + ","  # the list's text up to the datum id

    def of(datum: Datum) -> str:
        return blake3.blake3((head + _compact(datum.id) + "," + datum.content_key() + "]").encode()).hexdigest()

    return of


def input_branches(spec: PipelineSpec) -> dict[str, tuple[str, str]]:
    """{input key: (repo, branch)} of every leaf input (the key is its name unless a union repeats it)."""
    out = {}
    for leaf in spec.leaves():
        if isinstance(leaf, PfsInput):
            out[spec.input_key(leaf)] = (leaf.repo, leaf.branch)
        else:
            out[spec.input_key(leaf)] = (spec.cron_repo(leaf), "master")
    return out


def compute_datums(store: Store, spec: PipelineSpec, commits: Mapping[str, str | None]) -> list[Datum]:
    """The datums of a job whose inputs are at ``commits`` ({input name: commit id or None})."""
    seen: dict[str, Datum] = {}
    if spec.input is None:  # a spout: it has no datums
        return []
    for group in _datums(store, spec, spec.input, commits):
        datum = Datum.of(group)
        seen.setdefault(datum.id, datum)
    return list(seen.values())


@dataclass(frozen=True)
class _Match:
    input: DatumInput
    groups: tuple[str, ...]


def _datums(
    store: Store, spec: PipelineSpec, node: Input, commits: Mapping[str, str | None]
) -> list[tuple[DatumInput, ...]]:
    kind = node.kind
    if kind in ("pfs", "cron"):
        return [(m.input,) for m in _matches(store, spec, node, commits)]
    children = node.children()
    if kind == "union":
        return [d for child in children for d in _datums(store, spec, child, commits)]
    if kind == "cross":
        parts = [_datums(store, spec, child, commits) for child in children]
        return [tuple(itertools.chain.from_iterable(combo)) for combo in itertools.product(*parts)]
    keyed = [_keyed(store, spec, child, commits, kind) for child in children]
    if kind == "group":
        keys = sorted({k for by_key in keyed for k in by_key})
        return [tuple(m for by_key in keyed for m in by_key.get(k, [])) for k in keys]
    return _join(keyed, [bool(c.pfs and c.pfs.outer_join) for c in children])


def _join(keyed: list[dict[str, list[DatumInput]]], outer: list[bool]) -> list[tuple[DatumInput, ...]]:
    out: list[tuple[DatumInput, ...]] = []
    for key in sorted({k for by_key in keyed for k in by_key}):
        lists = [by_key.get(key, []) for by_key in keyed]
        if all(lists):
            chosen = lists
        else:
            chosen = [lst for lst, is_outer in zip(lists, outer, strict=True) if is_outer and lst]
            if not chosen:
                continue
        out.extend(tuple(combo) for combo in itertools.product(*chosen))
    return out


def _keyed(
    store: Store, spec: PipelineSpec, node: Input, commits: Mapping[str, str | None], kind: str
) -> dict[str, list[DatumInput]]:
    assert node.pfs is not None
    template = node.pfs.join_on if kind == "join" else node.pfs.group_by
    assert template is not None
    out: dict[str, list[DatumInput]] = {}
    field = "join_on" if kind == "join" else "group_by"
    for m in _matches(store, spec, node, commits):
        key = expand(template, m.groups)
        if field == "join_on":
            found = dataclasses.replace(m.input, join_on=key)
        else:
            found = dataclasses.replace(m.input, group_by=key)
        out.setdefault(key, []).append(found)
    return out


def _matches(store: Store, spec: PipelineSpec, node: Input, commits: Mapping[str, str | None]) -> list[_Match]:
    leaf = node.pfs if node.pfs is not None else node.cron
    assert leaf is not None
    repo, pattern = (leaf.repo, leaf.glob) if isinstance(leaf, PfsInput) else (spec.cron_repo(leaf), "/*")
    commit = commits.get(spec.input_key(leaf))
    if commit is None:
        return []
    root = queries.commit_root(store, commit)
    glob = compile_glob(pattern)
    out = []
    for path, entry in glob_entries(store, root, glob):
        files = files_under(store, root, path, entry)
        if files:
            groups = glob.match(path) or ()
            out.append(_Match(DatumInput(leaf.name, repo, commit, path, files), groups))
    return out


def glob_entries(store: Store, root: str | None, glob: Glob) -> list[tuple[str, Any]]:
    """(path, index entry) of every file and (path, None) of every folder the glob matches."""
    if glob.depth == 0:
        files, _ = store.tree.stats(root)
        return [("", None)] if files else []
    if glob.depth is None:
        return _deep(store, root, glob)
    return _fixed(store, root, glob, glob.depth)


def _fixed(store: Store, root: str | None, glob: Glob, depth: int) -> list[tuple[str, Any]]:
    # One ordered walk of the index; it re-seeks only to jump over a matched folder's contents.
    out: list[tuple[str, Any]] = []
    prefix = glob.prefix + "/" if glob.prefix else ""
    stop = prefix + MAX_KEY
    items = store.tree.items(root, prefix, stop)
    while (nxt := next(items, None)) is not None:
        comps = nxt[0].split("/")
        if len(comps) < depth:
            continue
        if len(comps) == depth:  # a file at the glob's depth
            if glob.match(nxt[0]) is not None:
                out.append(nxt)
            continue
        candidate = "/".join(comps[:depth])
        if glob.match(candidate) is not None:
            out.append((candidate, None))
        items = store.tree.items(root, candidate + "/" + MAX_KEY, stop)
    return out


def _deep(store: Store, root: str | None, glob: Glob) -> list[tuple[str, Any]]:
    found: dict[str, Any] = {}
    seen: set[str] = set()
    prefix = glob.prefix + "/" if glob.prefix else ""
    for key, entry in store.tree.items(root, prefix, prefix + MAX_KEY):
        comps = key.split("/")
        for i in range(1, len(comps)):
            folder = "/".join(comps[:i])
            if folder not in seen:
                seen.add(folder)
                if glob.match(folder) is not None:
                    found[folder] = None
        if glob.match(key) is not None:
            found[key] = entry
    return [(k, found[k]) for k in sorted(found)]


def files_under(store: Store, root: str | None, path: str, entry: Any) -> tuple[FileRef, ...]:
    """A glob match's files: the file itself (``entry`` is its index entry) or every file under the folder."""
    if entry is not None:
        return (FileRef(path, entry[1] or "", entry[0]),)
    return tuple(FileRef(k, e[1], e[0]) for k, e in queries.entries_under(store, root, path))


_str = json.encoder.encode_basestring_ascii  # a JSON string literal, as json.dumps writes it (ensure_ascii)
_compact = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps(·, separators=…) without a new encoder per call


def _hash(value: Any) -> str:
    return blake3.blake3(_compact(value).encode()).hexdigest()
