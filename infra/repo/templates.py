"""Versioned templates: rows are only ever added, so a version, once made, never changes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from infra.repo._sql import Db, fetch_all, fetch_one

__all__ = ["SavedVersion", "TemplateRepo", "TemplateSummary", "TemplateVersion"]


class TemplateVersion(msgspec.Struct, frozen=True):
    name: str
    version: int
    spec: dict[str, Any]
    parameters: dict[str, Any]
    created_at: datetime


class TemplateSummary(msgspec.Struct, frozen=True):
    name: str
    latest_version: int
    created_at: datetime  # of version 1
    updated_at: datetime  # of the latest version


class SavedVersion(msgspec.Struct, frozen=True):
    """What ``put`` stored: the version, and whether this call made it (``new``) or found the
    latest one already saying the same."""

    version: TemplateVersion
    new: bool


_COLUMNS = "name, version, spec, parameters, created_at"


class TemplateRepo:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def put(
        self, client_id: uuid.UUID, name: str, spec: dict[str, Any], parameters: dict[str, Any]
    ) -> SavedVersion:
        """A new version after the latest; the latest itself (not ``new``) when it already says the same.

        Saves of one name take turns (a transaction-scoped advisory lock on the client and name):
        each reads the latest version the one before it wrote, so any number of concurrent saves
        get consecutive versions. Retrying on the primary key's unique violation gave up after a
        few losses (a 500 with eight at once)."""
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"templates/{client_id}/{name}",)
            )
            latest = await self._latest(conn, client_id, name)
            if latest is not None and latest.spec == spec and latest.parameters == parameters:
                return SavedVersion(latest, new=False)
            row = await fetch_one(
                conn,
                "INSERT INTO templates (client_id, name, version, spec, parameters) VALUES (%s, %s, %s, %s, %s)"
                f" RETURNING {_COLUMNS}",
                (client_id, name, latest.version + 1 if latest else 1, Jsonb(spec), Jsonb(parameters)),
            )
            assert row is not None
            return SavedVersion(TemplateVersion(**row), new=True)

    async def get(self, client_id: uuid.UUID, name: str, version: int | None = None) -> TemplateVersion | None:
        """That version, or the latest when ``version`` is None."""
        return await self._latest(self.pool, client_id, name, version)

    @staticmethod
    async def _latest(db: Db, client_id: uuid.UUID, name: str, version: int | None = None) -> TemplateVersion | None:
        row = await fetch_one(
            db,
            f"SELECT {_COLUMNS} FROM templates WHERE client_id = %(client)s AND name = %(name)s"
            " AND (%(version)s::integer IS NULL OR version = %(version)s) ORDER BY version DESC LIMIT 1",
            {"client": client_id, "name": name, "version": version},
        )
        return TemplateVersion(**row) if row else None

    async def versions(self, client_id: uuid.UUID, name: str) -> list[TemplateVersion]:
        """Newest first."""
        rows = await fetch_all(
            self.pool,
            f"SELECT {_COLUMNS} FROM templates WHERE client_id = %s AND name = %s ORDER BY version DESC",
            (client_id, name),
        )
        return [TemplateVersion(**r) for r in rows]

    async def list(self, client_id: uuid.UUID) -> list[TemplateSummary]:
        rows = await fetch_all(
            self.pool,
            "SELECT name, max(version) AS latest_version, min(created_at) AS created_at,"
            " max(created_at) AS updated_at FROM templates WHERE client_id = %s GROUP BY name ORDER BY name",
            (client_id,),
        )
        return [TemplateSummary(**r) for r in rows]
