"""One-statement helpers: borrow a pooled connection, run, return rows."""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool

__all__ = ["execute", "fetch_all", "fetch_one"]


async def fetch_one(pool: AsyncConnectionPool, sql: str, params: Any = None) -> dict[str, Any] | None:
    async with pool.connection() as conn:
        return await (await conn.execute(sql, params)).fetchone()  # type: ignore[arg-type]


async def fetch_all(pool: AsyncConnectionPool, sql: str, params: Any = None) -> list[dict[str, Any]]:
    async with pool.connection() as conn:
        return await (await conn.execute(sql, params)).fetchall()  # type: ignore[arg-type]


async def execute(pool: AsyncConnectionPool, sql: str, params: Any = None) -> int:
    """Run a statement; returns the number of rows it touched."""
    async with pool.connection() as conn:
        return (await conn.execute(sql, params)).rowcount  # type: ignore[arg-type]
