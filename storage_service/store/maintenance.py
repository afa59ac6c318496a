"""Integrity and space: ``fsck`` proves every reachable byte, ``gc`` frees the rest.

Reachability starts at the root of every commit (open ones included) and
walks index nodes down to chunks. Garbage collection also spares every chunk
and pack a write in flight pinned (found stored or newly written, commit not
yet made), so it is safe with any grace period; the grace only keeps recent
garbage around a while longer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import blake3
from datumflow.storage_service.core.chunks import pack_key
from datumflow.storage_service.core.inflight import PACK_PREFIX, gc_lock
from datumflow.storage_service.core.schema import chunks, commits, nodes, packs
from datumflow.storage_service.errors import CorruptObject, DatumflowError
from datumflow.storage_service.model.core import ChunkRef
from datumflow.storage_service.store.base import StoreBase
from datumflow.storage_service.store.listing import chunks_of
from sqlalchemy import delete, select

__all__ = ["Maintenance"]

GC_GRACE_SECONDS = 3600.0
REPACK_BELOW = 0.5  # rewrite a pack whose live bytes fall under this share


class Maintenance(StoreBase):
    def _reachable(self) -> tuple[set[str], dict[str, int], set[str]]:
        """(index node hashes, chunk hash -> length, roots) reachable from any commit."""
        with self.engine.connect() as conn:
            roots = set(conn.execute(select(commits.c.root).where(commits.c.root.is_not(None))).scalars())
        seen: set[str] = set()
        live: dict[str, int] = {}
        self._walk(roots, seen, live)
        return seen, live, roots

    def _walk(self, roots: set[str], seen: set[str], live: dict[str, int]) -> None:
        stack = [r for r in roots if r not in seen]
        while stack:
            h = stack.pop()
            if h in seen:
                continue
            seen.add(h)
            node = self.nodes.get(h)
            if node.level > 0:
                stack.extend(v[0] for v in node.vals)
                continue
            for entry in node.vals:
                live.update((c.hash, c.size) for c in chunks_of(entry))

    if TYPE_CHECKING:  # provided by the Leases part of Store

        def _reap_abandoned(self) -> list[str]: ...

    def fsck(self, *, verify_content: bool = True, progress: Any = None, repair: bool = False) -> dict[str, Any]:
        """Check every reachable index node and chunk; returns a report with ``errors``.

        With ``repair``, abandoned open commits (lease expired, writer gone) are
        failed first and listed under ``repaired``.
        """
        repaired = self._reap_abandoned() if repair else []
        errors: list[str] = []
        try:
            node_hashes, live, _ = self._reachable()
        except DatumflowError as exc:
            return {"ok": False, "errors": [f"index: {exc}"], "nodes": 0, "chunks": 0, "bytes": 0}
        for h, data in self._node_rows(node_hashes):
            if blake3.blake3(data).hexdigest() != h:
                errors.append(f"index node {h} does not match its hash")
        where = self.chunks.locate(live)
        checked = 0
        for h, length in sorted(live.items()):
            if h not in where:
                errors.append(f"chunk {h} is referenced but not stored")
                continue
            if verify_content:
                try:
                    self.chunks.read(ChunkRef(h, length), where[h])
                except (CorruptObject, DatumflowError) as exc:
                    errors.append(str(exc))
            checked += length
            if progress:
                progress(length)
        return {
            "ok": not errors, "errors": errors, "nodes": len(node_hashes),
            "chunks": len(live), "bytes": checked, "repaired": repaired,
        }

    def _node_rows(self, hashes: set[str]) -> Iterator[tuple[str, bytes]]:
        wanted = sorted(hashes)
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), 500):
                query = select(nodes.c.hash, nodes.c.data).where(nodes.c.hash.in_(wanted[i:i + 500]))
                for h, data in conn.execute(query):
                    yield h, bytes(data)

    def gc(self, *, grace_seconds: float = GC_GRACE_SECONDS) -> dict[str, int]:
        """Delete unreachable index nodes, chunks and packs older than the grace period.

        Safe with writes in flight whatever the grace (0 included): what to delete is
        decided in one transaction holding the gc lock alone, after walking the commits
        made since the first walk and adding every key a live write pinned (see
        :mod:`~datumflow.storage_service.core.inflight`). Rows go first, bytes after,
        so a write that looks a chunk up later finds it gone and stores it again.
        """
        cutoff = time.time() - grace_seconds
        node_hashes, live, roots = self._reachable()
        report = {"nodes_deleted": 0, "chunks_deleted": 0, "packs_deleted": 0,
                  "packs_rewritten": 0, "bytes_reclaimed": 0}
        with self.engine.connect() as conn:
            old_packs = {r.id: r.size for r in conn.execute(select(packs).where(packs.c.created < cutoff))}
            rows = conn.execute(
                select(chunks.c.hash, chunks.c.pack, chunks.c.offset, chunks.c.length)
                .where(chunks.c.pack.in_(list(old_packs)) if len(old_packs) < 30000 else chunks.c.pack.is_not(None))
            ).all()
        by_pack: dict[str, list[Any]] = {}
        for row in rows:
            if row.pack in old_packs:
                by_pack.setdefault(row.pack, []).append(row)
        with self.engine.begin() as conn:
            gc_lock(conn, exclusive=True)
            now_roots = set(conn.execute(select(commits.c.root).where(commits.c.root.is_not(None))).scalars())
            self._walk(now_roots - roots, node_hashes, live)  # commits made since the first walk
            pinned = self.chunks.pins.held(conn)
            stale = [h for h in conn.execute(select(nodes.c.hash).where(nodes.c.created < cutoff)).scalars()
                     if h not in node_hashes]
            for i in range(0, len(stale), 500):
                conn.execute(delete(nodes).where(nodes.c.hash.in_(stale[i:i + 500])))
            report["nodes_deleted"] = len(stale)
            dead = [r.hash for members in by_pack.values() for r in members
                    if r.hash not in live and r.hash not in pinned]
            for i in range(0, len(dead), 500):
                conn.execute(delete(chunks).where(chunks.c.hash.in_(dead[i:i + 500])))
            report["chunks_deleted"] = len(dead)
        gone = set(dead)
        for pack_id, size in old_packs.items():
            if PACK_PREFIX + pack_id in pinned:
                continue
            alive = [r for r in by_pack.get(pack_id, []) if r.hash not in gone]
            live_bytes = sum(r.length for r in alive)
            if alive and live_bytes >= REPACK_BELOW * size:
                continue
            if alive:
                self._repack(alive)
                report["packs_rewritten"] += 1
            with self.engine.begin() as conn:
                conn.execute(delete(packs).where(packs.c.id == pack_id))
            self.objects.delete(pack_key(pack_id))
            report["packs_deleted"] += 1
            report["bytes_reclaimed"] += size - live_bytes
        report["bytes_reclaimed"] += self._sweep_orphans(cutoff, pinned)
        return report

    def _repack(self, alive: list[Any]) -> None:
        """Copy a pack's live chunks into new packs; their rows move when each is published."""
        with self.chunks.writer(relocate=True) as writer:
            for row in alive:
                data = self.chunks.read(ChunkRef(row.hash, row.length), (row.pack, row.offset, row.length))
                writer.copy_chunk(row.hash, data)

    def _sweep_orphans(self, cutoff: float, pinned: set[str]) -> int:
        """Pack objects no row names (a crash between upload and record) and stale spool files."""
        with self.engine.connect() as conn:
            known = set(conn.execute(select(packs.c.id)).scalars())
        freed = 0
        for key, size in list(self.objects.list("packs")):
            pack_id = os.path.basename(key)
            if pack_id not in known and PACK_PREFIX + pack_id not in pinned and self._older_than(key, cutoff):
                self.objects.delete(key)
                freed += size
        spool = self.objects.spool_dir()
        for name in os.listdir(spool):
            full = os.path.join(spool, name)
            if PACK_PREFIX + name.split(".", 1)[0] in pinned:
                continue
            try:
                if os.path.getmtime(full) < cutoff:
                    freed += os.path.getsize(full)
                    os.remove(full)
            except FileNotFoundError:
                pass
        return freed

    def _older_than(self, key: str, cutoff: float) -> bool:
        root = getattr(self.objects, "root", None)
        if root is None:
            return False  # remote stores: no trustworthy age, so never guess
        try:
            return os.path.getmtime(os.path.join(root, key)) < cutoff
        except FileNotFoundError:
            return False
