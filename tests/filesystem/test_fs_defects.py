"""``datumflow://`` as fsspec users meet it: append, exclusive create, zero-copy copies, maxdepth, modified."""

from __future__ import annotations

import datetime as dt

import pytest
from datumflow.storage_service.client.fs import DatumflowFileSystem


def test_append_appends(df_fs: DatumflowFileSystem, df_root: str) -> None:
    path = f"{df_root}/log.txt"
    df_fs.pipe(path, b"first\n")
    with df_fs.open(path, "ab") as f:
        f.write(b"second\n")
    assert df_fs.cat(path) == b"first\nsecond\n"
    with df_fs.open(f"{df_root}/new.txt", "ab") as f:  # append to nothing creates
        f.write(b"x")
    assert df_fs.cat(f"{df_root}/new.txt") == b"x"


def test_exclusive_create_never_overwrites(df_fs: DatumflowFileSystem, df_root: str) -> None:
    path = f"{df_root}/once.txt"
    with df_fs.open(path, "xb") as f:
        f.write(b"mine")
    with pytest.raises(FileExistsError):
        df_fs.open(path, "xb")
    with pytest.raises(FileExistsError):
        df_fs.pipe_file(path, b"theirs", mode="create")
    assert df_fs.cat(path) == b"mine"


def test_copy_and_move_share_the_bytes(df_fs: DatumflowFileSystem, df_root: str) -> None:
    df_fs.pipe(f"{df_root}/a/one.bin", b"1" * 100_000)
    df_fs.copy(f"{df_root}/a/one.bin", f"{df_root}/b/one.bin")
    src, dst = df_fs.info(f"{df_root}/a/one.bin"), df_fs.info(f"{df_root}/b/one.bin")
    assert src["hash"] == dst["hash"]
    repo, ref = df_root.split("@")
    store = df_fs.store
    chunks = lambda p: store.inspect_file(repo, ref, p).chunks  # noqa: E731
    assert chunks("a/one.bin") == chunks("b/one.bin")  # the same chunks: no bytes moved
    df_fs.mv(f"{df_root}/b/one.bin", f"{df_root}/c/moved.bin")
    assert not df_fs.exists(f"{df_root}/b/one.bin")
    assert df_fs.cat(f"{df_root}/c/moved.bin") == b"1" * 100_000
    df_fs.copy(f"{df_root}/a", f"{df_root}/d", recursive=True)
    assert df_fs.find(f"{df_root}/d") == [f"{df_root}/d/one.bin"]


def test_glob_and_find_honour_maxdepth(df_fs: DatumflowFileSystem, df_root: str) -> None:
    for p in ("x", "d/y", "d/e/z"):
        df_fs.pipe(f"{df_root}/{p}", b".")
    assert df_fs.find(df_root, maxdepth=1) == [f"{df_root}/x"]
    assert df_fs.find(df_root, maxdepth=2) == [f"{df_root}/d/y", f"{df_root}/x"]
    assert df_fs.find(df_root, maxdepth=1, withdirs=True) == [f"{df_root}/d", f"{df_root}/x"]
    assert df_fs.glob(f"{df_root}/**", maxdepth=1) == [f"{df_root}/d", f"{df_root}/x"]
    assert df_fs.glob(f"{df_root}/**/z") == [f"{df_root}/d/e/z"]
    assert df_fs.glob(f"{df_root}/**/z", maxdepth=2) == []


def test_modified(df_fs: DatumflowFileSystem, df_root: str) -> None:
    before = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=5)
    df_fs.pipe(f"{df_root}/m.txt", b"x")
    assert before <= df_fs.modified(f"{df_root}/m.txt") <= dt.datetime.now(dt.timezone.utc)
    with pytest.raises(FileNotFoundError):
        df_fs.modified(f"{df_root}/absent.txt")
