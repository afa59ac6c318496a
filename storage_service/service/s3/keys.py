"""S3 key pairs: an access key id and a secret per pair, several per user, separate from bearer tokens.

SigV4 needs the secret itself to check a signature, so the secret is kept
encrypted with the server key (:mod:`..secrets`, AES-GCM bound to its key
id), as lakeFS and MinIO keep theirs; it is shown once, when the pair is
created, and never logged. Revoking a pair ends it at once; deleting a user
revokes its pairs.
"""

from __future__ import annotations

import secrets
import threading
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING

from datumflow.storage_service.core.schema import metadata
from datumflow.storage_service.errors import NotFound
from datumflow.storage_service.service.secrets import ServerKey
from sqlalchemy import Column, Engine, Float, Index, LargeBinary, String, Table, delete, insert, select

if TYPE_CHECKING:
    from datumflow.storage_service.store.store import Store

__all__ = ["KEY_PREFIX", "KeyPair", "S3Keys", "keys_of", "s3_keys"]

KEY_PREFIX = "DFAK"
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_UNSEALED_MAX = 1024  # decrypted secrets kept per process (oldest dropped first)

s3_keys = Table(
    "df_s3_keys",
    metadata,
    Column("access_key_id", String(32), primary_key=True),
    Column("user", String(64), nullable=False),
    Column("secret", LargeBinary, nullable=False),  # nonce + AES-GCM ciphertext
    Column("created", Float, nullable=False),
    Index("ix_df_s3_keys_user", "user"),
)


@dataclass(frozen=True)
class KeyPair:
    access_key_id: str
    user: str
    created: float
    secret_access_key: str | None = None  # only when just created

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"access_key_id": self.access_key_id, "user": self.user, "created": self.created}
        if self.secret_access_key is not None:
            out["secret_access_key"] = self.secret_access_key
        return out


class S3Keys:
    """The key pairs of one metadata database, their secrets sealed with one server key."""

    def __init__(self, engine: Engine, key: ServerKey) -> None:
        self.engine = engine
        self.key = key
        self._unsealed: dict[tuple[str, bytes], str] = {}
        self._lock = threading.Lock()
        metadata.create_all(engine, tables=[s3_keys])

    def create(self, user: str) -> KeyPair:
        key_id = KEY_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(16))
        secret = secrets.token_urlsafe(30)
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(insert(s3_keys), {"access_key_id": key_id, "user": user,
                                           "secret": self.key.encrypt(secret, key_id), "created": now})
        return KeyPair(key_id, user, now, secret)

    def list(self, user: str) -> list[KeyPair]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(s3_keys.c.access_key_id, s3_keys.c.user, s3_keys.c.created)
                .where(s3_keys.c.user == user).order_by(s3_keys.c.created)
            ).all()
        return [KeyPair(r.access_key_id, r.user, r.created) for r in rows]

    def revoke(self, user: str, key_id: str) -> None:
        with self.engine.begin() as conn:
            gone = conn.execute(
                delete(s3_keys).where(s3_keys.c.access_key_id == key_id, s3_keys.c.user == user)
            ).rowcount
        if not gone:
            raise NotFound(f"user {user} has no S3 key {key_id}")

    def revoke_all(self, user: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(s3_keys).where(s3_keys.c.user == user))

    def secret_of(self, key_id: str) -> tuple[str, str] | None:
        """(user, secret) of an access key id; None if there is no such pair."""
        with self.engine.connect() as conn:
            row = conn.execute(select(s3_keys.c.user, s3_keys.c.secret)
                               .where(s3_keys.c.access_key_id == key_id)).first()
        if row is None:
            return None
        return row.user, self.unseal(key_id, bytes(row.secret))

    def unseal(self, key_id: str, sealed: bytes) -> str:
        """The secret of a pair from its stored (sealed) form, decrypted once per process.

        Keyed by the sealed bytes themselves: the caller has just read them from
        the database, so a revoked pair (no row) is never unsealed from here.
        """
        with self._lock:
            found = self._unsealed.get((key_id, sealed))
        if found is None:
            found = self.key.decrypt(sealed, key_id)
            with self._lock:
                if len(self._unsealed) >= _UNSEALED_MAX:
                    self._unsealed.pop(next(iter(self._unsealed)))
                self._unsealed[(key_id, sealed)] = found
        return found


_KEYS: weakref.WeakKeyDictionary[Store, S3Keys] = weakref.WeakKeyDictionary()
_KEYS_LOCK = threading.Lock()


def keys_of(store: Store) -> S3Keys:
    """The key pairs of a store's database, sealed with the server key of its root (made once per store)."""
    with _KEYS_LOCK:
        found = _KEYS.get(store)
        if found is None:
            found = _KEYS[store] = S3Keys(store.engine, ServerKey.load(store.root))
        return found
