"""Header-only probing and the single shrink-on-load decode of a job's source."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import pyvips

from pipeline.compile import Plan, check_source_size
from pipeline.dsl.limits import Limits
from pipeline.errors import CorruptImage, ImageTooLarge
from pipeline.gif import gif_is_opaque
from pipeline.heif import decode_heif, heif_header
from pipeline.jpeg import decode_jpeg_scaled
from pipeline.jxl import decode_jxl, jxl_header
from pipeline.metadata import to_working_colour
from pipeline.sniff import SNIFF_BYTES, SourceFormat, sniff
from pipeline.svg import check_svg
from pipeline.vips import load_bytes, thumbnail_bytes

__all__ = ["SourceHeader", "decode", "drop_opaque_alpha", "probe"]

_HUGE = 10_000_000  # "no bound" for the side thumbnail does not anchor on
# How bad loader trouble must be to fail the job. `error` covers data that simply stops (libvips
# calls that truncated). But a JPEG whose entropy data stops at a marker (truncated, then EOI or
# any other marker) is only a libjpeg *warning*, "premature end of data segment": libjpeg fills
# the rest with grey and libvips reports success. So JPEG fails on warnings, as sharp does by
# default; the price is that a JPEG with libjpeg's other warnings (stray bytes between segments)
# is refused too, though viewers show it. Not PNG: libpng warns about common, harmless things
# (a known-incorrect sRGB profile), and its truncations already fail at `error`, as WebP's do.
_FAIL_ON = {"jpeg": "warning"}


@dataclass(frozen=True, slots=True)
class SourceHeader:
    format: SourceFormat
    width: int  # as displayed: after EXIF orientation when auto-orient is on
    height: int
    pages: int
    orientation: int
    bytes: int


def probe(data: bytes, limits: Limits, *, auto_orient: bool = True) -> SourceHeader:
    """Identify the image and check every limit from its header alone: no pixel is decoded."""
    if len(data) > limits.max_source_bytes:
        raise ImageTooLarge(f"source is {len(data)} bytes; the limit is {limits.max_source_bytes}")
    fmt = sniff(data[:SNIFF_BYTES])
    if fmt == "svg":
        check_svg(data)  # even reading an SVG's header parses the whole document in librsvg
    if fmt in _FOREIGN:
        # always shown upright: their decoders apply the orientation the codestream carries
        width, height, orientation = _foreign_header(fmt, data)
        pages = 1
        auto_orient = True
    else:
        try:
            header = load_bytes(data, access="sequential", fail_on="error")
            width, height = header.width, header.height
            fields = set(header.get_fields())
            pages = header.get("n-pages") if "n-pages" in fields else 1
            orientation = _orientation(header)
        except pyvips.Error as exc:
            raise CorruptImage(f"the {fmt} header cannot be read", detail=str(exc)) from None
    too_large = check_source_size(width, height, limits)
    if too_large is not None:
        raise too_large
    if pages > limits.max_frames:
        raise ImageTooLarge(f"source has {pages} frames; the limit is {limits.max_frames}")
    if auto_orient and orientation >= 5:
        width, height = height, width
    return SourceHeader(fmt, width, height, pages, orientation, len(data))


def decode(data: bytes, plan: Plan, *, auto_orient: bool) -> pyvips.Image:
    """Lazily decode the first frame at ``plan.decode_size``, shrinking on load, in 8 bits: sRGB
    or grey, or in its own profile when a variant keeps it (``pipeline.metadata``).

    thumbnail_buffer picks the cheapest route (JPEG DCT scaling, WebP/SVG scale-on-load, pyramid
    levels) and applies the EXIF orientation. ``fail_on`` goes to the loader itself so truncated
    data raises instead of turning grey.
    """
    dw, dh = plan.decode_size
    sw, sh = plan.source_size
    width, height = (dw, _HUGE) if sw >= sh else (_HUGE, dh)
    fmt = sniff(data[:SNIFF_BYTES])
    full = None
    if fmt in _FOREIGN:
        full, data = _foreign_decode(fmt, data)
        fmt, auto_orient = "jpeg", True  # unless decoded: a JPEG XL wrapping a JPEG, upright as probed
    fail_on = _FAIL_ON.get(fmt, "error")
    try:
        if full is not None:  # decoded in full by its own library: resized here
            image = _thumbnail(full.thumbnail_image, width, height, auto_orient=True)
        elif plan.jpeg_shrink > 1:
            image = _jpeg_shrunk(data, plan.jpeg_shrink, auto_orient=auto_orient, fail_on=fail_on)
            if (image.width, image.height) != plan.decode_size:  # held for several variants: see Plan
                image = image.resize(dw / image.width, vscale=dh / image.height)
        elif plan.frames > 1 and fmt == "gif" and (gif := _opaque_gif_frames(data, plan.decode_size, fail_on)):
            image = gif
        else:
            every_frame = ",n=-1" if plan.frames > 1 else ""  # an animation some variant keeps
            load = partial(thumbnail_bytes, data, option_string=f"fail_on={fail_on}{every_frame}")
            image = _thumbnail(load, width, height, auto_orient=auto_orient)
    except pyvips.Error as exc:
        raise CorruptImage("the image cannot be decoded", detail=str(exc)) from None
    # thumbnail leaves an embedded RGB profile alone (only CMYK is converted): managed here, at
    # the decoded size
    return _to_8bit(to_working_colour(image, keep_profile=plan.keep_profile))


def _thumbnail(load: Callable[..., pyvips.Image], width: int, height: int, *, auto_orient: bool) -> pyvips.Image:
    return load(width, height=height, size="down", no_rotate=not auto_orient)


def _to_8bit(image: pyvips.Image) -> pyvips.Image:
    if image.format != "uchar":
        grey = image.interpretation in ("b-w", "grey16")
        image = image.colourspace("b-w" if grey else "srgb")
        if image.format != "uchar":
            image = image.cast("uchar")
    return image


def _jpeg_shrunk(data: bytes, shrink: int, *, auto_orient: bool, fail_on: str) -> pyvips.Image:
    """What thumbnail_buffer does for a JPEG, at the planner's DCT scale (``Plan.jpeg_shrink``)
    rather than thumbnail's, upright. The variants' resizes do the rest."""
    image = decode_jpeg_scaled(data, shrink, fail_on=fail_on)  # libjpeg-turbo, in memory: see pipeline/jpeg.py
    if image is None:
        # Streamed top to bottom, the way every consumer reads it (a decode held in memory is copied
        # sequentially too): ~5 % less time than libvips' random access, which decodes into a buffer
        # first. Autorot's turns and flips read out of order, so an oriented source keeps random access.
        image = load_bytes(data, shrink=shrink, fail_on=fail_on, access="sequential")
        if auto_orient and _orientation(image) > 1:
            image = load_bytes(data, shrink=shrink, fail_on=fail_on)
    return image.autorot() if auto_orient and _orientation(image) > 1 else image


def _opaque_gif_frames(data: bytes, size: tuple[int, int], fail_on: str) -> pyvips.Image | None:
    """Every frame of an opaque GIF, each resized to ``size``, without alpha: thumbnail_buffer
    (n=-1)'s pixels, cheaper; None when the GIF is not opaque (thumbnail's path then).

    libvips decodes a GIF with a transparent index as RGBA, and thumbnail premultiplies and
    resizes that alpha in float; an alpha that is 255 everywhere premultiplies to the same pixels,
    so the RGBA resizes as it is, in 8 bits, and loses the band after (bench.probes, item 9).
    Whether it is: its blocks say so first (``gif_is_opaque``, so a transparent GIF is not resized
    twice), and the resized alpha confirms it, since a damaged frame can leave pixels undrawn that
    its blocks cover (a hole that does not move the resized alpha by half a level changes no
    output pixel by more than that either). As thumbnail does, the stack resizes as one image, so
    a frame's edge rows see a row of its neighbour."""
    if not gif_is_opaque(data, fail_on=fail_on):
        return None
    image = load_bytes(data, n=-1, fail_on=fail_on, access="sequential")
    page = image.get("page-height")
    width, height = size
    frames = image.height // page
    if (width, height) != (image.width, page):
        image = image.resize(width / image.width, vscale=height * frames / image.height).copy()
        image.set_type(pyvips.GValue.gint_type, "page-height", height)
    if image.bands < 4:  # no frame declares a transparent index: libvips decoded RGB
        return image
    image = image.copy_memory()  # the resized stack: small
    if image.extract_band(3).min() < 255:
        return None
    return image.extract_band(0, n=3)


_FOREIGN = frozenset({"heic", "jxl"})  # formats this libvips build cannot read: see pipeline/heif.py, jxl.py


def _foreign_header(fmt: str, data: bytes) -> tuple[int, int, int]:
    """Stored width and height, and the orientation the decoder applies (HEIF's transforms are
    part of its geometry: libheif reports the size they make)."""
    if fmt == "heic":
        heif = heif_header(data)
        return heif.width, heif.height, 1
    jxl = jxl_header(data)
    return jxl.width, jxl.height, jxl.orientation


def _foreign_decode(fmt: str, data: bytes) -> tuple[pyvips.Image | None, bytes]:
    if fmt == "heic":
        return decode_heif(data, threads=pyvips.concurrency_get()), data
    image, jpeg = decode_jxl(data)
    return image, jpeg if jpeg is not None else data


def _orientation(header: pyvips.Image) -> int:
    """The EXIF orientation, 1 (upright) when absent or out of range."""
    orientation = header.get("orientation") if "orientation" in header.get_fields() else 1
    return orientation if 1 <= orientation <= 8 else 1


def drop_opaque_alpha(image: pyvips.Image) -> pyvips.Image:
    """An in-memory image whose alpha is 255 everywhere, without it. Such a band changes no pixel
    but costs: every resize premultiplies and unpremultiplies it, and every encoder carries it.
    Only for images already in memory: finding the minimum of a lazy one would decode it twice."""
    # decode() hands over 8-bit images, so opaque is 255
    if not image.hasalpha() or image.format != "uchar" or image.extract_band(image.bands - 1).min() < 255:
        return image
    return image.extract_band(0, n=image.bands - 1)
