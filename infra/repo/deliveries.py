from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

import msgspec
from psycopg_pool import AsyncConnectionPool

from infra.repo._sql import execute, fetch_all, fetch_one
from infra.repo.usage import count_attempt

__all__ = ["Attempt", "Delivery", "DeliveryRepo"]


class Attempt(msgspec.Struct, frozen=True):
    attempt: int
    at: datetime
    response_status: int | None
    error: str | None
    duration_ms: int


class Delivery(msgspec.Struct, frozen=True):
    id: uuid.UUID
    message_id: uuid.UUID  # sent as webhook-id: the same for every sending of one event
    job_id: uuid.UUID
    client_id: uuid.UUID
    event: str
    url: str
    payload: dict[str, Any]
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    history: tuple[Attempt, ...] = ()


_SELECT = (
    "SELECT d.id, d.message_id, d.job_id, j.client_id, d.event, d.url, d.payload, d.status, d.attempts, d.last_error,"
    " d.next_attempt_at, d.created_at, d.delivered_at FROM webhook_deliveries d JOIN jobs j ON j.id = d.job_id"
)


class DeliveryRepo:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def get(self, delivery_id: uuid.UUID) -> Delivery | None:
        row = await fetch_one(self.pool, f"{_SELECT} WHERE d.id = %s", (delivery_id,))
        return Delivery(**row) if row else None

    async def for_job(self, job_id: uuid.UUID) -> list[Delivery]:
        async with self.pool.connection() as conn:
            rows = await fetch_all(conn, f"{_SELECT} WHERE d.job_id = %s ORDER BY d.created_at", (job_id,))
            attempts = await fetch_all(
                conn,
                "SELECT a.delivery_id, a.attempt, a.at, a.response_status, a.error, a.duration_ms"
                " FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id"
                " WHERE d.job_id = %s ORDER BY a.attempt",
                (job_id,),
            )
        by_delivery: dict[uuid.UUID, list[Attempt]] = {}
        for a in attempts:
            by_delivery.setdefault(a.pop("delivery_id"), []).append(Attempt(**a))
        return [Delivery(**r, history=tuple(by_delivery.get(r["id"], ()))) for r in rows]

    async def record_attempt(
        self,
        delivery_id: uuid.UUID,
        *,
        response_status: int | None,
        error: str | None,
        duration_ms: int,
        sent: bool = True,
    ) -> int:
        """Log one attempt; returns its number. One that ``sent`` an HTTP request is counted in
        the client's usage (a destination refused by the SSRF guard is logged, not counted)."""
        async with self.pool.connection() as conn, conn.transaction():
            row = await fetch_one(
                conn,
                "UPDATE webhook_deliveries SET attempts = attempts + 1, last_error = %s WHERE id = %s RETURNING attempts",
                (error, delivery_id),
            )
            assert row is not None
            await conn.execute(
                "INSERT INTO webhook_attempts (delivery_id, attempt, response_status, error, duration_ms)"
                " VALUES (%s, %s, %s, %s, %s)",
                (delivery_id, row["attempts"], response_status, error, duration_ms),
            )
            if sent:
                delivered = error is None and response_status is not None and 200 <= response_status < 300
                await count_attempt(conn, delivery_id, delivered=delivered)
        return row["attempts"]

    async def mark_delivered(self, delivery_id: uuid.UUID) -> None:
        await execute(
            self.pool,
            "UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(), next_attempt_at = NULL,"
            " last_error = NULL WHERE id = %s",
            (delivery_id,),
        )

    async def mark_failed(self, delivery_id: uuid.UUID, error: str) -> None:
        await execute(
            self.pool,
            "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, last_error = %s WHERE id = %s",
            (error, delivery_id),
        )

    async def schedule(self, delivery_id: uuid.UUID, at: datetime) -> None:
        await execute(self.pool, "UPDATE webhook_deliveries SET next_attempt_at = %s WHERE id = %s", (at, delivery_id))

    async def overdue(self, *, grace_seconds: float, limit: int = 100) -> list[uuid.UUID]:
        """Pending deliveries whose attempt is well past due: their queue entry was lost."""
        rows = await fetch_all(
            self.pool,
            "SELECT id FROM webhook_deliveries WHERE status = 'pending'"
            " AND next_attempt_at < now() - make_interval(secs => %s) ORDER BY next_attempt_at LIMIT %s",
            (grace_seconds, limit),
        )
        return [r["id"] for r in rows]

    async def redeliver(self, job_id: uuid.UUID) -> uuid.UUID | None:
        """A new pending delivery repeating the job's latest event under the same ``webhook-id``
        (Standard Webhooks: the id names the message, so receivers deduplicate on it), or None if
        the job never had one."""
        new_id = uuid.uuid4()
        row = await fetch_one(
            self.pool,
            "INSERT INTO webhook_deliveries (id, message_id, job_id, event, url, payload, status, next_attempt_at)"
            " SELECT %s, message_id, job_id, event, url, payload, 'pending', now() FROM webhook_deliveries"
            " WHERE job_id = %s ORDER BY created_at DESC LIMIT 1 RETURNING id",
            (new_id, job_id),
        )
        return row["id"] if row else None

    async def disable_endpoint(self, client_id: uuid.UUID, url: str) -> None:
        await execute(
            self.pool,
            "INSERT INTO disabled_endpoints (client_id, url) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (client_id, url),
        )

    async def endpoint_disabled(self, client_id: uuid.UUID, url: str) -> bool:
        row = await fetch_one(
            self.pool, "SELECT 1 FROM disabled_endpoints WHERE client_id = %s AND url = %s", (client_id, url)
        )
        return row is not None
