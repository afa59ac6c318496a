"""Requests that create the same thing at the same moment (parallel Airflow tasks each making sure
their repo exists, two replicas' job loops) get the answer a serial run would give each of them:
one creates, the others find it there (``exist_ok``) or get "already exists"; none gets an internal
error, and the loser of a pipeline race removes nothing the winner made. On PostgreSQL a
check-then-insert transaction loses such races (READ COMMITTED); on SQLite writers take turns."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from datumflow.storage_service.client.http import Client
from datumflow.storage_service.core.db import is_unique_violation
from datumflow.storage_service.errors import AlreadyExists
from datumflow.storage_service.pipelines.engine import Pipelines
from datumflow.storage_service.service.app import _unexpected_error
from datumflow.storage_service.service.auth import Auth
from datumflow.storage_service.store.store import Store
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from tests.helpers.threads import all_at_once
from tests.s3.conftest import s3_client
from tests.service.conftest import init_auth, launch, run_cli

N = 8
SPEC = {"pipeline": {"name": "copy"}, "input": {"pfs": {"repo": "in", "glob": "/*"}},
        "transform": {"image": "alpine:3", "cmd": ["sh", "-c", "cp -r /pfs/in/. /pfs/out/"]}}


def _race(fns: list[Callable[[], Any]]) -> Counter[str]:
    """Run the calls together (released from one barrier); count outcomes by exception name."""
    def name(outcome: Any) -> str:
        if not isinstance(outcome, BaseException):
            return "ok"
        return type(outcome).__name__ + ("" if isinstance(outcome, AlreadyExists) else f": {outcome}")

    return Counter(map(name, all_at_once(fns)))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Store]]:
    """N stores on one root and database, as N replicas (or N threads of one) see it."""
    db = None if request.param == "sqlite" else str(request.getfixturevalue("postgres_url"))
    opened = [Store(str(tmp_path / "root"), db_url=db, fsync=False) for _ in range(N)]
    try:
        yield opened
    finally:
        for s in opened:
            s.close()


def test_repos_branches_tags_and_protection_created_at_once(stores: list[Store]) -> None:
    assert _race([lambda s=s: s.create_repo("in", exist_ok=True) for s in stores]) == {"ok": N}
    assert _race([lambda s=s: s.create_repo("other") for s in stores]) == {"ok": 1, "AlreadyExists": N - 1}
    assert [r.name for r in stores[0].list_repos()] == ["in", "other"]
    stores[0].put_files("in", "master", [("a.txt", b"a\n")])
    assert _race([lambda s=s: s.create_branch("in", "dev", head="master") for s in stores]) == {"ok": N}
    assert stores[0].inspect_branch("in", "dev").head == stores[0].inspect_branch("in", "master").head
    assert _race([lambda s=s: s.create_tag("in", "v1", "master") for s in stores]) == {"ok": 1, "AlreadyExists": N - 1}
    assert _race([lambda s=s: s.protect_branch("in", "dev") for s in stores]) == {"ok": N}


def test_users_and_grants_created_at_once(stores: list[Store]) -> None:
    auths = [Auth(s.engine) for s in stores]
    stores[0].create_repo("in")
    assert _race([lambda a=a: a.create_user("ann") for a in auths]) == {"ok": 1, "AlreadyExists": N - 1}
    assert _race([lambda a=a: a.grant("ann", "in", "writer") for a in auths]) == {"ok": N}
    assert auths[0].principal_of("ann").grants == {"in": "writer"}


def test_the_same_pipeline_created_at_once_is_created_once_and_kept(stores: list[Store]) -> None:
    stores[0].create_repo("in")
    stores[0].put_files("in", "master", [("a.txt", b"a\n")])
    services = [Pipelines(s) for s in stores]
    assert _race([lambda p=p: p.create_pipeline(SPEC) for p in services]) == {"ok": 1, "AlreadyExists": N - 1}
    # The losers removed nothing: the pipeline, its output repo and its spec are whole.
    info = services[0].inspect_pipeline("copy")
    assert info.name == "copy" and "copy" in [r.name for r in stores[0].list_repos()]
    (job,) = services[0].list_jobs("copy")
    assert services[0].wait_job(job.id, timeout=120).state.value == "success"
    assert stores[0].get_file("copy", "master", "a.txt") == b"a\n"


@pytest.mark.postgres
def test_parallel_clients_of_one_service_making_sure_their_repo_exists(tmp_path: Path, postgres_url: str) -> None:
    """The way Airflow meets it: parallel tasks, each a client of the service, each creating its
    repo with ``exist_ok`` (and a branch) before writing to it."""
    service = launch(tmp_path / "root", token=None, db=postgres_url)
    try:
        clients = [Client(service.url) for _ in range(N)]

        def task(i: int) -> None:
            clients[i].create_repo("shared", exist_ok=True)
            clients[i].create_branch("shared", f"task{i}")
            clients[i].put_files("shared", f"task{i}", [(f"out{i}.txt", f"{i}\n".encode())])

        assert _race([lambda i=i: task(i) for i in range(N)]) == {"ok": N}
        for i in range(N):
            assert clients[0].get_file("shared", f"task{i}", f"out{i}.txt") == f"{i}\n".encode()
        for c in clients:
            c.close()
    finally:
        service.stop()


@pytest.mark.postgres
@pytest.mark.s3
def test_s3_clients_creating_one_bucket_and_sending_one_part_at_once(tmp_path: Path, postgres_url: str) -> None:
    """S3 clients retry a part they think failed, so the same part number can arrive twice at once:
    the upload keeps one of the bodies whole. CreateBucket raced by several clients creates it once
    and answers the others as S3 does (BucketAlreadyOwnedByYou), never InternalError."""
    from botocore.exceptions import ClientError

    root = tmp_path / "root"
    service = launch(root, token=init_auth(root, db=postgres_url), db=postgres_url)
    try:
        done = run_cli("auth", "s3-key", "create", "admin", "--root", str(root), "--db", postgres_url, "--json")
        assert done.returncode == 0, done.stderr
        pair = json.loads(done.stdout)
        clients = [s3_client(service.url, pair["access_key_id"], pair["secret_access_key"]) for _ in range(N)]

        def create(i: int) -> None:
            try:
                clients[i].create_bucket(Bucket="master.landing")
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
                    raise

        assert _race([lambda i=i: create(i) for i in range(N)]) == {"ok": N}
        upload = clients[0].create_multipart_upload(Bucket="master.landing", Key="big.bin")["UploadId"]
        bodies = [bytes([i]) * (5 << 20) for i in range(N)]
        part = {"Bucket": "master.landing", "Key": "big.bin", "UploadId": upload, "PartNumber": 1}
        assert _race([lambda i=i: clients[i].upload_part(Body=bodies[i], **part) for i in range(N)]) == {"ok": N}
        (listed,) = clients[0].list_parts(Bucket="master.landing", Key="big.bin", UploadId=upload)["Parts"]
        clients[0].complete_multipart_upload(
            Bucket="master.landing", Key="big.bin", UploadId=upload,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": listed["ETag"]}]},
        )
        got = clients[0].get_object(Bucket="master.landing", Key="big.bin")["Body"].read()
        assert got in bodies
    finally:
        service.stop()


def test_a_unique_key_race_no_retry_settled_is_a_409_to_try_again(tmp_path: Path) -> None:
    """The last line: a unique-key error that escapes a route answers 409 ConcurrentUpdate (S3:
    OperationAborted), which says "try again", not 500. The error is a real one from SQLite."""
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (k TEXT PRIMARY KEY)"))
        conn.execute(text("INSERT INTO t VALUES ('a')"))
    with pytest.raises(IntegrityError) as caught, engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES ('a')"))
    assert is_unique_violation(caught.value)
    assert not is_unique_violation(IntegrityError("x", {}, sqlite3.IntegrityError("NOT NULL constraint failed")))
    response = asyncio.run(_unexpected_error(None, caught.value))  # type: ignore[arg-type]
    assert response.status_code == 409
    assert json.loads(bytes(response.body))["error"]["type"] == "ConcurrentUpdate"
