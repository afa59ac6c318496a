"""The schema revision this release's metadata tables are at, known without importing SQLAlchemy
or Alembic: :mod:`.migrations` checks a store against it on every open, and the CLI's read-only path
(:mod:`datumflow.storage_service.store.local_read`) reads only a store already there. A test checks
it is the newest of the migration scripts."""

from __future__ import annotations

__all__ = ["HEAD"]

HEAD = "0004"
