"""The ``send_webhook`` task: Standard Webhooks delivery with two retry layers.

- tenacity: a few quick retries inside one task run, for a blip (connection reset, 502), unless
  the receiver answered with Retry-After;
- arq deferral: the long schedule, exponential with jitter over hours, honouring Retry-After.
Every HTTP attempt is recorded. A 410 Gone disables the endpoint for the client.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import msgspec
from arq import Retry
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from data_plane.backoff import backoff_seconds
from data_plane.deps import WorkerDeps
from infra.metrics import WEBHOOK_DELIVERIES
from infra.netguard import BlockedDestination, resolve_public
from infra.outages import TRANSIENT
from infra.queue import queue_webhook
from infra.telemetry import carrier, parent, span
from infra.webhooks import signature_headers

__all__ = ["Round", "deliver", "send_webhook", "start_delivery", "sweep_deliveries"]

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


@dataclass(frozen=True, slots=True)
class Round:
    """How one round of a delivery ended; ``retry_in``: when the next round is due."""

    outcome: str
    retry_in: float | None = None


async def send_webhook(ctx: dict[str, Any], delivery_id: str, trace_headers: dict[str, str] | None = None) -> str:
    """The arq task for rounds after the first: arq's try counter is the round number."""
    with span("webhook.deliver", context=parent(trace_headers), delivery_id=delivery_id, round=ctx.get("job_try", 1)):
        result = await deliver(ctx["deps"], uuid.UUID(delivery_id), ctx.get("job_try", 1))
    if result.retry_in is not None:
        raise Retry(defer=result.retry_in)
    return result.outcome


def start_delivery(deps: WorkerDeps, delivery_id: uuid.UUID) -> None:
    """Make the first round right away from this event loop (no queue hop: lower latency); later
    rounds go through the webhook queue. If this process dies first, the delivery row is
    committed and the sweeper queues it."""
    task = asyncio.create_task(_first_round(deps, delivery_id, carrier()))
    _IN_FLIGHT.add(task)
    task.add_done_callback(_IN_FLIGHT.discard)


_IN_FLIGHT: set[asyncio.Task[None]] = set()  # strong references, so pending sends are not collected


async def _first_round(deps: WorkerDeps, delivery_id: uuid.UUID, trace_headers: dict[str, str]) -> None:
    settings = deps.settings
    try:
        with span("webhook.deliver", delivery_id=str(delivery_id), round=1):
            result = await deliver(deps, delivery_id, 1)
        if result.retry_in is None:
            return
        defer, round_no = result.retry_in, 2
    except Exception:
        log.warning(
            "inline webhook attempt failed; queueing it", extra={"delivery_id": str(delivery_id)}, exc_info=True
        )
        defer, round_no = None, 1
    try:
        await queue_webhook(
            deps.queue, settings.webhook_queue_name, delivery_id, trace_headers, defer_by=defer, round_no=round_no
        )
    except TRANSIENT:
        log.warning("webhook enqueue failed; the sweeper will retry", extra={"delivery_id": str(delivery_id)})


async def deliver(deps: WorkerDeps, delivery_id: uuid.UUID, round_no: int) -> Round:
    """One round of a delivery: up to three quick HTTP attempts. Plain function: the first round
    runs inline from the worker that finished the job, later ones from the arq task."""
    settings = deps.settings
    delivery = await deps.deliveries.get(delivery_id)
    if delivery is None or delivery.status != "pending":
        return Round("skipped")
    if await deps.deliveries.endpoint_disabled(delivery.client_id, delivery.url):
        await deps.deliveries.mark_failed(delivery.id, "the endpoint answered 410 Gone earlier and is disabled")
        return Round("disabled")
    try:
        await resolve_public(delivery.url, allow_private=settings.webhook_allow_private)
    except BlockedDestination as exc:
        await deps.deliveries.record_attempt(
            delivery.id, response_status=None, error=str(exc), duration_ms=0, sent=False
        )
        await deps.deliveries.mark_failed(delivery.id, str(exc))
        return Round("blocked")

    body = msgspec.json.encode(delivery.payload)
    secrets = await deps.clients.active_secrets(delivery.client_id)

    async def attempt() -> None:
        with span("webhook.attempt", url=delivery.url) as s:
            headers = signature_headers(secrets, str(delivery.message_id), int(time.time()), body) | carrier()
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
        log.info("webhook attempt", extra={"delivery_id": str(delivery_id), "status": status, "duration_ms": duration})
        if status == 410:
            raise _Gone
        if error is not None:
            raise _RetryableResponse(error, retry_after)

    last: _RetryableResponse | None = None
    try:
        async for quick in AsyncRetrying(
            # A receiver that says when to come back (Retry-After) ends the round: the long
            # schedule waits at least that long, where quick retries would knock again in ~1 s.
            retry=retry_if_exception(lambda e: isinstance(e, _RetryableResponse) and e.retry_after is None),
            wait=wait_exponential_jitter(multiplier=0.2, max=2.0),
            stop=stop_after_attempt(3),
            reraise=True,
        ):
            with quick:
                await attempt()
    except _Gone:
        await deps.deliveries.disable_endpoint(delivery.client_id, delivery.url)
        await deps.deliveries.mark_failed(delivery.id, "the receiver answered 410 Gone; endpoint disabled")
        return Round("gone")
    except _RetryableResponse as exc:
        last = exc
    if last is None:
        await deps.deliveries.mark_delivered(delivery.id)
        return Round("delivered")

    if round_no >= settings.webhook_max_attempts:
        await deps.deliveries.mark_failed(delivery.id, f"gave up after {round_no} rounds: {last}")
        return Round("failed")
    delay = backoff_seconds(
        round_no, base=settings.webhook_backoff_base_seconds, cap=settings.webhook_backoff_max_seconds
    )
    if last.retry_after is not None:
        delay = min(settings.webhook_backoff_max_seconds, max(delay, last.retry_after))
    await deps.deliveries.schedule(delivery.id, datetime.now(UTC) + timedelta(seconds=delay))
    return Round("retrying", delay)


async def sweep_deliveries(ctx: dict[str, Any]) -> int:
    """Re-queue pending deliveries whose queue entry was lost (Redis flushed, enqueue failed)."""
    deps: WorkerDeps = ctx["deps"]
    # Past due by longer than one round can take (three attempts, their timeouts, the pauses
    # between them): its worker died before sending, e.g. SIGKILLed right after the job ended.
    grace = 3 * deps.settings.webhook_timeout_seconds + 10.0
    queued = 0
    for delivery_id in await deps.deliveries.overdue(grace_seconds=grace):
        queued += await queue_webhook(deps.queue, deps.settings.webhook_queue_name, delivery_id)
    return queued
