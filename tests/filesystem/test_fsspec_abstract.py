"""fsspec's own shared test suite (``fsspec.tests.abstract``) run against ``datumflow://``, as s3fs derives it."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import Any

import fsspec.tests.abstract as abstract
import pytest
from datumflow.storage_service.client.fs import DatumflowFileSystem


class DatumflowFixtures(abstract.AbstractFixtures):  # type: ignore[misc]
    @pytest.fixture
    def fs(self, df_fs: DatumflowFileSystem) -> DatumflowFileSystem:
        return df_fs

    @pytest.fixture
    def fs_join(self) -> Callable[..., str]:
        return posixpath.join

    @pytest.fixture
    def fs_path(self, df_root: str) -> str:
        return df_root

    @pytest.fixture
    def supports_empty_directories(self) -> bool:
        return False  # folders are implied by the files under them, as in S3

    @pytest.fixture
    def fs_sanitize_path(self) -> Callable[[Any], Any]:
        return lambda x: x


class TestDatumflowCopy(abstract.AbstractCopyTests, DatumflowFixtures):  # type: ignore[misc]
    pass


class TestDatumflowGet(abstract.AbstractGetTests, DatumflowFixtures):  # type: ignore[misc]
    pass


class TestDatumflowPut(abstract.AbstractPutTests, DatumflowFixtures):  # type: ignore[misc]
    pass


class TestDatumflowPipe(abstract.AbstractPipeTests, DatumflowFixtures):  # type: ignore[misc]
    pass


class TestDatumflowOpen(abstract.AbstractOpenTests, DatumflowFixtures):  # type: ignore[misc]
    pass
