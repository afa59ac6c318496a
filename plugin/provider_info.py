"""Provider metadata Airflow reads through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

__all__ = ["get_provider_info"]

_OPERATORS = ["repo", "commit", "files", "pipeline", "datum", "kafka", "branch"]

# The connection form of Airflow 3's UI reads these (``get_ui_field_behaviour`` is for the FAB UI of 2.x).
# Extra fields land in the connection's extra under their own names.
CONN_FIELDS: dict[str, Any] = {
    "console_url": {
        "label": "Console URL",
        "description": "Where links point (default: <scheme>://<host>:<port>/console)",
        "schema": {"type": ["string", "null"]},
    },
    "root": {
        "label": "Store folder (scheme file)",
        "description": "An embedded store's folder on a volume every worker mounts, instead of Host",
        "schema": {"type": ["string", "null"]},
    },
}
UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["login", "extra"],
    "relabeling": {"schema": "Scheme (http, https or file)", "password": "Token"},
    "placeholders": {
        "schema": "http",
        "host": "datumflow.example.com (or /srv/datumflow with scheme file)",
        "port": "8765",
        "password": "the datumflow API token (empty on an open loopback service)",
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "datumflow",
        "name": "datumflow",
        "description": "Versioned data with provenance: repos, commits, datums, commit-triggered DAGs.",
        "versions": ["0.1.0"],
        "integrations": [{"integration-name": "datumflow", "external-doc-url": "https://example.invalid/datumflow",
                          "tags": ["software"]}],
        "connection-types": [
            {"connection-type": "datumflow", "hook-class-name": "datumflow.plugin.hooks.DatumflowHook",
             "hook-name": "datumflow", "conn-fields": CONN_FIELDS, "ui-field-behaviour": UI_FIELD_BEHAVIOUR},
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
