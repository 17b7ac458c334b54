"""HEIC/HEIF sources (every iPhone photo), read by pi-heif: libheif with the libde265 HEVC
decoder, which the ``pyvips-binary`` build lacks (its libheif decodes AV1 only, for AVIF).
(pi-heif is pillow-heif without the x265 encoder, so without its GPL.)

The header (the primary image's size after its rotation and mirroring) is read without decoding
a pixel, so the limits apply first. Decoding yields the primary image upright (libheif applies the
file's own transforms; HEIF orientation lives there, and the EXIF tag is not applied again), in
8 bits (10- and 12-bit sources are scaled down), handed to libvips once without an encode.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyvips

from pipeline.errors import CorruptImage, ImageTooLarge

if TYPE_CHECKING:
    import pi_heif

__all__ = ["HeifHeader", "decode_heif", "heif_header"]

_BANDS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}


@dataclass(frozen=True, slots=True)
class HeifHeader:
    width: int
    height: int
    images: int  # top-level images in the file; only the primary one is processed


def _open(data: bytes) -> pi_heif.HeifFile:
    import pi_heif  # imported on first use: most jobs never see a HEIC

    try:
        heif = pi_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
    except (ValueError, RuntimeError, OSError) as exc:
        if "security limit" in str(exc).lower():
            raise ImageTooLarge("the HEIF image exceeds the decoder's size limits", detail=str(exc)) from None
        raise CorruptImage("the heic header cannot be read", detail=str(exc)) from None
    return heif


def heif_header(data: bytes) -> HeifHeader:
    heif = _open(data)
    width, height = heif.size
    return HeifHeader(width, height, len(heif))


def decode_heif(data: bytes, *, threads: int = 1) -> pyvips.Image:
    """The primary image in full, as an 8-bit sRGB/grey libvips image with its ICC profile attached
    (converted to sRGB by the caller, as for every source)."""
    import pi_heif

    pi_heif.options.DECODE_THREADS = threads
    heif = _open(data)
    try:
        pixels = heif.data  # decodes here
    except (ValueError, RuntimeError, OSError) as exc:
        raise CorruptImage("the heic image data is corrupt or truncated", detail=str(exc)) from None
    bands = _BANDS.get(heif.mode)
    if bands is None:
        raise CorruptImage(f"the heic image has an unexpected pixel layout ({heif.mode})")
    width, height = heif.size
    row = width * bands
    # copied out: the decoder's buffer lives only as long as its HeifFile, libvips reads later
    rows = np.frombuffer(pixels, dtype=np.uint8).reshape(height, heif.stride)[:, :row]  # rows may be padded
    image = pyvips.Image.new_from_memory(rows.tobytes(), width, height, bands, "uchar")
    image = image.copy(interpretation="b-w" if bands <= 2 else "srgb")
    icc = heif.info.get("icc_profile")
    if icc:
        image.set_type(pyvips.GValue.blob_type, "icc-profile-data", bytes(icc))
    return image
