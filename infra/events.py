"""Webhook events and the public shape of a variant, shared by the API's views and the webhook
payloads. An event body is built once, when the job ends, and stored, so every retry and every
redelivery sends the same bytes under the same ``webhook-id``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from infra.lifecycle import JobStatus
from infra.repo import DeliveryRepo, Job, VariantRecord
from infra.repo.jobs import NewDelivery
from infra.storage import ObjectStore
from pipeline.details import SourceDetails

__all__ = [
    "EVENTS",
    "EventError",
    "JobEvent",
    "JobEventData",
    "PublicVariant",
    "job_delivery",
    "job_event",
    "public_variant",
    "source_details",
]

# SigV4 presigned URLs live at most 7 days; receivers needing them later use the API.
_URL_EXPIRY = timedelta(days=7)

# Every event type a receiver can get: one per terminal status.
EVENTS = {status: f"job.{status.value}" for status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)}


class PublicVariant(msgspec.Struct):
    id: str
    format: str
    content_type: str
    width: int  # of a frame, for an animation
    height: int
    bytes: int
    url: Annotated[
        str | None, Meta(description="Where to download it; null once the variant was deleted by retention.")
    ]
    quality: Annotated[
        int | None, Meta(description="The lossy encoder's quality; with max_bytes, the highest that fit.")
    ] = None
    frames: Annotated[
        int, Meta(description="Frames of an animated variant; 1 for a still image or an animation's first frame.")
    ] = 1


class EventError(msgspec.Struct):
    code: str
    message: str


class JobEventData(msgspec.Struct):
    job_id: Annotated[str, Meta(extra_json_schema={"format": "uuid"})]
    status: Annotated[str, Meta(description="The job's final status: succeeded, failed or canceled.")]
    attempts: int
    metadata: dict[str, Any] | None  # the spec's metadata, echoed
    variants: list[PublicVariant]  # empty unless the job succeeded
    error: EventError | None  # why the job failed; null otherwise
    info: SourceDetails | None = None  # the source described, when the spec's `info` asks


class JobEvent(msgspec.Struct):
    """The body of every webhook: stored once when the job ends, sent as-is by every attempt."""

    type: Annotated[str, Meta(description="job.succeeded, job.failed or job.canceled.")]
    # isoformat() of an aware UTC datetime, kept as text so stored payloads stay byte-identical
    timestamp: Annotated[str, Meta(extra_json_schema={"format": "date-time"})]
    data: JobEventData


def source_details(info: dict[str, Any] | None) -> SourceDetails | None:
    """A stored `source_info` in its public shape."""
    return msgspec.convert(info, SourceDetails) if info is not None else None


def public_variant(v: VariantRecord, store: ObjectStore, *, expires: timedelta) -> PublicVariant:
    return PublicVariant(
        v.variant_id,
        v.format,
        v.content_type,
        v.width,
        v.height,
        v.bytes,
        store.public_url(v.object_key, expires=expires),
        v.quality,
        v.frames,
    )


def job_event(
    job: Job,
    store: ObjectStore,
    *,
    status: JobStatus,
    variants: list[VariantRecord] | tuple[VariantRecord, ...] = (),
    error: tuple[str, str] | None = None,
    info: dict[str, Any] | None = None,
) -> NewDelivery | None:
    url = job.spec.get("webhook_url")
    if not url:
        return None
    data = JobEventData(
        job_id=str(job.id),
        status=status.value,
        attempts=job.attempts,
        metadata=job.spec.get("metadata"),
        variants=[public_variant(v, store, expires=_URL_EXPIRY) for v in variants],
        error=EventError(*error) if error else None,
        info=source_details(info),
    )
    event = EVENTS[status]
    payload = JobEvent(type=event, timestamp=datetime.now(UTC).isoformat(), data=data)
    return NewDelivery(event=event, url=url, payload=msgspec.to_builtins(payload))


async def job_delivery(
    deliveries: DeliveryRepo, job: Job, store: ObjectStore, *, status: JobStatus, **kwargs: Any
) -> NewDelivery | None:
    """The event to record with the job's final state, unless its endpoint was disabled (410)."""
    url = job.spec.get("webhook_url")
    if url and await deliveries.endpoint_disabled(job.client_id, url):
        return None
    return job_event(job, store, status=status, **kwargs)
