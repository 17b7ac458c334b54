"""JPEG decoding at a DCT scale (1/2, 1/4, 1/8) by libjpeg-turbo through simplejpeg instead of
``pyvips-binary``'s libjpeg (mozjpeg): about 7 % less time at 1/8 on a 24 MP photo, where decoding
is most of a thumbnail job, and level at 1/2 (``bench/probes.py`` item 6). The pixels are
identical: same IDCT (islow), same fancy upsampling, cropped to the size libvips reports (it
rounds a partial last pixel down, libjpeg up).

Only plain 8-bit YCbCr and greyscale JPEGs take this path; CMYK/YCCK and anything the header
does not describe plainly stay with libvips. Corrupt data fails exactly as it does there: libjpeg's
warnings (a segment that stops at a marker, "premature end of data segment") are errors here too
(``strict``), as ``fail_on=warning`` makes them in libvips. The metadata (profile, EXIF, XMP,
orientation, resolution) is read by libvips from the header, which decodes no pixel.
"""

from __future__ import annotations

import pyvips

from pipeline.errors import CorruptImage
from pipeline.vips import load_bytes, with_header_of

__all__ = ["decode_jpeg_scaled"]

_COLOURSPACES = {("srgb", 3): "RGB", ("b-w", 1): "GRAY"}


def decode_jpeg_scaled(data: bytes, shrink: int, *, fail_on: str) -> pyvips.Image | None:
    """The JPEG at 1/``shrink``, in memory, with the file's metadata; None if it is not a plain
    YCbCr/grey JPEG (the caller decodes it with libvips instead)."""
    import simplejpeg  # imported on first use: the API process never decodes

    header = load_bytes(data, shrink=shrink, fail_on=fail_on, access="sequential")
    colourspace = _COLOURSPACES.get((header.interpretation, header.bands))
    if colourspace is None or header.format != "uchar":
        return None
    width, height = header.width, header.height
    try:
        pixels = simplejpeg.decode_jpeg(
            data,
            colorspace=colourspace,
            min_height=height,
            min_width=width,
            min_factor=shrink,
            strict=True,
        )
    except ValueError as exc:
        raise CorruptImage("the jpeg image data is corrupt or truncated", detail=str(exc)) from None
    if pixels.shape[0] < height or pixels.shape[1] < width:  # not the DCT scale asked for
        return None
    # libvips keeps a reference to the array; the crop is lazy, no copy
    image = pyvips.Image.new_from_memory(pixels.data, pixels.shape[1], pixels.shape[0], header.bands, "uchar")
    return with_header_of(image.crop(0, 0, width, height), header)
