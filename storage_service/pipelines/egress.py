"""Egress: a job's finished output commit copied to an fsspec URL (``egress.URL``).

As in Pachyderm, egress runs after the output commit is finished: the data
stays in the output repo whatever happens, and a copy that fails fails the
job (with the reason) without touching the commit. Any protocol fsspec
knows works (``file://``, ``s3://``, ``gs://``…; the package for it must be
installed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from datumflow.storage_service.errors import InvalidArgument

if TYPE_CHECKING:
    from datumflow.storage_service.store.store import Store

__all__ = ["egress"]


def egress(store: Store, repo: str, commit: str, url: str) -> int:
    """Copy every file of ``repo@commit`` under ``url``; returns how many files were written."""
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(url)
    except (ValueError, ImportError) as exc:
        raise InvalidArgument(f"egress URL {url}: {exc}") from exc
    root = root.rstrip("/")
    count = 0
    for info in store.walk_files(repo, commit):
        target = f"{root}/{info.path}"
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(target, "wb") as out:
            for block in store.open_file(repo, commit, info.path):
                out.write(block)
        count += 1
    return count
