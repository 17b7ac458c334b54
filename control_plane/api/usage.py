"""``GET /v1/usage``: what the caller's client used, per UTC day (infra/repo/usage.py counts it)."""

from __future__ import annotations

from typing import Annotated

from litestar import get
from litestar.params import QueryParameter

from control_plane.api.openapi import doc
from control_plane.auth.principal import PrincipalDep, needs
from control_plane.deps import ApiDepsDep
from control_plane.problems import InvalidRequest
from infra.repo.usage import RangeError, UsageReport, report_range
from pipeline.errors import FieldError

__all__ = ["get_usage"]


def _day_parameter(name: str, default: str) -> QueryParameter:
    return QueryParameter(
        name=name, description=f"A UTC day, `YYYY-MM-DD` (default: {default}).", schema_extra={"format": "date"}
    )


@get(
    "/v1/usage",
    tags=["usage"],
    operation_id="getUsage",
    summary="Your client's usage per day",
    opt=doc(raises=[InvalidRequest]) | needs("jobs:read"),
)
async def get_usage(
    deps: ApiDepsDep,
    principal: PrincipalDep,
    start: Annotated[str | None, _day_parameter("from", "29 days before `to`")] = None,
    end: Annotated[str | None, _day_parameter("to", "today")] = None,
) -> UsageReport:
    """What your jobs used from `from` to `to` (UTC days, both included; default: the last 30
    days, at most 366): jobs that ended by outcome, the failed ones by error code
    (`failed_by_code`) and those killed at their deadline (`deadline_exceeded`, with the
    `deadline_exceeded_cpu_seconds` they spent), source megapixels of the jobs that succeeded,
    output bytes per format, the engine's CPU seconds (every run of every job, whatever its
    outcome: failed, canceled while running and handed-back runs included), and webhook HTTP
    attempts (retries and redeliveries included) with those answered 2xx. A job counts once, on
    the day it ended, however many times it ran; deleting it keeps its usage. Signed image URLs:
    `url_renders` are the renders that ended (jobs too, so also in `jobs`, with their
    `url_render_cpu_seconds` and `url_render_source_megapixels` also in the totals),
    `url_cache_hits` the requests answered from the derived cache (a 304 included) and
    `url_bytes_served` the image bytes sent for hits and renders, on the day of the request
    (added every few seconds). `days` lists the days with any usage."""
    try:
        first, last = report_range(start, end)
    except RangeError as exc:
        raise InvalidRequest("the request is invalid", errors=[FieldError(f"$.{exc.field}", exc.message)]) from None
    return await deps.usage.report(principal.client.id, first, last)
