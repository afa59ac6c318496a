"""The layers point one way: the store knows nothing of its adapters.

import-linter cannot follow the ``package-dir`` mapping of this distribution
(it looks for subpackages under ``datumflow/``), so the contract is checked
here from each module's own import statements.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

ADAPTERS = ("datumflow.plugin", "datumflow.operators", "datumflow.sensors", "datumflow.kfp_components")
FORBIDDEN = {
    "storage_service": ("airflow", "kfp", *ADAPTERS),
    "kfp_components": ("airflow", "datumflow.plugin", "datumflow.operators", "datumflow.sensors"),
    "plugin": ("kfp", "datumflow.operators", "datumflow.sensors", "datumflow.kfp_components"),
    "sensors": ("kfp", "datumflow.operators", "datumflow.kfp_components"),
    "operators": ("kfp", "datumflow.sensors", "datumflow.kfp_components"),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def violations(folder: str) -> list[str]:
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for module in imported_modules(path):
            for banned in FORBIDDEN[folder]:
                if module == banned or module.startswith(banned + "."):
                    bad.append(f"{path.relative_to(ROOT)} imports {module}")
    return bad


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_layer_imports_point_one_way(folder: str) -> None:
    assert violations(folder) == []


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    sample = tmp_path / "m.py"
    sample.write_text("import os\nfrom airflow.models import DAG\n")
    assert "airflow.models" in imported_modules(sample)
