"""Encoding a variant: its format's encoder (pipeline/encoders.py: ``ENCODERS``) at the variant's
quality or the format's default, and `max_bytes`: the highest quality that fits."""

from __future__ import annotations

from typing import NamedTuple

import pyvips

from pipeline.dsl.variant import Variant, kept_metadata, output_format
from pipeline.encoders import ENCODERS, Encoding
from pipeline.errors import CannotMeetMaxBytes, InvalidOperation
from pipeline.formats import FORMATS
from pipeline.metadata import for_encoding

__all__ = ["Encoded", "encode", "resolve_format"]


def resolve_format(variant: Variant, source_format: str) -> str:
    """``auto`` keeps the source's format, or picks a lossy one for `max_bytes`; vector SVG becomes
    PNG (pipeline/formats.py)."""
    fmt = output_format(variant, source_format)
    assert fmt is not None  # the source's format is known here
    return fmt


class Encoded(NamedTuple):
    data: bytes
    content_type: str
    quality: int | None  # what a lossy encoder ran at (with `max_bytes`: what the search chose)


def encode(image: pyvips.Image, variant: Variant, fmt: str, *, pixels: bytes | None = None) -> Encoded:
    """Encode to ``fmt``, within the variant's ``max_bytes`` if it has one. ``pixels``: the image's
    own pixels, when the caller holds them as bytes (an encoder reading bytes need not copy them)."""
    quality = variant.quality or FORMATS[fmt].quality
    limit = variant.max_bytes
    if limit is None:
        return _encode_at(image, variant, fmt, quality, pixels)
    if not FORMATS[fmt].lossy or variant.lossless or quality is None:
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
    prepared, keep = for_encoding(image, kept_metadata(variant))
    own = pixels if prepared is image else None  # a changed image (a profile applied) has its own
    written = ENCODERS[fmt](Encoding(prepared, variant, quality, keep, own))
    return Encoded(written.data, FORMATS[fmt].mime, written.quality)
