"""Fixtures of the pipeline tests: a real store on disk and its pipeline service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.store.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(str(tmp_path / "store"), fsync=False) as s:
        yield s


@pytest.fixture
def pipelines(store: Store) -> Pipelines:
    return Pipelines(store)


def spec(
    name: str, input: dict[str, Any], cmd: list[str], stdin: list[str] | None = None, **extra: Any
) -> dict[str, Any]:
    """A pipeline spec in Pachyderm's format."""
    transform: dict[str, Any] = {"image": "alpine:3", "cmd": cmd}
    if stdin:
        transform["stdin"] = stdin
    return {"pipeline": {"name": name}, "input": input, "transform": transform, **extra}


def pfs(repo: str, glob: str = "/*", **extra: Any) -> dict[str, Any]:
    return {"pfs": {"repo": repo, "glob": glob, **extra}}


# Copies every input file to out/, named after the datum's inputs.
COPY = ["sh", "-c", "cd /pfs && find . -path ./out -prune -o -type f -print | sed 's|^./||' | "
        "while read f; do mkdir -p \"out/$(dirname $f)\"; cp \"$f\" \"out/$f\"; done"]
