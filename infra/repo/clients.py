from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from psycopg_pool import AsyncConnectionPool

from infra.keys import check_grant, hash_key, held_scopes, new_key
from infra.policy import POLICY_FIELDS, ClientPolicy
from infra.repo._sql import execute, fetch_all, fetch_one
from infra.webhooks import new_secret

__all__ = ["ApiKey", "Client", "ClientRepo", "Grant"]


class Client(msgspec.Struct, frozen=True):
    id: uuid.UUID
    name: str


class ApiKey(msgspec.Struct, frozen=True):
    id: uuid.UUID
    client_id: uuid.UUID
    client_name: str
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    scopes: tuple[str, ...] | None = None  # None: full access
    presets_only: bool = False  # may create jobs from templates only
    rate_limit_per_minute: int | None = None  # the key's own job-creation limit, under its client's


class Grant(msgspec.Struct, frozen=True):
    """What an authenticated key may do (infra.keys.held_scopes; None: everything)."""

    client: Client
    key_id: uuid.UUID
    scopes: frozenset[str] | None
    presets_only: bool
    rate_limit_per_minute: int | None = None


_KEY_COLUMNS = (
    "k.id, k.client_id, c.name AS client_name, k.name, k.prefix, k.created_at, k.revoked_at, k.scopes, k.presets_only,"
    " k.rate_limit_per_minute"
)


class ClientRepo:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def create(self, name: str) -> tuple[Client, str]:
        """A new client and its first webhook secret."""
        client = Client(uuid.uuid4(), name)
        secret = new_secret()
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute("INSERT INTO clients (id, name) VALUES (%s, %s)", (client.id, name))
            await conn.execute(
                "INSERT INTO webhook_secrets (id, client_id, secret) VALUES (%s, %s, %s)",
                (uuid.uuid4(), client.id, secret),
            )
        return client, secret

    async def delete(self, client_id: uuid.UUID) -> None:
        """Only for a client that was never used (a sign-up that lost a race); deletes its rows too."""
        await execute(self.pool, "DELETE FROM clients WHERE id = %s", (client_id,))

    async def by_name(self, name: str) -> Client | None:
        row = await fetch_one(self.pool, "SELECT id, name FROM clients WHERE name = %s", (name,))
        return Client(**row) if row else None

    async def rotate_secret(self, client_id: uuid.UUID, *, grace_hours: float = 24) -> str:
        """Add a new secret; the current ones stay valid for ``grace_hours`` while receivers switch."""
        secret = new_secret()
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "UPDATE webhook_secrets SET expires_at = now() + make_interval(secs => %s)"
                " WHERE client_id = %s AND (expires_at IS NULL OR expires_at > now() + make_interval(secs => %s))",
                (grace_hours * 3600, client_id, grace_hours * 3600),
            )
            await conn.execute(
                "INSERT INTO webhook_secrets (id, client_id, secret) VALUES (%s, %s, %s)",
                (uuid.uuid4(), client_id, secret),
            )
        return secret

    async def active_secrets(self, client_id: uuid.UUID) -> list[str]:
        rows = await fetch_all(
            self.pool,
            "SELECT secret FROM webhook_secrets WHERE client_id = %s AND (expires_at IS NULL OR expires_at > now())"
            " ORDER BY created_at DESC",
            (client_id,),
        )
        return [r["secret"] for r in rows]

    async def create_key(
        self,
        client_id: uuid.UUID,
        name: str = "",
        *,
        scopes: tuple[str, ...] | None = None,
        presets_only: bool = False,
        rate_limit_per_minute: int | None = None,
    ) -> tuple[ApiKey, str]:
        """``scopes`` None: full access; otherwise only those of ``infra.keys.SCOPES``. ValueError
        for what a key may not have (infra.keys.check_grant)."""
        check_grant(scopes, presets_only, rate_limit_per_minute)
        key, prefix = new_key()
        row = await fetch_one(
            self.pool,
            "WITH k AS (INSERT INTO api_keys (id, client_id, name, prefix, key_hash, scopes, presets_only,"
            f" rate_limit_per_minute) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING *) SELECT {_KEY_COLUMNS}"
            " FROM k JOIN clients c ON c.id = k.client_id",
            (uuid.uuid4(), client_id, name, prefix, hash_key(key), list(scopes) if scopes is not None else None,
             presets_only, rate_limit_per_minute),
        )  # fmt: skip
        assert row is not None
        return _api_key(row), key

    async def list_keys(self, client_id: uuid.UUID | None = None) -> list[ApiKey]:
        rows = await fetch_all(
            self.pool,
            f"SELECT {_KEY_COLUMNS} FROM api_keys k JOIN clients c ON c.id = k.client_id"
            " WHERE %(client)s::uuid IS NULL OR k.client_id = %(client)s ORDER BY k.created_at",
            {"client": client_id},
        )
        return [_api_key(r) for r in rows]

    async def revoke_key(self, key_id: uuid.UUID, client_id: uuid.UUID | None = None) -> bool:
        """``client_id``: only that client's key (the dashboard); None: any (the admin CLI)."""
        changed = await execute(
            self.pool,
            "UPDATE api_keys SET revoked_at = now() WHERE id = %(id)s AND revoked_at IS NULL"
            " AND (%(client)s::uuid IS NULL OR client_id = %(client)s)",
            {"id": key_id, "client": client_id},
        )
        return changed == 1

    async def policy(self, client_id: uuid.UUID) -> ClientPolicy:
        """The client's overrides of the global limits (none: every field None)."""
        row = await fetch_one(
            self.pool, f"SELECT {', '.join(POLICY_FIELDS)} FROM client_policies WHERE client_id = %s", (client_id,)
        )
        return ClientPolicy(**row) if row else ClientPolicy()

    async def set_policy(self, client_id: uuid.UUID, policy: ClientPolicy) -> None:
        """Replace the client's overrides (all None: back to the global limits)."""
        values = [getattr(policy, name) for name in POLICY_FIELDS]
        columns = ", ".join(POLICY_FIELDS)
        updates = ", ".join(f"{name} = excluded.{name}" for name in POLICY_FIELDS)
        await execute(
            self.pool,
            f"INSERT INTO client_policies (client_id, {columns}) VALUES (%s{', %s' * len(values)})"
            f" ON CONFLICT (client_id) DO UPDATE SET {updates}, updated_at = now()",
            (client_id, *values),
        )

    async def authenticate(self, key: str) -> Grant | None:
        """What a live key may do, or None."""
        row = await fetch_one(
            self.pool,
            "SELECT c.id, c.name, k.id AS key_id, k.scopes, k.presets_only, k.rate_limit_per_minute FROM api_keys k"
            " JOIN clients c ON c.id = k.client_id WHERE k.key_hash = %s AND k.revoked_at IS NULL",
            (hash_key(key),),
        )
        if row is None:
            return None
        return Grant(
            Client(row["id"], row["name"]), row["key_id"], held_scopes(row["scopes"], row["presets_only"]),
            row["presets_only"], row["rate_limit_per_minute"],
        )  # fmt: skip


def _api_key(row: dict[str, Any]) -> ApiKey:
    scopes = row.pop("scopes")
    return ApiKey(**row, scopes=tuple(scopes) if scopes is not None else None)
