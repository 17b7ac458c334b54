"""``POST /v1/specs/validate``: a dry run. The normalised spec, the sizes and cost it will produce,
and every limit it would break: the same planner the engine runs, so the two agree."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import post
from litestar.params import JSONBody
from msgspec import Meta

from control_plane.api.openapi import JOB_REQUEST, JOB_SPEC, doc
from control_plane.api.views import TemplateUse
from control_plane.auth.principal import PrincipalDep
from control_plane.deps import ApiDepsDep
from control_plane.jobflow.intake import known_source, spec_limits
from control_plane.problems import NotFound, Unprocessable
from control_plane.templates.diff import TemplateDiff, diff_versions
from control_plane.templates.presets import resolve_job
from infra.events import source_details
from pipeline.compile import PlanIssue, plan_issues, spec_issues
from pipeline.details import SourceDetails
from pipeline.dsl import decode_job_spec
from pipeline.dsl.variant import output_format
from pipeline.sniff import SourceFormat

__all__ = ["validate_spec"]


class SourceSize(msgspec.Struct, forbid_unknown_fields=True):
    width: Annotated[int, Meta(ge=1, le=1_000_000)]
    height: Annotated[int, Meta(ge=1, le=1_000_000)]
    format: SourceFormat | None = None
    frames: Annotated[int, Meta(ge=1, le=100_000, description="An animated source's frames.")] = 1


class ValidateRequest(msgspec.Struct, forbid_unknown_fields=True):
    spec: Annotated[dict[str, Any], JOB_REQUEST]  # a spec, or a template reference as createJob takes it
    source: SourceSize | None = None


class PlannedVariant(msgspec.Struct):
    id: str
    format: str | None  # None: `auto` and no source format given
    width: int | None = None
    height: int | None = None
    cost: int | None = None  # estimated work of its steps and encoder, in cost units (~CPU-ms)


class PlanProblem(msgspec.Struct):
    """A limit the job would break: where (``$.source`` is the given source size), and the code
    and message the job would fail with."""

    path: str
    code: str
    message: str


class ValidateResponse(msgspec.Struct):
    valid: bool  # false: the job would fail before any pixel work, for the reasons in `errors`
    spec: Annotated[dict[str, Any], JOB_SPEC]  # normalised: the compact form expanded, defaults filled in
    variants: list[PlannedVariant]
    max_cost: int  # the job budget
    decode_size: tuple[int, int] | None = None
    cost: int | None = None  # the whole job's estimate, given `source`
    errors: list[PlanProblem] = msgspec.field(default_factory=list)
    plan_error: str | None = None  # the first error's message
    template: TemplateUse | None = None  # the template version `spec` was resolved from
    # pinned to an older version than the latest: what changed from it to the latest
    newer_template: TemplateDiff | None = None
    # the original planned for: `source` as given, or the stored original a `{"job": id}` source names
    source: SourceSize | None = None
    # that stored original's description (format, size, colours, placeholders...), when its own
    # job asked for one (`info`), as the job will report it
    info: SourceDetails | None = None


@post(
    "/v1/specs/validate",
    status_code=200,
    tags=["specs"],
    operation_id="validateSpec",
    summary="Validate a spec; preview sizes, cost, limits",
    opt=doc(raises=[Unprocessable, NotFound]),
)
async def validate_spec(deps: ApiDepsDep, principal: PrincipalDep, data: JSONBody[ValidateRequest]) -> ValidateResponse:
    """A dry run: an invalid spec is 422 `invalid_spec` with every field's path, as `createJob`
    answers. A valid one returns its normalised form and, given `source` (the original's size and
    format), every variant's output size and cost and the job's estimate; `valid: false` lists
    every limit the job would break (`errors`), which `createJob` or the worker would refuse.
    Given a template reference, it is resolved as `createJob` would (404 `template_not_found`) and
    `template` names the version; `spec` is then the resolved spec. A reference pinned to an
    older version than the latest also gets `newer_template`: the changes from the pinned version
    to the latest, as `diffTemplate` lists them."""
    limits = await spec_limits(deps, principal)
    body, template = await resolve_job(deps.templates, principal, data.spec, dry_run=True)
    newer = None
    if template is not None:
        latest = await deps.templates.get(principal.client.id, template.name)
        if latest is not None and latest.version != template.version:
            newer = diff_versions(template.name, template, latest)
    spec = decode_job_spec(body, limits)  # the request's one decode; SpecError renders as 422 with paths
    normal = msgspec.to_builtins(spec)  # what encode_job_spec writes, as JSON values
    source, info = data.source, None
    if source is None and (known := await known_source(deps, principal, spec)) is not None:
        assert known.source_width is not None and known.source_height is not None
        details = source_details(known.source_info)
        frames = details.frames if details is not None else 1
        source = SourceSize(known.source_width, known.source_height, known.source_format, frames)
        info = details if spec.info is not None else None
    src_format = source.format if source else None
    variants = {v.id: PlannedVariant(v.id, output_format(v, src_format)) for v in spec.pipeline}
    plan = None
    if source is None:  # only what fails for every source
        issues = spec_issues(spec, limits)
    else:
        plan, issues = plan_issues(
            spec, source.width, source.height, limits, source_format=src_format, frames=source.frames
        )
    if plan is not None:
        for node in plan.nodes:
            variants[node.variant.id] = PlannedVariant(
                node.variant.id, node.format, *node.predicted_size, cost=round(node.cost)
            )
    return ValidateResponse(
        valid=not issues,
        spec=normal,
        variants=list(variants.values()),
        max_cost=limits.max_job_cost,
        decode_size=plan.decode_size if plan else None,
        cost=round(plan.cost) if plan else None,
        errors=[_problem(i) for i in issues],
        plan_error=issues[0].error.public if issues else None,
        template=TemplateUse(template.name, template.version) if template else None,
        newer_template=newer,
        source=source,
        info=info,
    )


def _problem(issue: PlanIssue) -> PlanProblem:
    return PlanProblem(issue.path, issue.error.code, issue.error.public)
