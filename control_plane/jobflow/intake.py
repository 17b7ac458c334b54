"""Creating and starting jobs: the rules shared by ``/v1/jobs`` and the one-call ``/v1/uploads``."""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from datetime import timedelta
from typing import Any, NoReturn

import msgspec
from opentelemetry import trace

from control_plane.auth.principal import Principal
from control_plane.auth.ratelimit import Decision
from control_plane.deps import ApiDeps
from control_plane.jobflow.lookup import owned_job
from control_plane.problems import (
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    TooManyRequests,
    Unprocessable,
    UnsupportedMediaType,
)
from control_plane.templates.presets import resolve_job
from infra.events import job_delivery
from infra.lifecycle import JobStatus, Priority, Reason
from infra.metrics import JOBS_CREATED, JOBS_STARTED, RATE_LIMITED
from infra.netguard import BlockedDestination, check_literal
from infra.objects import asset_key, discard_originals, upload_key
from infra.outages import TRANSIENT
from infra.policy import (
    ClientLimits,
    ClientLimitsToday,
    client_limits,
    cpu_quota_spent,
    daily_pixels,
    engine_limits,
    limits_with_spend,
    quota_resets_in,
    quota_spent,
)
from infra.queue import dispatch_job, interactive_ticket, queue_webhook
from infra.repo import Job, Start, Started
from infra.storage import ObjectNotFound
from infra.telemetry import carrier, parent, tracer
from pipeline.compile import spec_issues
from pipeline.dsl import JobSpec, Limits, asset_references, decode_job_spec, encode_job_spec
from pipeline.errors import AssetNotFound, FieldError, UnsupportedFormat
from pipeline.sniff import SNIFF_BYTES, SourceFormat, sniff

__all__ = [
    "CREATE_ERRORS",
    "RATE_LIMIT_ERRORS",
    "START_ERRORS",
    "NewJob",
    "create_job",
    "dispatch_started",
    "has_source",
    "known_source",
    "limits_of",
    "limits_today",
    "rate_limit",
    "refuse_over_quota",
    "spec_limits",
    "start_job",
]

log = logging.getLogger("pixelflow.api")

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")

# What each step raises, for the OpenAPI document of every route that calls it.
RATE_LIMIT_ERRORS = (RateLimited,)
# 403 presets_only, 404 template_not_found or source_not_found
CREATE_ERRORS = (Unprocessable, Conflict, Forbidden, NotFound)
START_ERRORS = (NotFound, Conflict, PayloadTooLarge, Unprocessable, UnsupportedMediaType, TooManyRequests)


async def limits_of(deps: ApiDeps, principal: Principal) -> ClientLimits:
    """The client's limits in force: its policy's overrides, else the settings."""
    return client_limits(deps.settings, await deps.clients.policy(principal.client.id))


async def limits_today(deps: ApiDeps, principal: Principal) -> ClientLimitsToday:
    """The client's limits in force and what its daily quota has used today."""
    limits = await limits_of(deps, principal)
    spent = await deps.usage.spent_today(principal.client.id)
    return limits_with_spend(limits, spent)


async def rate_limit(deps: ApiDeps, principal: Principal) -> Decision:
    """Job creations per client, one bucket shared by all its keys and people (minting keys adds
    no budget); a key with a lower limit of its own must pass its own bucket too."""
    limits = await limits_of(deps, principal)
    own = principal.key_rate_limit if principal.key_id is not None else None
    key_decision = None
    if own is not None:
        key_decision = await deps.key_limiter.hit(
            str(principal.key_id), per_minute=own, burst=min(own, limits.rate_limit_burst)
        )
        if not key_decision.allowed:
            _rate_limited(principal, f"this API key is limited to {own} job creations per minute", key_decision)
    decision = await deps.limiter.hit(
        f"client:{principal.client.id}", per_minute=limits.rate_limit_per_minute, burst=limits.rate_limit_burst
    )
    if not decision.allowed:
        if own is not None:  # the key's bucket let it through, but the request is refused
            await deps.key_limiter.refund(str(principal.key_id), per_minute=own)
        _rate_limited(
            principal, f"job creation is limited to {limits.rate_limit_per_minute} per minute per client", decision
        )
    # the headers tell of the bucket nearer to refusing
    return key_decision if key_decision is not None and key_decision.remaining < decision.remaining else decision


def _rate_limited(principal: Principal, detail: str, decision: Decision) -> NoReturn:
    RATE_LIMITED.labels(str(principal.client.id)).inc()  # an id, never a tenant-chosen name
    raise RateLimited(detail, headers=decision.headers())


async def spec_limits(deps: ApiDeps, principal: Principal) -> Limits:
    """What a client's specs are decoded and planned under: its policy's, else the settings'."""
    return engine_limits(deps.settings, await deps.clients.policy(principal.client.id))


class NewJob(msgspec.Struct, frozen=True):
    """What ``create_job`` stored (``new``: this request made it, as ``JobRepo.create`` says) and
    the spec it decoded, which ``start_job`` takes in the same request instead of decoding again."""

    job: Job
    new: bool
    spec: JobSpec


async def create_job(deps: ApiDeps, principal: Principal, body: Any, idempotency_key: str | None) -> NewJob:
    """Validate and store a job. Same idempotency key and same spec: the stored job, not a new one."""
    settings = deps.settings
    body, template = await resolve_job(deps.templates, principal, body)
    limits = await spec_limits(deps, principal)
    spec = decode_job_spec(body, limits)  # the request's one decode of the spec
    # What fails for every source (an exact 9000x9000 box encoded as AVIF at effort 9) is refused
    # now; the rest waits for the source's size, which the worker reads from its header.
    issues = spec_issues(spec, limits)
    if issues:
        raise Unprocessable(
            "the job would break its limits whatever the source",
            code=issues[0].error.code,
            errors=[FieldError(i.path, i.error.public) for i in issues],
        )
    if spec.webhook_url is not None:
        try:
            check_literal(spec.webhook_url, allow_private=settings.webhook_allow_private)
        except BlockedDestination as exc:
            raise Unprocessable(
                "the webhook URL is not allowed", code="invalid_spec", errors=[FieldError("$.webhook_url", str(exc))]
            ) from None
    await _check_source(deps, principal, spec)
    if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
        rule = "must be 1-255 printable ASCII characters"
        raise Unprocessable(
            f"Idempotency-Key {rule}",
            code="invalid_idempotency_key",
            errors=[FieldError("$.Idempotency-Key", rule)],  # a header: named as it is sent
        )
    normal = encode_job_spec(spec)
    digest = hashlib.sha256(normal).digest()
    stored = await deps.jobs.create(
        client_id=principal.client.id,
        spec=normal,
        spec_sha256=digest,
        idempotency_key=idempotency_key,
        trace_context=carrier(),  # the job's trace starts at this request
        template=(template.name, template.version) if template else None,
    )
    if stored.new:
        JOBS_CREATED.inc()
    if not stored.new and stored.job.spec_sha256 != digest:
        raise Conflict("this Idempotency-Key was already used with a different spec", code="idempotency_key_reused")
    return NewJob(stored.job, stored.new, spec)  # a replayed job has the same digest: this spec


async def start_job(deps: ApiDeps, principal: Principal, job_id: uuid.UUID, spec: JobSpec | None = None) -> Job:
    """Check the job's original and enqueue the job once. Starting again is harmless. ``spec``:
    the job's, when this request decoded it already (``create_job``)."""
    job = await owned_job(deps, principal, job_id)
    if job.status != JobStatus.CREATED:
        if job.status in (JobStatus.FAILED, JobStatus.CANCELED):
            raise Conflict(f"the job is {job.status} and cannot be started", code=f"job_{job.status}")
        return job  # queued, processing or succeeded: starting again is harmless

    policy = await deps.clients.policy(principal.client.id)
    if spec is None:
        spec = decode_job_spec(job.spec, engine_limits(deps.settings, policy))
    if spec.source is not None and spec.source.url is not None:
        # Fetched by the worker, which checks its size and bytes as this does an upload's.
        key, size, source_format = job.source_key, None, None
    else:
        if spec.source is not None and spec.source.job is not None:
            await _copy_original(deps, job, spec.source.job)
        key, size, source_format = await _check_original(deps, job)
    await _require_assets(deps, job, spec)
    if key != job.source_key:
        try:
            await deps.store.move(key, job.source_key)
        except ObjectNotFound:
            # a concurrent /start of this job moved it first
            if await deps.store.stat(job.source_key) is None:
                raise _upload_missing() from None

    # The job keeps one trace: this span joins the trace begun at creation, links the /start
    # request's own trace, and its context rides in the queue message to the worker.
    this_request = trace.get_current_span().get_span_context()
    links = [trace.Link(this_request)] if this_request.is_valid else []
    with tracer.start_as_current_span(
        "job.start", context=parent(job.trace_context), links=links, attributes={"job.id": str(job.id)}
    ):
        limits = client_limits(deps.settings, policy)
        max_active = limits.max_concurrent_jobs_per_client
        started = await queue_stored(deps, job, limits, size, source_format, Priority(spec.priority))
    if started.kind is Start.BUSY:
        raise TooManyRequests(
            f"at most {max_active} jobs may be queued or processing at once",
            code="too_many_active_jobs",
            headers={"Retry-After": "5"},
        )
    refuse_over_quota(started.kind, limits)
    if started.kind is Start.NOT_CREATED:  # another request started (or canceled) it meanwhile
        current = await deps.jobs.get(job.id, principal.client.id)
        assert current is not None
        return current
    assert started.job is not None
    JOBS_STARTED.inc()
    return started.job


async def queue_stored(
    deps: ApiDeps,
    job: Job,
    limits: ClientLimits,
    source_bytes: int | None,
    source_format: SourceFormat | None,
    priority: Priority,
) -> Started:
    """Move a job whose original is stored (or fetched by the worker) to `queued` under the
    client's limits, and send its claim ticket after the commit."""
    started = await deps.jobs.start(
        job.id,
        job.client_id,
        max_active=limits.max_concurrent_jobs_per_client,
        source_bytes=source_bytes,
        source_format=source_format,
        queue=deps.settings.queue_name,
        priority=priority,
        interactive_allowance=limits.interactive_jobs_per_client,
        daily_pixels=daily_pixels(limits),
        daily_cpu_seconds=limits.daily_engine_cpu_seconds,
    )
    if started.job is not None:
        slots = deps.settings.interactive_slots
        ticket = interactive_ticket(slots, started.job.priority, alone=started.alone)
        await dispatch_started(deps, started.job, interactive=ticket)
    return started


def refuse_over_quota(kind: Start, limits: ClientLimits) -> None:
    """429 when a start found a daily quota spent; the job stays `created`: starting it tomorrow works."""
    if kind is Start.OVER_QUOTA:
        assert limits.daily_source_megapixels is not None
        raise TooManyRequests(
            quota_spent(limits.daily_source_megapixels),
            code=Reason.DAILY_QUOTA_EXCEEDED,
            headers={"Retry-After": str(quota_resets_in())},
        )
    if kind is Start.OVER_CPU_QUOTA:
        assert limits.daily_engine_cpu_seconds is not None
        raise TooManyRequests(
            cpu_quota_spent(limits.daily_engine_cpu_seconds),
            code=Reason.DAILY_CPU_QUOTA_EXCEEDED,
            headers={"Retry-After": str(quota_resets_in())},
        )


async def dispatch_started(deps: ApiDeps, job: Job, *, interactive: bool) -> None:
    """Send the queue message of a job whose ``queued`` row is committed. The row is the hand-off,
    the message only wakes a worker: if Redis cannot take it now, the job still runs, sent by
    the sweeper (``PIXELFLOW_SWEEP_INTERVAL_SECONDS``), so the client's 202 holds."""
    assert job.dispatch is not None
    try:
        await dispatch_job(
            deps.queue,
            job.id,
            job.dispatch,
            carrier(),
            interactive=interactive,
        )
    except TRANSIENT as exc:
        log.warning(
            "queue message not sent; the sweeper will send it", extra={"job_id": str(job.id), "error": repr(exc)}
        )


async def _fail_at_start(deps: ApiDeps, job: Job, code: str, message: str) -> None:
    """End a job whose upload /start refused, with its ``job.failed`` webhook like any other
    failure, and delete the refused bytes."""
    delivery = await job_delivery(deps.deliveries, job, deps.store, status=JobStatus.FAILED, error=(code, message))
    recorded = await deps.jobs.fail(job.id, code, message, delivery)
    if recorded.delivery is not None:
        try:
            await queue_webhook(deps.queue, deps.settings.webhook_queue_name, recorded.delivery, carrier())
        except TRANSIENT:  # recorded as pending: the delivery sweeper queues it
            log.warning("webhook not queued; the sweeper will", extra={"job_id": str(job.id)})
    await discard_originals(deps.store, job.client_id, job.id)


def has_source(job: Job) -> bool:
    """Whether the job's original comes from a URL or another job, not an upload."""
    return job.spec.get("source") is not None


async def _check_source(deps: ApiDeps, principal: Principal, spec: JobSpec) -> None:
    """A source URL must be http(s) to a host that is not literally internal (the worker checks
    what its name resolves to, hop by hop); a source job must be this client's and still hold its
    original (a job of another client is as unknown as one that never existed)."""
    source = spec.source
    if source is None:
        return
    if source.url is not None:
        try:
            check_literal(source.url, allow_private=deps.settings.url_sources_allow_private)
        except BlockedDestination as exc:
            raise Unprocessable(
                "the source URL is not allowed", code="invalid_spec", errors=[FieldError("$.source.url", str(exc))]
            ) from None
    elif source.job is not None and await _stored_original(deps, principal.client.id, source.job) is None:
        raise _source_not_found()


def _source_not_found() -> NotFound:
    return NotFound(
        "the source job does not exist or no longer holds its original",
        code="source_not_found",
        errors=[FieldError("$.source.job", "no job of this client with a stored original has this id")],
    )


async def known_source(deps: ApiDeps, principal: Principal, spec: JobSpec) -> Job | None:
    """The job whose stored original a spec's `{"job": id}` source names, once it has been read
    (its size and format recorded), for the dry run; None for other sources. 404 as at creation."""
    if spec.source is None or spec.source.job is None:
        return None
    job = await _stored_original(deps, principal.client.id, spec.source.job)
    if job is None:
        raise _source_not_found()
    return job if job.source_width is not None and job.source_height is not None else None


async def _stored_original(deps: ApiDeps, client_id: uuid.UUID, job_id: uuid.UUID) -> Job | None:
    """The job, if it is this client's and its checked original is still stored (it is not for a
    job never started, failed, canceled, deleted or past its retention)."""
    source = await deps.jobs.get(job_id, client_id)
    if source is None or await deps.store.stat(source.source_key) is None:
        return None
    return source


async def _copy_original(deps: ApiDeps, job: Job, source_job: uuid.UUID) -> None:
    """Copy another job's original to this job's source key. A copy, not a reference: deleting
    the first job (or its retention running out) later cannot take this job's original away."""
    if await deps.store.stat(job.source_key) is not None:
        return  # copied by an earlier /start
    source = await _stored_original(deps, job.client_id, source_job)
    if source is None:
        raise _source_not_found()
    try:
        await deps.store.copy(source.source_key, job.source_key)
    except ObjectNotFound:
        raise _source_not_found() from None


async def _check_original(deps: ApiDeps, job: Job) -> tuple[str, int, str]:
    """Where the original is, its size and format, after the checks an upload gets."""
    settings = deps.settings
    # The client's URL writes uploads/; what /start checked moves to sources/, where that URL
    # cannot reach, so re-using it later changes nothing the job reads. It is found in sources/
    # after an earlier /start that then found the client busy, after /v1/uploads or a copy, and
    # when a concurrent /start of the same job moved it between our two reads.
    for key in (upload_key(job.client_id, job.id), job.source_key):
        info = await deps.store.stat(key)
        if info is None:
            continue
        if info.size > settings.max_source_bytes:
            message = f"the upload is {info.size} bytes; the limit is {settings.max_source_bytes}"
            await _fail_at_start(deps, job, Reason.SOURCE_TOO_LARGE, message)
            raise PayloadTooLarge(message, code=Reason.SOURCE_TOO_LARGE)
        if info.size == 0:
            # A failed or aborted upload, not an image: the job stays `created` so the client can upload again.
            raise Unprocessable("the upload is empty; upload the original again", code="empty_source")
        try:
            head = await deps.store.read_head(key, SNIFF_BYTES)
        except ObjectNotFound:
            continue
        try:
            source_format = sniff(head)
        except UnsupportedFormat as exc:
            await _fail_at_start(deps, job, exc.code, exc.public)
            raise UnsupportedMediaType(exc.public, code=exc.code) from None
        return key, info.size, source_format
    raise _upload_missing()


def _upload_missing() -> Conflict:
    return Conflict("upload the original to the job's upload URL before starting it", code="upload_missing")


async def _require_assets(deps: ApiDeps, job: Job, spec: JobSpec) -> None:
    """Every watermark image the spec names must exist before the job is queued: otherwise it would
    fail after the work of uploading. The job stays ``created``, so uploading them and starting
    again is all it takes."""
    missing = [
        FieldError(path, f'no asset {key!r}: create it with POST /v1/assets {{"key": "{key}"}}, then upload the image')
        for path, key in asset_references(spec)
        if await deps.store.stat(asset_key(job.client_id, key)) is None
    ]
    if missing:
        raise Unprocessable(
            "the spec names watermark images that were not uploaded; upload them, then start the job again",
            code=AssetNotFound.code,
            errors=missing,
        )


def url_expiry(deps: ApiDeps) -> timedelta:
    return timedelta(seconds=deps.settings.presign_expiry_seconds)
