"""Templates (presets): a client's named job specs, versioned, with typed parameters.

A template's spec is a job spec in which any value may be a placeholder ``{"$param": "<name>"}``
for one of its declared parameters. Every parameter has a type and a default, so a template is
validated whole when it is saved (defaults filled in) and again, with the job's values, when a job
names it. A job names ``"product"`` (the latest version) or ``"product@3"`` (pinned); the job
stores the resolved spec and which version it came from.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from control_plane.api.openapi import DocumentedAs
from control_plane.auth.principal import Principal
from control_plane.problems import Forbidden, NotFound, Unprocessable
from control_plane.templates.reference import (
    MAX_PARAMETERS,
    PARAMETER_NAME,
    ParameterName,
    ParameterValue,
    TemplateJob,
    TemplateName,
    is_template_job,
    parse_reference,
)
from infra.repo import SavedVersion, TemplateRepo, TemplateVersion
from pipeline.dsl import Limits, decode_job_spec
from pipeline.dsl.decode import check_metadata, field_error
from pipeline.errors import FieldError, SpecError, member_path

__all__ = [
    "PLACEHOLDER",
    "Parameter",
    "TemplateJob",
    "TemplateRequest",
    "is_template_job",
    "resolve_job",
    "save_template",
]

PLACEHOLDER = "$param"
_TYPES: dict[str, tuple[type, ...]] = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,)}


class Parameter(msgspec.Struct, forbid_unknown_fields=True):
    """A value a job may set; ``default`` when it does not."""

    type: Literal["string", "integer", "number", "boolean"]
    # documented by msgspec: Litestar would drop the string's length and make the union a oneOf
    # (which no integer satisfies, being a number too)
    default: Annotated[ParameterValue, DocumentedAs(ParameterValue)]

    def admits(self, value: object) -> bool:
        # bool is an int to Python, never to a template
        return isinstance(value, _TYPES[self.type]) and (self.type == "boolean") == isinstance(value, bool)


class TemplateRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: TemplateName
    spec: Annotated[
        dict[str, Any],
        Meta(description='A job spec in which any value may be `{"$param": "<name>"}`, a declared parameter.'),
    ]
    # checked by save_template (422 naming the parameter), like the spec: msgspec would name
    # a bad one `$.parameters[...]`
    parameters: Annotated[dict[str, Any], DocumentedAs(dict[str, Parameter])] = msgspec.field(default_factory=dict)


def _substitute(value: Any, values: dict[str, Any], path: str, errors: list[FieldError]) -> Any:
    if isinstance(value, dict):
        if PLACEHOLDER in value:
            name = value[PLACEHOLDER]
            if len(value) != 1 or not isinstance(name, str):
                errors.append(FieldError(path, f'a placeholder is {{"{PLACEHOLDER}": "<parameter name>"}} alone'))
            elif name not in values:
                errors.append(FieldError(path, f"no parameter {name!r} is declared"))
            else:
                return values[name]
            return value
        return {k: _substitute(v, values, f"{path}.{k}", errors) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, values, f"{path}[{i}]", errors) for i, v in enumerate(value)]
    return value


def _fill(spec: dict[str, Any], parameters: dict[str, Parameter], given: dict[str, Any]) -> dict[str, Any]:
    """The spec with every placeholder replaced: the job's value, else the default. Raises SpecError."""
    errors = [
        FieldError(f"$.parameters.{name}", f"the template declares no parameter {name!r}")
        for name in given
        if name not in parameters
    ]
    errors += [
        FieldError(f"$.parameters.{name}", f"expected {parameters[name].type}")
        for name, value in given.items()
        if name in parameters and not parameters[name].admits(value)
    ]
    if errors:
        raise SpecError(errors)
    values = {name: given.get(name, p.default) for name, p in parameters.items()}
    filled = _substitute(spec, values, "$", errors)
    if errors:
        raise SpecError(errors)
    return filled


def _parameters(given: dict[str, Any]) -> dict[str, Parameter]:
    """The declared parameters, each checked on its own so that an error names it."""
    if len(given) > MAX_PARAMETERS:
        raise SpecError([FieldError("$.parameters", f"at most {MAX_PARAMETERS} parameters")])
    errors, parameters = [], {}
    for name, declared in given.items():
        path = member_path("$.parameters", name)
        if not PARAMETER_NAME.fullmatch(name):
            errors.append(FieldError(path, f"a parameter name must match {PARAMETER_NAME.pattern}"))
            continue
        try:
            p = msgspec.convert(declared, Parameter)
        except msgspec.ValidationError as exc:
            errors.append(field_error(exc, path))
            continue
        if not p.admits(p.default):
            errors.append(FieldError(f"{path}.default", f"expected {p.type}"))
        parameters[name] = p
    if errors:
        raise SpecError(errors)
    return parameters


def _given_parameters(body: dict[str, Any]) -> None:
    """A job's parameter values, each named when it is wrong (msgspec would say `$.parameters[...]`)."""
    given = body.get("parameters")
    errors = []
    for name, value in given.items() if isinstance(given, dict) else ():
        for kind, what in ((ParameterName, name), (ParameterValue, value)):
            try:
                msgspec.convert(what, kind)
            except msgspec.ValidationError as exc:
                errors.append(field_error(exc, member_path("$.parameters", str(name))))
                break
    if errors:
        raise Unprocessable("the job request is invalid", code="invalid_spec", errors=errors)


async def save_template(
    repo: TemplateRepo, client_id: uuid.UUID, data: TemplateRequest, limits: Limits
) -> SavedVersion:
    """Validate (a spec error's paths point into ``$.spec``) and store a new version."""
    parameters = _parameters(data.parameters)
    try:
        decode_job_spec(_fill(data.spec, parameters, {}), limits)
    except SpecError as exc:
        raise SpecError([FieldError("$.spec" + e.path[1:], e.message) for e in exc.errors]) from None
    return await repo.put(client_id, data.name, data.spec, msgspec.to_builtins(parameters))


async def resolve_job(
    repo: TemplateRepo, principal: Principal, body: Any, *, dry_run: bool = False
) -> tuple[Any, TemplateVersion | None]:
    """The spec a job body asks for, and the template version it came from (None: a free-form
    spec, which a presets-only key may only dry-run)."""
    if not is_template_job(body):
        if principal.presets_only and not dry_run:
            raise Forbidden("this API key may create jobs from templates only", code="presets_only")
        return body, None
    _given_parameters(body)
    check_metadata(body)  # where a template job's metadata, webhook and source sit in the spec it makes
    try:
        request = msgspec.convert(body, TemplateJob)
    except msgspec.ValidationError as exc:
        raise Unprocessable("the job request is invalid", code="invalid_spec", errors=[field_error(exc)]) from None
    name, version = parse_reference(request.template)
    template = await repo.get(principal.client.id, name, version)
    if template is None:
        raise NotFound(f"no template {request.template!r}", code="template_not_found")
    parameters = msgspec.convert(template.parameters, dict[str, Parameter])
    spec = _fill(template.spec, parameters, request.parameters)
    for field in ("webhook_url", "metadata", "source"):
        if getattr(request, field) is not None:
            spec[field] = msgspec.to_builtins(getattr(request, field))
    return spec, template
