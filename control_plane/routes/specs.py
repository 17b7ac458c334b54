"""``POST /v1/specs/validate``: a dry run. The normalised spec, and the sizes it will produce."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import post
from litestar.params import JSONBody
from msgspec import Meta

from control_plane.auth import PrincipalDep
from control_plane.services import ServicesDep
from pipeline.compile import compile_plan
from pipeline.errors import PipelineError
from pipeline.sniff import AUTO_FORMAT, SourceFormat
from pipeline.spec import decode_job_spec, encode_job_spec

__all__ = ["validate_spec"]


class SourceSize(msgspec.Struct, forbid_unknown_fields=True):
    width: Annotated[int, Meta(ge=1, le=1_000_000)]
    height: Annotated[int, Meta(ge=1, le=1_000_000)]
    format: SourceFormat | None = None


class ValidateRequest(msgspec.Struct, forbid_unknown_fields=True):
    spec: dict[str, Any]
    source: SourceSize | None = None


class PlannedVariant(msgspec.Struct):
    id: str
    format: str | None  # None: `auto` and no source format given
    width: int | None = None
    height: int | None = None


class ValidateResponse(msgspec.Struct):
    valid: bool
    spec: dict[str, Any]
    variants: list[PlannedVariant]
    decode_size: tuple[int, int] | None = None
    plan_error: str | None = None


@post("/v1/specs/validate", status_code=200, tags=["specs"], summary="Validate a spec and preview output sizes")
async def validate_spec(
    services: ServicesDep, principal: PrincipalDep, data: JSONBody[ValidateRequest]
) -> ValidateResponse:
    spec = decode_job_spec(data.spec, services.settings.limits)  # SpecError renders as 422 with paths
    normal = msgspec.json.decode(encode_job_spec(spec))
    src_format = data.source.format if data.source else None

    def fmt(v: Any) -> str | None:
        return v.format if v.format != "auto" else (AUTO_FORMAT[src_format] if src_format else None)

    if data.source is None:
        return ValidateResponse(True, normal, [PlannedVariant(v.id, fmt(v)) for v in spec.pipeline])
    try:
        plan = compile_plan(spec, data.source.width, data.source.height)
    except PipelineError as exc:  # e.g. a crop box outside a source of this size
        return ValidateResponse(
            True, normal, [PlannedVariant(v.id, fmt(v)) for v in spec.pipeline], plan_error=exc.public
        )
    sizes = {n.variant.id: n.predicted_size for n in plan.nodes}
    return ValidateResponse(
        True,
        normal,
        [PlannedVariant(v.id, fmt(v), *sizes[v.id]) for v in spec.pipeline],
        decode_size=plan.decode_size,
    )
