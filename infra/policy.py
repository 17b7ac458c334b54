"""Per-client policy: overrides of the global limits, retention and output key template, one
client at a time. Each field is named after the ``Settings`` field it overrides (None: the global
value), so both planes and the CLI compute a client's limits the same way, here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import msgspec
from msgspec import Meta

from infra.output_keys import check_output_key_template
from infra.settings import Settings
from infra.url_policy import parse_origins, parse_widths
from pipeline.dsl import Limits

if TYPE_CHECKING:  # infra.repo reads policies: a runtime import would be a cycle
    from infra.repo.usage import SpentToday

__all__ = [
    "POLICY_FIELDS",
    "SWITCH_POLICY_FIELDS",
    "TEXT_POLICY_FIELDS",
    "ClientLimits",
    "ClientLimitsToday",
    "ClientPolicy",
    "client_limits",
    "cpu_quota_spent",
    "daily_pixels",
    "engine_limits",
    "expires_at",
    "limits_with_spend",
    "quota_resets_in",
    "quota_spent",
]

Positive = Annotated[int, Meta(ge=1)]


class ClientPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    rate_limit_per_minute: Positive | None = None  # job creations per minute per client (all its keys), sustained
    rate_limit_burst: Positive | None = None
    max_concurrent_jobs_per_client: Positive | None = None  # jobs queued or processing at once
    max_source_pixels: Positive | None = None  # an original's width x height (x frames)
    max_job_cost: Positive | None = None  # the planner's estimate per job (pipeline/cost.py)
    daily_source_megapixels: Positive | None = None  # sources' megapixels per UTC day (infra/repo/usage.py)
    daily_engine_cpu_seconds: Positive | None = None  # engine CPU seconds per UTC day, every outcome
    retain_originals_days: Positive | None = None  # days after the job ended until its original is deleted
    retain_outputs_days: Positive | None = None  # ... until its variants are deleted
    output_key_template: str | None = None  # where variants go under outputs/ (infra/objects.py)
    scheduling_weight: Positive | None = None  # its share of engine slots against other clients'
    max_running_jobs_per_client: Positive | None = None  # jobs processing at once
    interactive_jobs_per_client: Positive | None = None  # `priority: interactive` jobs active at once
    url_templates_only: bool | None = None  # signed URLs may only name templates (docs/delivery.md)
    url_widths: str | None = None  # the widths signed URLs may ask for, `320,640,1024`
    url_source_origins: str | None = None  # the origins their url: sources may name

    def __post_init__(self) -> None:
        if self.output_key_template is not None:
            check_output_key_template(self.output_key_template)
        if self.url_widths is not None:
            parse_widths(self.url_widths)
        if self.url_source_origins is not None:
            parse_origins(self.url_source_origins)


POLICY_FIELDS = tuple(f.name for f in msgspec.structs.fields(ClientPolicy))
TEXT_POLICY_FIELDS = frozenset({"output_key_template", "url_widths", "url_source_origins"})
SWITCH_POLICY_FIELDS = frozenset({"url_templates_only"})  # the rest are counts


class ClientLimits(msgspec.Struct, frozen=True, kw_only=True):
    """A client's limits in force: its overrides, else the deployment's settings."""

    rate_limit_per_minute: int
    rate_limit_burst: int
    max_concurrent_jobs_per_client: int
    max_source_pixels: int
    max_job_cost: int
    daily_source_megapixels: int | None  # None: no daily quota
    daily_engine_cpu_seconds: int | None  # None: no daily quota
    retain_originals_days: int | None  # null: kept until the job is deleted
    retain_outputs_days: int | None
    output_key_template: str
    scheduling_weight: int
    max_running_jobs_per_client: int
    interactive_jobs_per_client: int
    url_templates_only: bool
    url_widths: str
    url_source_origins: str
    overridden: list[str]  # which of the above come from the client's policy


class ClientLimitsToday(ClientLimits, frozen=True, kw_only=True):
    """The limits in force, and what today's (UTC) daily quotas have used so far."""

    source_megapixels_today: float  # sources of jobs that succeeded today (UTC), as usage counts them
    engine_cpu_seconds_today: float  # engine CPU of jobs that ended today, whatever their outcome
    deadline_exceeded_today: int  # of those, jobs killed at their deadline: time spent for nothing


def client_limits(settings: Settings, policy: ClientPolicy) -> ClientLimits:
    values = {name: getattr(policy, name) for name in POLICY_FIELDS}
    own = [name for name, value in values.items() if value is not None]
    return ClientLimits(
        **{name: getattr(settings, name) if value is None else value for name, value in values.items()},
        overridden=own,
    )


def limits_with_spend(limits: ClientLimits, spent: SpentToday) -> ClientLimitsToday:
    """The limits in force next to what today's jobs used of the daily quotas (``GET /v1/limits``,
    ``pixelflow clients limits``)."""
    return ClientLimitsToday(
        **msgspec.structs.asdict(limits),
        source_megapixels_today=round(spent.source_pixels / 1e6, 6),
        engine_cpu_seconds_today=round(spent.cpu_seconds, 3),
        deadline_exceeded_today=spent.deadline_exceeded,
    )


def engine_limits(settings: Settings, policy: ClientPolicy) -> Limits:
    """The planner's and engine's limits for this client's jobs."""
    limits = client_limits(settings, policy)
    return msgspec.structs.replace(
        settings.limits, max_source_pixels=limits.max_source_pixels, max_job_cost=limits.max_job_cost
    )


def daily_pixels(limits: ClientLimits) -> int | None:
    """The daily source-megapixel quota in pixels, as usage counts them; None: no quota."""
    quota = limits.daily_source_megapixels
    return None if quota is None else quota * 1_000_000


def quota_resets_in(now: datetime | None = None) -> int:
    """Whole seconds until the next UTC midnight, when a daily quota starts afresh (at least 1)."""
    now = now or datetime.now(UTC)
    midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    return max(1, int((midnight - now).total_seconds() + 0.999))


def quota_spent(megapixels: int) -> str:
    """Why a start or a job was refused for the daily quota (the API's 429 and the failed job's message)."""
    return f"the daily quota of {megapixels:,} source megapixels is spent for today; it starts afresh at midnight UTC"


def cpu_quota_spent(seconds: int) -> str:
    """Why a start or a job was refused for the daily engine CPU quota."""
    return (
        f"the daily quota of {seconds:,} engine CPU seconds is spent for today (failed jobs count, those killed"
        " at their deadline too); it starts afresh at midnight UTC"
    )


def expires_at(finished_at: datetime | None, days: int | None) -> datetime | None:
    """When the retention sweeper deletes what a job stored: ``days`` after the job ended, under
    the retention in force now (a changed policy applies to jobs that ended before). None while
    the job runs or when nothing expires."""
    return None if finished_at is None or days is None else finished_at + timedelta(days=days)
