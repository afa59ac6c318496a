"""The console's pages over HTTP: content, escaping, downloads, lineage, errors."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.service.conftest import Service, init_auth, launch


def get(demo: Service, path: str, status: int = 200) -> str:
    answer = httpx.get(demo.url + path, follow_redirects=True)
    assert answer.status_code == status, answer.text[:500]
    return answer.text


def test_root_redirects_to_the_repo_list(demo: Service) -> None:
    answer = httpx.get(demo.url + "/")
    assert answer.status_code in (302, 307) and answer.headers["location"] == "/console/"
    page = get(demo, "/console/")
    for repo in ("docs", "wordcount", "total"):
        assert f'href="/console/repos/{repo}"' in page
    assert "a few &lt;b&gt;text&lt;/b&gt; documents" in page and "<b>text</b>" not in page


def test_branch_log_and_commit_detail(demo: Service) -> None:
    log = get(demo, "/console/repos/docs/branches/master")
    assert "2 more &lt;documents&gt;" in log and "4 documents" in log
    head = re.findall(r'href="/console/repos/docs/commits/([0-9a-f]{32})"', log)[0]
    detail = get(demo, f"/console/repos/docs/commits/{head}")
    assert "Subvenance" in detail and 'class="lineage"' in detail
    assert "doc05.txt" in detail  # the changes of this commit
    out = get(demo, "/console/repos/total/commits/master")
    assert "/console/pipelines/total" in out  # the job that wrote it


def test_file_browser_download_and_file_lineage(demo: Service) -> None:
    page = get(demo, "/console/repos/wordcount/commits/master/files?path=")
    assert "doc00.count" in page
    answer = httpx.get(demo.url + "/console/repos/docs/commits/master/download?path=doc01.txt")
    assert answer.status_code == 200 and answer.content.startswith(b"versioned data")
    assert "attachment" in answer.headers["content-disposition"]
    lineage = get(demo, "/console/lineage/total/master/total")
    assert "written by" in lineage and "/console/pipelines/wordcount" in lineage
    assert lineage.count("doc0") >= 6  # the input documents, through wordcount


def test_pipelines_pages(demo: Service) -> None:
    assert 'href="/console/pipelines/wordcount"' in get(demo, "/console/pipelines")
    page = get(demo, "/console/pipelines/wordcount")
    assert page.count("success") >= 2 and "&quot;glob&quot;" in page


def test_errors_are_pages(demo: Service) -> None:
    assert "RepoNotFound" in get(demo, "/console/repos/nope", status=404)
    assert "PathNotFound" in get(demo, "/console/repos/docs/commits/master/download?path=missing", status=404)


@pytest.fixture
def guarded(tmp_path: pytest.TempPathFactory) -> Service:
    root = tmp_path / "store"  # type: ignore[operator]
    svc = launch(root, token=init_auth(root))
    yield svc  # type: ignore[misc]
    svc.stop()


def test_with_auth_the_console_asks_for_a_token(guarded: Service) -> None:
    with httpx.Client(base_url=guarded.url) as http:
        first = http.get("/console/")
        assert first.status_code == 303 and first.headers["location"] == "/console/login"
        assert http.post("/console/login", data={"token": "wrong"}).status_code == 401
        signed = http.post("/console/login", data={"token": guarded.token})
        assert signed.status_code == 303
        assert "admin" in http.get("/console/").text
