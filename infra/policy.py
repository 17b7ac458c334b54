"""Per-client policy: overrides of the global limits, one client at a time. Each field is named
after the ``Settings`` field it overrides (None: the global value), so both planes and the CLI
compute a client's limits the same way, here."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from infra.settings import Settings
from pipeline.dsl import Limits

__all__ = ["POLICY_FIELDS", "ClientLimits", "ClientPolicy", "client_limits", "engine_limits"]

Positive = Annotated[int, Meta(ge=1)]


class ClientPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    rate_limit_per_minute: Positive | None = None  # job creations per minute per key, sustained
    rate_limit_burst: Positive | None = None
    max_concurrent_jobs_per_client: Positive | None = None  # jobs queued or processing at once
    max_source_pixels: Positive | None = None  # an original's width x height (x frames)
    max_job_cost: Positive | None = None  # the planner's estimate per job (pipeline/cost.py)


POLICY_FIELDS = tuple(f.name for f in msgspec.structs.fields(ClientPolicy))


class ClientLimits(msgspec.Struct, frozen=True, kw_only=True):
    """A client's limits in force: its overrides, else the deployment's settings."""

    rate_limit_per_minute: int
    rate_limit_burst: int
    max_concurrent_jobs_per_client: int
    max_source_pixels: int
    max_job_cost: int
    overridden: list[str]  # which of the above come from the client's policy


def client_limits(settings: Settings, policy: ClientPolicy) -> ClientLimits:
    values = {name: getattr(policy, name) for name in POLICY_FIELDS}
    own = [name for name, value in values.items() if value is not None]
    return ClientLimits(
        **{name: getattr(settings, name) if value is None else value for name, value in values.items()},
        overridden=own,
    )


def engine_limits(settings: Settings, policy: ClientPolicy) -> Limits:
    """The planner's and engine's limits for this client's jobs."""
    limits = client_limits(settings, policy)
    return msgspec.structs.replace(
        settings.limits, max_source_pixels=limits.max_source_pixels, max_job_cost=limits.max_job_cost
    )
