"""Every bounded scalar of the DSL, named once. The JSON Schema is generated from these."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal, get_args

from msgspec import Meta

from pipeline.formats import FORMATS, output_formats

__all__ = [
    "HTTP_URL",
    "NO_CONTROL",
    "NO_NUL",
    "PATTERN_RULES",
    "SMART_GRAVITIES",
    "Angle",
    "Color",
    "Dimension",
    "Effort",
    "Factor",
    "FitMode",
    "FontSize",
    "Gravity",
    "Hue",
    "Margin",
    "Offset",
    "Opacity",
    "OutputFormat",
    "Padding",
    "Quality",
    "Sigma",
    "SmartCrop",
    "SmartGravity",
    "VariantId",
]

# PostgreSQL's text and jsonb cannot hold U+0000 and every string of a job is stored in them, so
# free text refuses it here, where the JSON Schema says so too. Patterns are for machines: a
# refusal names the rule in words (PATTERN_RULES, read by pipeline/dsl/decode.py).
NO_NUL = r"^[^\x00]*$"
NO_CONTROL = r"^[^\x00-\x08\x0b-\x1f\x7f]*$"  # tab and line breaks are text; the rest is not
# An http(s) URL: a host, then no whitespace or control characters (none survives a request line)
HTTP_URL = r"^https?://[^\s/?#\x00-\x1f\x7f]+[^\s\x00-\x1f\x7f]*$"
PATTERN_RULES: dict[str, str] = {
    NO_NUL: "must not contain NUL (\\u0000)",
    NO_CONTROL: "must not contain control characters (tab and line breaks aside)",
    HTTP_URL: "must be an http(s) URL without spaces or control characters",
}

# The static ceiling; deployments lower it with Limits.max_output_dimension.
MAX_DIMENSION = 16384

Dimension = Annotated[int, Meta(ge=1, le=MAX_DIMENSION, description="Pixels.")]
Offset = Annotated[int, Meta(ge=0, le=MAX_DIMENSION * 8, description="Pixels from the left or top edge.")]
Padding = Annotated[int, Meta(ge=0, le=MAX_DIMENSION, description="Pixels added on one side.")]
Margin = Annotated[int, Meta(ge=0, le=4096, description="Pixels between a watermark and the edge.")]
VariantId = Annotated[
    str,
    Meta(
        pattern=r"^[a-z0-9_-]{1,64}$",
        min_length=1,
        max_length=64,
        description="Lower-case letters, digits, '_' and '-'; unique within a job.",
        examples=["thumb_small"],
    ),
]
Color = Annotated[
    str,
    Meta(
        pattern=r"^#(?:[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$",
        description="#rrggbb or #rrggbbaa.",
        examples=["#ffffff", "#00000080"],
    ),
]
Quality = Annotated[int, Meta(ge=1, le=100, description="Encoder quality, 1 (smallest) to 100 (best).")]
MaxBytes = Annotated[
    int,
    Meta(
        ge=100,
        le=100_000_000,
        description="Largest output in bytes: the quality is lowered (binary search, at most 8 encodes) to the "
        "highest that fits, or the job fails with cannot_meet_max_bytes.",
    ),
]
_EFFORTS = [f.effort for f in FORMATS.values() if f.effort is not None]
# The description keeps its published order (schemas/ is committed); tests/engine/test_format_registry.py
# holds it to the registry's ranges.
Effort = Annotated[
    int,
    Meta(
        ge=min(e.lo for e in _EFFORTS),
        le=max(e.hi for e in _EFFORTS),
        description="CPU spent on compression: webp 0-6, avif 0-9, png 0-9, gif 1-10, jxl 1-9.",
    ),
]
Sigma = Annotated[float, Meta(gt=0, le=100, description="Gaussian sigma in pixels.")]
Angle = Annotated[float, Meta(ge=-360, le=360, description="Degrees clockwise.")]
Factor = Annotated[float, Meta(ge=0, le=10, description="Multiplier; 1 leaves the image unchanged.")]
Hue = Annotated[float, Meta(ge=-360, le=360, description="Hue rotation in degrees.")]
Opacity = Annotated[float, Meta(ge=0, le=1, description="0 is invisible, 1 is opaque.")]
Fraction = Annotated[float, Meta(ge=0, le=1, description="A fraction of the source's width or height, 0 to 1.")]
FontSize = Annotated[int, Meta(ge=4, le=1024, description="Text height in pixels.")]

Gravity = Literal["centre", "north", "northeast", "east", "southeast", "south", "southwest", "west", "northwest"]
# Smart gravities let libvips choose where to crop by content; they cost a search of the image
# and read it out of order (pipeline/dsl/steps.py charges and flags them).
SmartCrop = Literal["attention", "entropy"]
SMART_GRAVITIES: tuple[str, ...] = get_args(SmartCrop)
SmartGravity = Literal[Gravity, SmartCrop]
FitMode = Literal["cover", "contain", "fill", "inside", "outside"]
# Metadata a variant may keep (pipeline/metadata.py); `gps` only inside `exif`, never by accident.
KeepTag = Literal["icc", "exif", "xmp", "copyright", "gps"]
# `auto` and every format with an encoder (pipeline/formats.py)
if TYPE_CHECKING:
    OutputFormat = str
else:
    OutputFormat = Literal[("auto", *output_formats())]
