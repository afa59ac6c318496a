"""The fsspec filesystem ``datumflow://`` under test, on both transports.

==============  =======  =====================================================
fixture         scope    what it gives
==============  =======  =====================================================
``transport``   test     "embedded" or "http" (parametrized)
``df_fs``       test     a ``DatumflowFileSystem`` of a fresh repo's master
``df_root``     test     ``REPO@master`` of that repo
==============  =======  =====================================================
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from datumflow.storage_service.client.fs import DatumflowFileSystem

import datumflow
from tests.service.conftest import Service
from tests.service.conftest import service as service  # the live service (session)


@pytest.fixture(params=["embedded", "http"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def df_options(transport: str, request: pytest.FixtureRequest, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    if transport == "embedded":
        monkeypatch.setenv("DATUMFLOW_FSYNC", "0")  # as the service under test runs
        return {"address": f"file://{tmp_path / 'store'}"}
    svc: Service = request.getfixturevalue("service")
    return {"address": svc.url, "token": svc.token}


@pytest.fixture
def df_root(df_options: dict[str, Any]) -> str:
    repo = f"fs-{uuid.uuid4().hex[:8]}"
    store = datumflow.connect(df_options["address"], token=df_options.get("token"))
    store.create_repo(repo)
    store.close()
    return f"{repo}@master"


@pytest.fixture
def df_fs(df_options: dict[str, Any]) -> Iterator[DatumflowFileSystem]:
    DatumflowFileSystem.clear_instance_cache()
    yield DatumflowFileSystem(**df_options, skip_instance_cache=True)
    DatumflowFileSystem.clear_instance_cache()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """fsspec's shared suite over HTTP makes ~10,000 service calls: slow (``make test`` runs it)."""
    for item in items:
        if item.nodeid.startswith("tests/filesystem/test_fsspec_abstract.py") and "[http" in item.nodeid:
            item.add_marker(pytest.mark.slow)
