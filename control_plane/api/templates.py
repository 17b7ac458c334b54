"""``/v1/templates``: named, versioned job specs (presets) that jobs reference by name."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, PathParameter, QueryParameter

from control_plane.api.openapi import doc
from control_plane.auth.principal import PrincipalDep, needs
from control_plane.deps import ApiDepsDep
from control_plane.jobflow.intake import spec_limits
from control_plane.problems import InvalidRequest, NotFound, Unprocessable
from control_plane.templates.diff import TemplateDiff, diff_versions
from control_plane.templates.presets import TemplateRequest, save_template
from control_plane.templates.reference import TEMPLATE_NAME, TemplateName
from infra.repo import TemplateSummary, TemplateVersion
from pipeline.errors import FieldError

__all__ = ["TemplatesController"]

# In the OpenAPI document; Litestar does not apply a path parameter's pattern, _template_name does.
NamePath = Annotated[str, PathParameter(pattern=f"^{TEMPLATE_NAME}$", description="A template's name.")]


class TemplateVersionView(msgspec.Struct):
    version: int
    spec: dict[str, Any]  # as saved: placeholders included
    parameters: dict[str, Any]  # name -> {"type", "default"}
    created_at: datetime


class TemplateView(msgspec.Struct):
    name: str
    latest_version: int
    versions: list[TemplateVersionView]  # newest first


class TemplateSummaryView(msgspec.Struct):
    name: str
    latest_version: int
    created_at: datetime
    updated_at: datetime


class TemplateList(msgspec.Struct):
    templates: list[TemplateSummaryView]


def _template_name(name: str) -> str:
    """A name no template can have (NUL, upper case, too long...) is a bad request, not a search:
    Litestar does not apply a path parameter's pattern, and PostgreSQL cannot even compare a NUL."""
    try:
        return msgspec.convert(name, TemplateName)
    except msgspec.ValidationError:
        raise InvalidRequest(
            "the request is invalid", errors=[FieldError("$.name", f"a template name matches ^{TEMPLATE_NAME}$")]
        ) from None


def _version(v: TemplateVersion) -> TemplateVersionView:
    return TemplateVersionView(v.version, v.spec, v.parameters, v.created_at)


def _summary(t: TemplateSummary) -> TemplateSummaryView:
    return TemplateSummaryView(t.name, t.latest_version, t.created_at, t.updated_at)


class TemplatesController(Controller):
    path = "/v1/templates"
    tags = ["templates"]

    @post(
        "/",
        status_code=201,
        operation_id="saveTemplate",
        summary="Save a template: a new version",
        responses={200: ResponseSpec(TemplateVersionView, description="Unchanged: the latest version says the same")},
        opt=doc(raises=[Unprocessable]) | needs("templates:write"),
    )
    async def save(
        self, deps: ApiDepsDep, principal: PrincipalDep, data: JSONBody[TemplateRequest]
    ) -> Response[TemplateVersionView]:
        """Validates the spec as `createJob` does, with every parameter at its default (422
        `invalid_spec`, paths under `$.spec`), and stores it as the template's next version (201).
        Versions never change: a job pinned to `name@3` always runs version 3. Saving what the
        latest version already says returns it (200) instead of a new one."""
        limits = await spec_limits(deps, principal)
        saved = await save_template(deps.templates, principal.client.id, data, limits)
        return Response(_version(saved.version), status_code=201 if saved.new else 200)

    @get("/", operation_id="listTemplates", summary="Your templates", opt=doc())
    async def list_templates(self, deps: ApiDepsDep, principal: PrincipalDep) -> TemplateList:
        """Each template's name, latest version, and when it was first and last saved, by name."""
        return TemplateList([_summary(t) for t in await deps.templates.list(principal.client.id)])

    @get(
        "/{name:str}",
        operation_id="getTemplate",
        summary="A template with every version",
        opt=doc(raises=[NotFound]),
    )
    async def get_template(self, deps: ApiDepsDep, principal: PrincipalDep, name: NamePath) -> TemplateView:
        """Every version of the template, newest first, each with its spec and parameters as saved."""
        versions = await deps.templates.versions(principal.client.id, _template_name(name))
        if not versions:
            raise NotFound("no such template", code="template_not_found")
        return TemplateView(name, versions[0].version, [_version(v) for v in versions])

    @get(
        "/{name:str}/diff",
        operation_id="diffTemplate",
        summary="What changed between two versions",
        opt=doc(raises=[NotFound]),
    )
    async def diff(
        self,
        deps: ApiDepsDep,
        principal: PrincipalDep,
        name: NamePath,
        from_version: Annotated[
            int | None,
            QueryParameter(name="from", ge=1, description="The older version (default: the one before `to`)."),
        ] = None,
        to_version: Annotated[
            int | None, QueryParameter(name="to", ge=1, description="The newer version (default: the latest).")
        ] = None,
    ) -> TemplateDiff:
        """Each change from version `from` to version `to` of the template's spec and parameters:
        `op` (`add`, `remove`, `replace`), `path` in the notation of validation errors
        (`$.spec.pipeline[0].steps[1].width`, `$.parameters.caption.default`), and the values
        `before` and `after`. Lists compare by position. Without `to`, the latest version; without
        `from`, the version before `to` (a template's first version is compared with itself: no
        changes). 404 `template_not_found` for an unknown template or version."""
        versions = {v.version: v for v in await deps.templates.versions(principal.client.id, _template_name(name))}
        if not versions:
            raise NotFound("no such template", code="template_not_found")
        new_number = to_version if to_version is not None else max(versions)
        old_number = from_version if from_version is not None else max(new_number - 1, 1)
        missing = [n for n in (old_number, new_number) if n not in versions]
        if missing:
            raise NotFound(f"template {name!r} has no version {missing[0]}", code="template_not_found")
        return diff_versions(name, versions[old_number], versions[new_number])
