"""PostgreSQL: the connection pool and plain-SQL migrations."""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

__all__ = ["DatabaseUnreachable", "migrate", "open_pool", "probe"]

_LOCK_ID = 0x50_49_58_46  # "PIXF": one migrator at a time


class DatabaseUnreachable(ConnectionError):
    """PostgreSQL did not answer or refused us; the message is one line naming where and why."""


def _where(url: str) -> str:
    """``host:port/dbname`` of a connection URL, never its password."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:
        return "an unparsable PIXELFLOW_DATABASE_URL"
    return f"{info.get('host', 'localhost')}:{info.get('port', 5432)}/{info.get('dbname', '')}"


def _reason(exc: psycopg.Error) -> str:
    # libpq's messages run over several lines and repeat the host; keep the cause.
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return first.rpartition(" failed: ")[2].removeprefix("FATAL:").strip()


async def probe(url: str, *, timeout: float = 1.2) -> None:
    """One connection attempt, bounded by ``timeout``. A pool retries quietly until its own
    timeout and then reports only that it timed out; an operator at a prompt wants the cause now."""
    try:
        conn = await asyncio.wait_for(psycopg.AsyncConnection.connect(url), timeout)
    except TimeoutError:
        raise DatabaseUnreachable(f"no answer from the database at {_where(url)} within {timeout:g} s") from None
    except psycopg.Error as exc:
        raise DatabaseUnreachable(f"cannot connect to the database at {_where(url)}: {_reason(exc)}") from None
    await conn.close()


async def open_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> AsyncConnectionPool:
    pool = AsyncConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        kwargs={"row_factory": dict_row, "autocommit": True},
        # Idle connections die with a database restart or failover; checking on checkout costs one
        # loopback round trip and turns "first request after a restart fails" into a reconnect.
        check=AsyncConnectionPool.check_connection,
        open=False,
    )
    await pool.open(wait=True, timeout=30)
    return pool


_MIGRATIONS = Path(__file__).with_name("migrations")


def _migrations() -> list[tuple[str, str]]:
    return sorted((f.stem, f.read_text()) for f in _MIGRATIONS.glob("*.sql"))


def _applied(conn: psycopg.Connection) -> set[str]:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations"
        " (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    return {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}


def migrate(url: str) -> list[str]:
    """Apply pending migrations in order, each in its own transaction; returns what was applied."""
    done = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_ID,))
        try:
            applied = _applied(conn)
            for name, sql in _migrations():
                if name in applied:
                    continue
                with conn.transaction():
                    conn.execute(sql)  # our own files, not user input
                    conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
                done.append(name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_ID,))
    return done
