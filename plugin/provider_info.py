"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "datumflow",
        "name": "datumflow",
        "description": "Versioned data with provenance: repos, commits, datums.",
        "versions": ["0.1.0"],
    }
