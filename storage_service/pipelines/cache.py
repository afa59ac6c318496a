"""The datum cache: (pipeline, datum hash) -> the output that datum produced.

An entry is written only once the job's output commit has finished, so its
file entries always point at chunks a finished commit holds (``gc`` keeps
them). Any earlier successful run in the pipeline's history is reused, not
just the previous job's.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from datumflow.storage_service.core.db import insert_ignore
from datumflow.storage_service.core.pipeline_schema import datum_cache, placeholder
from sqlalchemy import Engine, delete, select

__all__ = ["CachedOutput", "DatumCache"]

_BATCH = 500


@dataclass(frozen=True)
class CachedOutput:
    hash: str
    outputs: dict[str, Any]  # {path: file entry}
    job: str  # the job whose run produced it
    datum: str


class DatumCache:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def lookup(self, pipeline: str, hashes: Iterable[str]) -> dict[str, CachedOutput]:
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, CachedOutput] = {}
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), _BATCH):
                rows = conn.execute(
                    select(datum_cache).where(
                        datum_cache.c.pipeline == pipeline, datum_cache.c.hash.in_(wanted[i:i + _BATCH])
                    )
                ).all()
                for r in rows:
                    found[r.hash] = CachedOutput(r.hash, json.loads(r.outputs), r.job, r.datum)
        return found

    def lookup_stored(self, pipeline: str, hashes: Iterable[str]) -> dict[str, tuple[str, str]]:
        """{hash: (outputs as the stored JSON text, job)} of the hashes the cache knows, nothing decoded."""
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, tuple[str, str]] = {}
        with self.engine.connect() as conn:
            quote = conn.dialect.identifier_preparer.quote
            mark = placeholder(conn)
            for i in range(0, len(wanted), _BATCH):
                chunk = wanted[i:i + _BATCH]
                sql = (
                    f"SELECT {quote('hash')}, {quote('outputs')}, {quote('job')} FROM {quote(datum_cache.name)} "
                    f"WHERE {quote('pipeline')} = {mark} AND {quote('hash')} IN ({', '.join([mark] * len(chunk))})"
                )
                for h, outputs, job in conn.exec_driver_sql(sql, (pipeline, *chunk)):
                    found[h] = (outputs, job)
        return found

    def store(self, pipeline: str, entries: Iterable[CachedOutput]) -> None:
        now = time.time()
        rows = [
            {"pipeline": pipeline, "hash": e.hash, "outputs": json.dumps(e.outputs, separators=(",", ":")),
             "job": e.job, "datum": e.datum, "created": now}
            for e in entries
        ]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(insert_ignore(self.engine, datum_cache), rows)

    def forget(self, pipeline: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(datum_cache).where(datum_cache.c.pipeline == pipeline))
