"""Lossy WebP and JPEG written by Pillow's codecs instead of libvips'.

Measured (``bench.probes``, item 4): the same libwebp 1.6.0 behind Pillow's wheel writes the
same bytes as ``pyvips-binary``'s about 15 % faster, and Pillow's libjpeg-turbo 3 writes JPEGs
about 30 % faster than ``pyvips-binary``'s mozjpeg in its libjpeg-turbo-compatible mode, with the
same quantisation tables and chroma subsampling: the same bytes once libjpeg's JFIF segment is
dropped, as libvips drops it. Only pixels PixelFlow made are handed over; Pillow never parses an
untrusted file here.

Everything else (metadata kept, lossless, 16-bit, CMYK, other formats, images larger than the
formats allow) stays with libvips.
"""

from __future__ import annotations

import io

import pyvips
from PIL import Image

from pipeline.animation import is_animated

__all__ = ["pillow_can_encode", "pillow_encode"]

_MODES = {("srgb", 3): "RGB", ("srgb", 4): "RGBA", ("b-w", 1): "L"}
_WEBP_MAX = 16383  # libwebp's side limit; larger images keep libvips' error
_JPEG_MAX = 65500
# libvips' jpegsave subsamples chroma 4:2:0 below this quality and keeps it whole (4:4:4) from it on
_JPEG_FULL_CHROMA_FROM = 90
_JFIF = b"\xff\xe0\x00\x10JFIF\x00"  # the APP0 marker, its length (16) and identifier
_JFIF_BYTES = 2 + 16  # the marker and the segment


def _mode(image: pyvips.Image) -> str | None:
    if image.format != "uchar":
        return None
    interpretation = "b-w" if image.bands <= 2 and image.interpretation in ("b-w", "grey16") else image.interpretation
    return _MODES.get((interpretation, image.bands))


def pillow_can_encode(image: pyvips.Image, fmt: str, *, lossless: bool, keep_metadata: bool) -> bool:
    if keep_metadata or lossless or fmt not in ("webp", "jpeg"):
        return False
    if is_animated(image):
        return False  # frames of an animation: libvips writes them as one
    mode = _mode(image)
    if mode is None:
        return False
    if fmt == "webp":
        return mode != "L" and max(image.width, image.height) <= _WEBP_MAX
    return mode != "RGBA" and max(image.width, image.height) <= _JPEG_MAX


def pillow_encode(image: pyvips.Image, fmt: str, *, quality: int, effort: int | None, progressive: bool) -> bytes:
    """``image`` must pass ``pillow_can_encode``. Computing its pixels (``write_to_memory``) is
    where the lazy libvips pipeline runs; the encode itself releases the GIL."""
    mode = _mode(image)
    assert mode is not None
    pixels = Image.frombuffer(mode, (image.width, image.height), image.write_to_memory(), "raw", mode, 0, 1)
    out = io.BytesIO()
    if fmt == "webp":
        # libvips' defaults for the options PixelFlow does not expose: alpha at quality 100,
        # invisible pixels not kept exactly, the "default" preset
        pixels.save(out, "WEBP", quality=quality, method=effort, alpha_quality=100, exact=False)
    else:
        # grey has no chroma: 1x1 sampling factors, as libvips writes them
        subsampling = 0 if quality >= _JPEG_FULL_CHROMA_FROM or mode == "L" else 2
        pixels.save(out, "JPEG", quality=quality, optimize=True, progressive=progressive, subsampling=subsampling)
        data = out.getvalue()
        # libjpeg always writes a JFIF segment (density only); libvips drops it with the metadata.
        # Without it the file is byte for byte what libvips writes.
        return data[:2] + data[2 + _JFIF_BYTES :] if data[2 : 2 + len(_JFIF)] == _JFIF else data
    return out.getvalue()
