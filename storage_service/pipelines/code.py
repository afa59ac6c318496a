"""What decides a Python callable's output, as a hash: its code, the project code it calls, its arguments.

A datum task written as a Python function (``@task.datum`` in Airflow)
becomes a pipeline whose transform names the function; the datum hash
covers the transform, so this hash, put in the transform's environment,
is what makes the datum cache reuse an output only when the same code ran
on the same arguments:

- the function's source, and the source of every function and class it
  reaches by name (globals, closures, ``module.attr``) that is defined in the
  user's project — not in the standard library or an installed package,
  whose version is the environment's business;
- its keyword arguments, after Airflow rendered their templates, as
  canonical JSON (``repr`` for what JSON cannot hold).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
import sysconfig
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any

__all__ = ["arguments_hash", "code_hash"]

_INSTALLED = tuple(
    {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    | {sys.prefix, sys.base_prefix, sys.exec_prefix}
)


def _is_project(obj: Any) -> bool:
    """Defined in a file of the user's project (not the standard library, not an installed package)."""
    module = sys.modules.get(getattr(obj, "__module__", "") or "")
    path = getattr(module, "__file__", None) if module is not None else None
    if path is None:
        return isinstance(obj, types.FunctionType)  # a function defined in a notebook or by exec
    return not str(path).startswith(_INSTALLED) and "site-packages" not in str(path)


def _names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        if code is not None:  # no file to read: the bytecode and constants still say what it does
            return f"{code.co_code.hex()}{code.co_consts!r}{code.co_names!r}"
        return f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}"


def _reached(fn: Any, names: set[str]) -> Iterator[Any]:
    """The functions, classes and modules ``fn`` refers to by the names its code uses."""
    scope: Mapping[str, Any] = getattr(fn, "__globals__", {}) or {}
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            yield cell.cell_contents
        except ValueError:  # an empty cell
            continue
    for name in names:
        if name in scope:
            value = scope[name]
            yield value
            if isinstance(value, types.ModuleType):
                yield from (getattr(value, attr) for attr in names if hasattr(value, attr))


def _sources(fn: Callable[..., Any]) -> list[str]:
    seen: set[int] = set()
    out: list[str] = []
    todo: list[Any] = [fn]
    while todo:
        obj = todo.pop()
        obj = getattr(obj, "__wrapped__", obj)
        if id(obj) in seen or not isinstance(obj, (types.FunctionType, type)) or not _is_project(obj):
            continue
        seen.add(id(obj))
        out.append(f"{obj.__module__}.{obj.__qualname__}\n{_source(obj)}")
        if isinstance(obj, types.FunctionType):
            todo.extend(_reached(obj, set(_names(obj.__code__))))
        else:
            for member in vars(obj).values():
                target = getattr(member, "__func__", member)
                if isinstance(target, types.FunctionType):
                    todo.extend(_reached(target, set(_names(target.__code__))))
    return sorted(out)


def code_hash(fn: Callable[..., Any]) -> str:
    """A hash of ``fn``'s source and of every project function or class it reaches."""
    digest = hashlib.sha256()
    for source in _sources(fn):
        digest.update(source.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def arguments_hash(kwargs: Mapping[str, Any]) -> str:
    """A hash of keyword arguments as canonical JSON (values JSON cannot hold by their ``repr``)."""
    text = json.dumps(dict(kwargs), sort_keys=True, separators=(",", ":"), default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:32]
