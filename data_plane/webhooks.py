"""The ``send_webhook`` task: Standard Webhooks delivery with two retry layers.

- tenacity: a few quick retries inside one task run, for a blip (connection reset, 502);
- arq deferral: the long schedule, exponential with jitter over hours, honouring Retry-After.
Every HTTP attempt is recorded. A 410 Gone disables the endpoint for the client.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import msgspec
from arq import Retry
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

from data_plane.backoff import backoff_seconds
from data_plane.deps import WorkerDeps
from infra.metrics import WEBHOOK_DELIVERIES
from infra.netguard import BlockedDestination, resolve_public
from infra.telemetry import carrier, parent, span
from infra.webhooks import signature_headers

__all__ = ["send_webhook", "sweep_deliveries"]

log = logging.getLogger("pixelflow.webhooks")


class _RetryableResponse(Exception):
    def __init__(self, error: str, retry_after: float | None) -> None:
        super().__init__(error)
        self.retry_after = retry_after


class _Gone(Exception):
    pass


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


async def send_webhook(ctx: dict[str, Any], delivery_id: str, trace_headers: dict[str, str] | None = None) -> str:
    with span("webhook.deliver", context=parent(trace_headers), delivery_id=delivery_id, round=ctx.get("job_try", 1)):
        return await _deliver(ctx, delivery_id)


async def _deliver(ctx: dict[str, Any], delivery_id: str) -> str:
    deps: WorkerDeps = ctx["deps"]
    settings = deps.settings
    delivery = await deps.deliveries.get(uuid.UUID(delivery_id))
    if delivery is None or delivery.status != "pending":
        return "skipped"
    if await deps.deliveries.endpoint_disabled(delivery.client_id, delivery.url):
        await deps.deliveries.mark_failed(delivery.id, "the endpoint answered 410 Gone earlier and is disabled")
        return "disabled"
    try:
        await resolve_public(delivery.url, allow_private=settings.webhook_allow_private)
    except BlockedDestination as exc:
        await deps.deliveries.record_attempt(delivery.id, response_status=None, error=str(exc), duration_ms=0)
        await deps.deliveries.mark_failed(delivery.id, str(exc))
        return "blocked"

    body = msgspec.json.encode(delivery.payload)
    secrets = await deps.clients.active_secrets(delivery.client_id)

    async def attempt() -> None:
        with span("webhook.attempt", url=delivery.url) as s:
            headers = signature_headers(secrets, str(delivery.id), int(time.time()), body) | carrier()
            started = time.perf_counter()
            status: int | None = None
            error: str | None = None
            retry_after: float | None = None
            try:
                response = await deps.http.post(delivery.url, content=body, headers=headers)
                status = response.status_code
                retry_after = _retry_after(response.headers.get("retry-after"))
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: the receiver could not be reached"
            duration = int((time.perf_counter() - started) * 1000)
            if status is not None and not 200 <= status < 300:
                error = f"receiver answered {status}"
            s.set_attribute("http.response.status_code", status or 0)
            WEBHOOK_DELIVERIES.labels(
                "delivered" if error is None else "unreachable" if status is None else f"http_{status // 100}xx"
            ).inc()
        await deps.deliveries.record_attempt(delivery.id, response_status=status, error=error, duration_ms=duration)
        log.info("webhook attempt", extra={"delivery_id": delivery_id, "status": status, "duration_ms": duration})
        if status == 410:
            raise _Gone
        if error is not None:
            raise _RetryableResponse(error, retry_after)

    last: _RetryableResponse | None = None
    try:
        async for quick in AsyncRetrying(
            retry=retry_if_exception_type(_RetryableResponse),
            wait=wait_exponential_jitter(multiplier=0.2, max=2.0),
            stop=stop_after_attempt(3),
            reraise=True,
        ):
            with quick:
                await attempt()
    except _Gone:
        await deps.deliveries.disable_endpoint(delivery.client_id, delivery.url)
        await deps.deliveries.mark_failed(delivery.id, "the receiver answered 410 Gone; endpoint disabled")
        return "gone"
    except _RetryableResponse as exc:
        last = exc
    if last is None:
        await deps.deliveries.mark_delivered(delivery.id)
        return "delivered"

    run = ctx.get("job_try", 1)
    if run >= settings.webhook_max_attempts:
        await deps.deliveries.mark_failed(delivery.id, f"gave up after {run} rounds: {last}")
        return "failed"
    delay = backoff_seconds(run, base=settings.webhook_backoff_base_seconds, cap=settings.webhook_backoff_max_seconds)
    if last.retry_after is not None:
        delay = min(settings.webhook_backoff_max_seconds, max(delay, last.retry_after))
    await deps.deliveries.schedule(delivery.id, datetime.now(UTC) + timedelta(seconds=delay))
    raise Retry(defer=delay)


async def sweep_deliveries(ctx: dict[str, Any]) -> int:
    """Re-queue pending deliveries whose queue entry was lost (Redis flushed, enqueue failed)."""
    from infra.queue import SEND_WEBHOOK, enqueue

    deps: WorkerDeps = ctx["deps"]
    grace = max(120.0, deps.settings.webhook_backoff_base_seconds * 4)
    queued = 0
    for delivery_id in await deps.deliveries.overdue(grace_seconds=grace):
        queued += await enqueue(deps.queue, SEND_WEBHOOK, str(delivery_id), queue_name=deps.settings.webhook_queue_name)
    return queued
