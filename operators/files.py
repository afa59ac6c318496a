"""Put files into a commit (from local paths, fsspec URLs or XCom values) and copy files between commits."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from datumflow.plugin._compat import deprecated_alias

from .base import DatumflowBaseOperator, with_conn_id

__all__ = [
    "CopyFileOperator",
    "DatumflowCopyFileOperator",
    "DatumflowPutFilesOperator",
    "PutFilesOperator",
]


def _from_url(dest: str, url: str) -> Iterator[tuple[str, Any]]:
    """(path in the commit, open file) for an fsspec URL: one file, or every file under a folder."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    if not fs.isdir(path):
        yield dest, fs.open(path, "rb")
        return
    for found in sorted(fs.find(path)):
        rel = found[len(path.rstrip("/")) + 1:] if found.startswith(path.rstrip("/") + "/") else found
        yield f"{dest.rstrip('/')}/{rel}".lstrip("/"), fs.open(found, "rb")


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, sort_keys=True).encode()


def sources(files: Mapping[str, str], data: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The (destination, source) items: paths/URLs from ``files``, literal values from ``data``."""
    items: list[tuple[str, Any]] = []
    for dest, src in files.items():
        if "://" in str(src) and not str(src).startswith("file://"):
            items.extend(_from_url(dest, str(src)))
        else:
            items.append((dest, str(src).removeprefix("file://")))
    items.extend((dest, _as_bytes(value)) for dest, value in data.items())
    return items


class DatumflowPutFilesOperator(DatumflowBaseOperator):
    """Write files into ``repo@branch`` as one commit (or into the open ``commit``), with ``provenance``.

    ``files``: {destination: local path, folder or fsspec URL (``s3://…``)};
    ``data``: {destination: bytes, text or a JSON-able value}, e.g. an upstream
    task's XCom (``"{{ ti.xcom_pull('extract') }}"`` or an ``XComArg``).

    ``sync=True``: each ``files`` value is a local folder, synced into its
    destination folder: only files added or changed are uploaded, unchanged
    ones are not even read (the client's stat cache); with ``delete=True``
    files gone from the folder are removed from the destination too.
    """

    template_fields: Sequence[str] = with_conn_id("repo", "branch", "files", "data", "commit", "description",
                                                  "provenance")

    def __init__(self, *, repo: str, branch: str = "master", files: Mapping[str, str] | None = None,
                 data: Mapping[str, Any] | None = None, commit: Any = None, description: str = "",
                 sync: bool = False, delete: bool = False, provenance: Sequence[Any] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.repo, self.branch, self.files, self.data = repo, branch, files or {}, data or {}
        self.commit, self.description, self.sync, self.delete = commit, description, sync, delete
        self.provenance = provenance

    def execute(self, context: Any) -> dict[str, Any]:
        if not self.files and not self.data:
            raise self.fail("nothing to put: give files={dest: path or URL} or data={dest: value}")
        if self.sync and self.data:
            raise self.fail("sync=True syncs local folders: give files={dest: folder}, not data")
        # Airflow renders the values of a templated dict, not its keys: the destinations are rendered here.
        files = {self.render_template(k, context): v for k, v in self.files.items()}
        data = {self.render_template(k, context): v for k, v in self.data.items()}
        client = self.hook.get_conn()
        if self.provenance and self.commit:
            raise self.fail("provenance= applies to the commit this task makes; the open commit given as commit= "
                            "has its provenance from when it was started")
        if self.sync:
            def write(cid: str) -> None:
                for dest, folder in files.items():
                    client.sync_up(str(folder).removeprefix("file://"), self.repo, cid, dest, delete=self.delete)
        else:
            items = sources(files, data)

            def write(cid: str) -> None:
                client.put_files(self.repo, cid, items)
        return self.write(context, self.repo, self.branch, write,
                          commit=self.commit, description=self.description or f"put by {self.task_id}",
                          provenance=self.provenance_ids(self.provenance))


class DatumflowCopyFileOperator(DatumflowBaseOperator):
    """Copy a file or folder from ``src_repo@src_ref`` into ``dst_repo@dst_branch`` (no bytes move)."""

    template_fields: Sequence[str] = with_conn_id("src_repo", "src_ref", "src_path", "dst_repo", "dst_branch",
                                                  "dst_path")

    def __init__(self, *, src_repo: str, src_ref: str, src_path: str, dst_repo: str, dst_path: str,
                 dst_branch: str = "master", commit: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.src_repo, self.src_ref, self.src_path = src_repo, src_ref, src_path
        self.dst_repo, self.dst_branch, self.dst_path, self.commit = dst_repo, dst_branch, dst_path, commit

    def execute(self, context: Any) -> dict[str, Any]:
        client = self.hook.get_conn()
        src = client.inspect_commit(self.src_repo, self.src_ref)
        self.lineage_inputs.append({"repo": src.repo, "branch": src.branch, "commit": src.id})

        def copy(cid: str) -> None:
            client.copy_file(self.src_repo, src.id, self.src_path, self.dst_repo, cid, self.dst_path)

        return self.write(context, self.dst_repo, self.dst_branch, copy, commit=self.commit,
                          description=f"copy of {self.src_repo}@{src.id}:{self.src_path}", provenance=[src.id])


PutFilesOperator = deprecated_alias(DatumflowPutFilesOperator, "PutFilesOperator")
CopyFileOperator = deprecated_alias(DatumflowCopyFileOperator, "CopyFileOperator")
