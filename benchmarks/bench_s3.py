"""The S3 gateway's small-object request rate under a compiled load generator, against the same server's /healthz.

Figures: requests/s of S3 GetObject of a 1 KiB object (written
through the gateway, so it carries its MD5 ETag and metadata) under 16
connections driven by ``wrk`` (Debian's package; the area is skipped without
it), each as a ratio to ``GET /healthz`` of the same ``serve`` process under
the same load. Requests are presigned URLs (valid for the run), so every one
is authenticated as a client's would be. HeadObject is not driven by wrk:
wrk does not know a response to HEAD has no body and waits for the
Content-Length bytes (HeadObject under load is ``service.s3_head_1kib_rps``
in the service area, driven by boto3 threads).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._procs import datumflow_service

if TYPE_CHECKING:
    from .run import Context

BUCKET = "master.bench-s3"
KEY = "small.bin"
CONNECTIONS = 16
_RATE = re.compile(r"Requests/sec:\s+([0-9.]+)")
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")


def run(ctx: Context) -> list[dict[str, Any]]:
    wrk = shutil.which("wrk")
    if wrk is None:
        ctx.log("wrk is not installed (apt-get install wrk): S3 request rates skipped")
        return []
    seconds = ctx.pick(10, 3)
    root = ctx.workdir / "store"
    with datumflow_service(root, ctx.workdir / "serve.log") as (url, _token):
        s3 = _client(url, *_s3_key(root))
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=os.urandom(1024), ContentType="application/octet-stream")
        get = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": KEY}, ExpiresIn=3600)
        healthz = _wrk(ctx, wrk, url + "/healthz", seconds)
        out = []
        for name, target in (("s3_get_object_1kib", get),):
            rate = _wrk(ctx, wrk, target, seconds)
            out.append(ctx.figure(
                f"s3.{name}_wrk_rps", rate, "req/s",
                peer=f"same server's /healthz {healthz:.0f} req/s (wrk, {CONNECTIONS} connections, {seconds} s)",
                ratio=rate / healthz, goal="report (ratio to /healthz)", met=None,
            ))
    return out


def _s3_key(root: Path) -> tuple[str, str]:
    """A new S3 key pair of the admin (``auth s3-key create``)."""
    done = subprocess.run([sys.executable, "-m", "datumflow.storage_service.service.serve", "auth", "s3-key", "create",
                           "admin", "--root", str(root), "--json"], capture_output=True, text=True, check=True)
    pair = json.loads(done.stdout)
    return pair["access_key_id"], pair["secret_access_key"]


def _client(url: str, key: str, secret: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=url + "/s3", aws_access_key_id=key, aws_secret_access_key=secret,
                        region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))


def _wrk(ctx: Context, wrk: str, target: str, seconds: int, script: Path | None = None) -> float:
    cmd = [wrk, "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    if script is not None:
        cmd += ["-s", str(script)]
    ctx.log(f"wrk {CONNECTIONS} connections, {seconds} s: {target.split('?')[0]}")
    done = subprocess.run([*cmd, target], capture_output=True, text=True, timeout=seconds + 60, check=True)
    bad = _NON_2XX.search(done.stdout)
    if bad and int(bad.group(1)):
        raise AssertionError(f"wrk saw {bad.group(1)} failed responses from {target.split('?')[0]}")
    match = _RATE.search(done.stdout)
    if match is None:
        raise AssertionError(f"no rate in wrk's output:\n{done.stdout}")
    return float(match.group(1))
