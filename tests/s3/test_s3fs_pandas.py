"""s3fs and pandas through the gateway: what data tools see."""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.service.conftest import Service


@pytest.fixture
def fs(gateway: Service) -> Any:
    import s3fs

    return s3fs.S3FileSystem(
        key=gateway.extra["key"], secret=gateway.extra["secret"], endpoint_url=gateway.url + "/s3",
        client_kwargs={"region_name": "us-east-1"},
        config_kwargs={"s3": {"addressing_style": "path"}, "signature_version": "s3v4"},
        skip_instance_cache=True, use_listings_cache=False,
    )


def test_s3fs_write_list_read(fs: Any, bucket: str) -> None:
    with fs.open(f"{bucket}/data/a.txt", "wb") as f:
        f.write(b"alpha")
    fs.pipe(f"{bucket}/data/sub/b.txt", b"beta")
    assert sorted(fs.ls(f"{bucket}/data", detail=False)) == [f"{bucket}/data/a.txt", f"{bucket}/data/sub"]
    assert fs.cat(f"{bucket}/data/sub/b.txt") == b"beta"
    assert fs.info(f"{bucket}/data/a.txt")["size"] == 5
    assert fs.find(f"{bucket}/data") == [f"{bucket}/data/a.txt", f"{bucket}/data/sub/b.txt"]
    fs.rm(f"{bucket}/data/a.txt")
    assert not fs.exists(f"{bucket}/data/a.txt")


def test_s3fs_large_write_goes_multipart(fs: Any, bucket: str) -> None:
    data = os.urandom(12 * 1024 * 1024)
    with fs.open(f"{bucket}/big.bin", "wb", block_size=5 * 1024 * 1024) as f:
        f.write(data)
    assert fs.cat(f"{bucket}/big.bin") == data
    with fs.open(f"{bucket}/big.bin", "rb") as f:
        f.seek(7 * 1024 * 1024)
        assert f.read(10) == data[7 * 1024 * 1024: 7 * 1024 * 1024 + 10]


def test_pandas_reads_a_csv(fs: Any, bucket: str, gateway: Service) -> None:
    import pandas as pd

    fs.pipe(f"{bucket}/sales/2026.csv", b"region,amount\nnorth,10\nsouth,32\n")
    options = {"key": gateway.extra["key"], "secret": gateway.extra["secret"], "endpoint_url": gateway.url + "/s3",
               "config_kwargs": {"s3": {"addressing_style": "path"}, "signature_version": "s3v4"}}
    frame = pd.read_csv(f"s3://{bucket}/sales/2026.csv", storage_options=options)
    assert list(frame.columns) == ["region", "amount"]
    assert frame["amount"].sum() == 42
    frame.assign(double=frame["amount"] * 2).to_csv(f"s3://{bucket}/sales/out.csv", index=False,
                                                      storage_options=options)
    assert fs.cat(f"{bucket}/sales/out.csv").decode().splitlines()[1] == "north,10,20"
