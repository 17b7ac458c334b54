"""Identify an image by its first bytes, before any decoder sees it.

Only formats on the allow-list reach a decoder (libvips, or for HEIC and JPEG XL, which this
libvips build cannot read, pi-heif and imagecodecs); everything else (PDF, BMP, PSD,
...) is refused with a reason a client can act on. This also keeps libvips' long tail of loaders
away from untrusted input.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pipeline.errors import UnsupportedFormat
from pipeline.formats import FORMATS

__all__ = ["SNIFF_BYTES", "SourceFormat", "sniff"]

# Every format in pipeline/formats.py is read
if TYPE_CHECKING:
    SourceFormat = str
else:
    SourceFormat = Literal[tuple(FORMATS)]
SNIFF_BYTES = 4096

_REFUSED = {
    "pdf": "PDF documents are not images PixelFlow processes",
    "bmp": "BMP is not supported; convert it to PNG",
    "psd": "Photoshop documents are not supported; export to PNG or TIFF",
}
# SVG is text that may open with a declaration, comments and a doctype: tried after every binary
# signature, the ISO container and the refusals, so none of them is read as SVG
_TEXT = "svg"
_CONTAINERS = frozenset({b"mif1", b"msf1"})  # HEIF's structural brands, which AVIF files may name first


def sniff(head: bytes) -> SourceFormat:
    """The format of an image from its first bytes (``SNIFF_BYTES`` are enough)."""
    for f in FORMATS.values():
        if f.magic is not None and f.name != _TEXT and re.match(f.magic, head, re.S):
            return f.name
    if head[4:8] == b"ftyp":
        return _iso_bmff(head)
    if head.startswith(b"%PDF"):
        raise UnsupportedFormat(_REFUSED["pdf"])
    if head.startswith(b"BM"):
        raise UnsupportedFormat(_REFUSED["bmp"])
    if head.startswith(b"8BPS"):
        raise UnsupportedFormat(_REFUSED["psd"])
    if re.match(FORMATS[_TEXT].magic or b"", head, re.S):
        return _TEXT
    raise UnsupportedFormat("not a recognised image: expected JPEG, PNG, GIF, WebP, TIFF, AVIF, HEIC, JPEG XL or SVG")


def _iso_bmff(head: bytes) -> SourceFormat:
    size = int.from_bytes(head[:4], "big")
    box = head[8 : min(size, len(head))] if size >= 16 else head[8:16]
    major, compatible = box[:4], {box[i : i + 4] for i in range(8, len(box) - 3, 4)}
    avif, heic = FORMATS["avif"].brands, FORMATS["heic"].brands
    if major in avif or (major in _CONTAINERS and compatible & avif):
        return "avif"
    if major in heic or compatible & heic:
        return "heic"
    raise UnsupportedFormat("not a recognised image: an ISO media file that is neither AVIF nor HEIC")
