"""One encoder per output format, the DSL's options mapped to the encoder's: ``ENCODERS``, keyed
by the format's name in pipeline/formats.py (which holds everything else about it). libvips'
savers; Pillow's for lossy WebP and JPEG where it can (the same bytes, faster; animated WebP with
better colour: pipeline/pillow_encode.py); libjxl's for JPEG XL (pipeline/jxl.py). pipeline/encode.py
dispatches here only through the table, and adds `max_bytes`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import pyvips

from pipeline.dsl.variant import Variant, effective_effort
from pipeline.formats import FORMATS
from pipeline.jxl import encode_jxl
from pipeline.pillow_encode import can_write_jpeg, can_write_webp, write_jpeg, write_webp

__all__ = ["ENCODERS", "Encoder", "Encoding", "Written"]


@dataclass(frozen=True, slots=True)
class Encoding:
    """What an encoder is asked: ``image`` with the variant's metadata chosen (``keep``: libvips'
    flags for it, pipeline/metadata.py), at ``quality`` (the variant's, the format's default, or a
    try of the `max_bytes` search). ``pixels``: the image's own pixels, when the caller holds them
    as bytes (an encoder reading bytes need not copy them)."""

    image: pyvips.Image
    variant: Variant
    quality: int | None
    keep: str
    pixels: bytes | None = None

    @property
    def pillow_may(self) -> bool:
        """Pillow writes lossy pixels PixelFlow made and no metadata; the rest stays with libvips."""
        return not self.variant.lossless and self.keep == "none"

    @property
    def lossy_quality(self) -> int | None:
        """The quality to report: what a lossy encoder ran at, None when it wrote losslessly."""
        return None if self.variant.lossless else self.quality

    def effort(self, fmt: str) -> int | None:
        return effective_effort(self.variant, fmt)


class Written(NamedTuple):
    data: bytes
    quality: int | None  # what a lossy encoder ran at (with `max_bytes`: what the search chose)


Encoder = Callable[[Encoding], Written]


def _jpeg(e: Encoding) -> Written:
    image = _flattened(e.image)
    if e.pillow_may and can_write_jpeg(image):
        assert e.quality is not None  # jpeg has a default
        own = e.pixels if image is e.image else None  # a flattened image has its own
        return Written(write_jpeg(image, quality=e.quality, progressive=e.variant.progressive, pixels=own), e.quality)
    data = _vips(image, "jpeg", e.keep, Q=e.quality, interlace=e.variant.progressive, optimize_coding=True)
    return Written(data, e.lossy_quality)


def _png(e: Encoding) -> Written:
    return Written(_vips(e.image, "png", e.keep, interlace=e.variant.progressive, compression=e.effort("png")), None)


def _webp(e: Encoding) -> Written:
    if e.pillow_may and can_write_webp(e.image):
        assert e.quality is not None  # webp has a default
        return Written(write_webp(e.image, quality=e.quality, effort=e.effort("webp"), pixels=e.pixels), e.quality)
    opts = {} if e.variant.lossless else {"Q": e.quality}
    data = _vips(e.image, "webp", e.keep, effort=e.effort("webp"), lossless=e.variant.lossless, **opts)
    return Written(data, e.lossy_quality)


def _avif(e: Encoding) -> Written:
    opts = {} if e.variant.lossless else {"Q": e.quality}
    data = _vips(
        e.image, "avif", e.keep, compression="av1", effort=e.effort("avif"), lossless=e.variant.lossless, **opts
    )
    return Written(data, e.lossy_quality)


def _gif(e: Encoding) -> Written:
    return Written(_vips(e.image, "gif", e.keep, effort=e.effort("gif"), interlace=e.variant.progressive), None)


def _tiff(e: Encoding) -> Written:
    if e.variant.quality is None:
        return Written(_vips(e.image, "tiff", e.keep, compression="deflate", Q=e.quality), None)
    data = _vips(_flattened(e.image), "tiff", e.keep, compression="jpeg", Q=e.quality)
    return Written(data, e.quality)


def _jxl(e: Encoding) -> Written:  # not in this libvips build: imagecodecs' libjxl, which writes no metadata
    effort = e.effort("jxl")
    assert effort is not None
    image = e.image if e.image.format == "uchar" else e.image.cast("uchar")
    return Written(encode_jxl(image, quality=e.quality, effort=effort, lossless=e.variant.lossless), e.lossy_quality)


ENCODERS: dict[str, Encoder] = {
    "jpeg": _jpeg,
    "png": _png,
    "webp": _webp,
    "avif": _avif,
    "gif": _gif,
    "tiff": _tiff,
    "jxl": _jxl,
}


def _vips(image: pyvips.Image, fmt: str, keep: str, **opts: Any) -> bytes:
    """libvips' saver for ``fmt``, chosen by the format's file-name suffix."""
    return image.write_to_buffer(FORMATS[fmt].extension, keep=keep, **opts)


def _flattened(image: pyvips.Image) -> pyvips.Image:
    """Alpha composited onto white, for the JPEG compressors."""
    return image.flatten(background=[255] * (image.bands - 1)) if image.hasalpha() else image
