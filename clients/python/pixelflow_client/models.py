"""What the API returns, as typed structs (unknown fields are ignored, so newer servers work)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, Literal

import msgspec

__all__ = [
    "Attempt",
    "Camera",
    "Delivery",
    "FieldError",
    "Job",
    "JobError",
    "JobPage",
    "Location",
    "Source",
    "SourceInfo",
    "Template",
    "TemplateChange",
    "TemplateDiff",
    "TemplateUse",
    "TemplateVersion",
    "Upload",
    "UploadTarget",
    "Usage",
    "UsageDay",
    "UsageTotals",
    "Validation",
    "Variant",
    "WebhookEvent",
]

Status = Literal["created", "queued", "processing", "succeeded", "failed", "canceled"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "canceled"})


class UploadTarget(msgspec.Struct):
    method: str
    url: str
    expires_at: datetime
    fields: dict[str, str] | None = None


class Upload(msgspec.Struct):
    put: UploadTarget
    post: UploadTarget | None
    max_bytes: int


class JobError(msgspec.Struct):
    code: str
    message: str


class Source(msgspec.Struct):
    bytes: int | None
    format: str | None
    width: int | None
    height: int | None


class Variant(msgspec.Struct):
    id: str
    format: str
    content_type: str
    width: int
    height: int
    bytes: int
    url: str | None  # None once the retention sweeper deleted the job's variants
    quality: int | None = None  # a lossy encoder's quality; with max_bytes, the highest that fit
    frames: int = 1  # an animated variant's frames


class Location(msgspec.Struct):
    latitude: float
    longitude: float


class Camera(msgspec.Struct):
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    taken_at: str | None = None
    location: Location | None = None


class SourceInfo(msgspec.Struct):
    """The source described, when the spec's ``info`` asks."""

    format: str
    width: int
    height: int
    orientation: int
    frames: int
    has_alpha: bool
    average_color: str
    dominant_color: str
    profile: str | None = None
    camera: Camera | None = None
    blurhash: str | None = None
    thumbhash: str | None = None


class TemplateUse(msgspec.Struct):
    """The template version a job's spec was resolved from."""

    name: str
    version: int


class TemplateVersion(msgspec.Struct):
    version: int
    spec: dict[str, Any]
    parameters: dict[str, Any]
    created_at: datetime


class Template(msgspec.Struct):
    name: str
    latest_version: int
    versions: list[TemplateVersion]  # newest first


class TemplateChange(msgspec.Struct):
    op: Literal["add", "remove", "replace"]
    path: str  # as validation errors name fields: $.spec.pipeline[0].steps[1].width
    before: Any = None
    after: Any = None


class TemplateDiff(msgspec.Struct):
    name: str
    from_version: int
    to_version: int
    changes: list[TemplateChange]


class Job(msgspec.Struct):
    id: uuid.UUID
    status: Status
    created_at: datetime
    attempts: int
    queued_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: JobError | None = None
    metadata: dict[str, Any] | None = None
    source: Source | None = None
    variants: list[Variant] = []
    upload: Upload | None = None
    info: SourceInfo | None = None
    template: TemplateUse | None = None
    # retention: when the original and the variants expire, and when the sweeper deleted them
    original_expires_at: datetime | None = None
    original_deleted_at: datetime | None = None
    outputs_expire_at: datetime | None = None
    outputs_deleted_at: datetime | None = None

    @property
    def done(self) -> bool:
        return self.status in TERMINAL


class JobPage(msgspec.Struct):
    jobs: list[Job]
    next_cursor: str | None


class Attempt(msgspec.Struct):
    attempt: int
    at: datetime
    response_status: int | None
    error: str | None
    duration_ms: int


class Delivery(msgspec.Struct):
    id: uuid.UUID
    webhook_id: uuid.UUID
    event: str
    url: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    history: list[Attempt]


class FieldError(msgspec.Struct):
    path: str
    message: str


class Validation(msgspec.Struct):
    """The dry run: the normalised spec and, given a source size, what the job would produce."""

    valid: bool
    spec: dict[str, Any]
    variants: list[dict[str, Any]]
    decode_size: tuple[int, int] | None = None
    errors: list[dict[str, Any]] | None = None
    cost: float | None = None
    max_cost: float | None = None
    template: TemplateUse | None = None
    newer_template: TemplateDiff | None = None  # pinned to an older version: what the latest changes
    source: dict[str, Any] | None = None  # the original planned for: as given, or a `{"job": id}` source's
    info: SourceInfo | None = None  # that stored original's description, when the spec asks for `info`


class UsageTotals(msgspec.Struct, kw_only=True):
    jobs: int  # jobs that ended: succeeded + failed + canceled
    succeeded: int
    failed: int
    canceled: int
    source_megapixels: float  # the sources of the jobs that succeeded
    output_bytes: dict[str, int]  # per output format
    output_bytes_total: int
    engine_cpu_seconds: float  # every run of every job, whatever its outcome
    failed_by_code: dict[str, int] = {}  # the failed jobs per error code
    deadline_exceeded: int = 0  # failed jobs killed at their deadline
    deadline_exceeded_cpu_seconds: float = 0.0  # the engine CPU those spent
    webhook_attempts: int  # HTTP attempts, retries and redeliveries included
    webhooks_delivered: int  # attempts answered 2xx
    # signed image URLs: renders (also in jobs, engine_cpu_seconds and source_megapixels), cache hits, bytes sent
    url_renders: int = 0
    url_render_cpu_seconds: float = 0.0
    url_render_source_megapixels: float = 0.0
    url_cache_hits: int = 0
    url_bytes_served: int = 0


class UsageDay(UsageTotals, kw_only=True):
    day: date  # UTC


class Usage(msgspec.Struct, kw_only=True):
    """``GET /v1/usage``: your client's usage per UTC day (a job counts once, on the day it ended)."""

    start: date = msgspec.field(name="from")
    end: date = msgspec.field(name="to")
    total: UsageTotals
    days: list[UsageDay]  # oldest first, only days with usage


class WebhookEvent(msgspec.Struct):
    """A verified webhook: ``type`` is ``job.succeeded``, ``job.failed`` or ``job.canceled``."""

    type: str
    timestamp: datetime
    data: dict[str, Any]
    id: str = ""  # the webhook-id header: the same for every retry and redelivery; deduplicate on it

    @property
    def job_id(self) -> uuid.UUID:
        return uuid.UUID(self.data["job_id"])
