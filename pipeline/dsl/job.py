"""The job spec: the document a client posts."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from msgspec import Meta, Struct

from pipeline.dsl.types import HTTP_URL, NO_NUL
from pipeline.dsl.variant import Variant

__all__ = [
    "SPEC_VERSION",
    "ImageSource",
    "InfoRequest",
    "JobSpec",
    "Metadata",
    "MetadataKey",
    "MetadataValue",
    "Priority",
]

SPEC_VERSION = 1

WebhookUrl = Annotated[
    str,
    Meta(
        pattern=HTTP_URL,
        max_length=2048,
        description="Receives job.succeeded / job.failed, signed per Standard Webhooks.",
        examples=["https://example.com/hooks/pixelflow"],
    ),
]
MetadataKey = Annotated[str, Meta(min_length=1, max_length=64, pattern=NO_NUL)]
MetadataText = Annotated[str, Meta(max_length=1024, pattern=NO_NUL)]
MetadataValue = MetadataText | int | float | bool | None
Metadata = Annotated[
    dict[MetadataKey, MetadataValue],
    Meta(max_length=32, description="Opaque client data, echoed back in the job and its webhooks."),
]
Pipeline = Annotated[list[Variant], Meta(min_length=1, description="The output variants.")]


Placeholders = Annotated[
    list[Literal["blurhash", "thumbhash"]],
    Meta(max_length=2, description="Placeholder strings to compute from the source."),
]


class InfoRequest(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Ask for the source's description in the job result: format, size, orientation, frames,
    alpha, colour profile, an EXIF summary, average and dominant colour, and placeholders."""

    placeholders: Placeholders = []
    gps: bool = False  # the EXIF summary leaves out where the photo was taken unless asked


SourceUrl = Annotated[
    str,
    Meta(
        pattern=HTTP_URL,
        max_length=2048,
        description="An http(s) URL the worker fetches the original from (public addresses only).",
        examples=["https://example.com/photos/beach.jpg"],
    ),
]


class ImageSource(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Where the original comes from when it is not uploaded: exactly one of ``url`` (fetched by
    the worker) or ``job`` (the stored original of another of the client's jobs). The DSL only
    checks the shape; fetching, address checks and ownership belong to the service."""

    url: SourceUrl | None = None
    job: Annotated[uuid.UUID, Meta(description="The id of an earlier job whose original to reuse.")] | None = None

    def __post_init__(self) -> None:
        if (self.url is None) == (self.job is None):
            raise ValueError("a source is exactly one of `url` or `job`")


Priority = Annotated[
    Literal["interactive", "normal", "batch"],
    Meta(
        description="interactive: a user waits on it (reserved slots, within the client's allowance);"
        " batch: a backfill, taken after the client's normal jobs."
    ),
]


class JobSpec(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    version: Literal[1]
    pipeline: Pipeline
    webhook_url: WebhookUrl | None = None
    metadata: Metadata | None = None
    auto_orient: bool = True
    info: InfoRequest | None = None
    priority: Priority = "normal"
    source: ImageSource | None = None  # None: the original is uploaded

    def variant(self, variant_id: str) -> Variant:
        for v in self.pipeline:
            if v.id == variant_id:
                return v
        raise KeyError(variant_id)
