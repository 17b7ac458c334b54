"""Encoders per output format, with the DSL's options mapped to libvips' and sane defaults."""

from __future__ import annotations

from typing import Any

import pyvips

from pipeline.sniff import AUTO_FORMAT, CONTENT_TYPES
from pipeline.spec.variant import EFFORT_RANGE, Variant

__all__ = ["DEFAULT_QUALITY", "EXTENSIONS", "encode", "resolve_format"]

DEFAULT_QUALITY = {"jpeg": 80, "webp": 80, "avif": 50, "tiff": 85}
# AVIF effort above ~4 costs seconds per megapixel for little gain; webp 4 is libwebp's default.
DEFAULT_EFFORT = {"webp": 4, "avif": 2, "png": 6, "gif": 7}
EXTENSIONS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "avif": ".avif", "gif": ".gif", "tiff": ".tif"}


def resolve_format(variant: Variant, source_format: str) -> str:
    """``auto`` keeps the source's format; vector SVG becomes PNG."""
    return AUTO_FORMAT[source_format] if variant.format == "auto" else variant.format


def _effort(variant: Variant, fmt: str) -> int:
    if variant.effort is None:
        return DEFAULT_EFFORT[fmt]
    lo, hi = EFFORT_RANGE[fmt]
    return min(hi, max(lo, variant.effort))  # `auto` may resolve to a format with a narrower range


def encode(image: pyvips.Image, variant: Variant, fmt: str) -> tuple[bytes, str]:
    """Encode to ``fmt``; returns the bytes and their content type."""
    keep = "none" if variant.strip else "all"
    opts: dict[str, Any] = {"keep": keep}
    quality = variant.quality or DEFAULT_QUALITY.get(fmt)
    if fmt == "jpeg":
        if image.hasalpha():
            image = image.flatten(background=[255] * (image.bands - 1))
        opts.update(Q=quality, interlace=variant.progressive, optimize_coding=True)
        suffix = ".jpg"
    elif fmt == "png":
        opts.update(interlace=variant.progressive, compression=_effort(variant, fmt))
        suffix = ".png"
    elif fmt == "webp":
        opts.update(effort=_effort(variant, fmt), lossless=variant.lossless)
        if not variant.lossless:
            opts["Q"] = quality
        suffix = ".webp"
    elif fmt == "avif":
        opts.update(compression="av1", effort=_effort(variant, fmt), lossless=variant.lossless)
        if not variant.lossless:
            opts["Q"] = quality
        suffix = ".avif"
    elif fmt == "gif":
        opts.update(effort=_effort(variant, fmt), interlace=variant.progressive)
        suffix = ".gif"
    elif fmt == "tiff":
        opts.update(compression="jpeg" if variant.quality else "deflate", Q=quality)
        if image.hasalpha() and variant.quality:
            image = image.flatten(background=[255] * (image.bands - 1))
        suffix = ".tif"
    else:  # pragma: no cover - the spec's Literal admits nothing else
        raise ValueError(fmt)
    return image.write_to_buffer(suffix, **opts), _content_type(fmt)


def _content_type(fmt: str) -> str:
    return CONTENT_TYPES[fmt]
