"""S3 key pairs over HTTP: a user creates, lists and revokes its own; an admin anyone's.

``POST /users/{user}/s3-keys`` answers the new pair, its secret shown this
once; ``GET`` lists the access key ids (never a secret); ``DELETE
…/s3-keys/{key_id}`` revokes one. The CLI's ``datumflow auth s3-key
create|list|revoke USER`` does the same on the store's database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from datumflow.storage_service.errors import Forbidden
from datumflow.storage_service.service.auth import Auth, Principal
from datumflow.storage_service.service.s3.keys import keys_of
from datumflow.storage_service.store.store import Store
from fastapi import APIRouter, Depends, Response

__all__ = ["build_router"]


def build_router(store: Store, principal: Callable[..., Principal]) -> APIRouter:
    api = APIRouter(tags=["auth"])

    def self_or_admin(user: str, who: Principal = Depends(principal)) -> str:
        if not (who.admin or who.name == user):
            raise Forbidden(f"user {who.name} may manage only its own S3 keys")
        Auth(store.engine).require_user(user)
        return user

    @api.post("/users/{user}/s3-keys", status_code=201)
    def create_key(user: str = Depends(self_or_admin)) -> dict[str, Any]:
        """A new access key id and secret for ``user``; the secret is shown only in this answer."""
        return keys_of(store).create(user).to_dict()

    @api.get("/users/{user}/s3-keys")
    def list_keys(user: str = Depends(self_or_admin)) -> list[dict[str, Any]]:
        return [k.to_dict() for k in keys_of(store).list(user)]

    @api.delete("/users/{user}/s3-keys/{key_id}", status_code=204)
    def revoke_key(key_id: str, user: str = Depends(self_or_admin)) -> Response:
        keys_of(store).revoke(user, key_id)
        return Response(status_code=204)

    return api
