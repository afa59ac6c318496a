"""The console under test: a store with two pipelines run, served by a real ``serve`` process.

==============  =======  =======================================================
fixture         scope    what it gives
==============  =======  =======================================================
``demo``        session  the service (no users) over a store where ``docs`` feeds
                         ``wordcount`` feeds ``total`` (two jobs each)
``browser``     session  headless Chromium (playwright, Debian's binary)
==============  =======  =======================================================
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from datumflow.storage_service.cli.demo import COUNT, TOTAL, documents
from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.store.store import Store

from tests.service.conftest import Service, launch

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("console") / "store"
    with Store(str(root), fsync=False) as store:
        store.create_repo("docs", "a few <b>text</b> documents")  # markup in data must be escaped
        store.put_files("docs", "master", documents(0, 4), description="4 documents")
        pipes = Pipelines(store)
        pipes.create_pipeline(COUNT)
        pipes.create_pipeline(TOTAL)
        pipes.process()
        store.put_files("docs", "master", documents(4, 2), description="2 more <documents>")
        pipes.process()
    svc = launch(root, token=None)
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    # Module scope, not session: playwright's sync API keeps an asyncio loop marked as
    # running in this thread while it is open, and later tests calling asyncio.run()
    # (the async client, triggers) would fail.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield b
        b.close()
