"""``GET /v1/limits``: the limits in force for the caller's client."""

from __future__ import annotations

from litestar import get

from control_plane.api.openapi import doc
from control_plane.auth.principal import PrincipalDep
from control_plane.deps import ApiDepsDep
from control_plane.jobflow.intake import limits_today
from infra.policy import ClientLimitsToday

__all__ = ["get_limits"]


@get("/v1/limits", tags=["limits"], operation_id="getLimits", summary="Your client's limits", opt=doc())
async def get_limits(deps: ApiDepsDep, principal: PrincipalDep) -> ClientLimitsToday:
    """The limits your jobs run under: job creations per minute per client (all its keys share
    them) and their burst, jobs queued or processing at once, an original's maximum pixels, the per-job work budget (cost
    units, as the dry run estimates them) and the daily quota of source megapixels (null: none),
    with `source_megapixels_today`, what your jobs that succeeded today (UTC) used of it; the
    daily quota of engine CPU seconds (`daily_engine_cpu_seconds`, null: none), with
    `engine_cpu_seconds_today`, what your jobs that ended today used of it whatever their outcome,
    and `deadline_exceeded_today`, how many of them were killed at their deadline; how many
    days after a job ended its original and its variants are kept (`retain_originals_days`,
    `retain_outputs_days`; null: until the job is deleted), and where its variants are stored
    under `outputs/` (`output_key_template`). `overridden` names those set for your client by the
    operator; the others are the deployment's."""
    return await limits_today(deps, principal)
