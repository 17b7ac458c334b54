"""JPEG XL in and out through imagecodecs' libjxl (BSD-3-Clause), which the ``pyvips-binary``
build lacks. (pillow-jxl-plugin would also return the colour profile, but it is GPL-3.0.)

libjxl decodes the whole file at once, so the size comes from our own reading of the codestream's
SizeHeader and ImageMetadata (ISO/IEC 18181-1 §D.2, §A.6): a few bytes, before any pixel, so the
limits apply first. A JPEG XL that losslessly wraps a JPEG is handed back to libvips' JPEG loader
as that JPEG; otherwise libjxl's pixels, upright (the codestream's orientation applied by libjxl),
are handed to libvips once. Colour: libjxl's pixels are taken as sRGB (imagecodecs does not return
the colour profile), which holds for the sRGB JPEG XL files cameras and encoders write by default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import pyvips

from pipeline.errors import CorruptImage
from pipeline.vips import pixel_array

__all__ = ["JxlHeader", "decode_jxl", "encode_jxl", "jxl_header", "wraps_jpeg"]

CODESTREAM = b"\xff\x0a"
CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
# width = height * num / den for the SizeHeader's ratio codes 1-7
_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}


@dataclass(frozen=True, slots=True)
class JxlHeader:
    width: int  # as stored; orientation 5-8 swaps them on display
    height: int
    orientation: int


class _Bits:
    """Least-significant-bit-first reader, as JPEG XL packs its headers."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def u(self, n: int) -> int:
        value = 0
        for i in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise CorruptImage("the jxl header is truncated")
            value |= ((self.data[byte] >> (self.pos & 7)) & 1) << i
            self.pos += 1
        return value

    def size(self) -> int:
        # U32(1 + u(9), 1 + u(13), 1 + u(18), 1 + u(30))
        return 1 + self.u((9, 13, 18, 30)[self.u(2)])


def _codestream(data: bytes) -> bytes:
    if data.startswith(CODESTREAM):
        return data
    if not data.startswith(CONTAINER):
        raise CorruptImage("not a JPEG XL file")
    pos = 0
    while pos + 8 <= len(data):
        size, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        header = 8
        if size == 1:
            size, header = int.from_bytes(data[pos + 8 : pos + 16], "big"), 16
        elif size == 0:
            size = len(data) - pos
        if size < header:
            break
        if kind == b"jxlc":
            return data[pos + header : pos + size]
        if kind == b"jxlp":  # partial codestream: a 4-byte sequence number first
            return data[pos + header + 4 : pos + size]
        pos += size
    raise CorruptImage("the JPEG XL container holds no codestream")


def jxl_header(data: bytes) -> JxlHeader:
    stream = _codestream(data)
    if not stream.startswith(CODESTREAM):
        raise CorruptImage("the JPEG XL codestream has no signature")
    bits = _Bits(stream[2:64])
    small = bits.u(1)
    height = (1 + bits.u(5)) * 8 if small else bits.size()
    ratio = bits.u(3)
    if ratio:
        num, den = _RATIOS[ratio]
        width = height * num // den
    else:
        width = (1 + bits.u(5)) * 8 if small else bits.size()
    orientation = 1
    if not bits.u(1) and bits.u(1):  # not all_default, extra_fields
        orientation = 1 + bits.u(3)
    return JxlHeader(width, height, orientation)


def wraps_jpeg(data: bytes) -> bool:
    """A container with JPEG reconstruction data (a ``jbrd`` box): a JPEG recompressed losslessly."""
    if not data.startswith(CONTAINER):
        return False
    pos = 0
    while pos + 8 <= len(data):
        size, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        if kind == b"jbrd":
            return True
        if size == 1:
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        if size < 8:  # 0 (to the end) or malformed: nothing after it
            return False
        pos += size
    return False


def decode_jxl(data: bytes) -> tuple[pyvips.Image | None, bytes | None]:
    """(image, None): libjxl's pixels, upright, 8 or 16 bits; or (None, jpeg): the JPEG this file
    losslessly wraps, for libvips' JPEG loader (shrink-on-load included)."""
    import imagecodecs  # imported on first use: most jobs never see a JPEG XL

    try:
        if wraps_jpeg(data):
            return None, cast(bytes, imagecodecs.jpegxl_decode_jpeg(data, numthreads=1))  # bytearray only with out=
        # one thread: a worker runs one job per core
        # the first frame: an animation's frames would come as one more array dimension
        pixels = imagecodecs.jpegxl_decode(data, index=0, numthreads=1)
    except (RuntimeError, ValueError) as exc:  # imagecodecs.JpegxlError is a RuntimeError, as are its others
        raise CorruptImage("the jxl image data is corrupt or truncated", detail=str(exc)) from None
    if pixels.dtype.kind == "f":  # HDR: libvips takes it linear-light 0-1 as scRGB
        pixels = pixels.astype("float32")
    image = pyvips.Image.new_from_array(pixels)
    grey = image.bands <= 2
    if pixels.dtype == "uint16":
        return image.copy(interpretation="grey16" if grey else "rgb16"), None
    if pixels.dtype.kind == "f":
        return image.copy(interpretation="b-w" if grey else "scrgb"), None
    return image.copy(interpretation="b-w" if grey else "srgb"), None


def encode_jxl(image: pyvips.Image, *, quality: int | None, effort: int, lossless: bool) -> bytes:
    """8-bit sRGB or grey pixels (with or without alpha) as a bare JPEG XL codestream, no metadata."""
    import imagecodecs

    pixels = pixel_array(image)
    if image.bands == 1:
        pixels = pixels[..., 0]  # imagecodecs reads rows x columns as grey
    if lossless:
        encoded = imagecodecs.jpegxl_encode(pixels, lossless=True, effort=effort, numthreads=1)
    else:
        encoded = imagecodecs.jpegxl_encode(pixels, level=quality, effort=effort, numthreads=1)
    return cast(bytes, encoded)  # a bytearray only into an out= buffer
