"""``/v1/jobs``: create, start, inspect, list, cancel, delete, download, webhook deliveries."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import Body, FromPath, FromQuery, HeaderParameter, QueryParameter
from litestar.response import Redirect

from control_plane.api.openapi import JOB_REQUEST, doc
from control_plane.api.views import (
    DeliveryView,
    JobList,
    JobView,
    UploadView,
    delivery_view,
    job_view,
    upload_view,
)
from control_plane.auth.principal import PrincipalDep, needs
from control_plane.deps import ApiDepsDep
from control_plane.jobflow.deliveries import job_deliveries, redeliver_last_webhook
from control_plane.jobflow.ending import cancel_job, delete_finished_job
from control_plane.jobflow.intake import (
    CREATE_ERRORS,
    RATE_LIMIT_ERRORS,
    START_ERRORS,
    create_job,
    has_source,
    limits_of,
    rate_limit,
    start_job,
    url_expiry,
)
from control_plane.jobflow.lookup import owned_job
from control_plane.problems import (
    Conflict,
    Gone,
    InvalidRequest,
    NotFound,
    RateLimited,
    TooManyRequests,
    Unprocessable,
)
from infra.lifecycle import JobStatus
from infra.objects import upload_key
from infra.repo import Job
from pipeline.errors import FieldError

__all__ = ["JobsController"]

SPEC_EXAMPLE = {
    "version": 1,
    "webhook_url": "https://example.com/hooks/pixelflow",
    "metadata": {"product_id": "sku-1234"},
    "pipeline": [
        {"id": "large", "steps": [{"op": "resize", "width": 2048, "fit": "inside"}], "format": "webp", "quality": 80},
        {"id": "thumb_small", "action": "resize", "width": 150, "format": "webp", "quality": 80},
    ],
}
SpecBody = Annotated[
    dict[str, Any],
    JOB_REQUEST,
    Body(
        description="A PixelFlow job spec (also published as schemas/job-spec.v1.json), or a template reference.",
        examples=[
            Example(summary="Two variants", value=SPEC_EXAMPLE),
            Example(
                summary="From a template",
                value={"template": "product@3", "parameters": {"caption": "Sale"}, "metadata": {"sku": "1234"}},
            ),
        ],
    ),
]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        description="1-255 printable ASCII characters. The same key with the same spec returns the job it created "
        "(200); with another spec it is a 409.",
    ),
]
RATE_LIMIT_HEADERS = ("RateLimit-Policy", "RateLimit")
Instant = Annotated[
    str | None,
    QueryParameter(
        description="An RFC 3339 date-time with its offset, such as 2025-01-31T12:00:00Z.",
        schema_extra={"format": "date-time"},
    ),
]
_AWARE = Annotated[datetime, msgspec.Meta(tz=True)]


def _pending_upload(deps: ApiDepsDep, job: Job, expiry: timedelta) -> UploadView | None:
    """Upload URLs while the job still waits for its original; none once it has started, nor
    for a job whose original comes from a URL or another job."""
    if job.status != JobStatus.CREATED or has_source(job):
        return None
    key = upload_key(job.client_id, job.id)
    return upload_view(deps.store, key, expires=expiry, max_bytes=deps.settings.max_source_bytes)


def _cursor(value: tuple[datetime, uuid.UUID] | None) -> str | None:
    if value is None:
        return None
    return base64.urlsafe_b64encode(f"{value[0].isoformat()}|{value[1]}".encode()).decode()


def _instant(name: str, value: str | None) -> datetime | None:
    # Parsed here, not by Litestar: it would take "0.5" for a Unix time and a date-time without an
    # offset for local time, where the contract is RFC 3339.
    if value is None:
        return None
    try:
        return msgspec.convert(value, _AWARE)
    except msgspec.ValidationError as exc:
        raise InvalidRequest("the request is invalid", errors=[FieldError(f"$.{name}", str(exc))]) from None


def _parse_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        ts, _, job_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(ts), uuid.UUID(job_id)
    except (ValueError, UnicodeDecodeError):
        raise Unprocessable(
            "the cursor is not one this API returned",
            code="invalid_cursor",
            errors=[FieldError("$.cursor", "pass back a `next_cursor` as it was returned")],
        ) from None


class JobsController(Controller):
    path = "/v1/jobs"
    tags = ["jobs"]

    @post(
        "/",
        status_code=201,
        operation_id="createJob",
        summary="Create a job and get its upload URL (or queue it, with a source)",
        responses={200: ResponseSpec(JobView, description="Replayed: the job this Idempotency-Key created before")},
        opt=doc(
            # with a source, also what starting it sends: 429 too_many_active_jobs (a copied
            # original was sniffed when its own job started, so never 415 here)
            raises=(*RATE_LIMIT_ERRORS, *CREATE_ERRORS, TooManyRequests),
            sends=(*RATE_LIMIT_HEADERS, "Idempotent-Replayed"),
        )
        | needs("jobs:write"),
    )
    async def create(
        self, deps: ApiDepsDep, principal: PrincipalDep, data: SpecBody, idempotency_key: IdempotencyKey = None
    ) -> Response[JobView]:
        """Validates the spec (every invalid field is reported at once in `errors[]`, 422 `invalid_spec`), or
        resolves a template reference (`template`: `name` for its latest version or `name@version`;
        `parameters` set its declared parameters; 404 `template_not_found`); a presets-only key
        sending a spec is 403 `presets_only`. Returns the job, `created`, with presigned URLs to upload the original to (`upload.put`, and
        `upload.post` for browser forms where the store supports it). Upload, then `startJob`.

        With a `source` instead (`{"url": "https://..."}`, fetched by the worker; `{"job": "<id>"}`,
        the stored original of another of your jobs, copied), nothing is uploaded: the job is
        queued in this call, as `startJob` would (429 `too_many_active_jobs` leaves it `created`:
        start it later). A URL whose host is literally internal is 422 with `$.source.url`; a
        source job that is not yours or no longer holds its original is 404 `source_not_found`.

        Rate-limited per client, all its keys together, and per key where a key has a lower
        limit of its own (`RateLimit-Policy`, `RateLimit`; 429 with `Retry-After`)."""
        decision = await rate_limit(deps, principal)
        made = await create_job(deps, principal, data, idempotency_key)
        job, created = made.job, made.new
        if has_source(job) and job.status == JobStatus.CREATED:
            job = await start_job(deps, principal, job.id, made.spec)  # no upload to wait for
        expiry = url_expiry(deps)
        upload = _pending_upload(deps, job, expiry)
        headers = decision.headers()
        if not created:
            headers["Idempotent-Replayed"] = "true"
        return Response(
            job_view(job, deps.store, url_expiry=expiry, limits=await limits_of(deps, principal), upload=upload),
            status_code=201 if created else 200,
            headers=headers,
        )

    @post(
        "/{job_id:uuid}/start",
        status_code=202,
        operation_id="startJob",
        summary="Check the upload and queue the job",
        opt=doc(raises=START_ERRORS) | needs("jobs:write"),
    )
    async def start(self, deps: ApiDepsDep, principal: PrincipalDep, job_id: FromPath[uuid.UUID]) -> JobView:
        """Checks the uploaded original (it exists, is within the size limit, and its bytes are an image
        format PixelFlow reads) and queues the job once: starting a queued, running or finished job
        again returns it unchanged. An empty upload is 422 `empty_source` and the job stays `created`;
        an oversized or unreadable one fails the job (413, 415). 429 `too_many_active_jobs` when the
        client already has its maximum of jobs queued or processing; 429 `daily_quota_exceeded`
        (with `Retry-After` until midnight UTC) when its daily quota of source megapixels is spent,
        or `daily_cpu_quota_exceeded` when its daily quota of engine CPU seconds is, and the job
        stays `created`."""
        job = await start_job(deps, principal, job_id)
        return job_view(job, deps.store, url_expiry=url_expiry(deps), limits=await limits_of(deps, principal))

    @get(
        "/{job_id:uuid}",
        operation_id="getJob",
        summary="A job's status and variants",
        opt=doc(raises=[NotFound]) | needs("jobs:read"),
    )
    async def get_job(self, deps: ApiDepsDep, principal: PrincipalDep, job_id: FromPath[uuid.UUID]) -> JobView:
        """Status (`created`, `queued`, `processing`, `succeeded`, `failed`, `canceled`), timestamps,
        attempts, the error `code`/`message` of a failed job, the source's size and format, and each
        variant with a presigned download URL. While `created`, the upload URLs again.

        Under a retention policy, a finished job shows when its original and its variants expire
        (`original_expires_at`, `outputs_expire_at`: that many days after `finished_at`) and,
        once the sweeper deleted them, when (`original_deleted_at`, `outputs_deleted_at`; the
        variants keep their sizes but lose their `url`)."""
        job = await owned_job(deps, principal, job_id)
        expiry = url_expiry(deps)
        upload = _pending_upload(deps, job, expiry)
        limits = await limits_of(deps, principal)
        return job_view(job, deps.store, url_expiry=expiry, limits=limits, upload=upload)

    @get(
        "/",
        operation_id="listJobs",
        summary="List your jobs, newest first",
        opt=doc(raises=[Unprocessable]) | needs("jobs:read"),
    )
    async def list_jobs(
        self,
        deps: ApiDepsDep,
        principal: PrincipalDep,
        status: Annotated[
            str | None,
            QueryParameter(pattern=f"^({'|'.join(JobStatus)})$", required=False),
        ] = None,
        created_after: Instant = None,
        created_before: Instant = None,
        cursor: FromQuery[str | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 50,
    ) -> JobList:
        """Filtered by `status` and creation time; pages by keyset: pass `next_cursor` as `cursor`
        until it is null (422 `invalid_cursor` for a cursor this API did not return)."""
        page = await deps.jobs.list(
            principal.client.id,
            status=status,
            created_after=_instant("created_after", created_after),
            created_before=_instant("created_before", created_before),
            after=_parse_cursor(cursor) if cursor else None,
            limit=limit,
        )
        expiry, limits = url_expiry(deps), await limits_of(deps, principal)
        return JobList(
            [job_view(j, deps.store, url_expiry=expiry, limits=limits) for j in page.jobs],
            _cursor(page.next_cursor),
        )

    @post(
        "/{job_id:uuid}/cancel",
        status_code=200,
        operation_id="cancelJob",
        summary="Cancel a job that has not finished",
        opt=doc(raises=[NotFound, Conflict]) | needs("jobs:write"),
    )
    async def cancel(self, deps: ApiDepsDep, principal: PrincipalDep, job_id: FromPath[uuid.UUID]) -> JobView:
        """A running job's engine is stopped within a second; the job ends `canceled` and its
        webhook receives `job.canceled`. A job that already ended is 409 `job_<status>`."""
        job = await cancel_job(deps, principal, job_id)
        return job_view(job, deps.store, url_expiry=url_expiry(deps), limits=await limits_of(deps, principal))

    @delete(
        "/{job_id:uuid}",
        status_code=204,
        operation_id="deleteJob",
        summary="Delete a finished job and everything stored for it",
        opt=doc(raises=[NotFound, Conflict]) | needs("jobs:write"),
    )
    async def delete_job(self, deps: ApiDepsDep, principal: PrincipalDep, job_id: FromPath[uuid.UUID]) -> None:
        """Deletes the original and every variant from storage, and the job's spec, metadata and
        webhook deliveries; the job is then 404 everywhere. A record of it (id, status, timestamps)
        is kept for audit. Only a finished job (`succeeded`, `failed`, `canceled`): cancel a running
        one first (409 `job_<status>`). While object storage is unavailable it is 503 with
        `Retry-After` and the job is left as it was: repeat the request."""
        await delete_finished_job(deps, principal, job_id)

    @get(
        "/{job_id:uuid}/variants/{variant_id:str}",
        status_code=302,
        operation_id="getVariant",
        summary="Download a variant",
        opt=doc(raises=[NotFound, Gone], sends=["Location"]) | needs("jobs:read"),
    )
    async def download(
        self, deps: ApiDepsDep, principal: PrincipalDep, job_id: FromPath[uuid.UUID], variant_id: FromPath[str]
    ) -> Redirect:
        """Redirects (302) to a presigned URL of the variant in object storage (or its CDN URL where
        the deployment has one); follow it without the API key. 410 `outputs_expired` once the
        retention sweeper deleted the job's variants."""
        job = await deps.jobs.get(job_id, principal.client.id)
        variant = next((v for v in job.variants if v.variant_id == variant_id), None) if job else None
        if job is None or variant is None:
            raise NotFound("no such job or variant")
        if job.outputs_deleted_at is not None:
            raise Gone(
                f"the job's variants were deleted at {job.outputs_deleted_at.isoformat()} (retention)",
                code="outputs_expired",
            )
        return Redirect(deps.store.public_url(variant.object_key, expires=url_expiry(deps)), status_code=302)

    @get(
        "/{job_id:uuid}/deliveries",
        operation_id="listDeliveries",
        summary="Webhook deliveries for a job, with every attempt",
        opt=doc(raises=[NotFound]) | needs("jobs:read"),
    )
    async def deliveries(
        self, deps: ApiDepsDep, principal: PrincipalDep, job_id: FromPath[uuid.UUID]
    ) -> list[DeliveryView]:
        """Each delivery of the job's webhook (the original and any redeliveries): its status, the
        next attempt's time, and every attempt's response status, error and duration."""
        return [delivery_view(d) for d in await job_deliveries(deps, principal, job_id)]

    @post(
        "/{job_id:uuid}/deliveries/redeliver",
        status_code=202,
        operation_id="redeliver",
        summary="Send the job's last webhook again",
        opt=doc(raises=[NotFound, RateLimited, Conflict]) | needs("jobs:write"),
    )
    async def redeliver(self, deps: ApiDepsDep, principal: PrincipalDep, job_id: FromPath[uuid.UUID]) -> DeliveryView:
        """Queues the last event again with the same body and the same `webhook-id`, so receivers
        deduplicate it. 409 `no_delivery` before the job has sent one; limited per job and per
        client (429 `redelivery_rate_limited`)."""
        return delivery_view(await redeliver_last_webhook(deps, principal, job_id))
