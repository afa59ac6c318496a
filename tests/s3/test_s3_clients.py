"""The clients people run, at their default settings: boto3 from many threads, the aws CLI, s3fs, rclone."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.s3.conftest import s3_client
from tests.s3.test_s3_objects import commits
from tests.service.conftest import Service

pytestmark = pytest.mark.slow  # hundreds of commits each


def _tree(root: Path, count: int) -> dict[str, bytes]:
    files = {f"d{i % 7}/sub{i % 3}/f{i:04d}.txt": f"file {i}\n".encode() * (1 + i % 50) for i in range(count)}
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def _objects(s3: Any, bucket: str, prefix: str = "") -> dict[str, bytes]:
    keys = [c["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for c in page.get("Contents", [])]
    return {k[len(prefix):]: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def test_boto3_8_threads_put_and_delete_on_one_bucket(gateway: Service, bucket: str) -> None:
    key, secret = gateway.extra["key"], gateway.extra["secret"]

    def writer(t: int) -> dict[str, bytes]:
        client = s3_client(gateway.url, key, secret)
        kept = {}
        for j in range(50):
            name, body = f"t{t}/k{j:02d}", f"{t}-{j}".encode() * (j + 1)
            client.put_object(Bucket=bucket, Key=name, Body=body)  # max_attempts=1: no retry hides a failure
            if j % 5 == 4:
                client.delete_object(Bucket=bucket, Key=name)
            else:
                kept[name] = body
        return kept

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(writer, range(8)))
    expected = {k: v for r in results for k, v in r.items()}
    s3 = s3_client(gateway.url, key, secret)
    assert _objects(s3, bucket) == expected
    assert len(commits(gateway, bucket)) == 8 * 50 + 8 * 10  # a commit per acknowledged write


def _aws(gateway: Service, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "aws-config"
    config.write_text("[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n  signature_version = s3v4\n")
    env = {**os.environ, "AWS_CONFIG_FILE": str(config), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
           "AWS_ACCESS_KEY_ID": gateway.extra["key"], "AWS_SECRET_ACCESS_KEY": gateway.extra["secret"]}
    aws = Path(sys.executable).parent / "aws"
    return subprocess.run([str(aws), "--endpoint-url", gateway.url + "/s3", "s3", *args],
                          capture_output=True, text=True, env=env, timeout=600)


def test_aws_cli_sync_twice_and_rm_recursive(gateway: Service, s3: Any, bucket: str, tmp_path: Path) -> None:
    local = tmp_path / "local"
    files = _tree(local, 500)
    first = _aws(gateway, tmp_path, "sync", str(local), f"s3://{bucket}/data")
    assert first.returncode == 0, first.stderr[-2000:]
    assert _objects(s3, bucket, "data/") == files
    second = _aws(gateway, tmp_path, "sync", str(local), f"s3://{bucket}/data")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "upload:" not in second.stdout  # nothing changed, nothing sent
    gone = _aws(gateway, tmp_path, "rm", "--recursive", f"s3://{bucket}/data")
    assert gone.returncode == 0, gone.stderr[-2000:]
    assert _objects(s3, bucket) == {}


def test_s3fs_put_of_a_folder(gateway: Service, s3: Any, bucket: str, tmp_path: Path) -> None:
    import s3fs

    local = tmp_path / "local"
    files = _tree(local, 200)
    fs = s3fs.S3FileSystem(key=gateway.extra["key"], secret=gateway.extra["secret"], endpoint_url=gateway.url + "/s3",
                           client_kwargs={"region_name": "us-east-1"}, skip_instance_cache=True,
                           config_kwargs={"s3": {"addressing_style": "path"}, "signature_version": "s3v4"})
    fs.put(str(local) + "/", f"{bucket}/up", recursive=True)
    assert _objects(s3, bucket, "up/") == files


@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone is not installed (apt-get install rclone)")
def test_rclone_copy_sync_check(gateway: Service, s3: Any, bucket: str, tmp_path: Path) -> None:
    outside = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}  # e.g. a CA bundle for real AWS
    env = {**outside, "RCLONE_CONFIG": str(tmp_path / "rclone.conf"), "RCLONE_CONFIG_DF_TYPE": "s3",
           "RCLONE_CONFIG_DF_PROVIDER": "Other", "RCLONE_CONFIG_DF_ACCESS_KEY_ID": gateway.extra["key"],
           "RCLONE_CONFIG_DF_SECRET_ACCESS_KEY": gateway.extra["secret"], "RCLONE_CONFIG_DF_REGION": "us-east-1",
           "RCLONE_CONFIG_DF_ENDPOINT": gateway.url + "/s3", "RCLONE_CONFIG_DF_FORCE_PATH_STYLE": "true"}

    def rclone(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["rclone", *args, "-v"], capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    local = tmp_path / "local"
    files = _tree(local, 150)
    rclone("copy", str(local), f"df:{bucket}/r")
    assert _objects(s3, bucket, "r/") == files
    rclone("check", str(local), f"df:{bucket}/r")  # sizes and MD5s (the ETags) agree
    (local / "d0/sub0/f0000.txt").write_bytes(b"changed\n")
    (local / "d1/sub1/f0001.txt").unlink()
    changed = rclone("sync", str(local), f"df:{bucket}/r")
    assert "f0000.txt: Copied" in changed.stderr and "f0001.txt: Deleted" in changed.stderr
    again = rclone("sync", str(local), f"df:{bucket}/r")
    assert "Copied" not in again.stderr and "Deleted" not in again.stderr  # converged: nothing to do
    rclone("check", str(local), f"df:{bucket}/r")
