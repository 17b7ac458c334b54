"""What the API returns. msgspec structs, so Litestar serialises them and documents them in OpenAPI."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import msgspec

from infra.events import PublicVariant, public_variant, source_details
from infra.lifecycle import Priority
from infra.policy import ClientLimits, expires_at
from infra.repo import Delivery, Job
from infra.storage import ObjectStore, PresignedUpload
from pipeline.details import SourceDetails

__all__ = ["DeliveryView", "JobList", "JobView", "UploadView", "delivery_view", "job_view", "upload_view"]


class UploadTarget(msgspec.Struct):
    method: str
    url: str
    expires_at: datetime
    fields: dict[str, str] | None = None


class UploadView(msgspec.Struct):
    """Upload the original with ``put`` (any HTTP client: ``PUT`` the bytes to ``url``), or from a
    browser form with ``post`` where the store supports it (the policy enforces the size limit)."""

    put: UploadTarget
    post: UploadTarget | None
    max_bytes: int


class ErrorView(msgspec.Struct):
    code: str
    message: str


class SourceView(msgspec.Struct):
    bytes: int | None
    format: str | None
    width: int | None
    height: int | None


class TemplateUse(msgspec.Struct):
    """The template version a job's spec was resolved from."""

    name: str
    version: int


class JobView(msgspec.Struct):
    id: uuid.UUID
    status: str
    created_at: datetime
    attempts: int
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: ErrorView | None = None
    metadata: dict[str, Any] | None = None
    source: SourceView | None = None
    variants: list[PublicVariant] = msgspec.field(default_factory=list)
    upload: UploadView | None = None
    info: SourceDetails | None = None  # the source described, when the spec's `info` asks
    template: TemplateUse | None = None
    # how urgently it is scheduled; an interactive job past its client's allowance runs as normal
    priority: Priority = Priority.NORMAL
    # Retention: when the sweeper deletes the original / the variants (null: kept, or the job has
    # not ended), and when it did; the job itself stays. Computed from `finished_at` and the
    # client's retention in force now.
    original_expires_at: datetime | None = None
    original_deleted_at: datetime | None = None
    outputs_expire_at: datetime | None = None
    outputs_deleted_at: datetime | None = None


class JobList(msgspec.Struct):
    jobs: list[JobView]
    next_cursor: str | None


class AttemptView(msgspec.Struct):
    attempt: int
    at: datetime
    response_status: int | None
    error: str | None
    duration_ms: int


class DeliveryView(msgspec.Struct):
    id: uuid.UUID
    webhook_id: uuid.UUID  # the `webhook-id` header: shared by a redelivery and the original
    event: str
    url: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    history: list[AttemptView]


def _target(u: PresignedUpload) -> UploadTarget:
    return UploadTarget(u.method, u.url, u.expires_at, u.fields or None)


def upload_view(store: ObjectStore, key: str, *, expires: timedelta, max_bytes: int) -> UploadView:
    post = store.presign_post(key, expires=expires, max_bytes=max_bytes)
    return UploadView(
        put=_target(store.presign_put(key, expires=expires, max_bytes=max_bytes)),
        post=_target(post) if post else None,
        max_bytes=max_bytes,
    )


def job_view(
    job: Job, store: ObjectStore, *, url_expiry: timedelta, limits: ClientLimits, upload: UploadView | None = None
) -> JobView:
    """The job as its client sees it; ``limits`` (the client's, in force now) dates its retention."""
    error = ErrorView(job.error_code, job.error_message or "") if job.error_code else None
    source = (
        SourceView(job.source_bytes, job.source_format, job.source_width, job.source_height)
        if job.source_bytes is not None
        else None
    )
    variants = [public_variant(v, store, expires=url_expiry) for v in job.variants]
    if job.outputs_deleted_at is not None:  # sizes and formats stay; there is nothing to download
        variants = [msgspec.structs.replace(v, url=None) for v in variants]
    return JobView(
        id=job.id,
        status=job.status,
        created_at=job.created_at,
        attempts=job.attempts,
        queued_at=job.queued_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        error=error,
        metadata=job.spec.get("metadata"),
        source=source,
        variants=variants,
        upload=upload,
        info=source_details(job.source_info),
        template=TemplateUse(job.template_name, job.template_version)
        if job.template_name is not None and job.template_version is not None
        else None,
        original_expires_at=expires_at(job.finished_at, limits.retain_originals_days),
        original_deleted_at=job.original_deleted_at,
        outputs_expire_at=expires_at(job.finished_at, limits.retain_outputs_days),
        outputs_deleted_at=job.outputs_deleted_at,
        priority=Priority.of_rank(job.priority),
    )


def delivery_view(d: Delivery) -> DeliveryView:
    return DeliveryView(
        d.id,
        d.message_id,
        d.event,
        d.url,
        d.status,
        d.attempts,
        d.last_error,
        d.next_attempt_at,
        d.created_at,
        d.delivered_at,
        [AttemptView(a.attempt, a.at, a.response_status, a.error, a.duration_ms) for a in d.history],
    )
