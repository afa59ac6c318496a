"""Tags: immutable names of finished commits, usable wherever a ref is (``repo@v1``, ``v1~2``).

Tags and branches share one namespace per repo, so a name never means two
things; a tag never moves (delete it and create it again, deliberately), and
nothing writes through it.
"""

from __future__ import annotations

import time

from datumflow.storage_service.core.db import retry_on_conflict
from datumflow.storage_service.core.history_schema import tags
from datumflow.storage_service.errors import AlreadyExists, CommitOpen, TagNotFound
from datumflow.storage_service.model.core import CommitState
from datumflow.storage_service.model.history import Tag
from datumflow.storage_service.names import check_branch_name
from datumflow.storage_service.store.base import StoreBase
from sqlalchemy import Connection, delete, insert, select

__all__ = ["Tagging"]


class Tagging(StoreBase):
    @retry_on_conflict
    def create_tag(self, repo: str, name: str, ref: str, *, message: str = "", creator: str | None = None) -> Tag:
        """Name the commit ``ref`` resolves to now; the name never moves."""
        check_branch_name(name)
        with self.engine.begin() as conn:
            self._require_repo(conn, repo)
            if self._branch_row(conn, repo, name) is not None:
                raise AlreadyExists(f"{repo}@{name} is a branch; a tag needs a name of its own")
            if self._tag_row(conn, repo, name) is not None:
                raise AlreadyExists(f"tag {repo}@{name} already exists (tags never move)")
            commit_id = self._resolve(conn, repo, ref)
            if self._commit(conn, commit_id).state is CommitState.OPEN:
                raise CommitOpen(f"commit {repo}@{commit_id} is open; tag it once it is finished")
            conn.execute(insert(tags), {
                "repo": repo, "name": name, "commit": commit_id, "message": message,
                "creator": creator, "created": time.time(),
            })
        return self.inspect_tag(repo, name)

    def inspect_tag(self, repo: str, name: str) -> Tag:
        with self.engine.connect() as conn:
            self._require_repo(conn, repo)
            row = self._tag_row(conn, repo, check_branch_name(name))
        if row is None:
            raise TagNotFound(f"tag {name} not found in repo {repo}")
        return _tag(row)

    def list_tags(self, repo: str) -> list[Tag]:
        with self.engine.connect() as conn:
            self._require_repo(conn, repo)
            rows = conn.execute(select(tags).where(tags.c.repo == repo).order_by(tags.c.name)).all()
        return [_tag(r) for r in rows]

    def delete_tag(self, repo: str, name: str) -> None:
        self.inspect_tag(repo, name)
        with self.engine.begin() as conn:
            conn.execute(delete(tags).where(tags.c.repo == repo, tags.c.name == name))

    def _tag_row(self, conn: Connection, repo: str, name: str) -> object | None:
        return conn.execute(select(tags).where(tags.c.repo == repo, tags.c.name == name)).first()


def _tag(row: object) -> Tag:
    r = row  # a Row of df_tags
    return Tag(r.repo, r.name, r.commit, r.message, r.creator, r.created)  # type: ignore[attr-defined]
