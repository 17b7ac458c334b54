"""The ``process_job`` task: source from storage, one engine run, variants to storage, results
recorded, webhook queued. Safe to run more than once for the same job (arq is at-least-once):
output keys are deterministic and the final write is conditional on the job still processing."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import psycopg
import redis.exceptions
from arq import Retry
from opentelemetry import context as otel_context

from data_plane.backoff import backoff_seconds
from data_plane.deps import WorkerDeps
from data_plane.payloads import job_event
from infra.metrics import JOB_DURATION, JOBS_FINISHED, OUTPUT_BYTES, QUEUE_WAIT, VARIANTS
from infra.queue import SEND_WEBHOOK
from infra.repo import Job, VariantRecord
from infra.storage import ObjectNotFound, ObjectTooLarge, StorageUnavailable
from infra.telemetry import carrier, parent, span
from pipeline.encode import EXTENSIONS
from pipeline.errors import PipelineError
from pipeline.spec import JobSpec, decode_job_spec
from pipeline.spec.steps import Watermark

__all__ = ["TRANSIENT", "output_key", "process_job"]

log = logging.getLogger("pixelflow.worker")
T = TypeVar("T")

# Infrastructure hiccups: retried by arq with a delay, never reported to the client as their fault.
TRANSIENT: tuple[type[BaseException], ...] = (
    StorageUnavailable,
    psycopg.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
)


def output_key(job: Job, variant_id: str, fmt: str) -> str:
    return f"outputs/{job.client_id}/{job.id}/{variant_id}{EXTENSIONS[fmt]}"


def asset_key(job: Job, key: str) -> str:
    return f"assets/{job.client_id}/{key}"


async def process_job(ctx: dict[str, Any], job_id: str, trace_headers: dict[str, str] | None = None) -> str:
    """``trace_headers``: W3C context of the ``/start`` request, so the worker's spans join the job's trace."""
    with span("job.process", context=parent(trace_headers), job_id=job_id, attempt=ctx.get("job_try", 1)):
        started = time.perf_counter()
        outcome = await _process(ctx, job_id)
        status, _, reason = outcome.partition(":")
        JOB_DURATION.observe(time.perf_counter() - started)
        JOBS_FINISHED.labels(status, reason or status).inc()
        return outcome


async def _process(ctx: dict[str, Any], job_id: str) -> str:
    deps: WorkerDeps = ctx["deps"]
    try:
        job = await deps.jobs.claim(uuid.UUID(job_id))
    except TRANSIENT as exc:
        raise Retry(defer=_backoff(ctx)) from exc
    if job is None:
        return "skipped"  # finished, canceled or deleted: nothing to do
    if job.attempts == 1 and job.queued_at is not None:
        QUEUE_WAIT.observe(max(0.0, (datetime.now(UTC) - job.queued_at).total_seconds()))
    log.info("job started", extra={"job_id": job_id, "attempt": job.attempts})
    try:
        return await _run(deps, job)
    except PipelineError as exc:
        log.info("job failed", extra={"job_id": job_id, "reason": exc.code, "detail": exc.detail})
        await _fail(deps, job, exc.code, exc.public)
        return f"failed:{exc.code}"
    except ObjectNotFound:
        await _fail(deps, job, "source_missing", "the uploaded original is no longer in storage")
        return "failed:source_missing"
    except ObjectTooLarge as exc:
        await _fail(deps, job, "source_too_large", f"the original is too large ({exc})")
        return "failed:source_too_large"
    except TRANSIENT as exc:
        if ctx.get("job_try", 1) >= deps.settings.job_max_tries:
            log.error("job gave up", extra={"job_id": job_id, "error": type(exc).__name__})
            await _fail(deps, job, "infrastructure_error", "storage or database stayed unavailable; try again later")
            return "failed:infrastructure_error"
        log.warning("job will retry", extra={"job_id": job_id, "error": type(exc).__name__})
        raise Retry(defer=_backoff(ctx)) from exc


async def _run(deps: WorkerDeps, job: Job) -> str:
    settings = deps.settings
    limits = settings.limits
    spec = decode_job_spec(job.spec, limits)
    with span("storage.get", key=job.source_key):
        data = await deps.store.read(job.source_key, max_bytes=limits.max_source_bytes)
    assets = await _fetch_assets(deps, job, spec)

    from pipeline.engine import process  # the worker is the only process that loads libvips

    loop = asyncio.get_running_loop()
    run = partial(process, data, spec, limits=limits, assets=assets.__getitem__, observe=_observe)
    result = await loop.run_in_executor(deps.executor, in_context(otel_context.get_current(), run))
    records = [
        VariantRecord(v.id, v.format, v.content_type, v.width, v.height, v.bytes, output_key(job, v.id, v.format))
        for v in result.variants
    ]

    async def put(record: VariantRecord, data: bytes) -> None:
        with span("storage.put", key=record.object_key, bytes=record.bytes):
            await deps.store.write(record.object_key, data, record.content_type)

    await asyncio.gather(*(put(r, v.data) for r, v in zip(records, result.variants, strict=True)))
    for r in records:
        VARIANTS.labels(r.format).inc()
        OUTPUT_BYTES.labels(r.format).inc(r.bytes)
    delivery = await _delivery(deps, job, "succeeded", variants=records)
    src = result.source
    outcome = await deps.jobs.succeed(job.id, records, source=(src.format, src.width, src.height), delivery=delivery)
    if outcome is False:
        log.info("job canceled while processing; results discarded", extra={"job_id": str(job.id)})
        return "canceled"
    if isinstance(outcome, uuid.UUID):
        await _queue_webhook(deps, outcome)
    log.info("job succeeded", extra={"job_id": str(job.id), "variants": len(records)})
    return "succeeded"


async def _fetch_assets(deps: WorkerDeps, job: Job, spec: JobSpec) -> dict[str, bytes]:
    """Watermark images, read before the engine runs (it is synchronous and knows no storage).
    Keys resolve inside the client's own ``assets/`` prefix; a missing one is left out so the
    engine reports it as ``asset_not_found``."""
    keys = {s.image for v in spec.pipeline for s in v.steps if isinstance(s, Watermark) and s.image}
    found: dict[str, bytes] = {}
    for key in keys:
        try:
            found[key] = await deps.store.read(asset_key(job, key), max_bytes=deps.settings.max_source_bytes)
        except (ObjectNotFound, ObjectTooLarge):
            continue
    return found


async def _delivery(deps: WorkerDeps, job: Job, status: str, **kwargs: Any):
    url = job.spec.get("webhook_url")
    if url and await deps.deliveries.endpoint_disabled(job.client_id, url):
        return None
    return job_event(job, deps.store, status=status, **kwargs)


async def _fail(deps: WorkerDeps, job: Job, code: str, message: str) -> None:
    delivery = await _delivery(deps, job, "failed", error=(code, message))
    outcome = await deps.jobs.fail(job.id, code, message, delivery)
    if isinstance(outcome, uuid.UUID):
        await _queue_webhook(deps, outcome)


async def _queue_webhook(deps: WorkerDeps, delivery_id: uuid.UUID) -> None:
    """Make the first attempt right away from this event loop (no queue hop: lower latency);
    later rounds go through the webhook queue. If this process dies first, the delivery row is
    committed and the sweeper queues it."""
    task = asyncio.create_task(_first_attempt(deps, str(delivery_id), carrier()))
    _IN_FLIGHT.add(task)
    task.add_done_callback(_IN_FLIGHT.discard)


_IN_FLIGHT: set[asyncio.Task[None]] = set()  # strong references, so pending sends are not collected


async def _first_attempt(deps: WorkerDeps, delivery_id: str, trace_headers: dict[str, str]) -> None:
    from data_plane.webhooks import send_webhook

    queue_name = deps.settings.webhook_queue_name
    try:
        await send_webhook({"deps": deps, "job_try": 1}, delivery_id, trace_headers)
        return
    except Retry as retry:
        defer = retry.defer_score / 1000 if retry.defer_score else None
        job_try = 2
    except Exception:
        log.warning("inline webhook attempt failed; queueing it", extra={"delivery_id": delivery_id}, exc_info=True)
        defer, job_try = None, 1
    try:
        await deps.queue.enqueue_job(
            SEND_WEBHOOK,
            delivery_id,
            trace_headers,
            _job_id=f"{SEND_WEBHOOK}:{delivery_id}",
            _queue_name=queue_name,
            _defer_by=defer,
            _job_try=job_try,
        )
    except TRANSIENT:
        log.warning("webhook enqueue failed; the sweeper will retry", extra={"delivery_id": delivery_id})


def _observe(name: str, attributes: dict[str, object]) -> AbstractContextManager[object]:
    return span(name, **{k.replace(".", "_"): v for k, v in attributes.items()})


def in_context(ctx: otel_context.Context, fn: Callable[[], T]) -> Callable[[], T]:
    """``fn`` run under ``ctx``: executor threads do not inherit the caller's trace context."""

    def run() -> T:
        token = otel_context.attach(ctx)
        try:
            return fn()
        finally:
            otel_context.detach(token)

    return run


def _backoff(ctx: dict[str, Any]) -> float:
    return backoff_seconds(ctx.get("job_try", 1), base=2.0, cap=60.0)
