"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

__all__ = ["get_provider_info"]

_OPERATORS = ["repo", "commit", "files", "pipeline", "datum", "kafka"]


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "datumflow",
        "name": "datumflow",
        "description": "Versioned data with provenance: repos, commits, datums, commit-triggered DAGs.",
        "versions": ["0.1.0"],
        "integrations": [{"integration-name": "datumflow", "external-doc-url": "https://example.invalid/datumflow",
                          "tags": ["software"]}],
        "connection-types": [
            {"connection-type": "datumflow", "hook-class-name": "datumflow.plugin.hooks.DatumflowHook"},
        ],
        "hooks": [{"integration-name": "datumflow", "python-modules": ["datumflow.plugin.hooks"]}],
        "operators": [{"integration-name": "datumflow",
                       "python-modules": [f"datumflow.operators.{m}" for m in _OPERATORS]}],
        "sensors": [{"integration-name": "datumflow", "python-modules": ["datumflow.sensors.commit"]}],
        "triggers": [{"integration-name": "datumflow", "python-modules": ["datumflow.plugin.triggers"]}],
        "task-decorators": [{"name": "datum", "class-name": "datumflow.operators.datum.datum_task"}],
        "extra-links": ["datumflow.plugin.links.DatumflowCommitLink"],
        "plugins": [{"name": "datumflow", "plugin-class": "datumflow.plugin.airflow_plugin.DatumflowPlugin"}],
        "asset-uris": [
            {"schemes": ["datumflow"], "handler": "datumflow.plugin.assets.sanitize_uri",
             "factory": "datumflow.plugin.assets.create_asset"},
        ],
    }
