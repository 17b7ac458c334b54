"""A signed URL's options made into the one-variant job spec its render runs: a template's
variant or the shorthand's steps, the width from the URL or the client hints, the format from
the URL or negotiated. Validated by the same decoder as every job, under the client's limits;
an error names the URL option it came from (``$.url.options[i]``, then the field's own path)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from control_plane.auth.principal import Principal
from control_plane.delivery.grammar import SOURCE_PATH, Processing, bad_option, option_path
from control_plane.delivery.negotiate import HINT_HEADERS, choose_format, hinted_dpr, hinted_width, snap
from control_plane.problems import ApiError, Forbidden, NotFound, Unprocessable
from control_plane.templates.presets import resolve_job
from control_plane.templates.reference import parse_reference
from infra.repo import Client, TemplateRepo
from pipeline.compile import spec_issues
from pipeline.dsl import JobSpec, Limits, decode_job_spec
from pipeline.errors import FieldError, SpecError
from pipeline.formats import FORMATS

__all__ = ["Plan", "plan_variant"]

URL_VARIANT = "url"
_AT_STEP = re.compile(r"^\$\.pipeline\[0\]\.steps\[(\d+)\](.*)$")
_AT_FIELD = re.compile(r"^\$\.pipeline\[0\]\.(\w+)(.*)$")


@dataclass(frozen=True)
class Plan:
    spec: JobSpec  # one variant, `id: url`, its format concrete
    variant: bytes  # that variant, normalised (every default written): part of the derived hash
    format: str
    template: tuple[str, int] | None  # the template version it came from
    vary: list[str] = field(default_factory=list)  # request headers the choice read


@dataclass
class _Draft:
    raw: dict[str, Any]
    # which option each part came from, for error paths
    step_options: list[int]
    field_options: dict[str, int]
    fallback: int | None  # the template's option: where anything else is reported
    template: tuple[str, int] | None = None


async def plan_variant(
    templates: TemplateRepo,
    client_id: uuid.UUID,
    p: Processing,
    *,
    limits: Limits,
    templates_only: bool,
    widths: tuple[int, ...],
    headers: Mapping[str, str],
    features: Callable[[], Awaitable[tuple[bool, bool]]],
    source_url: str | None = None,
) -> Plan:
    """``features``: the source's (alpha, animated), read only when the format is negotiated;
    ``source_url``: a url: source, which the render job fetches (validated with the spec)."""
    if templates_only:
        if p.template is None:
            raise Forbidden("this client's image URLs must name a template (t:NAME@VERSION)", code="url_templates_only")
        shorthand = [what for what, given in (("s:", p.steps), ("h:", p.height), ("fit:", p.fit)) if given]
        if shorthand:
            raise Forbidden(
                f"this client's image URLs may only name a template and its parameters, not {shorthand[0]}",
                code="url_templates_only",
            )
    vary: list[str] = []
    width = _width(p, widths, headers, vary)
    draft = await _template(templates, client_id, p, width, limits, vary) if p.template else _shorthand(p, width)
    raw = draft.raw
    asked = p.format[0] if p.format else None
    if asked is not None and asked != "auto":
        raw["format"] = asked
    if p.quality is not None:
        raw["quality"] = p.quality[0]
    if asked == "auto" or (asked is None and raw.get("format", "auto") == "auto"):
        alpha, animated = await features()
        raw["format"] = choose_format(headers.get("accept", ""), alpha=alpha, animated=animated)
        vary.insert(0, "Accept")
        if FORMATS[raw["format"]].quality is None:
            raw.pop("quality", None)  # a lossless fallback (PNG, GIF) has none to set
    job: dict[str, Any] = {"version": 1, "priority": "interactive", "pipeline": [raw]}
    if source_url is not None:
        job["source"] = {"url": source_url}
    spec = _validated(job, draft, limits)
    variant = spec.pipeline[0]
    return Plan(spec, msgspec.json.encode(variant), variant.format, draft.template, vary)


def _width(p: Processing, widths: tuple[int, ...], headers: Mapping[str, str], vary: list[str]) -> int | None:
    """The output width in pixels: ``w:`` (on the list, when there is one) times the device pixel
    ratio, else the ``Sec-CH-Width``/``Width`` hint; either snapped up to the list."""
    if p.width is not None:
        width, index = p.width
        if widths and width not in widths:
            raise bad_option(index, f"width must be one of {', '.join(map(str, widths))}", code="width_not_allowed")
        dpr = p.dpr[0] if p.dpr else None
        if dpr is None and (dpr := hinted_dpr(headers)) is not None:
            vary.append("Sec-CH-DPR")
        return width if not dpr or dpr == 1 else snap(round(width * dpr), widths)
    hinted, header = hinted_width(headers)
    if hinted is None:
        return None
    vary.append(header or "Width")
    return snap(hinted, widths)


def _shorthand(p: Processing, width: int | None) -> _Draft:
    steps = [s for s, _ in p.steps]
    step_options = [i for _, i in p.steps]
    if width is not None or p.height is not None:
        dpr = p.dpr[0] if p.dpr else 1.0
        resize: dict[str, Any] = {"op": "resize"}
        if width is not None:
            resize["width"] = width
        if p.height is not None:
            resize["height"] = max(1, round(p.height[0] * dpr))
        if p.fit is not None:
            resize["fit"] = p.fit[0]
        at = p.resize_at if p.resize_at is not None else 0
        origin = next((o[1] for o in (p.width, p.height, p.fit, p.dpr) if o is not None), -1)
        steps.insert(at, resize)
        step_options.insert(at, origin)
    elif p.fit is not None:
        raise bad_option(p.fit[1], "fit needs w: or h:")
    raw: dict[str, Any] = {"id": URL_VARIANT, "steps": steps, "format": "auto"}
    fields = {name: o[1] for name, o in (("format", p.format), ("quality", p.quality)) if o is not None}
    return _Draft(raw, step_options, fields, None)


async def _template(
    templates: TemplateRepo, client_id: uuid.UUID, p: Processing, width: int | None, limits: Limits, vary: list[str]
) -> _Draft:
    assert p.template is not None
    reference, variant_id, index = p.template
    for other in (p.height, p.fit, p.steps[0] if p.steps else None):
        if other is not None:
            raise bad_option(other[1], "with a template, only p:, w:, dpr:, f: and q: apply")
    name, version = parse_reference(reference) if re.fullmatch(r"[^@]+(@[0-9]{1,9})?", reference) else (reference, None)
    stored = await templates.get(client_id, name, version)
    if stored is None:
        raise NotFound(f"no template {reference!r}", code="template_not_found")
    declared = stored.parameters
    given: dict[str, Any] = {}
    for key, (value, at) in p.parameters.items():
        kind = declared.get(key, {}).get("type", "string")
        try:
            given[key] = _typed(value, kind)
        except ValueError:
            raise bad_option(at, f"parameter {key!r} expects {kind}", code="invalid_spec") from None
    if width is not None and "width" not in given:
        if "width" in declared:
            given["width"] = width  # w: and the width hint set a template's `width` parameter
        elif p.width is not None:
            raise bad_option(p.width[1], f"template {name!r} declares no `width` parameter for w: to set")
        else:
            vary[:] = [h for h in vary if h not in HINT_HEADERS]  # the hint changed nothing
    principal = Principal(Client(client_id, ""), None)
    try:
        spec, version_used = await resolve_job(
            templates, principal, {"template": f"{name}@{stored.version}", "parameters": given}
        )
        job = decode_job_spec(spec, limits)
    except SpecError as exc:
        raise _at_option(index, exc.errors) from None
    except ApiError as exc:
        if exc.status != 422:
            raise
        raise _at_option(index, exc.errors or [FieldError("$", exc.detail or exc.title)]) from None
    ids = [v.id for v in job.pipeline]
    if variant_id is None and len(ids) != 1:
        raise bad_option(index, f"the template makes {len(ids)} variants ({', '.join(ids)}): name one, t:{name}@N:ID")
    chosen = job.pipeline[0] if variant_id is None else next((v for v in job.pipeline if v.id == variant_id), None)
    if chosen is None:
        raise bad_option(index, f"the template has no variant {variant_id!r} (it has {', '.join(ids)})")
    if chosen.from_ is not None:
        raise bad_option(index, f"variant {chosen.id!r} is made from another (`from`); a URL renders one on its own")
    raw = msgspec.to_builtins(chosen)
    raw["id"] = URL_VARIANT
    raw.pop("from", None)
    fields = {n: o[1] for n, o in (("format", p.format), ("quality", p.quality)) if o is not None}
    assert version_used is not None
    return _Draft(raw, [index] * len(raw.get("steps", ())), fields, index, (version_used.name, version_used.version))


def _typed(value: str, kind: str) -> Any:
    if kind == "integer":
        return int(value)
    if kind == "number":
        return float(value)
    if kind == "boolean":
        if value not in ("true", "false"):
            raise ValueError(value)
        return value == "true"
    return value


def _at_option(index: int, errors: Sequence[FieldError]) -> Unprocessable:
    return Unprocessable(
        "the image URL's template or parameters are invalid",
        code="invalid_spec",
        errors=[FieldError(option_path(index) + e.path[1:], e.message) for e in errors],
    )


def _validated(raw: dict[str, Any], draft: _Draft, limits: Limits) -> JobSpec:
    try:
        spec = decode_job_spec(raw, limits)
    except SpecError as exc:
        raise Unprocessable(
            "the image URL's processing is invalid",
            code="invalid_spec",
            errors=[FieldError(_url_path(e.path, draft), e.message) for e in exc.errors],
        ) from None
    issues = spec_issues(spec, limits)
    if issues:
        raise Unprocessable(
            "the image URL's processing would break its limits whatever the source",
            code=issues[0].error.code,
            errors=[FieldError(_url_path(i.path, draft), i.error.public) for i in issues],
        )
    return spec


def _url_path(path: str, draft: _Draft) -> str:
    """A path in the one-variant spec as the URL option it came from."""
    if path.startswith("$.source"):
        return SOURCE_PATH
    if m := _AT_STEP.match(path):
        step = int(m.group(1))
        at = draft.step_options[step] if step < len(draft.step_options) else -1
        if at >= 0:
            return option_path(at) + m.group(2)
    elif (m := _AT_FIELD.match(path)) and m.group(1) in draft.field_options:
        return option_path(draft.field_options[m.group(1)]) + m.group(2)
    return option_path(draft.fallback) if draft.fallback is not None else "$.url.options"
