"""Encoders per output format, with the DSL's options mapped to the encoder's and sane defaults:
libvips' savers, Pillow's for lossy WebP and JPEG (the same bytes, faster; animated WebP with better
colour: pipeline/pillow_encode.py), libjxl's for JPEG XL (pipeline/jxl.py); and `max_bytes`, the
highest quality that fits."""

from __future__ import annotations

from typing import Any, NamedTuple

import pyvips

from pipeline.dsl.variant import LOSSY_FORMATS, Variant, effective_effort, kept_metadata
from pipeline.errors import CannotMeetMaxBytes, InvalidOperation
from pipeline.jxl import encode_jxl
from pipeline.metadata import for_encoding
from pipeline.pillow_encode import pillow_can_encode, pillow_encode
from pipeline.sniff import CONTENT_TYPES, EXTENSIONS, output_format

__all__ = ["DEFAULT_QUALITY", "Encoded", "encode", "resolve_format"]

DEFAULT_QUALITY = {"jpeg": 80, "webp": 80, "avif": 50, "tiff": 85, "jxl": 80}


def resolve_format(variant: Variant, source_format: str) -> str:
    """``auto`` keeps the source's format; vector SVG becomes PNG."""
    fmt = output_format(variant.format, source_format)
    assert fmt is not None  # the source's format is known here
    return fmt


class Encoded(NamedTuple):
    data: bytes
    content_type: str
    quality: int | None  # what a lossy encoder ran at (with `max_bytes`: what the search chose)


def encode(image: pyvips.Image, variant: Variant, fmt: str, *, pixels: bytes | None = None) -> Encoded:
    """Encode to ``fmt``, within the variant's ``max_bytes`` if it has one. ``pixels``: the image's
    own pixels, when the caller holds them as bytes (an encoder reading bytes need not copy them)."""
    quality = variant.quality or DEFAULT_QUALITY.get(fmt)
    limit = variant.max_bytes
    if limit is None:
        return _encode_at(image, variant, fmt, quality, pixels)
    if fmt not in LOSSY_FORMATS or variant.lossless or quality is None:
        raise InvalidOperation(f"variant '{variant.id}' has max_bytes, which needs a lossy format, not {fmt}")
    image = image.copy_memory()  # the pipeline runs once, not once per try
    first = _encode_at(image, variant, fmt, quality)
    if len(first.data) <= limit:
        return first
    # the highest quality below that fits: a binary search over 1..quality-1
    best, smallest, lo, hi = None, first, 1, quality - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        tried = _encode_at(image, variant, fmt, mid)
        if len(tried.data) <= limit:
            best, lo = tried, mid + 1
        else:
            smallest, hi = min(smallest, tried, key=lambda e: len(e.data)), mid - 1
    if best is None:
        raise CannotMeetMaxBytes(
            f"variant '{variant.id}' cannot fit its max_bytes of {limit:,}: its smallest {fmt}, at quality "
            f"{smallest.quality}, is {len(smallest.data):,} bytes"
        )
    return best


def _encode_at(
    image: pyvips.Image, variant: Variant, fmt: str, quality: int | None, pixels: bytes | None = None
) -> Encoded:
    given = image
    image, keep = for_encoding(image, kept_metadata(variant))
    opts: dict[str, Any] = {"keep": keep}
    if fmt in ("jpeg", "tiff") and image.hasalpha() and (fmt == "jpeg" or variant.quality):
        image = image.flatten(background=[255] * (image.bands - 1))
    if pillow_can_encode(image, fmt, lossless=variant.lossless, keep_metadata=keep != "none"):
        assert quality is not None  # lossy webp and jpeg have defaults
        effort = effective_effort(variant, fmt)
        own = pixels if image is given else None  # a changed image (a profile applied, flattened) has its own
        return Encoded(
            pillow_encode(image, fmt, quality=quality, effort=effort, progressive=variant.progressive, pixels=own),
            _content_type(fmt),
            quality,
        )
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
    elif fmt == "jxl":  # not in this libvips build: imagecodecs' libjxl
        effort = effective_effort(variant, fmt)
        assert effort is not None
        data = encode_jxl(_to_uchar(image), quality=quality, effort=effort, lossless=variant.lossless)
        return Encoded(data, _content_type(fmt), None if variant.lossless else quality)
    elif fmt == "gif":
        opts.update(effort=effective_effort(variant, fmt), interlace=variant.progressive)
    elif fmt == "tiff":
        opts.update(compression="jpeg" if variant.quality else "deflate", Q=quality)
    else:  # pragma: no cover - the spec's Literal admits nothing else
        raise ValueError(fmt)
    lossy = (fmt in LOSSY_FORMATS and not variant.lossless) or (fmt == "tiff" and variant.quality is not None)
    return Encoded(image.write_to_buffer(EXTENSIONS[fmt], **opts), _content_type(fmt), quality if lossy else None)


def _to_uchar(image: pyvips.Image) -> pyvips.Image:
    return image if image.format == "uchar" else image.cast("uchar")


def _content_type(fmt: str) -> str:
    return CONTENT_TYPES[fmt]
