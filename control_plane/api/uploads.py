"""``POST /v1/uploads``: create, upload and start in one multipart call, for small files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import msgspec
from litestar import Request, Response, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.handlers import HTTPRouteHandler
from litestar.params import Body, HeaderParameter

from control_plane.api.bodies import JsonNotUtf8, check_text, decode_bounded
from control_plane.api.openapi import JOB_SPEC, doc
from control_plane.api.views import JobView, job_view
from control_plane.auth.principal import PrincipalDep, needs
from control_plane.deps import ApiDepsDep
from control_plane.jobflow.intake import (
    CREATE_ERRORS,
    RATE_LIMIT_ERRORS,
    START_ERRORS,
    create_job,
    limits_of,
    rate_limit,
    start_job,
    url_expiry,
)
from control_plane.problems import PayloadTooLarge, Problem, Unprocessable, UnsupportedMediaType, problem_response
from infra.lifecycle import JobStatus
from pipeline.errors import SpecError
from pipeline.formats import FORMATS
from pipeline.sniff import SNIFF_BYTES, sniff
from pipeline.svg import check_svg

__all__ = ["upload_route"]


@dataclass
class UploadForm:
    file: UploadFile  # the original image
    spec: Annotated[str, JOB_SPEC]  # the job spec as JSON text: decoded by the handler, so errors carry paths


async def upload_and_start(
    deps: ApiDepsDep,
    principal: PrincipalDep,
    data: Annotated[UploadForm, Body(media_type=RequestEncodingType.MULTI_PART)],
    idempotency_key: Annotated[
        str | None, HeaderParameter(name="Idempotency-Key", description="As for createJob.")
    ] = None,
) -> Response[JobView]:
    """For small files: the multipart `file` (the original) and `spec` (the job spec as JSON) in one
    request; the job is created, stored and queued at once (202), as `createJob`, an upload and
    `startJob` would. Larger files (over the inline-upload limit, 413) take that path instead."""
    settings = deps.settings
    decision = await rate_limit(deps, principal)
    cap = min(settings.max_inline_upload_bytes, settings.max_source_bytes)
    content = await data.file.read(cap + 1)
    if len(content) > cap:
        raise PayloadTooLarge(f"inline uploads are limited to {cap} bytes; use POST /v1/jobs for larger files")
    if not content:
        raise Unprocessable("the file part is empty", code="empty_upload")
    source_format = sniff(content[:SNIFF_BYTES])  # UnsupportedFormat renders as 415
    if source_format == "svg":
        check_svg(content)  # the whole file is here: refuse a hostile SVG now rather than in the worker
    try:
        body = decode_bounded(data.spec)
    except msgspec.DecodeError as exc:
        raise SpecError.at("$", f"not valid JSON: {exc}") from None
    if isinstance(body, dict) and body.get("source") is not None:
        raise SpecError.at("$.source", "a job with a source takes no upload: create it with POST /v1/jobs")
    made = await create_job(deps, principal, body, idempotency_key)
    if made.new or made.job.status == JobStatus.CREATED:
        await deps.store.write(made.job.source_key, content, FORMATS[source_format].mime)
    job = await start_job(deps, principal, made.job.id, made.spec)
    view = job_view(job, deps.store, url_expiry=url_expiry(deps), limits=await limits_of(deps, principal))
    return Response(view, status_code=202, headers=decision.headers())


def _part_not_utf8(request: Request, exc: UnicodeDecodeError) -> Response[Problem]:
    """Litestar decodes every text part of a form as UTF-8 before the handler runs, and the one
    text part this form reads is `spec`: a 400 naming where in it the bad bytes are."""
    try:
        check_text(bytes(exc.object), exc)
    except JsonNotUtf8 as error:
        return problem_response(request, error)
    raise AssertionError("check_text raises for a UnicodeDecodeError")


def upload_route(max_body_bytes: int) -> HTTPRouteHandler:
    """The route with its own body limit: larger than the API's JSON limit, bounded by the
    inline-upload setting (Litestar parses multipart into memory, so the cap must hold before it)."""
    return post(
        "/v1/uploads",
        status_code=202,
        tags=["jobs"],
        operation_id="createUpload",
        summary="Create, upload and start a job in one call",
        request_max_body_size=max_body_bytes,
        exception_handlers={UnicodeDecodeError: _part_not_utf8},
        opt=doc(
            # the file's bytes are checked here (415 unsupported_format, 413 image_too_large for a hostile SVG)
            raises=(*RATE_LIMIT_ERRORS, *CREATE_ERRORS, *START_ERRORS, PayloadTooLarge, UnsupportedMediaType),
            sends=("RateLimit-Policy", "RateLimit"),
        )
        | needs("jobs:write"),
    )(upload_and_start)
