"""What a wheel of the project holds: every package, and the compiled scan's source."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def _config() -> dict:  # type: ignore[type-arg]
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_listed() -> None:
    """The package list is explicit (the import names differ from the folders): a folder left out
    works in the editable checkout and is missing from every wheel (the sync package once was)."""
    config = _config()
    listed = set(config["packages"])
    found = set()
    for name, folder in config["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([name, *rel.parts]))
    missing = sorted(found - listed)
    assert not missing, f"packages not in pyproject.toml's list: {missing}"
    assert not sorted(listed - found), "listed packages without a folder"


def test_the_compiled_scan_is_declared_with_its_source() -> None:
    text = (ROOT / "setup.py").read_text()
    assert '"datumflow.storage_service.sync._scan"' in text and "storage_service/sync/_scan.c" in text
    assert (ROOT / "storage_service/sync/_scan.c").is_file()
    assert (ROOT / "storage_service/sync/_scan.pyi").is_file()
