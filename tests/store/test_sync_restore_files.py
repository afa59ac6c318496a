"""Files a restore writes appear whole under their names, made unnamed and linked in where the system can."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from datumflow.storage_service import Store
from datumflow.storage_service.errors import CorruptObject
from datumflow.storage_service.sync import restore as restore_module
from datumflow.storage_service.sync.folder import PART_SUFFIX


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATUMFLOW_SYNC_CACHE", str(tmp_path / "cache"))


def _leftovers(root: Path) -> list[str]:
    return [p.name for p in root.rglob("*") if p.name.endswith(PART_SUFFIX) or "probe" in p.name]


@pytest.mark.parametrize("unnamed", [True, False])
def test_a_restore_writes_every_file_whole_and_leaves_nothing_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unnamed: bool
) -> None:
    if not unnamed:
        monkeypatch.setattr(restore_module, "_TMPFILE", 0)  # a file system without O_TMPFILE
    elif not restore_module.unnamed_files_work(str(tmp_path)):
        pytest.skip("no O_TMPFILE here")
    files = {f"d{i % 3}/f{i}": os.urandom(100 + i) for i in range(40)}
    with Store(str(tmp_path / "store")) as store:
        store.create_repo("r")
        store.put_files("r", "master", list(files.items()))
        out = tmp_path / "out"
        (out / "d1").mkdir(parents=True)
        (out / "d1" / "f1").write_bytes(b"an older version")  # replaced, not linked over
        result = store.sync_down("r", "master", "", str(out))
        assert len(result.added) + len(result.changed) == 40
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()} == files
    assert _leftovers(out) == []


def test_unnamed_files_need_o_tmpfile_and_proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(restore_module, "_TMPFILE", 0)
    assert restore_module.unnamed_files_work(str(tmp_path)) is False
    monkeypatch.undo()

    def no_proc(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("/proc/self/fd")

    monkeypatch.setattr(restore_module, "_link", no_proc)
    assert restore_module.unnamed_files_work(str(tmp_path)) is False
    assert os.listdir(tmp_path) == []


def test_a_corrupt_download_is_never_linked_in(tmp_path: Path) -> None:
    if not restore_module.unnamed_files_work(str(tmp_path)):
        pytest.skip("no O_TMPFILE here")
    from datumflow.storage_service.model.core import FileInfo

    info = FileInfo(path="x", type="file", size=3, hash="0" * 64)
    with pytest.raises(CorruptObject):
        restore_module.write_atomically(str(tmp_path / "x"), [b"abc"], info, unnamed=True)
    assert os.listdir(tmp_path) == []
