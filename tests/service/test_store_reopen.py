"""A fresh process's Store writes into a branch another Store wrote (each CLI call, each fsspec open)."""

from __future__ import annotations

from pathlib import Path

from datumflow.storage_service.store.store import Store


def test_second_store_instance_edits_existing_tree(tmp_path: Path) -> None:
    with Store(str(tmp_path)) as first:
        first.create_repo("r")
        first.put_files("r", "master", [(f"d/{i}", b"%d" % i) for i in range(50)])
    # A cold node cache: the edit reads index nodes while holding the commit's write transaction.
    with Store(str(tmp_path)) as second:
        commit = second.put_file("r", "master", "d/new", b"n")
        assert commit.file_count == 51
        assert second.get_file("r", "master", "d/7") == b"7"
