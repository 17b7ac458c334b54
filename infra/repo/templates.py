"""Versioned templates: rows are only ever added, so a version, once made, never changes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import msgspec
from psycopg import errors
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from infra.repo._sql import fetch_all, fetch_one

__all__ = ["TemplateRepo", "TemplateSummary", "TemplateVersion"]


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


_COLUMNS = "name, version, spec, parameters, created_at"


class TemplateRepo:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def put(
        self, client_id: uuid.UUID, name: str, spec: dict[str, Any], parameters: dict[str, Any]
    ) -> tuple[TemplateVersion, bool]:
        """A new version after the latest; the latest itself (and False) when it already says the same."""
        for _ in range(5):  # two writers racing for the same next version: the loser tries again
            latest = await self.get(client_id, name)
            if latest is not None and latest.spec == spec and latest.parameters == parameters:
                return latest, False
            version = latest.version + 1 if latest else 1
            try:
                row = await fetch_one(
                    self.pool,
                    "INSERT INTO templates (client_id, name, version, spec, parameters) VALUES (%s, %s, %s, %s, %s)"
                    f" RETURNING {_COLUMNS}",
                    (client_id, name, version, Jsonb(spec), Jsonb(parameters)),
                )
            except errors.UniqueViolation:
                continue
            assert row is not None
            return TemplateVersion(**row), True
        raise RuntimeError(f"template {name!r}: too many concurrent writers")

    async def get(self, client_id: uuid.UUID, name: str, version: int | None = None) -> TemplateVersion | None:
        """That version, or the latest when ``version`` is None."""
        row = await fetch_one(
            self.pool,
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
