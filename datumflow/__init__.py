"""datumflow: versioned data with provenance for the pipelines people already run.

``datumflow.connect(address)`` returns a store: embedded for ``file:///path``
(or a plain path), a client of the service for ``http(s)://host:port``.
"""

from __future__ import annotations

import os
from typing import Any

from datumflow.storage_service.errors import DatumflowError, InvalidArgument

__version__ = "0.1.0"
__all__ = ["DatumflowError", "__version__", "connect"]

DEFAULT_ADDRESS = "file://.datumflow"


def connect(address: str | None = None, *, token: str | None = None, **options: Any) -> Any:
    """Open the store at ``address`` (default: ``$DATUMFLOW_ADDRESS`` or ``./.datumflow``)."""
    address = address or os.environ.get("DATUMFLOW_ADDRESS") or DEFAULT_ADDRESS
    if address.startswith(("http://", "https://")):
        try:
            from datumflow.storage_service.client.http import Client
        except ImportError as exc:  # the HTTP client arrives with the service
            raise InvalidArgument(f"no HTTP client available for {address}: {exc}") from exc
        return Client(address, token=token or os.environ.get("DATUMFLOW_TOKEN"), **options)
    if address.startswith("file://"):
        address = address[len("file://"):]
    if "://" in address:
        raise InvalidArgument(f"unsupported address {address!r}: use http(s)://host:port or file:///path")
    from datumflow.storage_service.store.store import Store

    return Store(address, **options)
