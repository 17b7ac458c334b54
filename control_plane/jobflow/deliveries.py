"""A job's webhook deliveries: listing them, and sending the last one again."""

from __future__ import annotations

import uuid

from control_plane.auth.principal import Principal
from control_plane.deps import ApiDeps
from control_plane.jobflow.lookup import owned_job
from control_plane.problems import Conflict, RateLimited
from infra.queue import queue_webhook
from infra.repo import Delivery
from infra.telemetry import carrier

__all__ = ["job_deliveries", "redeliver_last_webhook"]


async def job_deliveries(deps: ApiDeps, principal: Principal, job_id: uuid.UUID) -> list[Delivery]:
    await owned_job(deps, principal, job_id)
    return await deps.deliveries.for_job(job_id)


async def redeliver_last_webhook(deps: ApiDeps, principal: Principal, job_id: uuid.UUID) -> Delivery:
    """Queue the job's last event again, same body and ``webhook-id``. Limited per job and per
    client (429 ``redelivery_rate_limited``); 409 ``no_delivery`` before the job has sent one."""
    await owned_job(deps, principal, job_id)
    for limiter, key in (
        (deps.redeliveries_per_job, str(job_id)),
        (deps.redeliveries_per_client, str(principal.client.id)),
    ):
        decision = await limiter.hit(key)
        if not decision.allowed:
            raise RateLimited(
                f"redeliveries are limited ({limiter.name})",
                code="redelivery_rate_limited",
                headers=decision.headers(),
            )
    delivery_id = await deps.deliveries.redeliver(job_id)
    if delivery_id is None:
        raise Conflict("the job has not sent a webhook yet", code="no_delivery")
    await queue_webhook(deps.queue, deps.settings.webhook_queue_name, delivery_id, carrier())
    delivery = await deps.deliveries.get(delivery_id)
    assert delivery is not None
    return delivery
