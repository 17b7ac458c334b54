"""Encoders per output format, with the DSL's options mapped to libvips' and sane defaults."""

from __future__ import annotations

from typing import Any

import pyvips

from pipeline.dsl.variant import Variant, effective_effort, kept_metadata
from pipeline.jxl import encode_jxl
from pipeline.metadata import for_encoding
from pipeline.pillow_encode import pillow_can_encode, pillow_encode
from pipeline.sniff import CONTENT_TYPES, EXTENSIONS, output_format

__all__ = ["DEFAULT_QUALITY", "encode", "resolve_format"]

DEFAULT_QUALITY = {"jpeg": 80, "webp": 80, "avif": 50, "tiff": 85, "jxl": 80}


def resolve_format(variant: Variant, source_format: str) -> str:
    """``auto`` keeps the source's format; vector SVG becomes PNG."""
    fmt = output_format(variant.format, source_format)
    assert fmt is not None  # the source's format is known here
    return fmt


def encode(image: pyvips.Image, variant: Variant, fmt: str) -> tuple[bytes, str]:
    """Encode to ``fmt``; returns the bytes and their content type."""
    image, keep = for_encoding(image, kept_metadata(variant))
    opts: dict[str, Any] = {"keep": keep}
    quality = variant.quality or DEFAULT_QUALITY.get(fmt)
    if fmt in ("jpeg", "tiff") and image.hasalpha() and (fmt == "jpeg" or variant.quality):
        image = image.flatten(background=[255] * (image.bands - 1))
    if pillow_can_encode(image, fmt, lossless=variant.lossless, keep_metadata=keep != "none"):
        assert quality is not None  # lossy webp and jpeg have defaults
        effort = effective_effort(variant, fmt)
        return pillow_encode(
            image, fmt, quality=quality, effort=effort, progressive=variant.progressive
        ), _content_type(fmt)
    if fmt == "jpeg":
        opts.update(Q=quality, interlace=variant.progressive, optimize_coding=True)
    elif fmt == "png":
        opts.update(interlace=variant.progressive, compression=effective_effort(variant, fmt))
    elif fmt == "webp":
        opts.update(effort=effective_effort(variant, fmt), lossless=variant.lossless)
        if not variant.lossless:
            opts["Q"] = quality
    elif fmt == "avif":
        opts.update(compression="av1", effort=effective_effort(variant, fmt), lossless=variant.lossless)
        if not variant.lossless:
            opts["Q"] = quality
    elif fmt == "jxl":  # not in this libvips build: pillow-jxl-plugin's libjxl
        effort = effective_effort(variant, fmt)
        assert effort is not None
        data = encode_jxl(_to_uchar(image), quality=quality, effort=effort, lossless=variant.lossless)
        return data, _content_type(fmt)
    elif fmt == "gif":
        opts.update(effort=effective_effort(variant, fmt), interlace=variant.progressive)
    elif fmt == "tiff":
        opts.update(compression="jpeg" if variant.quality else "deflate", Q=quality)
    else:  # pragma: no cover - the spec's Literal admits nothing else
        raise ValueError(fmt)
    return image.write_to_buffer(EXTENSIONS[fmt], **opts), _content_type(fmt)


def _to_uchar(image: pyvips.Image) -> pyvips.Image:
    return image if image.format == "uchar" else image.cast("uchar")


def _content_type(fmt: str) -> str:
    return CONTENT_TYPES[fmt]
