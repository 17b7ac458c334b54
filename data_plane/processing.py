"""The ``process_job`` task: one run of a job. Claim it under the message's dispatch token, hold
its lease, fetch the source, run the engine in a killable child, store the variants, record the
result and send the webhook.

Every run ends the job or hands it on: the engine's failures, a dead or runaway child and
anything unexpected end it ``failed`` with a reason; storage or database outages hand it back
for a later run (``failed``/``infrastructure_error`` after ``job_max_tries``); a cancel stops the
child at once. Safe under at-least-once delivery: only the message holding the job's current
dispatch can claim it, output keys are deterministic, and results are committed only while this
run still holds the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from arq import Retry

from data_plane.backoff import backoff_seconds
from data_plane.deps import WorkerDeps
from data_plane.engine_pool import INTERACTIVE_LANE, NORMAL_LANE, CpuMeter
from data_plane.lease import Lease
from data_plane.sources import SourceError, fetch_source, origin
from data_plane.webhooks import start_delivery
from infra.events import job_delivery
from infra.lifecycle import JobStatus, Reason
from infra.metrics import JOB_DURATION, JOBS_FINISHED, OUTPUT_BYTES, QUEUE_WAIT, VARIANTS
from infra.objects import OUTPUT_CACHE_CONTROL, asset_key, delete_outputs, discard_originals, output_key
from infra.outages import TRANSIENT
from infra.policy import client_limits, cpu_quota_spent, daily_pixels, engine_limits, quota_spent
from infra.queue import dispatch_job, interactive_ticket, wake_interactive
from infra.repo import Ending, Job, VariantRecord
from infra.storage import ObjectNotFound, ObjectTooLarge
from infra.telemetry import parent, span
from pipeline.dsl import JobSpec, asset_keys, decode_job_spec
from pipeline.errors import DeadlineExceeded, InternalError, PipelineError
from pipeline.formats import FORMATS
from pipeline.sandbox import EngineCanceled, EngineRequest
from pipeline.sniff import SNIFF_BYTES, sniff

__all__ = ["Outcome", "fail_job", "hand_back", "process_job", "run_job"]

log = logging.getLogger("pixelflow.worker")


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one run ended. ``status`` is the job's status afterwards, or ``skipped`` when this
    message could not claim the job (finished, canceled, or handed to a newer message)."""

    status: str
    reason: str


_SKIPPED = Outcome("skipped", "not_claimable")
# Canceled by the API (which recorded it and queued job.canceled), or handed to another run.
_CANCELED = Outcome(JobStatus.CANCELED, JobStatus.CANCELED)


async def process_job(
    ctx: dict[str, Any], job_id: str, dispatch: str, trace_headers: dict[str, str] | None = None
) -> str:
    """One ticket: claim the job fairest to run next in this slot's lane and run it. ``job_id``
    and ``trace_headers`` (W3C context of its ``/start``) name the job whose start sent the
    ticket; when that is the job claimed, the worker's spans join the start's trace, else the
    claimed job's own."""
    deps: WorkerDeps = ctx["deps"]
    settings = deps.settings
    lane = ctx.get("lane", NORMAL_LANE)
    try:
        claim = await deps.jobs.claim_next(
            settings.queue_name,
            lease_seconds=settings.lease_seconds,
            interactive=lane == INTERACTIVE_LANE,
            weight=settings.scheduling_weight,
            max_running=settings.max_running_jobs_per_client,
            interactive_max_cost=settings.interactive_max_cost,
        )
    except TRANSIENT as exc:
        # Nothing was claimed, so arq running this same ticket again is safe.
        raise Retry(defer=backoff_seconds(ctx.get("job_try", 1), base=2.0, cap=60.0)) from exc
    if claim is None:
        JOBS_FINISHED.labels(_SKIPPED.status, _SKIPPED.reason).inc()
        return _SKIPPED.status
    job = claim.job
    headers = trace_headers if str(job.id) == job_id else job.trace_context
    with span("job.process", context=parent(headers), job_id=str(job.id), attempt=job.attempts, lane=lane):
        started = time.perf_counter()
        spend = CpuMeter()  # what the run cost: its client's fair share and usage
        try:
            outcome = await run_job(deps, job, headers, lane=lane, spend=spend)
        finally:
            with contextlib.suppress(Exception):  # the share is bookkeeping: never worth failing a run for
                await deps.jobs.settle(claim, spend.cpu_seconds * 1000)
        if lane == INTERACTIVE_LANE:
            # Tickets for this lane go out only with jobs that may run here when started; a job
            # that became eligible since (its client's other runs ended) is found by this one.
            with contextlib.suppress(*TRANSIENT):
                await wake_interactive(deps.queue)
        JOB_DURATION.labels(outcome.status).observe(time.perf_counter() - started)
        JOBS_FINISHED.labels(outcome.status, outcome.reason).inc()
        return outcome.status


async def run_job(
    deps: WorkerDeps, job: Job, trace_headers: dict[str, str] | None, *, lane: str, spend: CpuMeter
) -> Outcome:
    """Run a job this worker claimed, to its end or a hand-back."""
    settings = deps.settings
    assert job.dispatch is not None
    dispatch, job_id = job.dispatch, job.id
    if job.attempts > settings.job_max_tries:
        # Only runs stopped by a draining worker come back this often (outages and lost leases
        # end the job at the limit instead): a job that keeps landing on workers being shut down
        # still ends, and its deadline, restarted by each run, cannot restart for ever.
        message = f"the job was interrupted {job.attempts - 1} times by workers shutting down"
        return await fail_job(deps, job, dispatch, Reason.WORKER_LOST, message)
    if job.attempts == 1 and job.queued_at is not None:
        QUEUE_WAIT.observe(max(0.0, (datetime.now(UTC) - job.queued_at).total_seconds()))
    log.info("job started", extra={"job_id": str(job_id), "attempt": job.attempts, "lane": lane})
    key = str(job_id)
    async with Lease(deps.jobs, job_id, dispatch, settings.lease_seconds, on_lost=lambda: deps.engines.cancel(key)):
        try:
            return await _run(deps, job, dispatch, lane=lane, spend=spend)
        except _LaneTimeUp:
            # An interactive slot's run outlived its short deadline: the job goes on in a normal
            # slot, with a whole deadline, instead of failing for the lane it was in.
            log.info("job moved from an interactive slot to a normal one", extra={"job_id": key})
            await hand_back(deps, job, dispatch, trace_headers, demote=True, cpu_seconds=spend.cpu_seconds)
            return Outcome(JobStatus.QUEUED, "interactive_time_up")
        except EngineCanceled:
            # The API recorded the cancel and queued job.canceled; or the lease went to another run.
            log.info("job stopped: canceled", extra={"job_id": key})
            await _charge(deps, job, spend.cpu_seconds)
            return _CANCELED
        except PipelineError as exc:
            cpu = spend.cpu_seconds  # the engine's time on this run (0 for a deadline passed before it ran)
            return await fail_job(deps, job, dispatch, exc.code, exc.public, detail=exc.detail, cpu_seconds=cpu)
        except SourceError as exc:  # before the engine ran: no CPU to charge
            if exc.transient and job.attempts < settings.job_max_tries:
                log.warning("source fetch will retry", extra={"job_id": key, "reason": exc.code})
                defer = backoff_seconds(job.attempts, base=2.0, cap=60.0)
                await hand_back(deps, job, dispatch, trace_headers, defer=defer)
                return Outcome(JobStatus.QUEUED, "retry")
            return await fail_job(deps, job, dispatch, exc.code, exc.public)
        except ObjectNotFound:
            return await fail_job(
                deps, job, dispatch, Reason.SOURCE_MISSING, "the uploaded original is no longer in storage"
            )
        except ObjectTooLarge as exc:
            return await fail_job(deps, job, dispatch, Reason.SOURCE_TOO_LARGE, f"the original is too large ({exc})")
        except TRANSIENT as exc:
            if job.attempts >= settings.job_max_tries:
                log.error("job gave up", extra={"job_id": key, "error": type(exc).__name__})
                message = "storage or database stayed unavailable; try again later"
                return await fail_job(
                    deps, job, dispatch, Reason.INFRASTRUCTURE_ERROR, message, cpu_seconds=spend.cpu_seconds
                )
            log.warning("job will retry", extra={"job_id": key, "error": type(exc).__name__})
            defer = backoff_seconds(job.attempts, base=2.0, cap=60.0)
            await hand_back(deps, job, dispatch, trace_headers, defer=defer, cpu_seconds=spend.cpu_seconds)
            return Outcome(JobStatus.QUEUED, "retry")
        except asyncio.CancelledError:
            # The drain on SIGTERM, or arq's timeout (a run stuck in I/O). The engine pool has
            # killed the child already; another run takes the job.
            log.warning("job run interrupted; handing it back", extra={"job_id": key})
            await hand_back(deps, job, dispatch, trace_headers, cpu_seconds=spend.cpu_seconds)
            raise
        except Exception as exc:
            incident = uuid.uuid4().hex[:12]
            log.exception("job failed unexpectedly", extra={"job_id": key, "incident": incident})
            public = f"an internal error occurred (incident {incident})"
            return await fail_job(
                deps, job, dispatch, InternalError.code, public, detail=repr(exc), cpu_seconds=spend.cpu_seconds
            )


class _LaneTimeUp(Exception):
    """The run used up an interactive slot's deadline, not the job's."""


async def _run(deps: WorkerDeps, job: Job, dispatch: uuid.UUID, *, lane: str, spend: CpuMeter) -> Outcome:
    settings = deps.settings
    began = time.monotonic()  # the deadline counts from the claim: fetching the source is part of it
    policy = await deps.clients.policy(job.client_id)
    own_limits = engine_limits(settings, policy)  # its policy, else global
    in_force = client_limits(settings, policy)
    key_template = in_force.output_key_template
    quota, cpu_quota = daily_pixels(in_force), in_force.daily_engine_cpu_seconds
    if quota is not None or cpu_quota is not None:  # spent while it was queued: no work for nothing
        spent = await deps.usage.spent_today(job.client_id)  # both quotas, one read
        if quota is not None and spent.source_pixels >= quota:
            return await _over_quota(deps, job, dispatch, quota)
        if cpu_quota is not None and spent.cpu_seconds >= cpu_quota:
            message = cpu_quota_spent(cpu_quota)
            return await fail_job(deps, job, dispatch, Reason.DAILY_CPU_QUOTA_EXCEEDED, message)
    spec = decode_job_spec(job.spec, own_limits)
    data = await _original(deps, job, spec, time_left=settings.deadline_seconds - (time.monotonic() - began))
    assets = await _fetch_assets(deps, job, spec)
    remaining = settings.deadline_seconds - (time.monotonic() - began)
    if remaining <= 0:
        raise DeadlineExceeded(f"processing took longer than {settings.deadline_seconds:g} s")
    slot_limit = settings.interactive_deadline_seconds if lane == INTERACTIVE_LANE else remaining
    timeout = min(remaining, slot_limit)
    limits = msgspec.structs.replace(own_limits, deadline_seconds=timeout)
    request = EngineRequest(data, msgspec.json.encode(job.spec), limits, assets)
    del data
    try:
        result = await deps.engines.run(str(job.id), request, timeout=timeout, lane=lane, meter=spend)
    except DeadlineExceeded:
        if timeout < remaining:
            raise _LaneTimeUp from None
        raise
    records = [
        VariantRecord(
            v.id,
            v.format,
            v.content_type,
            v.width,
            v.height,
            v.bytes,
            # a signed URL's render has one variant, written to its derived-cache key
            job.render_key or output_key(job.client_id, job.id, v.id, v.format, key_template),
            v.quality,
            v.frames,
        )
        for v in result.variants
    ]

    async def put(record: VariantRecord, data: bytes) -> None:
        with span("storage.put", key=record.object_key, bytes=record.bytes):
            await deps.store.write(record.object_key, data, record.content_type, cache_control=OUTPUT_CACHE_CONTROL)

    await asyncio.gather(*(put(r, v.data) for r, v in zip(records, result.variants, strict=True)))
    for r in records:
        VARIANTS.labels(r.format).inc()
        OUTPUT_BYTES.labels(r.format).inc(r.bytes)
    info = msgspec.to_builtins(result.details) if result.details is not None else None
    delivery = await job_delivery(
        deps.deliveries, job, deps.store, status=JobStatus.SUCCEEDED, variants=records, info=info
    )
    src = result.source
    recorded = await deps.jobs.succeed(
        job.id,
        dispatch,
        records,
        source=(src.format, src.width, src.height),
        delivery=delivery,
        source_info=info,
        cpu_seconds=result.cpu_seconds,
        daily_pixels=quota,
    )
    if recorded.kind is Ending.OVER_QUOTA:
        # Its source does not fit in what today's quota has left (other jobs may have taken it meanwhile).
        assert quota is not None
        with contextlib.suppress(Exception):  # best effort, as for originals
            await delete_outputs(deps.store, job.client_id, job.id, [r.object_key for r in records])
        return await _over_quota(deps, job, dispatch, quota, cpu_seconds=result.cpu_seconds)
    if recorded.kind is Ending.TOO_LATE:
        log.info("job canceled or handed on while processing; results discarded", extra={"job_id": str(job.id)})
        await _charge(deps, job, result.cpu_seconds)
        return _CANCELED
    if recorded.delivery is not None:
        start_delivery(deps, recorded.delivery)
    if job.render_key is not None and spec.source is not None:
        # a signed URL's render of a url: source keeps its result, not the original it fetched
        await discard_originals(deps.store, job.client_id, job.id)
    log.info("job succeeded", extra={"job_id": str(job.id), "variants": len(records)})
    return Outcome(JobStatus.SUCCEEDED, JobStatus.SUCCEEDED)


async def _original(deps: WorkerDeps, job: Job, spec: JobSpec, *, time_left: float) -> bytes:
    """The job's original: uploaded (or copied from another job) through the API, or fetched now
    from its URL. A fetched one is stored as the job's source before any work, so a retried run
    reads it instead of fetching again, and deletion, retention and ``{"job": id}`` sources treat
    it like an upload."""
    settings = deps.settings
    url = spec.source.url if spec.source is not None else None
    if url is None or await deps.store.stat(job.source_key) is not None:
        with span("storage.get", key=job.source_key):
            return await deps.store.read(job.source_key, max_bytes=settings.max_source_bytes)
    with span("source.fetch", origin=origin(url)):
        data = await fetch_source(
            deps.sources,
            url,
            max_bytes=settings.max_source_bytes,
            # the job's deadline counts from the claim, so a fetch never outlives it
            timeout=max(0.001, min(settings.source_fetch_timeout_seconds, time_left)),
            max_redirects=settings.source_max_redirects,
            allow_private=settings.url_sources_allow_private,
        )
    source_format = sniff(data[:SNIFF_BYTES])  # never the Content-Type: UnsupportedFormat as for uploads
    with span("storage.put", key=job.source_key, bytes=len(data)):
        await deps.store.write(job.source_key, data, FORMATS[source_format].mime)
    await deps.jobs.record_source(job.id, len(data), source_format)
    return data


async def _fetch_assets(deps: WorkerDeps, job: Job, spec: JobSpec) -> dict[str, bytes]:
    """Watermark images, read before the engine runs (it knows no storage). Keys resolve inside
    the client's own ``assets/`` prefix; a missing one is left out so the engine reports it as
    ``asset_not_found``."""
    found: dict[str, bytes] = {}
    for key in asset_keys(spec):
        try:
            found[key] = await deps.store.read(asset_key(job.client_id, key), max_bytes=deps.settings.max_source_bytes)
        except (ObjectNotFound, ObjectTooLarge):
            continue
    return found


async def _over_quota(
    deps: WorkerDeps, job: Job, dispatch: uuid.UUID, quota_pixels: int, *, cpu_seconds: float = 0.0
) -> Outcome:
    message = quota_spent(quota_pixels // 1_000_000)
    return await fail_job(deps, job, dispatch, Reason.DAILY_QUOTA_EXCEEDED, message, cpu_seconds=cpu_seconds)


async def fail_job(
    deps: WorkerDeps,
    job: Job,
    dispatch: uuid.UUID | None,
    code: str,
    message: str,
    *,
    detail: str | None = None,
    cpu_seconds: float = 0.0,
) -> Outcome:
    """End the job ``failed`` (if this run still holds it) and send ``job.failed``; ``cpu_seconds``:
    the engine time of this run, counted in the client's usage."""
    log.info("job failed", extra={"job_id": str(job.id), "reason": code, "detail": detail})
    delivery = await job_delivery(deps.deliveries, job, deps.store, status=JobStatus.FAILED, error=(code, message))
    recorded = await deps.jobs.fail(job.id, code, message, delivery, dispatch=dispatch, cpu_seconds=cpu_seconds)
    if recorded.kind is Ending.TOO_LATE:  # ended or handed on meanwhile: this run's CPU is charged all the same
        await _charge(deps, job, cpu_seconds)
        return _CANCELED
    await discard_originals(deps.store, job.client_id, job.id)
    if recorded.delivery is not None:
        start_delivery(deps, recorded.delivery)
    return Outcome(JobStatus.FAILED, str(code))


async def _charge(deps: WorkerDeps, job: Job, cpu_seconds: float) -> None:
    """Charge the CPU of a run that neither ended nor handed back its job (canceled, or handed on
    meanwhile), wherever the job is now. Best effort: a database outage loses this run's CPU."""
    if cpu_seconds <= 0:
        return
    try:
        await deps.usage.charge_run(job.id, cpu_seconds)
    except TRANSIENT as exc:
        log.warning("engine CPU not charged", extra={"job_id": str(job.id), "error": type(exc).__name__})


async def hand_back(
    deps: WorkerDeps,
    job: Job,
    dispatch: uuid.UUID | None,
    trace_headers: dict[str, str] | None,
    *,
    defer: float | None = None,
    demote: bool = False,
    cpu_seconds: float = 0.0,
) -> bool:
    """Queue the job for another run under a new dispatch, claimable after ``defer`` seconds;
    ``demote``: an interactive job comes back as a normal one. If Redis is down, the job stays
    ``queued`` in PostgreSQL and the sweeper sends the message later. ``cpu_seconds``: the engine
    time of the run handed back, added to the job's and billed when it ends."""
    requeued = await deps.jobs.hand_back(job.id, dispatch, defer=defer, demote=demote, cpu_seconds=cpu_seconds)
    if requeued is None or requeued.dispatch is None:
        await _charge(deps, job, cpu_seconds)  # no longer this run's to hand back: charged all the same
        return False
    try:
        await dispatch_job(
            deps.queue,
            requeued.id,
            requeued.dispatch,
            trace_headers,
            defer_by=defer,
            interactive=interactive_ticket(deps.settings.interactive_slots, requeued.priority),
        )
    except TRANSIENT:
        log.warning("re-queue failed; the sweeper will retry", extra={"job_id": str(job.id)})
    return True
