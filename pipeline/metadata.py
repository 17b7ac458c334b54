"""Colour profiles and metadata: what a decoded source carries, and what each variant keeps.

Pixels are sRGB unless a variant keeps the profile (`keep: ["icc"]`, or `strip: false`): then the
decode stays in the source's profile (a Display P3 or Adobe RGB photo keeps its gamut instead of
being clipped to sRGB), and every variant that does not keep it is converted to sRGB before it is
encoded. Images without a profile are sRGB by convention and carry none.

EXIF is kept tag by tag as libvips parsed it (``exif-ifd<N>-<tag>`` fields; libvips rebuilds the
EXIF block from them when writing): GPS (IFD 3) goes unless named, `copyright` keeps only the
copyright and artist tags, and the embedded preview image never stays.
"""

from __future__ import annotations

import pyvips

__all__ = ["for_encoding", "to_working_colour"]

_PROFILE = "icc-profile-data"
_GPS_IFD = "exif-ifd3-"
_COPYRIGHT = frozenset({"exif-ifd0-Copyright", "exif-ifd0-Artist"})
# EXIF's embedded preview (IFD1), which libvips carries apart and writes back with the EXIF: it
# shows the original picture, so a variant that cropped, blurred or watermarked it would leak it
_EXIF_THUMBNAIL = "jpeg-thumbnail-data"


def _without(image: pyvips.Image, fields: list[str]) -> pyvips.Image:
    if not fields:
        return image
    image = image.copy()  # a new header over the same pixels: images are shared between variants
    for name in fields:
        image.remove(name)
    return image


def _to_srgb(image: pyvips.Image, *, input_profile: str | None = None) -> pyvips.Image:
    if input_profile is None:
        image = image.icc_transform("srgb", embedded=True, intent="relative")
    else:
        image = image.icc_transform("srgb", input_profile=input_profile, intent="relative")
    return _without(image, [_PROFILE])  # sRGB pixels carry no profile


def to_working_colour(image: pyvips.Image, *, keep_profile: bool) -> pyvips.Image:
    """A decoded source in the colour the variants work in: sRGB, or its own profile if a variant
    keeps it. CMYK always becomes sRGB (by its profile, else libvips' CMYK one): the variants'
    encoders and ops work in RGB."""
    has_profile = _PROFILE in image.get_fields()
    if image.interpretation == "cmyk":
        return _to_srgb(image) if has_profile else _to_srgb(image, input_profile="cmyk")
    if has_profile and not keep_profile:
        return _to_srgb(image)
    return image


def for_encoding(image: pyvips.Image, kept: frozenset[str]) -> tuple[pyvips.Image, str]:
    """The image to encode for a variant keeping ``kept``, and libvips' ``keep`` flags for it."""
    fields = image.get_fields()
    if _PROFILE in fields and "icc" not in kept:
        image, fields = _to_srgb(image), [f for f in fields if f != _PROFILE]
    flags = [flag for flag in ("icc", "exif", "xmp", "iptc") if flag in kept]
    if "copyright" in kept and "exif" not in kept:
        flags.append("exif")
    # only EXIF carries the preview: with nothing kept the image is the one given, and an encoder
    # reading bytes can take the pixels the engine holds (pipeline/vips.in_memory)
    drop = [_EXIF_THUMBNAIL] if "exif" in flags and _EXIF_THUMBNAIL in fields else []
    if "exif" in flags:
        for name in fields:
            if not name.startswith("exif-ifd"):
                continue
            gps = name.startswith(_GPS_IFD) and "gps" not in kept
            if gps or ("exif" not in kept and name not in _COPYRIGHT):
                drop.append(name)
    return _without(image, drop), "|".join(flags) or "none"
