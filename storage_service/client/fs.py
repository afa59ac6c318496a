"""fsspec filesystem ``datumflow://repo@ref/path`` over a store (embedded or the service).

The store is ``datumflow.connect(address)``: storage option ``address=`` or
``$DATUMFLOW_ADDRESS`` (token: ``token=`` or ``$DATUMFLOW_TOKEN``). Reads are
buffered and fetch byte ranges; a file opened for writing is spooled to a
temporary file and lands in the branch on close, as one commit.
Store errors leave as the builtin ``OSError`` family (``NotFound`` already is
a ``FileNotFoundError``, ``Forbidden`` a ``PermissionError``).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from typing import Any

from datumflow.storage_service.errors import InvalidArgument, NotFound
from datumflow.storage_service.model.core import FileInfo
from datumflow.storage_service.names import normalize_path
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

import datumflow

__all__ = ["DatumflowFileSystem"]


def split(path: str) -> tuple[str, str, str]:
    """``repo@ref/a/b`` → (repo, ref, ``a/b``)."""
    head, _, rest = path.partition("/")
    repo, at, ref = head.partition("@")
    if not at or not repo or not ref:
        raise InvalidArgument(f"expected datumflow://REPO@REF/PATH, got {path!r}")
    return repo, ref, normalize_path(rest, allow_root=True)


class DatumflowFileSystem(AbstractFileSystem):  # type: ignore[misc]
    protocol = "datumflow"
    root_marker = ""

    def __init__(self, address: str | None = None, token: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.address = address or os.environ.get("DATUMFLOW_ADDRESS")
        if not self.address:
            raise InvalidArgument(
                "no datumflow address: pass storage_options={'address': ...} or set DATUMFLOW_ADDRESS"
            )
        self.store = datumflow.connect(self.address, token=token or os.environ.get("DATUMFLOW_TOKEN"))

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith("datumflow://"):
            path = path[len("datumflow://"):]
        return path.rstrip("/")

    def _entry(self, repo: str, ref: str, info: FileInfo) -> dict[str, Any]:
        name = f"{repo}@{ref}/{info.path}" if info.path else f"{repo}@{ref}"
        out: dict[str, Any] = {"name": name, "size": info.size, "type": "directory" if info.is_dir else "file"}
        if info.hash:
            out["hash"] = info.hash
        return out

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        repo, ref, sub = split(self._strip_protocol(path))
        entries = [self._entry(repo, ref, f) for f in self.store.list_files(repo, ref, sub)]
        return entries if detail else [e["name"] for e in entries]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        repo, ref, sub = split(self._strip_protocol(path))
        return self._entry(repo, ref, self.store.inspect_file(repo, ref, sub))

    def find(self, path: str, maxdepth: int | None = None, withdirs: bool = False, detail: bool = False,
             **kwargs: Any) -> Any:
        """Every file under ``path`` (one walk of the index), with folders if ``withdirs``, to ``maxdepth``.

        fsspec's own ``glob`` runs on this (``maxdepth`` and its ``**`` rules included).
        """
        if maxdepth is not None and maxdepth < 1:
            raise ValueError("maxdepth must be at least 1")
        path = self._strip_protocol(path)
        repo, ref, sub = split(path)
        found: dict[str, dict[str, Any]] = {}
        try:
            infos = list(self.store.walk_files(repo, ref, sub))
        except NotFound:
            infos = []
        base = f"{sub}/" if sub else ""
        for info in infos:
            if info.path == sub:  # ``path`` is a file
                found[path] = self._entry(repo, ref, info)
                continue
            parts = info.path[len(base):].split("/")
            if withdirs:
                for depth in range(1, len(parts)):
                    if maxdepth is None or depth <= maxdepth:
                        folder = base + "/".join(parts[:depth])
                        found.setdefault(f"{repo}@{ref}/{folder}", self._folder(repo, ref, folder))
            if maxdepth is None or len(parts) <= maxdepth:
                entry = self._entry(repo, ref, info)
                found[entry["name"]] = entry
        if withdirs and sub and infos and infos[0].path != sub:
            found[path] = self._folder(repo, ref, sub)
        names = sorted(found)
        return {n: found[n] for n in names} if detail else names

    def _folder(self, repo: str, ref: str, folder: str) -> dict[str, Any]:
        return {"name": f"{repo}@{ref}/{folder}" if folder else f"{repo}@{ref}", "size": 0, "type": "directory"}

    def modified(self, path: str) -> dt.datetime:
        """When the file was written: its S3 write time if it has one, else its commit's time."""
        repo, ref, sub = split(self._strip_protocol(path))
        info = self.store.inspect_file(repo, ref, sub)
        if info.is_dir:
            raise IsADirectoryError(f"{path} is a folder: folders have no modification time")
        stamp = info.meta.get("modified")
        if stamp is None:
            commit = self.store.inspect_commit(repo, ref)
            when = commit.finished or commit.started
        else:
            when = float(stamp)
        return dt.datetime.fromtimestamp(when, dt.timezone.utc)

    def put(self, lpath: Any, rpath: Any, recursive: bool = False, callback: Any = None, maxdepth: int | None = None,
            **kwargs: Any) -> None:
        """A local folder (``recursive=True``) is synced: one commit of the files added or changed, unchanged
        files not even read (see :mod:`~..sync.statcache`); anything else as fsspec does it."""
        if not _whole_folder(lpath, recursive, maxdepth, os.path.isdir):
            super().put(lpath, rpath, recursive=recursive, maxdepth=maxdepth, **_with(callback, kwargs))
            return
        repo, ref, sub = split(self._strip_protocol(rpath))
        if not str(lpath).endswith("/") and (str(rpath).endswith("/") or self.isdir(rpath)):
            sub = "/".join(p for p in (sub, os.path.basename(os.path.abspath(lpath))) if p)  # into the folder
        self.store.sync_up(str(lpath), repo, ref, sub)
        self.invalidate_cache()

    def get(self, rpath: Any, lpath: Any, recursive: bool = False, callback: Any = None, maxdepth: int | None = None,
            **kwargs: Any) -> None:
        """A folder (``recursive=True``) is synced down: only files missing or differing locally are written."""
        if not _whole_folder(rpath, recursive, maxdepth, self.isdir):
            super().get(rpath, lpath, recursive=recursive, maxdepth=maxdepth, **_with(callback, kwargs))
            return
        repo, ref, sub = split(self._strip_protocol(rpath))
        target = str(lpath)
        if not str(rpath).endswith("/") and (target.endswith("/") or os.path.isdir(target)) and sub:
            target = os.path.join(target, os.path.basename(sub))
        self.store.sync_down(repo, ref, sub, target)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy a file: the new entry shares the chunks (no bytes move); one commit on the target branch."""
        src_repo, src_ref, src = split(self._strip_protocol(path1))
        dst_repo, dst_ref, dst = split(self._strip_protocol(path2))
        if self.store.inspect_file(src_repo, src_ref, src).is_dir:
            return  # folders are implied by the files under them
        self.store.copy_file(src_repo, src_ref, src, dst_repo, dst_ref, dst)
        self.invalidate_cache()

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        repo, ref, sub = split(self._strip_protocol(path))
        if start is None and end is None:
            return bytes(self.store.get_file(repo, ref, sub))
        size = self.store.inspect_file(repo, ref, sub).size
        lo = 0 if start is None else (start if start >= 0 else max(size + start, 0))
        hi = size if end is None else (end if end >= 0 else max(size + end, 0))
        return bytes(self.store.read_range(repo, ref, sub, min(lo, size), max(0, min(hi, size) - lo)))

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        """Delete files or folders; each path is one commit on its branch."""
        paths = path if isinstance(path, list) else [path]
        if maxdepth is not None:  # only what lies within maxdepth: the files, one by one
            paths = [p for p in self.expand_path(paths, recursive=recursive, maxdepth=maxdepth) if self.isfile(p)]
        done: set[str] = set()
        for one in paths:
            repo, ref, sub = split(self._strip_protocol(one))
            if any(sub == d or sub.startswith(d + "/") for d in done):
                continue  # already gone with a folder deleted before it
            if not recursive and self.store.inspect_file(repo, ref, sub).is_dir:
                raise IsADirectoryError(f"{one} is a folder: pass recursive=True")
            self.store.delete_file(repo, ref, sub)
            done.add(sub)
        self.invalidate_cache()

    def _rm(self, path: str) -> None:
        self.rm(path)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        pass  # folders exist through the files under them

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        pass

    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, autocommit: bool = True,
              cache_options: dict[str, Any] | None = None, **kwargs: Any) -> DatumflowFile:
        if mode == "xb" and self.exists(path):
            raise FileExistsError(f"{path} exists (mode 'xb' creates a new file only)")
        return DatumflowFile(self, path, mode=mode, block_size=block_size or 4 * 1024 * 1024,
                             cache_options=cache_options, **kwargs)


def _whole_folder(path: Any, recursive: bool, maxdepth: int | None, isdir: Any) -> bool:
    """One folder, all of it: what a sync does (lists, globs and depth limits go fsspec's way)."""
    if not recursive or maxdepth is not None or not isinstance(path, (str, os.PathLike)):
        return False
    text = str(path)
    return not any(c in text for c in "*?[") and bool(isdir(text))


def _with(callback: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    return kwargs if callback is None else {**kwargs, "callback": callback}


class DatumflowFile(AbstractBufferedFile):  # type: ignore[misc]
    """Reads fetch ranges; writes spool to a temporary file, stored in one commit on close.

    ``ab`` appends the written bytes to the file (the store's append); ``xb``
    refuses, at open and again before storing, a file that exists.
    """

    def __init__(self, fs: DatumflowFileSystem, path: str, mode: str = "rb", **kwargs: Any) -> None:
        self.repo, self.ref, self.sub = split(fs._strip_protocol(path))
        self._spool: Any = None
        super().__init__(fs, path, mode=mode, **kwargs)

    def _fetch_range(self, start: int, end: int) -> bytes:
        return bytes(self.fs.store.read_range(self.repo, self.ref, self.sub, start, max(0, end - start)))

    def _initiate_upload(self) -> None:
        self._spool = tempfile.NamedTemporaryFile(prefix="datumflow-", delete=False)  # noqa: SIM115

    def _upload_chunk(self, final: bool = False) -> bool:
        if self._spool is None:
            self._initiate_upload()
        self._spool.write(self.buffer.getvalue())
        if final:
            self._spool.close()
            try:
                if self.mode == "xb" and self.fs.exists(self.path):
                    raise FileExistsError(f"{self.path} was created by someone else meanwhile")
                self.fs.store.put_file(self.repo, self.ref, self.sub, self._spool.name, append=self.mode == "ab")
            finally:
                os.unlink(self._spool.name)
            self.fs.invalidate_cache()
        return True
