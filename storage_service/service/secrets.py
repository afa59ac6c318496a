"""The server key: what the service encrypts secrets at rest and signs session cookies with.

32 random bytes, from ``DATUMFLOW_SECRET_KEY`` (urlsafe base64; every replica
sharing one database must have the same) or else the file ``server.key`` in
the store's root, created on first use with mode 0600. Losing it makes the
stored S3 secrets unreadable (their key pairs must be created again) and
signs every console user out; nothing else depends on it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from datumflow.storage_service.errors import DatumflowError, InvalidArgument

__all__ = ["ENV_KEY", "KEY_FILE", "ServerKey"]

ENV_KEY = "DATUMFLOW_SECRET_KEY"
KEY_FILE = "server.key"
_NONCE = 12


def _read_key(path: Path) -> bytes:
    """The key in ``path``; waits a moment if another process has created the file but not yet written it."""
    for _ in range(100):
        text = path.read_bytes().strip()
        if text:
            return base64.urlsafe_b64decode(text)
        time.sleep(0.02)
    raise DatumflowError(f"the server key file {path} is empty")


class ServerKey:
    """Encrypt/decrypt small secrets (AES-256-GCM) and sign/verify short values (HMAC-SHA256)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise InvalidArgument(f"the server key must be 32 bytes, not {len(key)}")
        self._aead = AESGCM(key)
        self._mac = hashlib.sha256(b"datumflow-sign\x00" + key).digest()

    @classmethod
    def load(cls, root: str | os.PathLike[str]) -> ServerKey:
        """The key of ``DATUMFLOW_SECRET_KEY``, else of ``<root>/server.key`` (made 0600 if missing)."""
        text = os.environ.get(ENV_KEY, "").strip()
        if text:
            try:
                return cls(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            except ValueError as exc:
                raise InvalidArgument(f"{ENV_KEY} must be 32 bytes in urlsafe base64") from exc
        path = Path(root) / KEY_FILE
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            if not isinstance(exc, FileExistsError):
                raise DatumflowError(f"cannot create the server key {path} ({exc.strerror}): "
                                     f"set {ENV_KEY} (32 bytes, urlsafe base64)") from exc
            if path.stat().st_mode & 0o077:
                raise DatumflowError(f"{path} is readable by others: chmod 600 it") from None
            return cls(_read_key(path))
        with os.fdopen(fd, "wb") as out:
            out.write(base64.urlsafe_b64encode(secrets.token_bytes(32)) + b"\n")
        return cls(_read_key(path))

    def encrypt(self, secret: str, context: str) -> bytes:
        """nonce + ciphertext of ``secret``, bound to ``context`` (e.g. its access key id)."""
        nonce = secrets.token_bytes(_NONCE)
        return nonce + self._aead.encrypt(nonce, secret.encode(), context.encode())

    def decrypt(self, blob: bytes, context: str) -> str:
        try:
            return self._aead.decrypt(bytes(blob[:_NONCE]), bytes(blob[_NONCE:]), context.encode()).decode()
        except InvalidTag as exc:
            raise DatumflowError("a stored secret does not decrypt with this server key") from exc

    def sign(self, value: str) -> str:
        """``value.signature``, for a cookie."""
        mac = hmac.new(self._mac, value.encode(), hashlib.sha256).digest()
        return value + "." + base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def unsign(self, signed: str) -> str | None:
        """The value of a ``sign`` result, or None if it was not made with this key."""
        value, _, _ = signed.rpartition(".")
        if not value or not hmac.compare_digest(self.sign(value), signed):
            return None
        return value
