"""Item 7: no reader can stall the service: globs are linear, bodies are bounded, YAML aliases are bounded.

These are bounds, not benchmarks: before the fixes each attack held the
service for tens of seconds to minutes (or grew it by hundreds of MB); a
request that is not answered within a generous deadline fails the test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import Service

from .conftest import User, bearer

DEADLINE = 15.0  # seconds; the fixed service answers in milliseconds


def rss_mb(svc: Service) -> float:
    for line in Path(f"/proc/{svc.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def reader(make_user: Callable[[], User], name: str) -> Iterator[tuple[User, str]]:
    user = make_user()
    user.client.create_repo(name)
    user.client.put_file(name, "master", "a" * 100, b"x")
    deep = "/".join(["d"] * 100) + "/x"
    user.client.put_file(name, "master", deep, b"x")
    yield user, name


@pytest.mark.parametrize("pattern", [
    "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",  # 30 characters against a 100-character name
    "**/" * 9 + "*x",  # against a 100-level path
    "{" + ",".join(["*a*a*a*a*a"] * 20) + "}b",
])
def test_a_hostile_glob_does_not_stall_the_service(svc: Service, reader: tuple[User, str], pattern: str) -> None:
    user, repo = reader
    health: list[float] = []

    def probe() -> None:
        started = time.monotonic()
        try:
            httpx.get(f"{svc.url}/healthz", timeout=DEADLINE)
        finally:
            health.append(time.monotonic() - started)

    checker = threading.Timer(0.2, probe)
    checker.start()
    answer = httpx.get(f"{svc.url}/api/v1/repos/{repo}/commits/master/glob", params={"pattern": pattern},
                       headers=bearer(user.token), timeout=DEADLINE)
    checker.join()
    assert answer.status_code in (200, 400), answer.text
    assert health and health[0] < 5.0


def test_overlong_glob_patterns_are_refused(svc: Service, reader: tuple[User, str]) -> None:
    user, repo = reader
    answer = httpx.get(f"{svc.url}/api/v1/repos/{repo}/commits/master/glob", params={"pattern": "*" * 5000},
                       headers=bearer(user.token), timeout=DEADLINE)
    assert answer.status_code == 400 and "glob" in answer.json()["error"]["message"]


def stream(total: int, piece: int = 1 << 20) -> Iterator[bytes]:
    yield b'{"name": "'
    sent = 0
    while sent < total:
        yield b"a" * piece
        sent += piece
    yield b'"}'


def test_a_huge_json_body_without_a_token_costs_nothing(svc: Service) -> None:
    before = rss_mb(svc)
    answer = httpx.post(f"{svc.url}/api/v1/repos", content=stream(128 << 20),
                        headers={"Content-Type": "application/json"}, timeout=DEADLINE)
    assert answer.status_code in (401, 413)
    sized = httpx.post(f"{svc.url}/api/v1/repos", content=b"{" + b" " * (64 << 20) + b"}",
                       headers={"Content-Type": "application/json"}, timeout=DEADLINE)
    assert sized.status_code == 413
    assert rss_mb(svc) - before < 50


def test_a_huge_delete_objects_body_is_refused(svc: Service, reader: tuple[User, str]) -> None:
    _, repo = reader
    before = rss_mb(svc)
    answer = httpx.post(f"{svc.url}/s3/master.{repo}?delete", content=stream(128 << 20), timeout=DEADLINE)
    assert answer.status_code in (400, 403, 413)
    assert rss_mb(svc) - before < 50


ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
pipeline: {name: bomb}
input: {pfs: {repo: x, glob: "/*"}}
transform: {cmd: [sh], env: {X: *g}}
"""


def test_a_yaml_alias_bomb_is_refused_quickly(svc: Service, make_user: Callable[[], User]) -> None:
    user = make_user()
    before = rss_mb(svc)
    started = time.monotonic()
    answer = httpx.post(f"{svc.url}/api/v1/pipelines", json={"spec": ALIAS_BOMB}, headers=bearer(user.token),
                        timeout=DEADLINE * 4)
    elapsed = time.monotonic() - started
    assert answer.status_code == 400 and "alias" in answer.json()["error"]["message"]
    assert elapsed < 5.0 and rss_mb(svc) - before < 50
