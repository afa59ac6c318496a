"""fsspec ``datumflow://repo@ref/path`` with pandas, on the embedded store and on the live service."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pytest
from datumflow.storage_service.client.fs import DatumflowFileSystem

import datumflow

from .conftest import Service


@pytest.fixture(params=["embedded", "http"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if request.param == "embedded":
        options: dict[str, Any] = {"address": f"file://{tmp_path / 'store'}"}
    else:
        svc: Service = request.getfixturevalue("service")
        options = {"address": svc.url, "token": svc.token}
    repo = f"fs-{uuid.uuid4().hex[:8]}"
    store = datumflow.connect(options["address"], token=options.get("token"))
    store.create_repo(repo)
    store.put_file(repo, "master", "2026/jan.csv", b"day,amount\n1,10\n2,20\n")
    store.close()
    yield {"options": options, "repo": repo}
    DatumflowFileSystem.clear_instance_cache()


def test_pandas_read_and_write(where: dict[str, Any]) -> None:
    repo, options = where["repo"], where["options"]
    df = pd.read_csv(f"datumflow://{repo}@master/2026/jan.csv", storage_options=options)
    assert list(df["amount"]) == [10, 20]
    df["double"] = df["amount"] * 2
    df.to_csv(f"datumflow://{repo}@master/2026/feb.csv", index=False, storage_options=options)
    back = pd.read_csv(f"datumflow://{repo}@master/2026/feb.csv", storage_options=options)
    assert list(back["double"]) == [20, 40]
    store = datumflow.connect(options["address"], token=options.get("token"))
    assert len(store.list_commits(repo, "master")) == 2  # the write was one commit
    store.close()


def test_ls_info_find_glob_cat_rm(where: dict[str, Any]) -> None:
    repo, options = where["repo"], where["options"]
    fs = fsspec.filesystem("datumflow", **options)
    with fs.open(f"{repo}@master/2026/notes/a.txt", "wb") as fh:
        fh.write(b"0123456789")
    assert fs.ls(f"datumflow://{repo}@master/2026", detail=False) == [
        f"{repo}@master/2026/jan.csv", f"{repo}@master/2026/notes"]
    assert fs.info(f"{repo}@master/2026/notes")["type"] == "directory"
    assert fs.info(f"{repo}@master/2026/notes/a.txt")["size"] == 10
    assert fs.find(f"{repo}@master") == [f"{repo}@master/2026/jan.csv", f"{repo}@master/2026/notes/a.txt"]
    assert fs.glob(f"{repo}@master/2026/*.csv") == [f"{repo}@master/2026/jan.csv"]
    assert fs.cat_file(f"{repo}@master/2026/notes/a.txt", start=2, end=5) == b"234"
    with fs.open(f"{repo}@master/2026/notes/a.txt", "rb", block_size=4) as fh:
        fh.seek(6)
        assert fh.read(3) == b"678"
    assert fs.exists(f"{repo}@master/2026/jan.csv")
    assert not fs.exists(f"{repo}@master/2026/nope.csv")
    with pytest.raises(FileNotFoundError):
        fs.cat_file(f"{repo}@master/nope")
    with pytest.raises(IsADirectoryError):
        fs.rm(f"{repo}@master/2026/notes")
    fs.rm(f"{repo}@master/2026/notes", recursive=True)
    assert fs.find(f"{repo}@master") == [f"{repo}@master/2026/jan.csv"]
    with pytest.raises(ValueError):
        fs.ls("no-ref-here/x")


def test_address_from_environment(where: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATUMFLOW_ADDRESS", where["options"]["address"])
    if where["options"].get("token"):
        monkeypatch.setenv("DATUMFLOW_TOKEN", where["options"]["token"])
    with fsspec.open(f"datumflow://{where['repo']}@master/2026/jan.csv", "rb") as fh:
        assert fh.read().startswith(b"day,amount")


def test_put_and_get_of_a_folder_skip_what_is_unchanged(
    where: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import time

    monkeypatch.setenv("DATUMFLOW_SYNC_CACHE", str(tmp_path / "cache"))
    repo, options = where["repo"], where["options"]
    src = tmp_path / "exports"
    (src / "sub").mkdir(parents=True)
    for i in range(20):
        (src / "sub" / f"{i}.bin").write_bytes(os.urandom(512))
    time.sleep(0.2)
    fs = fsspec.filesystem("datumflow", **options)
    store = datumflow.connect(options["address"], token=options.get("token"))
    fs.put(f"{src}/", f"{repo}@master/in", recursive=True)
    assert len(fs.find(f"{repo}@master/in")) == 20
    commits = len(store.list_commits(repo, "master"))
    fs.put(f"{src}/", f"{repo}@master/in", recursive=True)  # unchanged: no commit
    assert len(store.list_commits(repo, "master")) == commits
    (src / "sub" / "3.bin").write_bytes(b"new")
    fs.put(f"{src}/", f"{repo}@master/in", recursive=True)
    assert [d.path for d in store.diff(repo, None, "master")] == ["in/sub/3.bin"]
    out = tmp_path / "out"
    fs.get(f"{repo}@master/in", str(out), recursive=True)
    assert (out / "sub" / "3.bin").read_bytes() == b"new" and len(list(out.rglob("*.bin"))) == 20
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.bin")}
    (out / "sub" / "4.bin").write_bytes(b"local")
    fs.get(f"{repo}@master/in/", str(out), recursive=True)  # only the differing file is written again
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*.bin")}
    assert [p.name for p in before if before[p] != after[p]] == ["4.bin"]
    assert (out / "sub" / "4.bin").read_bytes() == (src / "sub" / "4.bin").read_bytes()
    store.close()
