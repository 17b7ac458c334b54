"""The job sweeper, run by every worker on a cron (arq makes one run per tick):

- a ``processing`` job whose lease lapsed lost its worker (SIGKILL, a lost host, a database
  partition longer than the lease): it is handed to a new run, or after ``job_max_tries`` runs
  ends ``failed``/``worker_lost`` with its webhook;
- a ``queued`` job untouched for a while may have lost its queue entry (Redis restarted
  without persistence): its message is sent again, a no-op if arq still has it.
"""

from __future__ import annotations

import logging
from typing import Any

from data_plane.deps import WorkerDeps
from data_plane.processing import fail_job, hand_back
from infra.lifecycle import Reason
from infra.metrics import ENGINE_MEMORY, QUEUE_DEPTH
from infra.queue import dispatch_job, interactive_ticket

__all__ = ["sweep_jobs"]

log = logging.getLogger("pixelflow.worker")


async def sweep_jobs(ctx: dict[str, Any]) -> int:
    deps: WorkerDeps = ctx["deps"]
    await _update_gauges(deps)
    settings = deps.settings
    swept = 0
    for job in await deps.jobs.lapsed(settings.queue_name):
        if job.attempts >= settings.job_max_tries:
            message = f"the worker running this job stopped responding {job.attempts} times"
            outcome = await fail_job(deps, job, job.dispatch, Reason.WORKER_LOST, message)
            log.error("job failed: worker lost", extra={"job_id": str(job.id), "attempts": job.attempts})
            swept += outcome.status == "failed"
        elif await hand_back(deps, job, job.dispatch, job.trace_context):
            log.warning("job's lease lapsed; re-queued", extra={"job_id": str(job.id), "attempts": job.attempts})
            swept += 1
    for job in await deps.jobs.stalled(settings.queue_name, older_than_seconds=2 * settings.sweep_interval_seconds):
        interactive = interactive_ticket(settings.interactive_slots, job.priority)
        if job.dispatch is not None and await dispatch_job(
            deps.queue, job.id, job.dispatch, job.trace_context, interactive=interactive
        ):
            log.warning("queued job had no queue entry; re-sent", extra={"job_id": str(job.id)})
            swept += 1
    return swept


async def _update_gauges(deps: WorkerDeps) -> None:
    for name in (deps.settings.queue_name, deps.settings.webhook_queue_name):
        QUEUE_DEPTH.labels(name).set(await deps.queue.zcard(name))
    for slot, rss in enumerate(deps.engines.memory()):
        ENGINE_MEMORY.labels(str(slot)).set(rss)
