"""The console's merge page and commit graph, over HTTP on a live service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from datumflow.storage_service import Store

from tests.service.conftest import Service, launch


@pytest.fixture(scope="module")
def forked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root: Path = tmp_path_factory.mktemp("console-merge") / "store"
    with Store(str(root), fsync=False) as store:
        store.create_repo("sales")
        store.put_files("sales", "master", [("a", b"1"), ("b", b"2")])
        store.create_branch("sales", "dev", head="master")
        store.put_file("sales", "dev", "a", b"dev")
        store.put_file("sales", "master", "a", b"master")
        store.put_file("sales", "dev", "c", b"new")
    svc = launch(root, token=None)
    yield svc
    svc.stop()


def test_preview_conflicts_then_merge_with_a_strategy(forked: Service) -> None:
    base = forked.url + "/console/repos/sales/branches/master"
    branch_page = httpx.get(base).text
    assert 'action="/console/repos/sales/branches/master/merge"' in branch_page and "<svg" in branch_page
    preview = httpx.get(base + "/merge", params={"source": "dev"}).text
    assert "1 conflicting path(s)" in preview and 'class="conflicts"' in preview
    assert "<td>a</td>" in preview and 'name="strategy"' in preview
    refused = httpx.post(base + "/merge", content="source=dev&strategy=theirs",
                         headers={"content-type": "application/x-www-form-urlencoded"})
    assert refused.status_code in (403, 415)  # no Origin: not from the console's own page (guard or console)
    host = forked.url.split("//", 1)[1]
    done = httpx.post(base + "/merge", content="source=dev&strategy=theirs",
                      headers={"content-type": "application/x-www-form-urlencoded", "origin": f"http://{host}"})
    assert done.status_code == 303
    commit_page = httpx.get(forked.url + done.headers["location"]).text
    assert "merged parent" in commit_page
    graph = httpx.get(base).text
    assert 'class="merge-edge"' in graph and 'class="node merge"' in graph  # both parents drawn
    assert "already has" in httpx.get(base + "/merge", params={"source": "dev"}).text
