"""OpenLineage for datumflow tasks: datasets in the ``datumflow://`` namespace, commit ids as versions.

The OpenLineage provider is optional: without it every operator's
``get_openlineage_facets_on_complete`` returns None.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["dataset_names", "operator_lineage"]


def dataset_names(address: str, refs: Iterable[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    """(namespace, name, version) of each commit reference: ``datumflow://host:port``, ``repo@branch``, id."""
    authority = address.split("://", 1)[-1].rstrip("/") or "embedded"
    return [
        (f"datumflow://{authority}", f"{r['repo']}@{r.get('branch') or 'master'}", r.get("commit"))
        for r in refs
    ]


def operator_lineage(address: str, inputs: Iterable[dict[str, Any]], outputs: Iterable[dict[str, Any]]) -> Any:
    try:
        from airflow.providers.openlineage.extractors import OperatorLineage
        from openlineage.client.event_v2 import Dataset
        from openlineage.client.facet_v2 import dataset_version_dataset
    except ImportError:
        return None

    def datasets(refs: Iterable[dict[str, Any]]) -> list[Any]:
        out = []
        for namespace, name, version in dataset_names(address, refs):
            facets = {"version": dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=version)}
            out.append(Dataset(namespace=namespace, name=name, facets=facets if version else {}))
        return out

    return OperatorLineage(inputs=datasets(inputs), outputs=datasets(outputs))
