"""What every ``datumflow`` verb module shares: the context, arguments, references.

Verb modules (``cli_store``, ``cli_files``, and the ones other parts add)
import from here and from :mod:`.cli_output`, never from :mod:`.cli` itself,
so that running ``python -m datumflow.storage_service.cli.main`` does not load the
entry module twice.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from datumflow.storage_service.errors import InvalidArgument
from datumflow.storage_service.names import Ref, is_commit_id, parse_ancestry, parse_ref

__all__ = [
    "DEFAULT_ADDRESS",
    "Commands",
    "Context",
    "Handler",
    "add_json",
    "branch_arg",
    "commit_arg",
    "file_arg",
    "meta_args",
    "subcommands",
    "write_arg",
]

DEFAULT_ADDRESS = "file://./.datumflow"

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Commands = argparse._SubParsersAction
Handler = Callable[["Context", argparse.Namespace], "int | None"]


class Context:
    """The store a command talks to (opened on first use) and its streams."""

    def __init__(self, address: str, token: str | None = None) -> None:
        self.address = address
        self.token = token
        self.stdin: BinaryIO = sys.stdin.buffer
        self.stdout: TextIO = sys.stdout
        self.stderr: TextIO = sys.stderr
        self._store: Any = None
        self._reader: Any = None

    @property
    def store(self) -> Any:
        """A ``Store`` or an HTTP ``Client``: the same methods either way."""
        if self._store is None:
            import datumflow

            self._store = datumflow.connect(self.address, token=self.token)
        return self._store

    @property
    def stdout_bytes(self) -> BinaryIO:
        self.stdout.flush()
        return self.stdout.buffer

    def stderr_is_tty(self) -> bool:
        return self.stderr.isatty()

    def local_reader(self) -> Any:
        """A :class:`~datumflow.storage_service.store.local_read.LocalReader` of the embedded store
        (read-only, no SQLAlchemy), or None: an HTTP address, a store this process opened already,
        or one only the store may open (see that module)."""
        if self._store is not None or self.address.startswith(("http://", "https://")):
            return None
        if self._reader is None:
            from datumflow.storage_service.store.local_read import LocalReader

            root = self.address[len("file://"):] if self.address.startswith("file://") else self.address
            if "://" in root:
                return None  # connect() says what is wrong with the address
            self._reader = LocalReader.open(root) or False
        return self._reader or None

    def close(self) -> None:
        if self._reader:
            self._reader.close()
        self._reader = None
        if self._store is not None:
            close = getattr(self._store, "close", None)
            if close:
                close()
            self._store = None


# -- parsers -------------------------------------------------------------------------


def add_json(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give a verb that prints data its ``--json`` switch."""
    parser.add_argument("--json", action="store_true", help="print exactly one JSON document")
    return parser


def subcommands(parser: argparse.ArgumentParser, title: str = "verb") -> Commands:
    """Nested verbs (``repo create``…); one of them is required."""
    sub = parser.add_subparsers(dest=f"{parser.prog.replace(' ', '_')}_{title}", metavar=title.upper())
    sub.required = True
    return sub


# -- references ----------------------------------------------------------------------


def _parse(text: str, what: str) -> Ref:
    ref = parse_ref(text)
    if ref.ref is None:
        raise InvalidArgument(f"expected {what}, got {text!r} (no '@')")
    return ref


def branch_arg(text: str) -> tuple[str, str]:
    """``REPO@BRANCH`` -> (repo, branch); no ancestry, no path."""
    ref = _parse(text, "REPO@BRANCH")
    assert ref.ref is not None
    if ref.path is not None or is_commit_id(ref.ref) or parse_ancestry(ref.ref)[1]:
        raise InvalidArgument(f"expected REPO@BRANCH, got {text!r}")
    return ref.repo, ref.ref


def commit_arg(text: str) -> tuple[str, str]:
    """``REPO@REF`` (branch, commit id, ``master^``, ``master~3``) -> (repo, ref)."""
    ref = _parse(text, "REPO@REF")
    assert ref.ref is not None
    if ref.path is not None:
        raise InvalidArgument(f"expected REPO@REF without a path, got {text!r}")
    return ref.repo, ref.ref


def file_arg(text: str, *, need_path: bool = True) -> tuple[str, str, str]:
    """``REPO@REF:PATH`` -> (repo, ref, path); the store validates the path."""
    ref = _parse(text, "REPO@REF:PATH" if need_path else "REPO@REF[:PATH]")
    assert ref.ref is not None
    if need_path and ref.path is None:
        raise InvalidArgument(f"expected REPO@REF:PATH, got {text!r} (no ':PATH')")
    return ref.repo, ref.ref, ref.path or ""


def write_arg(text: str) -> tuple[str, str, str]:
    """``REPO@BRANCH[:PATH]`` or ``REPO@<open commit id>[:PATH]`` -> (repo, target, path)."""
    repo, target, path = file_arg(text, need_path=False)
    if parse_ancestry(target)[1]:
        raise InvalidArgument(f"cannot write to {target!r}: name a branch or an open commit")
    return repo, target, path


def meta_args(pairs: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` -> ``{"k": "v"}``."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise InvalidArgument(f"expected --meta KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


def env_address() -> str:
    return os.environ.get("DATUMFLOW_ADDRESS") or DEFAULT_ADDRESS
