"""One-statement helpers: run on a connection (inside a caller's transaction) or borrow one from
the pool, and return rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

__all__ = ["Db", "execute", "fetch_all", "fetch_one"]

Db = AsyncConnectionPool | AsyncConnection
"""Where a statement runs: the pool (one borrowed connection per statement) or a connection."""


@asynccontextmanager
async def _connection(db: Db) -> AsyncIterator[AsyncConnection]:
    if isinstance(db, AsyncConnection):
        yield db
    else:
        async with db.connection() as conn:
            yield conn


async def fetch_one(db: Db, sql: str, params: Any = None) -> dict[str, Any] | None:
    async with _connection(db) as conn:
        return cast("dict[str, Any] | None", await (await conn.execute(sql, params)).fetchone())  # dict_row pools


async def fetch_all(db: Db, sql: str, params: Any = None) -> list[dict[str, Any]]:
    async with _connection(db) as conn:
        return cast("list[dict[str, Any]]", await (await conn.execute(sql, params)).fetchall())  # dict_row pools


async def execute(db: Db, sql: str, params: Any = None) -> int:
    """Run a statement; returns the number of rows it touched."""
    async with _connection(db) as conn:
        return (await conn.execute(sql, params)).rowcount
