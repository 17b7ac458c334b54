"""A derived image that is not cached yet, rendered through the job path: one interactive job
per derived key (its idempotency key), so every API process asking for it at once finds the same
job and waits for it (single flight); the worker's interactive lane runs it under the deadline,
memory cap, cost budget and fair share of every job, and writes its one variant to the key."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from control_plane.delivery.variants import Plan
from control_plane.deps import ApiDeps
from control_plane.jobflow.intake import queue_stored, refuse_over_quota
from control_plane.problems import (
    ApiError,
    NotFound,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    Unprocessable,
    UnsupportedMediaType,
)
from infra.lifecycle import TERMINAL, JobStatus, Priority, Reason
from infra.metrics import URL_RENDER_SECONDS
from infra.policy import client_limits
from infra.repo import Job, Start
from infra.storage import ObjectNotFound
from infra.telemetry import carrier
from pipeline.dsl import encode_job_spec

__all__ = ["MAX_DERIVED_BYTES", "Rendered", "StoredSource", "render"]

MAX_DERIVED_BYTES = 1 << 28
# A failed render answers the same for this long (a bad op on this image stays bad); after it,
# the next request tries again (the failure may have been the machine's, not the image's).
_FAILURE_KEPT = timedelta(seconds=60)


class RenderTimeout(ApiError):
    status, code, title = 504, "render_timeout", "The image was not ready in time"
    headers_sent = ("Retry-After",)


@dataclass(frozen=True)
class StoredSource:
    kind: str  # job, asset, url
    id: str  # a job's id, an asset's key, a digest of the URL
    key: str | None  # the original's object key; None for a URL, which the render job fetches
    version: str  # its ETag: a replaced asset is a new source ("" for a URL: cached as first fetched)
    size: int | None
    format: str | None
    head: bytes | None = None  # its first SNIFF_BYTES when they were read to sniff it: read once


@dataclass(frozen=True)
class Rendered:
    data: bytes
    coalesced: bool  # another request had started the render
    job_id: uuid.UUID  # the render job
    trace_context: dict[str, str] | None  # where its trace starts: the request that created it


async def render(
    deps: ApiDeps, client_id: uuid.UUID, source: StoredSource, plan: Plan, digest: str, key: str
) -> Rendered:
    rendered, joined = await deps.renders.once(key, lambda: _render(deps, client_id, source, plan, digest, key))
    return dataclasses.replace(rendered, coalesced=True) if joined else rendered


async def _render(
    deps: ApiDeps, client_id: uuid.UUID, source: StoredSource, plan: Plan, digest: str, key: str
) -> Rendered:
    started = time.monotonic()
    deadline = started + deps.settings.url_deadline_seconds
    spec = encode_job_spec(plan.spec)
    for _ in range(3):  # a finished job whose result is gone, or an old failure: once more
        made = await deps.jobs.create(
            client_id=client_id,
            spec=spec,
            spec_sha256=hashlib.sha256(spec).digest(),
            idempotency_key=f"url:{digest}",
            trace_context=carrier(),
            template=plan.template,
            render=(source.key, key),
        )
        job = made.job
        if job.status == JobStatus.CREATED:
            await _start(deps, job, source)
        if job.status not in TERMINAL:
            job = await _ended(deps, job.id, deadline)
            URL_RENDER_SECONDS.observe(time.monotonic() - started)
        if job.status == JobStatus.SUCCEEDED:
            try:
                data = await deps.store.read(key, max_bytes=MAX_DERIVED_BYTES)
            except ObjectNotFound:
                await deps.jobs.release_key(job.id)
                continue
            return Rendered(data, coalesced=not made.new, job_id=job.id, trace_context=job.trace_context)
        recent = job.finished_at is not None and datetime.now(UTC) - job.finished_at < _FAILURE_KEPT
        if job.status == JobStatus.FAILED and (made.new or recent):
            raise _failure(job)
        await deps.jobs.release_key(job.id)
    raise ServiceUnavailable("the image could not be rendered; retry shortly", headers={"Retry-After": "2"})


async def _start(deps: ApiDeps, job: Job, source: StoredSource) -> None:
    """Queue the render as /start queues a job whose original is stored; harmless when another
    request started it first."""
    limits = client_limits(deps.settings, await deps.clients.policy(job.client_id))
    started = await queue_stored(deps, job, limits, source.size, source.format, Priority.INTERACTIVE)
    if started.kind is Start.BUSY:
        raise ServiceUnavailable(
            f"the client has its {limits.max_concurrent_jobs_per_client} jobs queued or processing; retry shortly",
            code="over_capacity",
            headers={"Retry-After": "5"},
        )
    refuse_over_quota(started.kind, limits)


async def _ended(deps: ApiDeps, job_id: uuid.UUID, deadline: float) -> Job:
    """The job once it ended, polled with a short backoff; 504 at the URL path's deadline (the
    render goes on: the next request is likely a hit)."""
    delay = 0.02
    while True:
        job = await deps.jobs.get(job_id)
        if job is None:  # erased meanwhile (its source job was deleted)
            raise NotFound("no such source", code="source_not_found")
        if job.status in TERMINAL:
            return job
        remaining = deadline - time.monotonic()
        if remaining <= 0:  # at the deadline, not a poll before it
            raise RenderTimeout(
                f"the image was not rendered within {deps.settings.url_deadline_seconds:g} s; it may be ready shortly",
                headers={"Retry-After": "2"},
            )
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 1.5, 0.05)  # one poller per render and process (control_plane/delivery/inflight.py)


_FAILURES: dict[str, type[ApiError]] = {
    Reason.SOURCE_TOO_LARGE: PayloadTooLarge,
    "image_too_large": PayloadTooLarge,
    "unsupported_format": UnsupportedMediaType,
    Reason.SOURCE_MISSING: NotFound,
    Reason.DAILY_QUOTA_EXCEEDED: TooManyRequests,
    Reason.DAILY_CPU_QUOTA_EXCEEDED: TooManyRequests,
    "deadline_exceeded": RenderTimeout,
    Reason.INFRASTRUCTURE_ERROR: ServiceUnavailable,
    Reason.WORKER_LOST: ServiceUnavailable,
    "engine_crashed": ServiceUnavailable,
    "internal_error": ServiceUnavailable,
}


def _failure(job: Job) -> ApiError:
    """The render job's error as the response's: the engine's code and message, with its status
    (422 for what is wrong with this image or these options)."""
    code = job.error_code or "internal_error"
    kind = _FAILURES.get(code, Unprocessable)
    error = kind(job.error_message or code, code=code)
    if kind in (ServiceUnavailable, RenderTimeout, TooManyRequests):
        error.headers = {"Retry-After": "5"}
    return error
