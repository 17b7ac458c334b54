"""Identify an image by its first bytes, before any decoder sees it.

Only formats on the allow-list reach a decoder (libvips, or for HEIC and JPEG XL, which this
libvips build cannot read, pi-heif and imagecodecs); everything else (PDF, BMP, PSD,
...) is refused with a reason a client can act on. This also keeps libvips' long tail of loaders
away from untrusted input.
"""

from __future__ import annotations

import re
from typing import Literal

from pipeline.errors import UnsupportedFormat

__all__ = [
    "ANIMATED_FORMATS",
    "AUTO_FORMAT",
    "CONTENT_TYPES",
    "EXTENSIONS",
    "SNIFF_BYTES",
    "SourceFormat",
    "output_format",
    "sniff",
]

SourceFormat = Literal["jpeg", "png", "gif", "webp", "tiff", "avif", "svg", "heic", "jxl"]
SNIFF_BYTES = 4096

# File-name suffix per output format: stored object keys and `pixelflow run` outputs.
EXTENSIONS = {
    "jpeg": ".jpg",
    "png": ".png",
    "webp": ".webp",
    "avif": ".avif",
    "gif": ".gif",
    "tiff": ".tif",
    "jxl": ".jxl",
}

CONTENT_TYPES: dict[str, str] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "tiff": "image/tiff",
    "avif": "image/avif",
    "svg": "image/svg+xml",
    "heic": "image/heic",
    "jxl": "image/jxl",
}

# The encoders here that write animations (pipeline/animation.py)
ANIMATED_FORMATS = frozenset({"gif", "webp"})

# What output format `auto` picks for each source: the same one, except vector SVG becomes PNG
# and HEIC (no HEVC encoder here, and HEVC's patent pool) becomes JPEG.
AUTO_FORMAT: dict[str, str] = {
    "jpeg": "jpeg",
    "png": "png",
    "gif": "gif",
    "webp": "webp",
    "tiff": "tiff",
    "avif": "avif",
    "svg": "png",
    "heic": "jpeg",
    "jxl": "jxl",
}


def output_format(variant_format: str, source_format: str | None) -> str | None:
    """The format a variant is encoded in; None for `auto` while the source's format is unknown."""
    if variant_format != "auto":
        return variant_format
    return AUTO_FORMAT[source_format] if source_format is not None else None


_REFUSED = {
    "pdf": "PDF documents are not images PixelFlow processes",
    "bmp": "BMP is not supported; convert it to PNG",
    "psd": "Photoshop documents are not supported; export to PNG or TIFF",
}
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1", b"msf1"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_SVG = re.compile(rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*(?:<!DOCTYPE[^>]*>\s*)?<svg[\s>]", re.S | re.I)


def sniff(head: bytes) -> SourceFormat:
    """The format of an image from its first bytes (``SNIFF_BYTES`` are enough)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[4:8] == b"ftyp":
        return _iso_bmff(head)
    if head.startswith((b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")):
        return "jxl"
    if head.startswith(b"%PDF"):
        raise UnsupportedFormat(_REFUSED["pdf"])
    if head.startswith(b"BM"):
        raise UnsupportedFormat(_REFUSED["bmp"])
    if head.startswith(b"8BPS"):
        raise UnsupportedFormat(_REFUSED["psd"])
    if _SVG.match(head.removeprefix(b"\xef\xbb\xbf")):
        return "svg"
    raise UnsupportedFormat("not a recognised image: expected JPEG, PNG, GIF, WebP, TIFF, AVIF, HEIC, JPEG XL or SVG")


def _iso_bmff(head: bytes) -> SourceFormat:
    size = int.from_bytes(head[:4], "big")
    box = head[8 : min(size, len(head))] if size >= 16 else head[8:16]
    major, compatible = box[:4], {box[i : i + 4] for i in range(8, len(box) - 3, 4)}
    if major in _AVIF_BRANDS or (major in (b"mif1", b"msf1") and compatible & _AVIF_BRANDS):
        return "avif"
    if major in _HEIF_BRANDS or compatible & _HEIF_BRANDS:
        return "heic"
    raise UnsupportedFormat("not a recognised image: an ISO media file that is neither AVIF nor HEIC")
