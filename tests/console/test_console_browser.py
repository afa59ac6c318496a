"""The console in headless Chromium: click from the repo list to a commit's lineage graph."""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.png import colours
from tests.service.conftest import Service

pytestmark = pytest.mark.browser


def test_navigate_to_the_lineage_graph(demo: Service, browser: Any, tmp_path: Any) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(10_000)
    page.goto(demo.url + "/")
    assert page.title().startswith("Repos")
    page.click("text=wordcount")
    page.locator("table").first.locator("a[href*='/commits/']").first.click()  # head of master
    page.click("text=open full page")
    assert page.locator("h1").inner_text().startswith("Lineage of wordcount@")

    svg = page.locator("svg#lineage-graph")
    nodes = svg.locator("a.node")
    repos = sorted(nodes.nth(i).get_attribute("data-repo") for i in range(nodes.count()))
    assert repos == ["docs", "total", "total", "wordcount", "wordcount"]  # data, specs, outputs
    labels = {e.get_attribute("data-label") for e in svg.locator("g.edge").all()}
    assert {"wordcount", "total", "spec"} <= labels
    pills = sorted(p.get_attribute("data-pipeline") for p in svg.locator("g.pipeline").all())
    assert pills == ["total", "wordcount"]

    shot = svg.screenshot()
    (tmp_path / "lineage.png").write_bytes(shot)
    counts = colours(shot)
    background = max(counts.values())
    assert sum(counts.values()) - background > 0.05 * sum(counts.values())  # not blank
    assert len(counts) > 20  # lanes, nodes, text: many colours

    nodes.filter(has_text="docs@master").first.click()  # nodes are links: re-centre on the input
    assert page.locator("h1").inner_text().startswith("Lineage of docs@")
    assert page.locator("svg#lineage-graph a.node").count() == 5
    page.close()
