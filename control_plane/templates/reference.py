"""How a job names a template: the request shape ``createJob`` and the dry run accept instead of a
spec. Its own module because the OpenAPI document publishes it (control_plane.api.openapi imports it)."""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from msgspec import Meta

from pipeline.dsl.job import ImageSource, Metadata, WebhookUrl
from pipeline.dsl.types import NO_NUL

__all__ = [
    "MAX_PARAMETERS",
    "PARAMETER_NAME",
    "TEMPLATE_NAME",
    "ParameterName",
    "ParameterValue",
    "TemplateJob",
    "TemplateName",
    "is_template_job",
    "parse_reference",
]

TEMPLATE_NAME = r"[a-z0-9][a-z0-9_-]{0,63}"
TemplateName = Annotated[str, Meta(pattern=f"^{TEMPLATE_NAME}$", description="Lower-case letters, digits, `_`, `-`.")]
TemplateReference = Annotated[
    str,
    Meta(
        pattern=f"^{TEMPLATE_NAME}(@[1-9][0-9]{{0,8}})?$",
        description="A template's name (its latest version) or `name@version` (pinned).",
        examples=["product", "product@3"],
    ),
]
PARAMETER_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")
ParameterName = Annotated[str, Meta(pattern=f"^{PARAMETER_NAME.pattern}$")]
ParameterValue = Annotated[str, Meta(max_length=1024, pattern=NO_NUL)] | int | float | bool
MAX_PARAMETERS = 32


class TemplateJob(msgspec.Struct, forbid_unknown_fields=True):
    """A job by template: the template's spec, its parameters set, and this job's webhook, metadata
    and source (which replace the template's own)."""

    template: TemplateReference
    parameters: Annotated[dict[ParameterName, ParameterValue], Meta(max_length=MAX_PARAMETERS)] = msgspec.field(
        default_factory=dict
    )
    webhook_url: WebhookUrl | None = None
    metadata: Metadata | None = None
    source: ImageSource | None = None  # a backfill: a new version of the template run on a stored original


def is_template_job(body: object) -> bool:
    return isinstance(body, dict) and "template" in body


def parse_reference(reference: str) -> tuple[str, int | None]:
    name, _, version = reference.partition("@")
    return name, int(version) if version else None
