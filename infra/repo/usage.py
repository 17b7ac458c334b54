"""What a client used, per UTC day: jobs created, source megapixels read, output bytes written."""

from __future__ import annotations

import uuid
from datetime import date

import msgspec
from psycopg_pool import AsyncConnectionPool

from infra.repo._sql import fetch_all

__all__ = ["UsageDay", "usage_by_day"]


class UsageDay(msgspec.Struct, frozen=True):
    day: date
    jobs: int
    succeeded: int
    failed: int
    source_megapixels: float
    output_bytes: int


async def usage_by_day(pool: AsyncConnectionPool, client_id: uuid.UUID, *, days: int) -> list[UsageDay]:
    """The last ``days`` days with any job, newest first."""
    rows = await fetch_all(
        pool,
        "SELECT (j.created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS jobs,"
        " count(*) FILTER (WHERE j.status = 'succeeded') AS succeeded,"
        " count(*) FILTER (WHERE j.status = 'failed') AS failed,"
        " round(coalesce(sum(j.source_width::bigint * j.source_height) / 1e6, 0)::numeric, 2)::float8"
        " AS source_megapixels,"
        " coalesce(sum((SELECT sum(v.bytes) FROM variants v WHERE v.job_id = j.id)), 0)::bigint AS output_bytes"
        " FROM jobs j WHERE j.client_id = %s AND j.created_at >= (now() AT TIME ZONE 'UTC')::date - %s"
        " GROUP BY 1 ORDER BY 1 DESC",
        (client_id, days - 1),
    )
    return [UsageDay(**r) for r in rows]
