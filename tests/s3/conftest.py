"""The S3 gateway under test: a real ``serve`` process with users, and boto3/s3fs clients of it.

=============  =======  ========================================================
fixture        scope    what it gives
=============  =======  ========================================================
``gateway``    session  the service (``.url``, ``.token``) with an admin token
``s3``         test     a boto3 S3 client signing with an S3 key pair of the admin
``bucket``     test     ``master.<new repo>``, created through CreateBucket
``open_service`` session a service without users (no signatures checked)
=============  =======  ========================================================
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.service.conftest import Service, init_auth, launch, run_cli
from tests.service.conftest import open_service as open_service  # a store without users


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("s3gw") / "store"
    svc = launch(root, token=init_auth(root))
    pair = s3_key(root, "admin")
    svc.extra.update(key=pair["access_key_id"], secret=pair["secret_access_key"])
    yield svc
    svc.stop()


def s3_key(root: Path, user: str) -> dict[str, str]:
    """A new S3 key pair of ``user`` (``auth s3-key create``)."""
    done = run_cli("auth", "s3-key", "create", user, "--root", str(root), "--json")
    assert done.returncode == 0, done.stderr
    pair: dict[str, str] = json.loads(done.stdout)
    return pair


def s3_client(url: str, key: str, secret: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3", endpoint_url=url + "/s3", aws_access_key_id=key, aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4", retries={"max_attempts": 1}),
    )


@pytest.fixture
def s3(gateway: Service) -> Any:
    return s3_client(gateway.url, gateway.extra["key"], gateway.extra["secret"])


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"master.s3-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=name)
    return name
