"""The one exception tree: every error class of datumflow is defined in errors.py, listed in its
``__all__``, drawn in its docstring, and survives pickling (triggers and executors send errors
across processes)."""

from __future__ import annotations

import ast
import pickle
import re
from pathlib import Path

import pytest
from datumflow.storage_service import errors

ROOT = Path(__file__).resolve().parents[2]
CODE = ("storage_service", "plugin", "operators", "sensors", "kfp_components")


def every_error_class() -> list[type[errors.DatumflowError]]:
    found, stack = [], [errors.DatumflowError]
    while stack:
        klass = stack.pop()
        found.append(klass)
        stack.extend(klass.__subclasses__())
    return sorted(found, key=lambda k: k.__name__)


def exception_classes_outside_errors() -> list[str]:
    """Classes deriving from a name of the tree (or from Exception) in any module but errors.py."""
    names = {k.__name__ for k in every_error_class()}
    bad = []
    for folder in CODE:
        for path in (ROOT / folder).rglob("*.py"):
            if path == ROOT / "storage_service" / "errors.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                    bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                    if bases & names or bases & {"Exception", "DatumflowError"}:
                        bad.append(f"{path.relative_to(ROOT)}: {node.name}")
    return bad


def test_no_module_but_errors_defines_an_error_class() -> None:
    assert exception_classes_outside_errors() == []


@pytest.mark.parametrize("klass", every_error_class(), ids=lambda k: k.__name__)
def test_every_class_is_in_the_tree(klass: type[errors.DatumflowError]) -> None:
    assert klass.__module__ == errors.__name__
    assert klass.__name__ in errors.__all__
    assert re.search(rf"[├└]── {klass.__name__}\b", errors.__doc__ or "") or klass is errors.DatumflowError


@pytest.mark.parametrize("klass", every_error_class(), ids=lambda k: k.__name__)
def test_every_class_pickles(klass: type[errors.DatumflowError]) -> None:
    exc = errors.S3Error("NoSuchKey", "m", 404, "b/k") if klass is errors.S3Error else klass("m")
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is klass and str(back) == "m" and back.args == exc.args
    if isinstance(exc, errors.S3Error):
        assert (back.code, back.status, back.resource) == ("NoSuchKey", 404, "b/k")


def test_old_import_paths_still_name_the_same_classes() -> None:
    from datumflow.storage_service.pipelines.engine import PipelineNotFound
    from datumflow.storage_service.pipelines.jobs import JobNotFound
    from datumflow.storage_service.service.s3.errors import S3Error
    from datumflow.storage_service.spouts.offsets import CorruptOffsets
    from datumflow.storage_service.spouts.registry import SpoutNotFound
    from datumflow.storage_service.spouts.source import TopicNotFound

    assert (PipelineNotFound, JobNotFound, S3Error, CorruptOffsets, SpoutNotFound, TopicNotFound) == (
        errors.PipelineNotFound, errors.JobNotFound, errors.S3Error, errors.CorruptOffsets,
        errors.SpoutNotFound, errors.TopicNotFound,
    )


def test_the_check_sees_an_error_class_defined_elsewhere(tmp_path: Path) -> None:
    sample = "class Oops(NotFound):\n    pass\n"
    tree = ast.parse(sample)
    (cls,) = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    assert {getattr(b, "id", "") for b in cls.bases} & {k.__name__ for k in every_error_class()}
