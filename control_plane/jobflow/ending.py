"""Ending a job: canceling one that has not finished, deleting one that has, with everything
stored for it."""

from __future__ import annotations

import uuid

from control_plane.auth.principal import Principal
from control_plane.deps import ApiDeps
from control_plane.jobflow.lookup import owned_job
from control_plane.problems import Conflict, NotFound
from infra.events import job_delivery
from infra.lifecycle import ACTIVE, TERMINAL, JobStatus
from infra.objects import discard_originals, erase_job_objects
from infra.queue import announce_cancel, queue_webhook
from infra.repo import Ending, Job
from infra.telemetry import carrier

__all__ = ["cancel_job", "delete_finished_job"]


async def cancel_job(deps: ApiDeps, principal: Principal, job_id: uuid.UUID) -> Job:
    """End a job that has not finished as ``canceled``: a running engine is told to stop, the
    ``job.canceled`` webhook is queued and the original deleted. 409 ``job_<status>`` for a job
    that already ended. Returns the job as it is now."""
    job = await owned_job(deps, principal, job_id)
    if job.status in TERMINAL:
        raise Conflict(f"the job already {job.status}", code=f"job_{job.status}")
    delivery = await job_delivery(deps.deliveries, job, deps.store, status=JobStatus.CANCELED)
    recorded = await deps.jobs.cancel(job_id, principal.client.id, delivery)
    if recorded.kind is Ending.TOO_LATE:  # it finished meanwhile
        job = await owned_job(deps, principal, job_id)
        raise Conflict(f"the job already {job.status}", code=f"job_{job.status}")
    settings = deps.settings
    if job.status in ACTIVE:  # a worker may have claimed it since we read it
        await announce_cancel(deps.queue, settings.queue_name, job_id)
    if recorded.delivery is not None:
        await queue_webhook(deps.queue, settings.webhook_queue_name, recorded.delivery, carrier())
    await discard_originals(deps.store, job.client_id, job.id)
    return await owned_job(deps, principal, job_id)


async def delete_finished_job(deps: ApiDeps, principal: Principal, job_id: uuid.UUID) -> None:
    """Delete a finished job's objects (first: a storage failure keeps the job, and repeating the
    request finishes it), then its rows but the audit record. 409 ``job_<status>`` for a job that
    has not finished."""
    job = await owned_job(deps, principal, job_id)
    if job.status not in TERMINAL:
        raise Conflict(f"the job is {job.status}; cancel it before deleting it", code=f"job_{job.status}")
    keys = [v.object_key for v in job.variants]
    await erase_job_objects(deps.store, job.client_id, job.id, keys)
    if not await deps.jobs.erase(job_id, principal.client.id):
        raise NotFound("no such job")  # deleted by a concurrent request
