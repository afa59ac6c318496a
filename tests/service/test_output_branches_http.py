"""A pipeline's output branch refuses ordinary writers on every surface of a live service, and still runs.

The session ``service`` runs its job loop (the pipeline's jobs write the
output branch); the client, the CLI (a child process), boto3 through the S3
gateway and the fsspec filesystem are the ordinary writers.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from datumflow.storage_service import errors
from datumflow.storage_service.client.fs import DatumflowFileSystem
from datumflow.storage_service.client.http import Client

from .conftest import Service
from .test_pipelines_http import cli, headers, new_user, spec

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def piped(service: Service, client: Client) -> Iterator[tuple[str, str]]:
    """(input repo, pipeline = output repo), its first job done."""
    src, out = f"in-{uuid.uuid4().hex[:8]}", f"up-{uuid.uuid4().hex[:8]}"
    client.create_repo(src)
    client.put_file(src, "master", "a.txt", b"alpha")
    client.pipelines.create_pipeline(spec(out, src))
    assert client.wait_commit(out, "master", timeout=120).error is None
    yield src, out
    DatumflowFileSystem.clear_instance_cache()


def _files(client: Client, repo: str) -> dict[str, bytes]:
    return {f.path: client.get_file(repo, "master", f.path) for f in client.walk_files(repo, "master")}


def test_the_client_is_refused_with_the_error_class_and_403(service: Service, client: Client, piped: Any) -> None:
    src, out = piped
    head = client.resolve(out, "master")
    for write in (
        lambda: client.put_file(out, "master", "x.txt", b"mine"),
        lambda: client.put_files(out, "master", [("d/1", b"1")]),
        lambda: client.delete_file(out, "master", "a.txt"),
        lambda: client.copy_file(src, "master", "a.txt", out, "master", "copy.txt"),
        lambda: client.start_commit(out, "master"),
    ):
        with pytest.raises(errors.OutputBranch, match=f"output branch of pipeline {out}"):
            write()
    answer = httpx.put(f"{service.url}/api/v1/repos/{out}/commits/master/content", params={"path": "raw.txt"},
                       content=b"raw", headers=headers(service.token), timeout=30)
    assert answer.status_code == 403 and "output branch" in answer.text
    assert client.resolve(out, "master") == head and _files(client, out) == {"a.txt": b"ALPHA"}


def test_force_is_an_owners_repair(service: Service, client: Client, piped: Any) -> None:
    _, out = piped
    _, _, writer = new_user(service, {out: "writer"})
    with Client(service.url, token=writer) as as_writer:
        with pytest.raises(errors.Forbidden, match="needs role owner"):
            as_writer.put_file(out, "master", "x.txt", b"mine", force=True)
        with pytest.raises(errors.OutputBranch):
            as_writer.put_file(out, "master", "x.txt", b"mine")
    client.put_file(out, "master", "a.txt", b"REPAIRED", force=True)  # the admin owns every repo
    opened = client.start_commit(out, "master", force=True)
    client.put_file(out, opened.id, "note.txt", b"by hand")
    client.finish_commit(out, opened.id)
    assert _files(client, out) == {"a.txt": b"REPAIRED", "note.txt": b"by hand"}


def test_the_cli_is_refused_and_repairs_with_force(service: Service, client: Client, piped: Any,
                                                    tmp_path: Path) -> None:
    _, out = piped
    local = tmp_path / "fix.txt"
    local.write_bytes(b"fixed")
    refused = cli(service, "put", f"{out}@master:fix.txt", str(local))
    assert refused.returncode == 1 and "output branch of pipeline" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1  # one line, no traceback
    refused = cli(service, "commit", "start", f"{out}@master")
    assert refused.returncode == 1 and "cannot start a commit" in refused.stderr, refused.stderr
    done: subprocess.CompletedProcess[str] = cli(service, "put", "--force", f"{out}@master:fix.txt", str(local))
    assert done.returncode == 0, done.stderr
    assert client.get_file(out, "master", "fix.txt") == b"fixed"
    done = cli(service, "rm", "--force", f"{out}@master:fix.txt")
    assert done.returncode == 0, done.stderr


def test_s3_and_fsspec_writers_are_refused(service: Service, client: Client, piped: Any) -> None:
    from botocore.exceptions import ClientError

    from tests.s3.conftest import s3_client, s3_key

    _, out = piped
    pair = s3_key(service.root, "admin")
    s3 = s3_client(service.url, pair["access_key_id"], pair["secret_access_key"])
    for call in (lambda: s3.put_object(Bucket=f"master.{out}", Key="s3.txt", Body=b"x"),
                 lambda: s3.delete_object(Bucket=f"master.{out}", Key="a.txt")):
        with pytest.raises(ClientError) as caught:
            call()
        assert caught.value.response["Error"]["Code"] == "AccessDenied"
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert s3.get_object(Bucket=f"master.{out}", Key="a.txt")["Body"].read() == b"ALPHA"  # reads still work
    fs = DatumflowFileSystem(address=service.url, token=service.token, skip_instance_cache=True)
    with pytest.raises(PermissionError, match="output branch"):
        fs.pipe_file(f"{out}@master/fs.txt", b"x")
    with pytest.raises(PermissionError):
        fs.rm(f"{out}@master/a.txt")
    assert fs.cat_file(f"{out}@master/a.txt") == b"ALPHA"


def test_the_pipeline_runs_on_after_refused_writes(service: Service, client: Client, piped: Any) -> None:
    src, out = piped
    for write in (lambda: client.put_file(out, "master", "x.txt", b"mine"),
                  lambda: client.start_commit(out, "master")):
        with pytest.raises(errors.OutputBranch):
            write()
    client.put_file(src, "master", "b.txt", b"beta")
    assert client.wait_commit(out, "master", timeout=120).error is None
    assert _files(client, out) == {"a.txt": b"ALPHA", "b.txt": b"BETA"}
    [job] = [j for j in client.pipelines.list_jobs(out) if j.inputs.get("in") == client.resolve(src, "master")]
    assert (job.state.value, job.processed, job.skipped) == ("success", 1, 1)
