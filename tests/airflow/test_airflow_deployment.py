"""The provider in a real Airflow deployment: the scheduler survives failed runs, one DAG run per commit.

The deployment (:mod:`tests.airflow.deployment`) is started once for the
module: ``api-server``, ``scheduler``, ``dag-processor`` and ``triggerer`` as
separate processes over PostgreSQL, the ``datumflow_default`` connection
stored in Airflow's database with ``airflow connections add``. The datumflow
service is the session's ``serve`` process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from tests.airflow.deployment import Deployment, emitted, wait_for
from tests.conftest import POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER, free_port, unique_name

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(1200)]

BURST_REPO = unique_name("burst")


@pytest.fixture(scope="module")
def metadata_db(_postgres_admin: Any) -> Iterator[str]:
    name = unique_name("dfairflow").replace("-", "_")
    _postgres_admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    finally:
        _postgres_admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, metadata_db: str,
               datumflow_service: tuple[str, str]) -> Iterator[Deployment]:
    from datumflow.storage_service.client.http import Client

    address, _ = datumflow_service
    with Client(address) as c:
        c.create_repo(BURST_REPO, exist_ok=True)
        c.put_file(BURST_REPO, "master", "seed", b"before the watcher")  # history the watcher must not replay
    dep = Deployment(tmp_path_factory.mktemp("airflow-deployment"), metadata_db, free_port(),
                     extra_env={"DF_BURST_REPO": BURST_REPO})
    dep.prepare(address.rsplit(":", 1)[1])
    dep.start()
    try:
        dep.wait_api()
        dep.wait_dag("df_deploy_fail")
        dep.wait_dag("df_deploy_burst")
        yield dep
    finally:
        dep.stop()


@pytest.fixture
def service_client(datumflow_service: tuple[str, str]) -> Iterator[Any]:
    from datumflow.storage_service.client.http import Client

    with Client(datumflow_service[0]) as c:
        yield c


def _trigger(dep: Deployment, dag_id: str, conf: dict[str, Any]) -> str:
    run = dep.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
    return str(run["dag_run_id"])


def _run_state(dep: Deployment, dag_id: str, run_id: str) -> str:
    return str(dep.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"])


def test_a_failed_run_fails_its_open_commit_and_the_scheduler_lives_on(deployment, service_client):
    dep, client = deployment, service_client
    repos = [unique_name("fail"), unique_name("fail")]
    for repo in repos:
        client.create_repo(repo)
    for repo in repos:  # two failed runs in a row: the second proves the scheduler's loop went on
        run_id = _trigger(dep, "df_deploy_fail", {"repo": repo})
        wait_for(lambda r=run_id: _run_state(dep, "df_deploy_fail", r) == "failed", 180,
                 lambda: f"the run did not fail:\n{dep.log('scheduler')[-4000:]}")

        def failed(repo: str = repo) -> bool:
            commits = client.list_commits(repo)
            return bool(commits) and commits[0].state.value == "failed"

        wait_for(failed, 60, lambda: f"the open commit stayed open:\n{dep.log('scheduler')[-4000:]}")
        [commit] = client.list_commits(repo)
        assert run_id in commit.error and "df_deploy_fail" in commit.error
    time.sleep(3)  # a scheduler that lost its session dies on its next loop
    assert dep.alive("scheduler"), dep.log("scheduler")[-4000:]
    log = dep.log("scheduler")
    assert "DetachedInstanceError" not in log and "Traceback" not in log.split("df_deploy_fail", 1)[-1]


def _consumed_per_run(dep: Deployment) -> list[list[str]]:
    out = []
    for run in sorted(dep.runs("df_deploy_burst"), key=lambda r: r["run_after"]):
        events = dep.api("GET", f"/dags/df_deploy_burst/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")
        out.append([e["extra"]["payload"]["commit"] for e in events["asset_events"]])
    return out


def test_a_burst_of_commits_gives_one_run_each_across_a_triggerer_restart(deployment, service_client, metadata_db):
    dep, client = deployment, service_client
    seed = client.resolve(BURST_REPO, "master")
    wait_for(lambda: emitted(metadata_db) == seed, 120,
             lambda: f"the watcher never started:\n{dep.log('triggerer')[-4000:]}")
    burst = [client.put_file(BURST_REPO, "master", f"b{i}", b"x").id for i in range(6)]  # well within a second
    wait_for(lambda: len(dep.runs("df_deploy_burst")) >= len(burst), 240,
             lambda: f"{len(dep.runs('df_deploy_burst'))} runs:\n{dep.log('triggerer')[-3000:]}")

    dep.stop("triggerer")
    missed = [client.put_file(BURST_REPO, "master", f"down{i}", b"y").id for i in range(2)]
    dep.start("triggerer")
    wanted = burst + missed
    wait_for(lambda: len(dep.runs("df_deploy_burst")) >= len(wanted), 240,
             lambda: f"{len(dep.runs('df_deploy_burst'))} runs after the restart:\n{dep.log('triggerer')[-3000:]}")
    time.sleep(3)  # nothing more may come
    assert _consumed_per_run(dep) == [[c] for c in wanted]  # one run per commit, in order, none twice


def _expired(token: str, secret: str) -> str:
    """The same JWT, expired an hour ago, signed as Airflow signs it (the deployment's secret)."""
    import jwt

    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    claims.update(exp=int(time.time()) - 3600, iat=int(time.time()) - 7200, nbf=int(time.time()) - 7200)
    return jwt.encode(claims, secret, algorithm=header["alg"], headers={"kid": header["kid"]} if "kid" in header
                      else None)


def test_the_service_push_gets_a_new_token_when_airflow_answers_401(deployment):
    """The push holds a token that expired (after 24 h by default): Airflow answers 401, the push logs in again."""
    import httpx
    from datumflow.storage_service.service.airflow_push import AirflowPush

    from tests.airflow.deployment import ADMIN, JWT_SECRET, PASSWORD

    stale = _expired(deployment.token(), JWT_SECRET)
    answer = httpx.get(f"{deployment.url}/api/v2/assets", headers={"Authorization": f"Bearer {stale}"}, timeout=120)
    assert answer.status_code == 401  # what the push meets a day after it logged in
    push = AirflowPush(deployment.url, username=ADMIN, password=PASSWORD, token=stale, timeout=120)
    assert push.post(unique_name("noasset"), "master", "0" * 32) is False  # answered, no 401 raised
    assert push._token and push._token != stale


@pytest.fixture(scope="module")
def browser_page(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    from tests.console.conftest import CHROMIUM_ARGS

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.mark.browser
def test_the_lineage_view_needs_airflows_login_and_shows_the_runs_commits(deployment, service_client, browser_page):
    import httpx

    dep, client = deployment, service_client
    repo = unique_name("ui")
    client.create_repo(repo)
    run_id = _trigger(dep, "df_deploy_fail", {"repo": repo})
    wait_for(lambda: _run_state(dep, "df_deploy_fail", run_id) == "failed", 180, lambda: dep.log("scheduler")[-3000:])
    wait_for(lambda: client.list_commits(repo)[0].state.value == "failed", 60, lambda: dep.log("scheduler")[-3000:])
    [commit] = client.list_commits(repo)
    url = f"{dep.url}/datumflow/lineage/df_deploy_fail/{run_id}"

    assert httpx.get(url, timeout=30).status_code in (401, 403)  # the plugin's view is behind Airflow's auth
    token = dep.token()
    rows = httpx.get(url, params={"format": "json"}, headers={"Authorization": f"Bearer {token}"}, timeout=60).json()
    assert [r["commit"] for r in rows] == [commit.id] and rows[0]["task_id"] == "start"

    context = browser_page.new_context()
    context.add_cookies([{"name": "_token", "value": token, "url": dep.url}])  # what Airflow's login sets
    page = context.new_page()
    page.goto(url, timeout=60_000)
    link = page.locator(f"a[href$='/commits/{commit.id}']").first
    assert link.inner_text().startswith(f"{repo}@")
    frame = page.frame_locator("iframe.lineage").first
    frame.locator("svg").first.wait_for(timeout=30_000)  # the console's lineage picture, drawn
    console = context.new_page()  # and back: the console's commit page links to the Airflow run
    console.goto(link.get_attribute("href"), timeout=60_000)
    back = console.locator("a.airflow-run")
    assert back.get_attribute("href") == f"{dep.url}/dags/df_deploy_fail/runs/{quote(run_id, safe='')}"
    context.close()
