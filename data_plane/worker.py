"""The worker's composition root: two arq workers in one process, one for image jobs (bounded by
``PIXELFLOW_WORKER_CONCURRENCY``) and one for webhooks (I/O only), sharing one set of dependencies."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from arq import cron
from arq.worker import Worker, func
from prometheus_client import start_http_server

from data_plane.deps import WorkerDeps, open_deps
from data_plane.processing import INTERACTIVE_LANE, process_job
from data_plane.retention import sweep_retention
from data_plane.sweeper import sweep_jobs
from data_plane.webhooks import send_webhook, sweep_deliveries
from infra.outages import TRANSIENT
from infra.queue import PROCESS_JOB, SEND_WEBHOOK, cancel_channel, deserialize, interactive_queue, serialize
from infra.settings import Settings
from infra.telemetry import configure_tracing

__all__ = ["HANDBACK_SECONDS", "build_workers", "run_worker"]

log = logging.getLogger("pixelflow.worker")

# After the drain, how long the stopped jobs' hand-backs (a few database writes each) may take.
# A worker exits within PIXELFLOW_WORKER_DRAIN_SECONDS + this of SIGTERM; a container's grace
# period must cover both (deploy/k8s/base/worker.yaml).
HANDBACK_SECONDS = 10


# Jobs and deliveries keep no result in Redis: PostgreSQL holds every outcome, and arq refuses a
# message id while it keeps that id's result, so a run that found nothing to claim (a message
# that overtook its commit, a duplicate) would block the next send of that id for an hour.
_NO_RESULT = 0


def _tick_name(sweep: Any, queue: str) -> str:
    # arq names a unique cron's tick job `<name>:<time>` in one keyspace for every queue: under the
    # function's bare name, one deployment's tick on a shared Redis stood in for another's, whose
    # sweep then never ran (its lost jobs stayed stuck)
    return f"{sweep.__name__}@{queue}"


def build_workers(settings: Settings, deps: WorkerDeps, *, burst: bool = False) -> list[Worker]:
    """The image, webhook and (with PIXELFLOW_INTERACTIVE_SLOTS) interactive workers. ``burst``
    drains the queues once and exits, without the sweepers: arq queues each next tick ahead of
    time, so a queue with crons is never empty."""
    ticks: dict[str, Any] = {
        "second": set(range(0, 60, settings.sweep_interval_seconds)),
        "run_at_startup": True,
        "unique": True,  # one run per tick: arq names each tick's job, whichever worker enqueues it first
    }
    common: dict[str, Any] = {
        "redis_pool": deps.queue,
        "job_serializer": serialize,
        "job_deserializer": deserialize,
        "ctx": {"deps": deps},
        "handle_signals": False,
        "burst": burst,
        "poll_delay": settings.worker_poll_delay,
        # Cron ticks keep theirs, so a tick that already ran is not run again by another worker.
        "keep_result": 3600,
    }
    image_job = func(
        process_job,
        name=PROCESS_JOB,
        max_tries=settings.job_max_tries,
        timeout=settings.job_timeout_seconds,
        keep_result=_NO_RESULT,
    )
    images = Worker(
        functions=[image_job],
        cron_jobs=[]
        if burst
        else [
            cron(sweep_jobs, name=_tick_name(sweep_jobs, settings.queue_name), **ticks),
            cron(sweep_retention, name=_tick_name(sweep_retention, settings.queue_name), **ticks),
        ],
        queue_name=settings.queue_name,
        max_jobs=settings.worker_concurrency,
        job_timeout=settings.job_timeout_seconds,
        **common,
    )
    webhooks = Worker(
        functions=[
            func(
                send_webhook,
                name=SEND_WEBHOOK,
                max_tries=settings.webhook_max_attempts + 1,
                timeout=120,
                keep_result=_NO_RESULT,
            )
        ],
        cron_jobs=[]
        if burst
        else [cron(sweep_deliveries, name=_tick_name(sweep_deliveries, settings.webhook_queue_name), **ticks)],
        queue_name=settings.webhook_queue_name,
        max_jobs=32,
        **common,
    )
    if not settings.interactive_slots:
        return [images, webhooks]
    interactive = Worker(
        functions=[image_job],
        queue_name=interactive_queue(settings.queue_name),
        max_jobs=settings.interactive_slots,
        job_timeout=settings.job_timeout_seconds,
        **(common | {"ctx": {"deps": deps, "lane": INTERACTIVE_LANE}}),
    )
    return [images, webhooks, interactive]


async def run_worker(settings: Settings, *, burst: bool = False) -> None:
    configure_tracing(settings.otel_exporter, "pixelflow-worker")
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr=settings.worker_metrics_host)
    async with open_deps(settings) as deps:
        if burst:
            await asyncio.gather(*(w.async_run() for w in build_workers(settings, deps, burst=True)))
            return
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        kinds = len(build_workers(settings, deps))
        current: list[Worker | None] = [None] * kinds
        log.info(
            "worker started",
            extra={
                "concurrency": settings.worker_concurrency,
                "interactive_slots": settings.interactive_slots,
                "queue": settings.queue_name,
            },
        )
        supervisors = [asyncio.create_task(_supervise(settings, deps, i, current, stop)) for i in range(kinds)]
        cancels = asyncio.create_task(_listen_for_cancels(deps, stop))
        await stop.wait()
        live = tuple(w for w in current if w is not None)
        await _drain(live, grace=settings.worker_drain_seconds)
        for t in (*supervisors, cancels):
            t.cancel()
        await asyncio.gather(*supervisors, cancels, return_exceptions=True)
        log.info("worker stopped")


async def _supervise(
    settings: Settings, deps: WorkerDeps, index: int, current: list[Worker | None], stop: asyncio.Event
) -> None:
    """Keep one arq worker running. arq's poll loop ends on a Redis error (a restart, a failover);
    the process must outlive that, so the worker is rebuilt with backoff once Redis answers again.
    Jobs it was running carry on; their results are in PostgreSQL either way."""
    delay = 0.5
    while not stop.is_set():
        worker = build_workers(settings, deps)[index]
        current[index] = worker
        run = asyncio.create_task(worker.async_run())
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([run, waiter], return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            return  # run_worker drains this worker
        waiter.cancel()
        error = None if run.cancelled() else run.exception()
        log.warning("queue worker stopped; restarting", extra={"queue": worker.queue_name, "error": repr(error)})
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10.0)
        if error is None:
            delay = 0.5


async def _listen_for_cancels(deps: WorkerDeps, stop: asyncio.Event) -> None:
    """Kill the engine of a job the API canceled, within milliseconds of the cancel. Redis
    pub/sub is fire-and-forget, so while it is down the lease renewal notices the cancel instead."""
    channel = cancel_channel(deps.settings.queue_name)
    delay = 0.5
    while not stop.is_set():
        try:
            async with deps.queue.pubsub(ignore_subscribe_messages=True) as pubsub:
                await pubsub.subscribe(channel)
                delay = 0.5
                async for message in pubsub.listen():
                    job_id = message["data"].decode() if isinstance(message["data"], bytes) else str(message["data"])
                    if deps.engines.cancel(job_id):
                        log.info("job canceled; engine stopped", extra={"job_id": job_id})
        except TRANSIENT:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def _drain(workers: tuple[Worker, ...], *, grace: float) -> None:
    """Stop taking jobs, let running ones finish for ``grace`` seconds, then stop the rest: their
    engines are killed and the jobs handed back for another worker, so nothing is lost."""
    for w in workers:
        w.allow_pick_jobs = False
    running = [t for w in workers for t in w.tasks.values() if not t.done()]
    if running:
        await asyncio.wait(running, timeout=grace)
    for w in workers:
        w.handle_sig(signal.SIGTERM)
    if running:
        await asyncio.wait(running, timeout=HANDBACK_SECONDS)
