"""The layers point one way: the store knows nothing of its adapters, and inside
``storage_service`` every import points down the stack and no modules import
each other in a loop.

import-linter cannot follow the ``package-dir`` mapping of this distribution
(it looks for subpackages under ``datumflow/``), so the contract is checked
here from each module's own import statements (function-local imports count;
imports under ``if TYPE_CHECKING:`` do not, they never run).
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


# -- inside storage_service ------------------------------------------------------------------

PACKAGE = "datumflow.storage_service"
SERVICE_ROOT = ROOT / "storage_service"

# What each layer may import besides itself. Peers (pipelines, spouts) do not
# import each other; the client speaks HTTP and knows only the value objects and
# the local side of a sync (sync/: folder scan, stat cache, restore), which it
# shares with the embedded store.
MAY_IMPORT: dict[str, set[str]] = {
    "errors": set(),
    "names": {"errors"},
    "model": {"errors", "names"},
    "core": {"errors", "names", "model"},
    "sync": {"errors", "names", "model", "core"},
    "store": {"errors", "names", "model", "core", "sync"},
    "pipelines": {"errors", "names", "model", "core", "store", "sync"},
    "spouts": {"errors", "names", "model", "core", "store", "sync"},
    "client": {"errors", "names", "model", "sync"},
    "service": {"errors", "names", "model", "core", "store", "pipelines", "spouts", "sync"},
    "cli": {"errors", "names", "model", "core", "store", "pipelines", "spouts", "service", "client", "sync"},
}

# Arrows still pointing up, each to be removed (never added to).
PENDING: set[tuple[str, str]] = set()


def module_name(path: Path, root: Path = SERVICE_ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([PACKAGE, *parts])


def _runtime_tree(path: Path) -> ast.AST:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            node.body = [ast.Pass()]
    return tree


def module_imports(path: Path, modules: set[str], root: Path = SERVICE_ROOT) -> set[str]:
    """The storage_service modules ``path`` imports at run time (resolved to modules that exist)."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(_runtime_tree(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in modules)
    resolved = set()
    for module in found:
        while module not in modules and "." in module:
            module = module.rsplit(".", 1)[0]
        if module in modules and module not in (name, PACKAGE):
            resolved.add(module)
    return resolved


def import_graph(root: Path = SERVICE_ROOT) -> dict[str, set[str]]:
    paths = {module_name(p, root): p for p in root.rglob("*.py")}
    modules = set(paths)
    return {name: module_imports(path, modules, root) for name, path in paths.items() if name != PACKAGE}


def layer_of(module: str) -> str:
    return module[len(PACKAGE) + 1:].split(".")[0]


def upward_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    def short(m: str) -> str:
        return m[len(PACKAGE) + 1:]

    return {
        (short(m), short(d)) for m, deps in graph.items() for d in deps
        if layer_of(d) != layer_of(m) and layer_of(d) not in MAY_IMPORT[layer_of(m)]
    }


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_every_storage_service_folder_is_a_known_layer() -> None:
    layers = {layer_of(m) for m in import_graph()}
    assert layers <= set(MAY_IMPORT), layers - set(MAY_IMPORT)


def test_storage_service_imports_point_down() -> None:
    assert upward_imports(import_graph()) - PENDING == set()


def test_storage_service_has_no_import_cycles() -> None:
    assert import_cycles(import_graph()) == []


def test_the_layer_check_sees_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    root = tmp_path / "storage_service"
    for folder in ("store", "service"):
        (root / folder).mkdir(parents=True)
        (root / folder / "__init__.py").write_text("")
    (root / "store" / "a.py").write_text("from datumflow.storage_service.service import b\n")
    (root / "service" / "b.py").write_text("def f():\n    from datumflow.storage_service.store import a\n")
    graph = import_graph(root)
    assert ("store.a", "service.b") in upward_imports(graph)
    assert import_cycles(graph) == [[f"{PACKAGE}.service.b", f"{PACKAGE}.store.a"]]
