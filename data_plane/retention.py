"""The retention sweeper, run by every worker on a cron: deletes the originals and variants of
finished jobs past their client's retention (``PIXELFLOW_RETAIN_ORIGINALS_DAYS``,
``PIXELFLOW_RETAIN_OUTPUTS_DAYS``, or the client's policy), then records that on the job, which
stays (its status shows what was removed and when).

Each job is locked while its objects are deleted (``SKIP LOCKED``: several workers share the work),
and recorded only once every delete succeeded; a store outage ends the tick with nothing recorded
for that job, which the next tick takes again. Deleting is idempotent, so a repeat is harmless.
"""

from __future__ import annotations

import logging
from typing import Any

from data_plane.deps import WorkerDeps
from infra.metrics import RETENTION_DELETED
from infra.objects import delete_original, delete_outputs
from infra.outages import TRANSIENT

__all__ = ["RETENTION_BATCH", "sweep_retention"]

log = logging.getLogger("pixelflow.worker")

# Jobs per tick: bounds one tick's time (each job is a few deletes); a backlog drains over ticks.
RETENTION_BATCH = 100


async def sweep_retention(ctx: dict[str, Any]) -> int:
    """Delete what has expired, up to ``RETENTION_BATCH`` jobs; returns how many jobs were swept."""
    deps: WorkerDeps = ctx["deps"]
    settings = deps.settings
    swept = 0
    try:
        while swept < RETENTION_BATCH:
            async with deps.jobs.expired(
                settings.queue_name,
                originals_days=settings.retain_originals_days,
                outputs_days=settings.retain_outputs_days,
            ) as due:
                if due is None:
                    break
                if due.original:
                    await delete_original(deps.store, due.client_id, due.job_id)
                if due.outputs:
                    await delete_outputs(deps.store, due.client_id, due.job_id, due.output_keys)
            for what, done in (("original", due.original), ("outputs", due.outputs)):
                if done:
                    RETENTION_DELETED.labels(what).inc()
            log.info(
                "retention: expired objects deleted",
                extra={"job_id": str(due.job_id), "original": due.original, "outputs": due.outputs},
            )
            swept += 1
    except TRANSIENT as exc:
        log.warning("retention sweep stopped; retried next tick", extra={"error": type(exc).__name__})
    return swept
