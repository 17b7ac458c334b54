"""A client's URL signing keys (infra/signing.py): created, listed, retired, looked up by id."""

from __future__ import annotations

import uuid
from datetime import datetime

import msgspec
from psycopg_pool import AsyncConnectionPool

from infra.repo._sql import execute, fetch_all, fetch_one
from infra.signing import new_signing_key

__all__ = ["SigningKey", "SigningKeyRepo"]


class SigningKey(msgspec.Struct, frozen=True):
    id: str  # the key id URLs carry
    client_id: uuid.UUID
    created_at: datetime
    retired_at: datetime | None


class SigningKeyRepo:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def create(self, client_id: uuid.UUID) -> tuple[SigningKey, str]:
        """A new key and its secret (shown once by the CLI; kept to verify signatures)."""
        kid, secret = new_signing_key()
        row = await fetch_one(
            self.pool,
            "INSERT INTO signing_keys (id, client_id, secret) VALUES (%s, %s, %s)"
            " RETURNING id, client_id, created_at, retired_at",
            (kid, client_id, secret),
        )
        assert row is not None
        return SigningKey(**row), secret

    async def of_client(self, client_id: uuid.UUID) -> list[SigningKey]:
        rows = await fetch_all(
            self.pool,
            "SELECT id, client_id, created_at, retired_at FROM signing_keys WHERE client_id = %s ORDER BY created_at",
            (client_id,),
        )
        return [SigningKey(**r) for r in rows]

    async def retire(self, client_id: uuid.UUID, kid: str) -> bool:
        """False unless the key is the client's and was live."""
        changed = await execute(
            self.pool,
            "UPDATE signing_keys SET retired_at = now() WHERE id = %s AND client_id = %s AND retired_at IS NULL",
            (kid, client_id),
        )
        return changed == 1

    async def live(self, kid: str) -> tuple[uuid.UUID, str] | None:
        """The client and secret of a live key; None for an unknown or retired one."""
        row = await fetch_one(
            self.pool, "SELECT client_id, secret FROM signing_keys WHERE id = %s AND retired_at IS NULL", (kid,)
        )
        return (row["client_id"], row["secret"]) if row else None
